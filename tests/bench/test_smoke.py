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
