"""The parent side of a run: plan it, start the measured child, score, write run.json.

The parent never loads a model. It validates the data, writes a job file, runs the child
(`harness.worker`) in a fresh interpreter with pinned threads, and turns the child's
predictions into the run record, even when the child crashed half-way.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from harness.candidate import overrides
from harness.data import long_audio, prompts
from harness.measure.worker import SAMPLE_TIMEOUT_EXIT, WORKER_FILE
from harness.registry import build, resolve
from harness.run import repeats, store
from harness.run.child import describe_exit, spawn
from harness.run.library_logs import library_logs_to
from harness.run.plan import plan, plans_from_job
from harness.run.record import build_record
from harness.run.run_options import RunError, RunOptions, check_protocol
from harness.score.scoring import efficiency_block
from harness.spec import CandidateSpec
from harness.suites import SUITES

JOB_FILE = "job.json"


















def execute(options: RunOptions, spec: CandidateSpec | None = None,
            record_extra: dict | None = None) -> tuple[Path, dict]:
    """Runs `options.candidate` (or `spec`, a candidate built elsewhere, e.g. a sweep's recipe
    variant); `record_extra` keys are added to run.json (e.g. which executor and node ran it)."""
    check_protocol(options.protocol)
    if options.batch_size > 1 and options.protocol != "default":
        raise RunError(f"--batch-size applies to the default protocol only; {options.protocol} times its own "
                       "requests (run it with --batch-size 1)")
    prompts.check_mode(options.prompts)
    if options.long_audio is not None:
        long_audio.check_mode(options.long_audio)
    spec = spec or resolve(options.candidate)
    candidate = build(spec)  # cheap: no weights yet; tells us the tasks
    tasks = frozenset(spec.tasks or candidate.tasks)
    plans = plan(options, spec, tasks)
    run_id, run_dir = store.new_run_dir(Path(options.results), spec.name)
    job = {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "spec": spec.to_dict(),
        "device": options.device,
        "protocol": options.protocol,
        "nota_prompt": SUITES["asr"].prompt,
        # nota2025 measures without warm-up; its quality loop is not timed for ranking either.
        "warmup": 0 if options.protocol == "nota2025" else options.warmup,
        "sample_timeout_s": options.sample_timeout_s,
        "prompts": options.prompts,
        "suites": [
            {
                "name": p.suite.name,
                "prompt": p.suite.prompt,
                "max_new_tokens": p.suite.max_new_tokens,
                "min_audio_s": p.suite.min_audio_s,
                "long_audio": options.long_audio_for(p.suite),
                "dataset": p.dataset,
                "samples": [
                    {"sample_id": s.sample_id, "audio_path": s.audio_path, "references": s.references}
                    for s in p.samples
                ],
                "skipped": [{"where": q.where, "reason": q.reason, "sample_id": q.sample_id, "references": q.references}
                            for q in p.skipped],
            }
            for p in plans
        ],
    }
    if options.batch_size > 1:
        _plan_batched(job, options)
        job["batched"] = overrides(candidate, "generate_batch")
    store.write_json_atomic(run_dir / JOB_FILE, job)
    return _run_and_record(run_dir, job, candidate, options, plans, record_extra)


def _plan_batched(job: dict, options: RunOptions) -> None:
    """Clip durations (headers only) for length-sorted batches, and the samples timed at batch 1,
    chosen now so that the job file (and a resumed run) holds them."""
    from harness.data.audio import audio_duration_s
    from harness.measure.quality_pass import select_for_timing

    job["batch_size"] = options.batch_size
    job["efficiency_samples"] = options.efficiency_samples
    job["timed_samples"] = {}
    for suite in job["suites"]:
        for sample in suite["samples"]:
            sample["duration_s"] = audio_duration_s(sample["audio_path"])
        durations = [(s["sample_id"], s["duration_s"]) for s in suite["samples"]]
        job["timed_samples"][suite["name"]] = select_for_timing(durations, options.efficiency_samples, suite["name"])


def resume(results: Path, run_id: str, progress: bool = True, record_extra: dict | None = None) -> tuple[Path, dict]:
    """Continues a run from its job file: samples already in predictions.jsonl are kept, the rest run."""
    run_dir = _find_run(Path(results), run_id)
    job = json.loads((run_dir / JOB_FILE).read_text(encoding="utf-8"))
    if Path(job["run_dir"]).resolve() != run_dir.resolve():
        # The folder was moved or copied (e.g. to another machine): the child writes where the job says.
        job["run_dir"] = str(run_dir)
        store.write_json_atomic(run_dir / JOB_FILE, job)
    saved = dict(job["options"])
    saved.setdefault("protocol", saved.pop("profile", "default"))  # job files written before the rename
    options = RunOptions(**{**saved, "progress": progress})
    spec = CandidateSpec(**job["spec"])
    return _run_and_record(run_dir, job, build(spec), options, plans_from_job(job, options.aac_cache), record_extra)




def _find_run(results: Path, run_id: str) -> Path:
    if run_id == "latest":
        runs = sorted(p for p in results.glob("*") if (p / JOB_FILE).is_file()) if results.is_dir() else []
        if not runs:
            raise RunError(f"no run to resume in {results}")
        return runs[-1]
    run_dir = Path(run_id) if Path(run_id).is_dir() else results / run_id
    if not (run_dir / JOB_FILE).is_file():
        raise RunError(f"no run {run_id!r} to resume in {results} (looked for {run_dir / JOB_FILE})")
    return run_dir


def _run_and_record(run_dir: Path, job: dict, candidate, options: RunOptions, plans,
                    record_extra: dict | None = None) -> tuple[Path, dict]:
    """Runs the child (restarting it after a per-sample timeout) and writes run.json, always."""
    job_path = run_dir / JOB_FILE
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
    with library_logs_to(run_dir / "worker.log"):  # scoring imports aac-metrics -> torch -> torchao chatter
        record = build_record(job["run_id"], run_dir, CandidateSpec(**job["spec"]), options, plans, job["created_at"],
                              error, job)
        if options.repeat > 1 and error is None:
            device = record["environment"]["device"]
            record["efficiency"] = _with_repeats(record["efficiency"], run_dir, options, device, repeat_errors)
    record["restarts_after_sample_timeout"] = restarts
    record.update(record_extra or {})
    store.write_json_atomic(run_dir / store.RUN_FILE, record)
    return run_dir, record


def _run_repeats(run_dir: Path, job: dict, options: RunOptions, deadline: float | None) -> list[str]:
    """Repeats 2..N of the timed pass, each in a fresh child; a failed repeat is reported, not fatal."""
    errors = []
    for repeat_dir in repeats.repeat_dirs(run_dir, options.repeat):
        if (repeat_dir / WORKER_FILE).is_file():  # done before an interruption (resume)
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
        if worker.get("status") == "ok":
            others.append(efficiency_block(predictions, worker, device, options.protocol))
    return repeats.summarize(first, others, errors)




