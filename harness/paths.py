"""Where the harness keeps generated models and other reusable files."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$LALM_BENCH_CACHE`, else `$XDG_CACHE_HOME/lalm-bench`, else ~/.cache/lalm-bench."""
    if os.environ.get("LALM_BENCH_CACHE"):
        return Path(os.environ["LALM_BENCH_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "lalm-bench"
