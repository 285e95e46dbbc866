"""The parent side of a run: plan it, start the measured child, score, write run.json.

The parent never loads a model. It validates the data, writes a job file, runs the child
(`harness.measure.worker`) in a fresh interpreter with pinned threads, and turns the child's
predictions into the run record, even when the child crashed half-way.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness.candidate import overrides
from harness.measure.worker import SAMPLE_TIMEOUT_EXIT
from harness.registry import build, resolve
from harness.run import repeats, store
from harness.run.child import describe_exit, spawn
from harness.run.library_logs import library_logs_to
from harness.run.plan import job_for, plan, plan_batched, plans_from_job
from harness.run.record import build_record
from harness.run.run_options import RunError, RunOptions
from harness.score.judge import load_judge
from harness.score.scoring import efficiency_block
from harness.score.tasks import annotate_run
from harness.spec import CandidateSpec
from records import files
from records.job import JobFile
from records.run_record import RunRecord
from records.schema import RecordError


def execute(options: RunOptions, spec: CandidateSpec | None = None,
            executor: dict | None = None) -> tuple[Path, RunRecord]:
    """Runs `options.candidate` (or `spec`, a candidate built elsewhere, e.g. a sweep's recipe
    variant); `executor` says in run.json which executor and node ran it (sweeps)."""
    spec = spec or resolve(options.candidate)
    candidate = build(spec)  # cheap: no weights yet; tells us the tasks
    tasks = frozenset(spec.tasks or candidate.tasks)
    plans = plan(options, spec, tasks)
    native = overrides(candidate, "generate_long_form")  # its own long-form algorithm (--long-audio native)
    for p in plans:  # asking `native` of a candidate without one fails here, before a run folder exists
        options.long_audio_for(p.suite, native, spec.name)
    run_id, run_dir = store.new_run_dir(Path(options.results), spec.name)
    job = job_for(run_id, run_dir, options, spec, plans, native)
    if options.batch_size > 1:
        plan_batched(job, options)
        job.batched = overrides(candidate, "generate_batch")
    files.write_job(run_dir / files.JOB_FILE, job)
    return _run_and_record(run_dir, job, candidate, options, plans, executor)


def resume(results: Path, run_id: str, progress: bool = True, executor: dict | None = None) -> tuple[Path, RunRecord]:
    """Continues a run from its job file: samples already in predictions.jsonl are kept, the rest run."""
    run_dir = _find_run(Path(results), run_id)
    try:
        job = files.read_job(run_dir / files.JOB_FILE)
    except RecordError as err:
        raise RunError(str(err)) from None
    if Path(job.run_dir).resolve() != run_dir.resolve():
        # The folder was moved or copied (e.g. to another machine): the child writes where the job says.
        job.run_dir = str(run_dir)
        files.write_job(run_dir / files.JOB_FILE, job)
    options = RunOptions(**{**job.options, "progress": progress})
    spec = CandidateSpec(**job.spec)
    return _run_and_record(run_dir, job, build(spec), options, plans_from_job(job, options.aac_cache), executor)


def _find_run(results: Path, run_id: str) -> Path:
    if run_id == "latest":
        runs = sorted(p for p in results.glob("*") if (p / files.JOB_FILE).is_file()) if results.is_dir() else []
        if not runs:
            raise RunError(f"no run to resume in {results}")
        return runs[-1]
    run_dir = Path(run_id) if Path(run_id).is_dir() else results / run_id
    if not (run_dir / files.JOB_FILE).is_file():
        raise RunError(f"no run {run_id!r} to resume in {results} (looked for {run_dir / files.JOB_FILE})")
    return run_dir


def _run_and_record(run_dir: Path, job: JobFile, candidate, options: RunOptions, plans,
                    executor: dict | None = None) -> tuple[Path, RunRecord]:
    """Runs the child (restarting it after a per-sample timeout) and writes run.json, always."""
    job_path = run_dir / files.JOB_FILE
    total = sum(len(p.samples) for p in plans)
    deadline = time.monotonic() + options.timeout_s if options.timeout_s else None
    error = None
    restarts = 0
    if overrides(candidate, "prepare"):
        code, timed_out = spawn(["--prepare", str(job_path)], run_dir, options.threads, None, 0, False)
        if describe_exit(code, timed_out):
            error = f"prepare step failed: {describe_exit(code, timed_out)}"
    while error is None:
        code, timed_out = spawn([str(job_path)], run_dir, options.threads, deadline, total, options.progress)
        # A hung sample was recorded as failed by the child; go on in a fresh one (bounded).
        if code == SAMPLE_TIMEOUT_EXIT and not timed_out and restarts < total:
            restarts += 1
            continue
        error = describe_exit(code, timed_out)
        break
    repeat_errors = _run_repeats(run_dir, job, options, deadline) if error is None and options.repeat > 1 else []
    _annotate(run_dir, plans, options)
    with library_logs_to(run_dir / "worker.log"):  # scoring imports aac-metrics -> torch -> torchao chatter
        record = build_record(job, run_dir, options, plans, error)
        if options.repeat > 1 and error is None:
            device = record.environment["device"]
            record.efficiency = _with_repeats(record.efficiency, run_dir, options, device, repeat_errors)
    record.restarts_after_sample_timeout = restarts
    record.executor = executor
    files.write_run_record(run_dir, record)
    return run_dir, record


def _annotate(run_dir: Path, plans, options: RunOptions) -> None:
    """mcq's choices and qa's judgements onto the prediction lines, after every measured child has
    ended, so that judging never touches a timing; a judge that breaks leaves qa unjudged, never
    the run without its record."""
    judge = load_judge(options.judge) if options.judge else None
    if judge is not None and options.progress and any(p.suite.name == "qa" for p in plans):
        print(f"judging the qa answers: {judge.model} at {judge.identity()['base_url']}", file=sys.stderr)
    try:
        annotate_run(run_dir, plans, judge)
    except Exception as err:  # e.g. an openai client that cannot be built: the record says qa is not judged
        print(f"warning: answers not annotated ({type(err).__name__}: {err})", file=sys.stderr)


def _run_repeats(run_dir: Path, job: JobFile, options: RunOptions, deadline: float | None) -> list[str]:
    """Repeats 2..N of the timed pass, each in a fresh child; a failed repeat is reported, not fatal."""
    errors = []
    for repeat_dir in repeats.repeat_dirs(run_dir, options.repeat):
        if (repeat_dir / files.WORKER_FILE).is_file():  # done before an interruption (resume)
            continue
        job_path = repeats.write_repeat_job(run_dir, job, repeat_dir)
        code, timed_out = spawn([str(job_path)], repeat_dir, options.threads, deadline, 0, False)
        problem = describe_exit(code, timed_out)
        if problem:
            errors.append(f"repeat {repeat_dir.name}: {problem}")
    return errors


def _with_repeats(first: dict, run_dir: Path, options: RunOptions, device: str, errors: list[str]) -> dict:
    others = []
    for repeat_dir in repeats.repeat_dirs(run_dir, options.repeat):
        predictions, worker = repeats.read_repeat(repeat_dir, options.batch_size > 1)
        if worker is not None and worker.ok:
            others.append(efficiency_block(predictions, worker, device, options.protocol))
    return repeats.summarize(first, others, errors)




