"""Read run records (``RESULTS_DIR/<run_id>/run.json``) written by the harness.

The leaderboard only ever reads these files: it never imports a model, torch or the harness,
so ``bench.py leaderboard`` stays fast and works on a machine without the model stack.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from records.files import RUN_FILE
from records.run_record import REQUIRED_KEYS, RunRecord, as_run_record
from records.schema import RecordError


def load_runs(results_dir: str | Path, include_failed: bool = False) -> tuple[list[RunRecord], list[str]]:
    """Return (rankable run records, warnings) for every ``<results_dir>/*/run.json``.

    Folders without run.json are ignored silently (a run still in progress, or unrelated).
    Unreadable or malformed records are skipped with a warning instead of raising, so one
    bad file never hides the whole leaderboard. Failed runs are reported and left out, so a
    failed re-run does not erase a candidate's last good result.
    """
    root = Path(results_dir)
    if not root.is_dir():
        return [], [f"results directory {root} does not exist"]

    runs: list[RunRecord] = []
    warnings: list[str] = []
    # Plain strings and one scandir: Path objects cost a third of the time over 10,000 runs.
    top = str(root)
    with os.scandir(top) as entries:
        names = sorted(e.name for e in entries if e.is_dir())
    for name in names:
        path = os.path.join(top, name, RUN_FILE)
        record, problem = _read(path)
        if record is None and problem is None:
            continue  # no run.json
        if problem:
            warnings.append(f"{path}: skipped, {problem}")
            continue
        if record.is_load_test:  # a load test (bench.py load): `report` plots it, never ranked
            continue
        if record.status == "failed" and not include_failed:
            warnings.append(f"{path}: run {record.run_id} of candidate {record.candidate!r} failed; not ranked")
            continue
        if record.status == "partial":
            warnings.append(
                f"{path}: run {record.run_id} of candidate {record.candidate!r} is partial; ranked with the results it has"
            )
        runs.append(record)
    return runs, warnings


def _read(path: str | Path) -> tuple[RunRecord | None, str | None]:
    """(the typed record, None), (None, why it is unusable), or (None, None) when there is no
    such file (a run still in progress, or an unrelated folder)."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"not valid JSON ({exc})"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc})"
    try:
        return RunRecord.from_dict(data, path), None
    except RecordError as err:
        return None, err.problem


def load_test_runs(results_dir: str | Path) -> list[RunRecord]:
    """The newest load-test record (`kind: "load"`, from `bench.py load`) of each candidate with at
    least one measured level; unreadable and failed ones are left out."""
    found = []
    for path in sorted(Path(results_dir).glob(f"*/{RUN_FILE}")):
        record, _ = _read(path)
        if record is not None and record.is_load_test and record.status != "failed":
            if isinstance(record.load, dict) and record.load.get("levels"):
                found.append(record)
    return latest_per_candidate(found)


def run_coverage(record: RunRecord | dict[str, Any]) -> float | None:
    """Predicted / planned samples: the record's `coverage` (the lowest of its suites), or, for
    records written before it existed, the lowest `n_scored / n_samples` of its suites."""
    record = as_run_record(record)
    value = record.coverage
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    found = []
    for block in (record.suites or {}).values():
        if not isinstance(block, dict):
            continue
        scored, planned = block.get("n_scored"), block.get("n_samples")
        if isinstance(scored, int) and isinstance(planned, int) and planned > 0:
            found.append(scored / planned)
    return min(found) if found else None


def latest_per_candidate(runs: list[RunRecord] | list[dict[str, Any]]) -> list[RunRecord]:
    """Keep the newest run of each candidate (by created_at, then run_id), sorted by name."""
    newest: dict[str, RunRecord] = {}
    for run in map(as_run_record, runs):
        current = newest.get(run.candidate)
        if current is None or _recency(run) > _recency(current):
            newest[run.candidate] = run
    return [newest[name] for name in sorted(newest)]


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _recency(run: RunRecord) -> tuple[datetime, str]:
    # Compare parsed datetimes, not strings: "+01:00" and "Z" offsets would sort wrongly as
    # text. A missing or unparseable created_at counts as oldest; run_id breaks ties (run ids
    # start with a timestamp, so this is still "newest").
    return _parse_time(run.created_at), run.run_id


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        return _EPOCH
    try:
        parsed = datetime.fromisoformat(value)  # 3.11+: accepts "Z"
    except ValueError:
        return _EPOCH
    # Naive timestamps are taken as UTC so they compare with aware ones.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_results(results_dir: str | Path, include_failed: bool = False) -> Any:
    """Every run record under ``results_dir`` as a pandas DataFrame, one row per run.

    Nested keys are flattened into dotted columns (``suites.asr.metrics.wer``,
    ``efficiency.latency_ms``, ``environment.threads``...). All runs are kept, not only the
    newest per candidate; ``leaderboard.rank(df, profile)`` picks those. Skipped records'
    warnings are in ``df.attrs["warnings"]``.
    """
    import pandas as pd

    runs, warnings = load_runs(results_dir, include_failed=include_failed)
    frame = pd.json_normalize([r.to_dict() for r in runs], sep=".") if runs else pd.DataFrame(columns=list(REQUIRED_KEYS))
    frame.attrs["warnings"] = warnings
    return frame
