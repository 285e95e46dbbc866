"""The batched quality pass and the batch-1 timing that follows it (`run --batch-size N`, N > 1).

One measured child runs two passes:

1. **Quality**, untimed: every sample is answered through `Candidate.generate_batch` in groups
   of N, longest clips first (similar lengths share a batch, so little padding; a batch too big
   for memory shows at once). Each prediction goes to predictions.jsonl as soon as its batch
   returns, with null timing fields. A candidate that does not override `generate_batch`, a
   clip longer than the candidate's audio window, and every request of a batch that raised or
   never finished are answered one at a time through the worker's own per-sample code.
2. **Timing**, at batch 1: the samples chosen before the run (`select_for_timing`) are answered
   one by one after warm-up through that same per-sample code (TokenTimer, same definitions)
   and written to timings.jsonl, which alone feeds the efficiency block.

Memory: the peak counters restart between the passes, so the ranked peak covers the model load
and the batch-1 requests (as at batch 1); the quality pass's own peak is reported beside it.

Resumable: a sample already in predictions.jsonl (timings.jsonl) is not answered again; a batch
that was begun but never written (the child hung, crashed or was killed while answering it, e.g.
out of memory) is answered one request at a time by the next child, so the culprit fails alone.
"""

from __future__ import annotations

import gc
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure.memory import release_free_heap
from records import files
from records.job import JobFile, JobSample, JobSuite
from records.prediction import Prediction
from records.worker_summary import WorkerSummary

TIMINGS_FILE = "timings.jsonl"  # the batch-1 timed requests of a batched run
BATCHES_FILE = "quality_batches.jsonl"  # a line per batch begun {"task", "sample_ids"}, another ("error") if it raised
SEGMENTS_FILE = "quality_pass.jsonl"  # one line per child that finished its quality pass
TIMING_SEED = 0
TIMING_RULE = ("per suite, the clips sorted by duration are cut into K equal-count strata (duration "
               "quantiles) and one clip is drawn from each with a fixed seed; all clips when fewer than K")


# ---------------------------------------------------------------------- parent side: which samples to time


def select_for_timing(durations: list[tuple[str, float | None]], k: int, suite: str,
                      seed: int = TIMING_SEED) -> list[str]:
    """The ids of one suite's samples timed at batch 1, in dataset order.

    Deterministic for a suite's (id, duration) list, K and the seed, whoever runs it, so every
    candidate on the same data is timed on the same clips. Clips whose duration is unknown
    (unreadable header) are not drawn: they fail in the quality pass with their reason.
    """
    import numpy as np

    pool = [(sid, d) for sid, d in durations if d is not None]
    if len(pool) <= k:
        return [sid for sid, _ in pool]
    by_length = sorted(pool, key=lambda item: (item[1], item[0]))
    rng = np.random.default_rng([seed, zlib.crc32(suite.encode("utf-8"))])
    picked = {by_length[int(rng.choice(stratum))][0] for stratum in np.array_split(np.arange(len(by_length)), k)}
    return [sid for sid, _ in pool if sid in picked]


# ---------------------------------------------------------------------- child side


@dataclass
class WorkerHooks:
    """What the passes borrow from the worker (handed in, so this module never imports it)."""

    run_one: Callable[[JobSuite, JobSample], Prediction]  # timed by the worker's TokenTimer
    warm_up: Callable[[dict], None]  # (done records) -> the worker's untimed warm-up requests
    watchdog: Any  # worker.SampleWatchdog
    rss: Any  # memory.RssTracker, its window restarted after the load
    nvml: Any  # gpu.NvmlPoller


def run_batched(candidate, job: JobFile, device: str, done: dict, hooks: WorkerHooks) -> dict:
    """Both passes; returns the worker.json block `quality_pass` (read by `record_block`)."""
    from harness.measure import gpu

    run_dir = Path(job.run_dir)
    load_gpu = gpu.peak_report(device) if device.startswith("cuda") else None
    load_nvml = (hooks.nvml.process_peak, hooks.nvml.device_peak)
    block = _quality_pass(candidate, job, run_dir, done, hooks)
    # A child resumed after the quality pass has no quality peak of its own to report.
    block["memory"] = _quality_peaks(device, hooks) if block["n_samples"] else None
    # New peak window: the ranked peak is the load's and the batch-1 requests', as at batch 1.
    gc.collect()
    release_free_heap()
    hooks.rss.restart_peak()
    gpu.reset_peak(device)
    hooks.nvml.restart_peak(*load_nvml)
    done = {p.key: p for p in files.read_predictions(run_dir / files.PREDICTIONS_FILE)}
    _timed_pass(job, run_dir, done, hooks)
    block["gpu_load_peak"] = load_gpu
    return block


def merge_gpu_peaks(memory: dict, block: dict) -> None:
    """torch's peak counters restarted after the quality pass: fold the load's peak back in."""
    load = block.get("gpu_load_peak")
    if load:
        for key, value in load.items():
            memory[key] = max(memory.get(key) or 0.0, value)


def _quality_pass(candidate, job: JobFile, run_dir: Path, done: dict, hooks: WorkerHooks) -> dict:
    from harness.candidate import overrides

    size = int(job.batch_size)
    batched = overrides(candidate, "generate_batch")
    window = candidate.audio_window_s()
    alone = _unfinished_batches(run_dir, done)
    segment = {"batch_size": size, "batched": batched, "n_samples": 0, "audio_s": 0.0, "wall_s": 0.0}
    start = time.perf_counter()
    with open(run_dir / files.PREDICTIONS_FILE, "a", encoding="utf-8") as out:
        for suite in job.suites:
            pending = [s for s in suite.samples if (suite.name, s.sample_id) not in done]
            # Longest first; unknown durations (unreadable headers) last, where they fail fast.
            pending.sort(key=lambda s: -(s.duration_s or -1.0))
            rest = [s for s in pending if batched and (suite.name, s.sample_id) not in alone]
            batch_ids = {s.sample_id for s in rest}
            for sample in pending:
                if sample.sample_id not in batch_ids:
                    _write(out, _answer_alone(suite, sample, hooks), segment)
            for i in range(0, len(rest), size):
                for record in _answer_group(candidate, suite, rest[i:i + size], window, run_dir, hooks):
                    _write(out, record, segment)
    segment["wall_s"] = time.perf_counter() - start
    if segment["n_samples"]:
        with open(run_dir / SEGMENTS_FILE, "a", encoding="utf-8") as handle:
            files.append_jsonl(handle, segment)
    return {"batch_size": size, "batched": batched, "n_samples": segment["n_samples"]}


def _write(out, record: Prediction, segment: dict) -> None:
    files.append_prediction(out, record)
    segment["n_samples"] += 1
    segment["audio_s"] += record.audio_s or 0.0


def _unfinished_batches(run_dir: Path, done: dict) -> set[tuple[str, str]]:
    """Samples of batches an earlier child began but did not finish: they run alone now."""
    alone = set()
    for line in files.read_jsonl(run_dir / BATCHES_FILE):
        keys = [(line["task"], sid) for sid in line["sample_ids"]]
        if not all(k in done for k in keys):
            alone.update(k for k in keys if k not in done)
    return alone


def _answer_alone(suite: JobSuite, sample: JobSample, hooks: WorkerHooks) -> Prediction:
    """One request through the worker's per-sample code, its timings dropped: this pass is not
    a measurement (no warm-up before it, batches around it)."""
    hooks.watchdog.begin(suite.name, sample)
    record = hooks.run_one(suite, sample)
    hooks.watchdog.end()
    record.clear_timings()
    record.quality_batch_size = 1
    return record


def _answer_group(candidate, suite: JobSuite, group: list[JobSample], window: float | None, run_dir: Path,
                  hooks: WorkerHooks) -> list[Prediction]:
    from harness.data import questions
    from harness.data.audio import load_audio
    from harness.data.errors import AudioError
    from harness.types import SAMPLE_RATE, Request

    records, requests, members = [], [], []
    for sample in group:
        record = Prediction(sample.sample_id, suite.name, sample.references)
        try:
            audio, rate = load_audio(sample.audio_path)
        except AudioError as err:
            record.error, record.quality_batch_size = str(err), 1
            records.append(record)
            continue
        record.audio_s, record.original_sample_rate = len(audio) / SAMPLE_RATE, rate
        if window is not None and record.audio_s > window:
            records.append(_answer_alone(suite, sample, hooks))  # long audio: the single path handles it
            continue
        prompt = questions.render(suite.prompt, sample.question, sample.choices)
        requests.append(Request(sample.sample_id, audio, suite.name, prompt, suite.max_new_tokens))
        if sample.question is not None:  # a per-sample prompt: the record keeps the exact text asked
            record.prompt = prompt
        members.append(record)
    if not requests:
        return records
    begun = {"task": suite.name, "sample_ids": [r.sample_id for r in requests]}
    _log_batch(run_dir, begun)
    hooks.watchdog.begin_batch(len(requests))
    try:
        generations = candidate.generate_batch(requests)
        if len(generations) != len(requests):
            raise ValueError(f"generate_batch returned {len(generations)} generations for {len(requests)} requests")
    except Exception as err:  # the batch fails; each of its requests is answered alone instead
        import traceback

        traceback.print_exc()
        hooks.watchdog.end()
        _log_batch(run_dir, {**begun, "error": f"{type(err).__name__}: {err}"})
        by_id = {s.sample_id: s for s in group}
        return records + [_answer_alone(suite, by_id[r.sample_id], hooks) for r in requests]
    hooks.watchdog.end()
    for record, generation in zip(members, generations, strict=True):
        record.prediction, record.n_tokens = generation.text, generation.n_tokens
        record.quality_batch_size, record.info = len(requests), generation.info or None
    return records + members


def _log_batch(run_dir: Path, line: dict) -> None:
    with open(run_dir / BATCHES_FILE, "a", encoding="utf-8") as handle:
        files.append_jsonl(handle, line)


def _quality_peaks(device: str, hooks: WorkerHooks) -> dict:
    """The quality pass's own peaks (load included), reported beside the ranked ones, never ranked."""
    from harness.measure import gpu

    peaks = {"rss_peak_above_baseline_mb": hooks.rss.report()["rss_peak_above_baseline_mb"]}
    if device.startswith("cuda"):
        peaks.update(gpu.peak_report(device))
    peaks.update({k: v for k, v in hooks.nvml.report().items() if k.endswith("_mb")})
    return peaks


def _timed_pass(job: JobFile, run_dir: Path, done: dict[tuple[str, str], Prediction], hooks: WorkerHooks) -> None:
    """The chosen samples not timed yet, one by one after the worker's warm-up, as at batch 1.
    A sample that failed in the quality pass is not timed (the record says so)."""
    path = run_dir / TIMINGS_FILE
    timed = {p.key for p in files.repair_predictions(path)}
    chosen = {(task, sid) for task, ids in (job.timed_samples or {}).items() for sid in ids}
    todo = [
        (suite, sample)
        for suite in job.suites
        for sample in suite.samples
        if (suite.name, sample.sample_id) in chosen - timed
        and ((suite.name, sample.sample_id) not in done or done[suite.name, sample.sample_id].error is None)
    ]
    if not todo:
        return
    hooks.warm_up(done)
    hooks.watchdog.write_failures_to(path)  # a request that hangs while timed is a failed timing
    with open(path, "a", encoding="utf-8") as out:
        for suite, sample in todo:
            hooks.watchdog.begin(suite.name, sample)
            record = hooks.run_one(suite, sample)
            hooks.watchdog.end()
            files.append_prediction(out, record)


# ---------------------------------------------------------------------- parent side: the record


def timed_records(run_dir: Path) -> list[Prediction]:
    return files.repair_predictions(run_dir / TIMINGS_FILE)


def record_block(run_dir: Path, job: JobFile, worker: WorkerSummary, predictions: list[Prediction],
                 timings: list[Prediction]) -> dict:
    """`efficiency.quality_pass` and `efficiency.timing` of a batched run's record."""
    segments = files.read_jsonl(run_dir / SEGMENTS_FILE)
    wall = sum(s["wall_s"] for s in segments)
    n = sum(s["n_samples"] for s in segments)
    audio = sum(s["audio_s"] for s in segments)
    memory = (worker.quality_pass or {}).get("memory")
    by_key = {r.key: r for r in predictions}
    mismatches = [
        {"task": t.task, "sample_id": t.sample_id}
        for t in timings
        if t.error is None and (by_key[t.key].prediction if t.key in by_key else None) != t.prediction
    ]
    timed_ok = {t.key for t in timings if t.error is None}
    not_timed = []
    for task, ids in (job.timed_samples or {}).items():
        for sid in ids:
            if (task, sid) in timed_ok:
                continue
            failed = next((t for t in timings if t.key == (task, sid)), None)
            quality = by_key.get((task, sid))
            reason = (failed.error if failed else None) or (
                f"failed in the quality pass: {quality.error}" if quality and quality.error else "not run")
            not_timed.append({"task": task, "sample_id": sid, "reason": reason})
    quality_pass = {
        "batch_size": job.batch_size,
        "batched": job.batched,
        "samples_per_s": n / wall if wall else None,
        "rtfx": audio / wall if wall else None,
        "wall_s": wall,
        "n_samples": n,
        "audio_s": audio,
        "memory": memory,
        "batch_failures": [b for b in files.read_jsonl(run_dir / BATCHES_FILE) if "error" in b],
        # Every timed request is also a batch-1 answer: it must equal the batched one.
        "timed_predictions_compared": len(timed_ok),
        "timed_prediction_mismatches": mismatches,
    }
    if not quality_pass["batched"]:
        quality_pass["note"] = "the candidate does not implement generate_batch: answered one request at a time"
    timing = {
        "batch_size": 1,
        "efficiency_samples": job.efficiency_samples,
        "seed": TIMING_SEED,
        "rule": TIMING_RULE,
        "timed_samples": job.timed_samples,
        "not_timed": not_timed,
    }
    return {"quality_pass": quality_pass, "timing": timing}
