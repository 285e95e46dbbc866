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


def build_once(path: Path, build) -> Path:
    """Runs `build(folder)` once for `path`: into a temp sibling, then renamed into place, so
    concurrent callers race safely and a killed build leaves nothing half-written behind."""
    import shutil
    import tempfile

    if (path / "config.json").is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    try:
        build(staging)
        for item in [staging, *staging.rglob("*")]:  # mkdtemp makes it private; the cache is shared
            item.chmod(0o755 if item.is_dir() else 0o644)
        try:
            os.replace(staging, path)
        except OSError:  # another process finished first; its copy is identical
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
