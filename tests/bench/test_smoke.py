"""The benchmarks' smoke modes: a short run of each, on a site of its own, so they cannot rot.
The figures themselves are measured by full runs and recorded in the README."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: boots systemd-nspawn test hosts"),
]

REPO = Path(__file__).resolve().parents[2]


def figures(argv: list[str], timeout: float) -> dict[str, str]:
    result = subprocess.run([sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    print(result.stderr[-5000:], file=sys.stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def test_bench_scale_smoke_prints_every_figure_and_loses_nothing():
    found = figures(["bench.scale", "--smoke"], timeout=1500)
    for name in ("create_per_s_100", "rss_mb_100", "idle_cpu_pct_100", "idle_api_rps_100", "info_s_100",
                 "resync_s_100", "record_50_s"):
        assert float(found[name]) > 0 or name.startswith("idle_"), (name, found[name])
    assert (found["lost"], found["duplicated"]) == ("0", "0")


def test_bench_peers_smoke_measures_every_backend_and_plots_them(tmp_path):
    found = figures(["bench.peers", "--smoke", "--out", str(tmp_path)], timeout=1800)
    for backend in ("kubernetes", "fork", "slurm"):
        for figure in ("turnaround_p50_s", "turnaround_p90_s", "burst_makespan_s", "submit_script_p50_ms",
                       "to_inlrms_p50_s", "in_lrms_p50_s", "to_finished_p50_s", "arcsub_p50_s"):
            # Every job sleeps 1 s in the backend: a turnaround or makespan under that was not measured.
            assert float(found[f"{figure}_{backend}"]) > 0, (figure, backend, found)
        assert float(found[f"turnaround_p50_s_{backend}"]) > 1.0
        assert float(found[f"burst_makespan_s_{backend}"]) > 1.0
    for name in ("ratio_p50_vs_fork", "ratio_p50_vs_slurm", "ratio_burst_vs_best_peer", "ratio_submit_script_vs_fork"):
        assert 0 < float(found[name]) < float("inf"), (name, found[name])
    assert (tmp_path / "figures.txt").read_text().splitlines() == [f"{k}={v}" for k, v in found.items()]
    assert (tmp_path / "turnaround.png").read_bytes().startswith(b"\x89PNG")
