"""The fuzz harnesses stay runnable: a short run of each finds no crash and no hang.

The long runs (a million inputs each) are fuzz/run's job, with figures in the README.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_each_fuzz_harness_survives_a_short_run(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "fuzz" / "run"), "--runs", "20000",
                             "--artifacts", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    figures = dict(line.split("=", 1) for line in result.stdout.split())
    for harness in ("grami", "protocol"):
        assert figures[f"{harness}_runs"] == "20000"
        assert figures[f"{harness}_crashes"] == figures[f"{harness}_hangs"] == "0"
