"""The run record (run.json): built from the job, the child's predictions and its summary."""

from __future__ import annotations

import json
from pathlib import Path

from harness.data import long_audio, prompts
from harness.measure import quality_pass
from harness.measure.worker import WORKER_FILE
from harness.run import environment, store
from harness.run.run_options import RunOptions
from harness.score.scoring import efficiency_block, run_coverage, score_suites

SCHEMA_VERSION = 1


def build_record(run_id, run_dir: Path, spec, options: RunOptions, plans, created_at, error,
                 job: dict | None = None) -> dict:
    predictions = store.repair_jsonl(run_dir / store.PREDICTIONS_FILE)
    worker_path = run_dir / WORKER_FILE
    worker = json.loads(worker_path.read_text()) if worker_path.is_file() else {}
    error = worker.get("error") or error  # the child's own reason (e.g. "load failed: ...") says more
    batched = job is not None and job.get("batch_size", 1) > 1
    # A batched run's predictions are untimed: efficiency comes from its batch-1 timed requests only.
    timed = quality_pass.timed_records(run_dir) if batched else predictions
    suites = score_suites(plans, predictions, options.protocol, timed)
    _add_inputs(suites, plans, predictions, worker, options, run_dir)
    done = sum(s["n_predicted"] for s in suites.values())
    planned = sum(len(p.samples) for p in plans)
    status = "ok" if error is None and done == planned else ("partial" if done else "failed")
    if status == "ok" and planned and not any(s["n_scored"] for s in suites.values()):
        status, error = "failed", "every sample failed; see suites.*.failures"
    device = worker.get("device") or options.device
    efficiency = efficiency_block(timed, worker, device, options.protocol)
    if batched:
        efficiency.update(quality_pass.record_block(run_dir, job, worker, predictions, timed))
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "candidate": spec.name,
        "candidate_spec": spec.to_dict(),
        # Said explicitly, since both let a checkpoint run code on this machine.
        "trust": {
            "trust_remote_code": bool(spec.options.get("trust_remote_code", False)),
            "allow_pickle": bool(spec.options.get("allow_pickle", False)),
        },
        "recipe_applied": worker.get("recipe_applied"),
        "candidate_info": worker.get("candidate_info"),  # the candidate's run_info() (e.g. a served model's probe)
        "calibration_ids": worker.get("calibration_ids"),
        "protocol": options.protocol,
        "sweep_cell": options.sweep_cell,
        "created_at": created_at,
        "status": status,
        "error": error,
        "settings": {
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
        },
        "environment": environment.describe(device, worker.get("device_name", "?"), options.threads, worker.get("gpu")),
        "suites": suites,
        "coverage": run_coverage(suites),  # the lowest suite coverage (harness/score/scoring.py)
        "efficiency": efficiency,
        "load_s": worker.get("load_s"),
    }


def _add_inputs(suites: dict, plans, predictions: list[dict], worker: dict, options: RunOptions, run_dir: Path) -> None:
    """What each suite's requests carried: the prompt text and its source, and what was done with
    audio longer than the model's window."""
    path = run_dir / prompts.PROMPTS_FILE
    resolved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for p in plans:
        name = p.suite.name
        suites[name]["prompt"] = resolved.get(name) or prompts.unresolved(p.suite.prompt, options.prompts)
        records = [r for r in predictions if r.get("task") == name]
        suites[name]["long_audio"] = long_audio.suite_summary(
            options.long_audio_for(p.suite), records, worker.get("audio_window_s")
        )
