"""Shared fixtures: an isolated model cache, demo paths, and helpers for real runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """Tests build the tiny checkpoint into their own cache unless one is given (CI reuses it)."""
    if "LALM_BENCH_CACHE" not in os.environ:
        os.environ["LALM_BENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return Path(os.environ["LALM_BENCH_CACHE"])


def bench(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs `python bench.py ARGS` as a user would, in a real subprocess."""
    return subprocess.run(
        [sys.executable, str(REPO / "bench.py"), *args],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )


def run_record_path(stdout: str) -> Path:
    for line in stdout.splitlines():
        if line.startswith("run record: "):
            return Path(line.removeprefix("run record: ").strip())
    raise AssertionError(f"no run record line in output:\n{stdout}")
