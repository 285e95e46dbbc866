"""Run folders: a unique results/<run_id>/ per run (the files in it are written by `records.files`)."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from pathlib import Path


def new_run_dir(results: Path, candidate: str) -> tuple[str, Path]:
    """Creates results/<run_id>/; the random suffix and exclusive mkdir make ids unique across processes."""
    results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", candidate)
    while True:
        run_id = f"{stamp}-{safe}-{secrets.token_hex(3)}"
        try:
            (results / run_id).mkdir()
            return run_id, results / run_id
        except FileExistsError:
            continue
