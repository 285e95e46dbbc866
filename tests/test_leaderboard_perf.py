"""`bench.py leaderboard` over 1,000 run records: right answer, and never imports torch.

Its speed is held by tests/benchmarks/test_leaderboard_speed.py, as a ratio to reading the same
records in the same rounds; a test here asserts no absolute time (the machine is shared).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.leaderboard_records import build_records

REPO = Path(__file__).resolve().parents[1]
N_RUNS = 1000


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return build_records(tmp_path_factory.mktemp("many") / "results", N_RUNS, 100)


def test_leaderboard_over_1000_runs_answers_and_never_imports_torch(records):
    cmd = [sys.executable, "bench.py", "leaderboard", "--results", str(records), "--ci"]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    print(f"\nbench.py leaderboard over {N_RUNS} runs: {time.perf_counter() - start:.2f} s (reported, not held)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(" cand-") >= 100  # 50 candidates in each thread group
    assert "Group 2 of 2" in out.stdout and "threads 2 vs 1" in out.stdout

    probe = (
        "import sys, bench\n"
        "try:\n"
        f"    bench.cli(['leaderboard', '--results', {str(records)!r}, '--format', 'json'], standalone_mode=False)\n"
        "finally:\n"
        "    bad = [m for m in ('torch', 'transformers', 'harness', 'matplotlib', 'pandas', 'numpy') if m in sys.modules]\n"
        "    sys.stderr.write(f'HEAVY={bad}\\n')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "HEAVY=[]" in out.stderr
    assert len(json.loads(out.stdout)) == 100  # a candidate's runs all have one thread count
