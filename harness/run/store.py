"""Result files: unique run folders, atomic JSON writes, line-buffered prediction logs."""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
PREDICTIONS_FILE = "predictions.jsonl"


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


def write_json_atomic(path: Path, data: Any) -> None:
    """Writes to a temp file in the same folder, fsyncs, renames: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_jsonl(handle, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line; a torn last line (a killed writer) is ignored."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a predictions file, the first record of each (task, sample_id)."""
    records, seen = [], set()
    for record in read_jsonl(path):
        key = (record.get("task"), record.get("sample_id"))
        if key not in seen:
            seen.add(key)
            records.append(record)
    return records


def repair_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rewrites the file with its complete lines only (a killed writer can leave a torn last line),
    keeping the first record of each (task, sample_id); returns those records."""
    records = read_predictions(path)
    if path.is_file():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if text != path.read_text(encoding="utf-8"):
            fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    return records
