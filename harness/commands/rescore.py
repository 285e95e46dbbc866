"""Re-score a finished run without re-running the model.

Rebuilds every `suites.*` block of run.json from the run's predictions.jsonl and job.json (the
planned samples and their references) with the current metric code, e.g. to get SPIDEr into
old runs once the SPICE jars are installed, or to apply a fixed scorer. The suite blocks'
`efficiency` and the run's `efficiency` are measurements: they are kept as they are, never
recomputed. The previous metrics go to `history`, newest last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.run import environment
from harness.run.plan import plans_from_job
from harness.score.judge import JudgeError, load_judge
from harness.score.scoring import run_coverage, score_suites
from harness.score.tasks import annotate_run
from records import files
from records.schema import RecordError


class RescoreError(Exception):
    """A run folder that cannot be re-scored; the message names the file and what to do."""


@dataclass
class RescoreResult:
    run_id: str
    run_dir: Path
    changes: list[str] = field(default_factory=list)  # "asr.wer: 0.1 -> 0.2", one per change
    judge_requests: int = 0  # qa answers sent to the judge (0 unless --rejudge or never judged)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _need(path: Path, what: str) -> None:
    if not path.is_file():
        raise RescoreError(f"{path}: not found; {what}")


def rescore_run(run_dir: Path, aac_cache: Path | None = None, judge: Path | None = None,
                rejudge: bool = False) -> RescoreResult:
    """Re-scores one run folder; writes run.json (atomically) only when something changed.

    qa judgements stored on the prediction lines are reused (no request is sent); `judge` (a
    judge file) judges the answers that have none, and `rejudge` judges every answer again, with
    `judge` or else the judge file the run was given."""
    run_dir = Path(run_dir)
    job_path, predictions_path = run_dir / files.JOB_FILE, run_dir / files.PREDICTIONS_FILE
    _need(run_dir / files.RUN_FILE, "a run folder holds run.json once its run has finished")
    _need(job_path, "it holds the planned samples and references that scoring needs; "
                    "runs written without it cannot be re-scored")
    _need(predictions_path, "re-scoring reads the predictions from it")
    try:
        record = files.read_run_record(run_dir)
        job = files.read_job(job_path)
    except RecordError as err:
        raise RescoreError(str(err)) from None
    protocol = str(record.protocol or job.protocol or "default")
    cache = aac_cache or job.options.get("aac_cache")
    try:
        plans = plans_from_job(job, cache)
    except KeyError as err:
        raise RescoreError(f"{job_path}: no suite {err} among the registered suites "
                           "(install the plugin that provides it)") from None
    judge_path = judge or (job.options.get("judge") if rejudge else None)
    if rejudge and not judge_path:
        raise RescoreError(f"{run_dir}: --rejudge needs a judge, and the run was given none; pass --judge FILE")
    try:
        config = load_judge(Path(judge_path)) if judge_path else None
    except JudgeError as err:
        raise RescoreError(str(err)) from None
    sent = annotate_run(run_dir, plans, config, rejudge)
    new = score_suites(plans, files.read_predictions(predictions_path), protocol)
    old = record.suites or {}
    for name, block in new.items():
        # Timings are measurements, never recomputed here; what the run recorded about its inputs
        # (the prompt, long-audio handling) is kept as it was.
        before = record.suite(name)
        block.pop("efficiency", None)
        block.update({key: value for key, value in before.items() if key not in block})
    new = json.loads(json.dumps(new))  # the values exactly as run.json will hold them
    suites = {**old, **new}  # a suite the job does not name stays as it was
    result = RescoreResult(record.run_id, run_dir, judge_requests=sent)
    result.changes = describe_changes(old, new)
    coverage = run_coverage(suites)
    if suites == old and record.coverage == coverage:
        return result
    if not result.changes:
        result.changes = ["metrics unchanged; record fields updated to the current format"]
    record.history = [*(record.history or []), {
        "rescored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_sha": environment.git_sha(),
        "metrics": {name: block.get("metrics") for name, block in old.items() if isinstance(block, dict)},
    }]
    record.suites, record.coverage = suites, coverage
    files.write_run_record(run_dir, record)
    return result


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per metric (and coverage) whose value changed, as "suite.metric: old -> new"."""
    lines = []
    for name in sorted(new):
        before = old.get(name) if isinstance(old.get(name), dict) else {}
        after = new[name]
        if not before:
            lines.append(f"{name}: new suite block (it was not in run.json)")
        old_metrics, new_metrics = before.get("metrics") or {}, after.get("metrics") or {}
        for key in [*new_metrics, *(k for k in old_metrics if k not in new_metrics)]:
            if old_metrics.get(key, _MISSING) != new_metrics.get(key, _MISSING):
                lines.append(f"{name}.{key}: {_change(old_metrics.get(key, _MISSING), new_metrics.get(key, _MISSING))}")
        if before and before.get("coverage", _MISSING) != after.get("coverage", _MISSING):
            lines.append(f"{name}.coverage: {_change(before.get('coverage', _MISSING), after.get('coverage'))}")
    return lines


def _change(old: Any, new: Any) -> str:
    a, b = _fmt(old), _fmt(new)
    if a == b:  # differs beyond 6 digits: show every digit
        a, b = repr(old), repr(new)
    return f"{a} -> {b}"


_MISSING = object()


def _fmt(value: Any) -> str:
    if value is _MISSING:
        return "absent"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def run_folders(results: Path) -> list[Path]:
    """Every run folder under `results` that holds a finished run (run.json), oldest first."""
    if not Path(results).is_dir():
        raise RescoreError(f"results folder not found: {results}")
    return sorted(p for p in Path(results).iterdir() if (p / files.RUN_FILE).is_file())


def find_run(results: Path, run_id: str) -> Path:
    """A run by folder path or run id under `results`."""
    path = Path(run_id)
    for candidate in (path, Path(results) / run_id):
        if candidate.is_dir():
            return candidate
    raise RescoreError(f"no run {run_id!r}: neither a folder nor a run id in {results}")
