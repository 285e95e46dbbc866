"""The competition's submission files: `testset_id,text`, one row per sample, in input order.

`write_submission` turns a run's predictions into that CSV; `validate_submission` checks a CSV
the way the organiser's checker would, naming the row of every problem (the header is row 1).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from records import files
from records.schema import RecordError

COLUMNS = ["testset_id", "text"]
# The competition's submission files answer its two named tasks.
TASKS = ("asr", "aac")
DEFAULT_ID_PATTERN = r"test\d{4}"


class SubmissionError(Exception):
    """The run cannot give a submission; the message says why."""


def write_submission(run_dir: Path, task: str, out: Path) -> tuple[int, list[str]]:
    """Writes the CSV for one suite of a run; returns (rows written, ids with no prediction).

    Samples that failed or were never run get an empty text, so the file still lists every id
    in input order; the returned ids say which.
    """
    job_path = run_dir / files.JOB_FILE
    if not job_path.is_file():
        raise SubmissionError(f"{run_dir}: no job.json (is this a run folder?)")
    try:
        job = files.read_job(job_path)
    except RecordError as err:
        raise SubmissionError(str(err)) from None
    suite = next((s for s in job.suites if s.name == task), None)
    if suite is None:
        ran = ", ".join(s.name for s in job.suites)
        raise SubmissionError(f"run {run_dir.name} has no {task!r} suite (it ran: {ran})")
    predictions = {r.sample_id: r for r in files.read_predictions(run_dir / files.PREDICTIONS_FILE) if r.task == task}
    ids = [s.sample_id for s in suite.samples] + [q.sample_id for q in suite.skipped]
    empty = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for sample_id in ids:
            text = predictions[sample_id].prediction if sample_id in predictions else None
            if text is None:
                empty.append(sample_id)
            writer.writerow([sample_id, " ".join((text or "").split())])  # newlines flattened
    return len(ids), empty


def validate_submission(path: Path, expected_ids: list[str] | None = None,
                        id_pattern: str = DEFAULT_ID_PATTERN) -> list[str]:
    """Every problem of a submission CSV, each naming its row; an empty list means valid."""
    if not path.is_file():
        return [f"{path}: file not found"]
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        return [f"{path}: empty file (expected the header row `testset_id,text`)"]
    rows = list(csv.reader(text.splitlines()))
    problems = []
    if rows[0] != COLUMNS:
        problems.append(f"row 1: columns must be exactly `testset_id,text`, got `{','.join(rows[0])}`")
    pattern = re.compile(id_pattern)
    counts = Counter(row[0] for row in rows[1:] if row)
    seen: set[str] = set()
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            problems.append(f"row {number}: expected 2 fields (testset_id, text), got {len(row)}")
            continue
        sample_id = row[0]
        if not pattern.fullmatch(sample_id):
            problems.append(f"row {number}: bad id {sample_id!r} (expected {id_pattern}, e.g. test0001)")
        if counts[sample_id] > 1 and sample_id in seen:
            problems.append(f"row {number}: duplicate id {sample_id!r}")
        seen.add(sample_id)
    if expected_ids is not None:
        missing = [i for i in expected_ids if i not in counts]
        extra = sorted(set(counts) - set(expected_ids))
        if missing:
            problems.append(f"{len(missing)} id(s) of the annotation missing: {', '.join(missing[:10])}"
                            + (" ..." if len(missing) > 10 else ""))
        for sample_id in extra:
            row = next(n for n, r in enumerate(rows[1:], start=2) if r and r[0] == sample_id)
            problems.append(f"row {row}: id {sample_id!r} is not in the annotation")
    return problems
