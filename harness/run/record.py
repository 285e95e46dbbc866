"""The run record (run.json): built from the job, the child's predictions and its summary."""

from __future__ import annotations

import json
from pathlib import Path

from harness.data import long_audio, prompts
from harness.measure import quality_pass
from harness.run import environment
from harness.run.run_options import RunOptions
from harness.score.scoring import efficiency_block, run_coverage, score_suites
from harness.spec import CandidateSpec
from records import files
from records.job import JobFile
from records.prediction import Prediction
from records.run_record import RunRecord
from records.worker_summary import WorkerSummary


def build_record(job: JobFile, run_dir: Path, options: RunOptions, plans, error: str | None) -> RunRecord:
    """The run record from the job, the child's predictions and its summary, also after a crash."""
    predictions = files.repair_predictions(run_dir / files.PREDICTIONS_FILE)
    # No summary: the child died before its end (what it predicted is still scored).
    worker = files.read_worker_summary(run_dir) or WorkerSummary()
    error = worker.error or error  # the child's own reason (e.g. "load failed: ...") says more
    batched = job.batch_size > 1
    # A batched run's predictions are untimed: efficiency comes from its batch-1 timed requests only.
    timed = quality_pass.timed_records(run_dir) if batched else predictions
    suites = score_suites(plans, predictions, options.protocol, timed)
    _add_inputs(suites, plans, predictions, worker, options, run_dir, job)
    done = sum(s["n_predicted"] for s in suites.values())
    planned = sum(len(p.samples) for p in plans)
    status = "ok" if error is None and done == planned else ("partial" if done else "failed")
    if status == "ok" and planned and not any(s["n_scored"] for s in suites.values()):
        status, error = "failed", "every sample failed; see suites.*.failures"
    device = worker.device or options.device
    efficiency = efficiency_block(timed, worker, device, options.protocol)
    if batched:
        efficiency.update(quality_pass.record_block(run_dir, job, worker, predictions, timed))
    spec = CandidateSpec(**job.spec)
    return RunRecord(
        run_id=job.run_id,
        candidate=spec.name,
        status=status,
        candidate_spec=spec.to_dict(),
        # Said explicitly, since both let a checkpoint run code on this machine.
        trust={
            "trust_remote_code": bool(spec.options.get("trust_remote_code", False)),
            "allow_pickle": bool(spec.options.get("allow_pickle", False)),
        },
        recipe_applied=worker.recipe_applied,
        candidate_info=worker.candidate_info,
        calibration_ids=worker.calibration_ids,
        protocol=options.protocol,
        sweep_cell=options.sweep_cell,
        created_at=job.created_at,
        error=error,
        settings=_settings(options, batched),
        environment=environment.describe(device, worker.device_name or "?", options.threads, worker.gpu),
        suites=suites,
        coverage=run_coverage(suites),
        efficiency=efficiency,
        load_s=worker.load_s,
    )


def _settings(options: RunOptions, batched: bool) -> dict:
    return {
        "device": options.device,
        "threads": options.threads,
        "warmup": options.warmup,
        "limit": options.limit,
        "data": str(options.data) if options.data else "demo",
        "data_format": options.data_format,
        "audio_dir": str(options.audio_dir) if options.audio_dir else None,
        "aac_cache": str(options.aac_cache) if options.aac_cache else None,
        "skip_invalid": options.skip_invalid,
        "timeout_s": options.timeout_s,
        "repeat": options.repeat,
        "sample_timeout_s": options.sample_timeout_s,
        **({"batch_size": options.batch_size, "efficiency_samples": options.efficiency_samples} if batched else {}),
        "prompts": options.prompts,
        "long_audio": options.long_audio,  # None: each suite's default (see suites.*.long_audio.mode)
        "audio_loading": options.audio_loading,
    }


def _add_inputs(suites: dict, plans, predictions: list[Prediction], worker: WorkerSummary, options: RunOptions,
                run_dir: Path, job: JobFile) -> None:
    """What each suite's requests carried: the prompt text and its source, and what was done with
    audio longer than the model's window."""
    path = run_dir / prompts.PROMPTS_FILE
    resolved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for p in plans:
        name = p.suite.name
        suites[name]["prompt"] = resolved.get(name) or prompts.unresolved(p.suite.prompt, options.prompts)
        records = [r for r in predictions if r.task == name]
        mode = next((s.long_audio for s in job.suites if s.name == name), None) or options.long_audio_for(p.suite)
        suites[name]["long_audio"] = long_audio.suite_summary(mode, records, worker.audio_window_s)
