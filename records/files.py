"""The files of a run folder and their one writer each: atomic JSON writes (readers never see
half a file) and line-buffered prediction logs whose torn last line (a killed writer) is dropped."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, TextIO

from records.job import JobFile
from records.prediction import Prediction
from records.run_record import RunRecord
from records.schema import RecordError
from records.worker_summary import WorkerSummary

RUN_FILE = "run.json"
JOB_FILE = "job.json"
WORKER_FILE = "worker.json"
PREDICTIONS_FILE = "predictions.jsonl"


def _replace_atomically(path: Path, text: str) -> None:
    """Writes to a temp file in the same folder, fsyncs, renames: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    _replace_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    """A JSON file's value; RecordError names the file when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RecordError(f"{path}: not readable JSON ({err})") from None


def write_run_record(run_dir: Path, record: RunRecord) -> None:
    write_json_atomic(Path(run_dir) / RUN_FILE, record.to_dict())


def read_run_record(run_dir: Path) -> RunRecord:
    path = Path(run_dir) / RUN_FILE
    return RunRecord.from_dict(read_json(path), where=str(path))


def write_job(path: Path, job: JobFile) -> None:
    write_json_atomic(path, job.to_dict())


def read_job(path: Path) -> JobFile:
    data = read_json(path)
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object, got {type(data).__name__}")
    try:
        return JobFile.from_dict(data)
    except (TypeError, KeyError) as err:
        raise RecordError(f"{path}: not a job file this version can read ({err})") from None


def write_worker_summary(run_dir: Path, summary: WorkerSummary) -> None:
    write_json_atomic(Path(run_dir) / WORKER_FILE, summary.to_dict())


def read_worker_summary(run_dir: Path) -> WorkerSummary | None:
    """The child's summary, or None when it wrote none (it died before its end)."""
    path = Path(run_dir) / WORKER_FILE
    return WorkerSummary.from_dict(read_json(path)) if path.is_file() else None


def append_jsonl(handle: TextIO, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


def append_prediction(handle: TextIO, prediction: Prediction) -> None:
    """The one writer of prediction lines; flushed at once, so a killed child loses none."""
    append_jsonl(handle, prediction.to_dict())


def write_predictions(path: Path, predictions: list[Prediction]) -> None:
    """Replaces a predictions file atomically (the parent adding what it scored to each line)."""
    _replace_atomically(path, "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in predictions))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line; a torn last line (a killed writer) is ignored."""
    if not Path(path).is_file():
        return []
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _first_of_each(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    records, seen = [], set()
    for record in lines:
        key = (record.get("task"), record.get("sample_id"))
        if key not in seen:
            seen.add(key)
            records.append(record)
    return records


def read_predictions(path: Path) -> list[Prediction]:
    """The complete lines of a predictions file, the first of each (task, sample_id)."""
    return [Prediction.from_dict(r) for r in _first_of_each(read_jsonl(path))]


def repair_predictions(path: Path) -> list[Prediction]:
    """Rewrites the file with its complete lines only (a killed writer can leave a torn last line),
    keeping the first line of each (task, sample_id); returns those predictions."""
    lines = _first_of_each(read_jsonl(path))
    if Path(path).is_file():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines)
        if text != Path(path).read_text(encoding="utf-8"):
            _replace_atomically(path, text)
    return [Prediction.from_dict(r) for r in lines]
