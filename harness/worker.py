"""The measured child process: loads one candidate and runs every sample of a job.

Run as `python -m harness.worker JOB.json` (or with `--prepare` to build cached weights
before measuring). It writes one line per sample to predictions.jsonl, flushed as it goes,
and a worker.json with the load time and memory at the end. The parent does all scoring.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from harness import store
from harness.data import AudioError, load_audio
from harness.memory import RssTracker
from harness.registry import CandidateSpec, build
from harness.timing import TokenTimer
from harness.types import SAMPLE_RATE, Request

WORKER_FILE = "worker.json"


def _import_heavy() -> None:
    """Imports the frameworks before the memory baseline, so they do not count as the model's."""
    import torch

    try:
        import transformers  # noqa: F401
    except ImportError:
        pass
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


def run_job(job: dict) -> int:
    from harness import gpu

    run_dir = Path(job["run_dir"])
    spec = CandidateSpec(**job["spec"])
    _import_heavy()
    device = gpu.resolve_device(job["device"])
    candidate = build(spec)
    summary: dict = {"status": "running", "device": device}
    if hasattr(candidate, "decoder_weight_bytes"):
        from harness.roofline import measure_bandwidth_gbps

        # Before the memory baseline: the copy buffers must not count as the model's memory.
        summary["bandwidth_gbps"] = measure_bandwidth_gbps(device)
    rss = RssTracker()
    rss.reset()
    gpu.reset_peak(device)
    with gpu.NvmlPoller(device) as nvml:
        t0 = time.perf_counter()
        candidate.load(device)
        summary["load_s"] = time.perf_counter() - t0
        # Split the CPU peak into load and inference: quantize-on-load recipes peak while loading.
        load_peak = rss.report()
        rss.restart_peak()
        sync = gpu.synchronizer(device)
        if job.get("profile") == "nota2025":
            summary["nota2025"] = _nota2025(candidate, job, device, sync, rss, load_peak)
        timer = TokenTimer(sync=sync)
        _warm_up(candidate, job, timer)
        with open(run_dir / store.PREDICTIONS_FILE, "a", encoding="utf-8") as out:
            for suite in job["suites"]:
                for sample in suite["samples"]:
                    store.append_jsonl(out, _run_sample(candidate, suite, sample, timer))
    summary["memory"] = rss.report(load_peak)
    if device.startswith("cuda"):
        summary["memory"].update(gpu.peak_report(device))
    summary["memory"].update(nvml.report())
    weight_bytes = getattr(candidate, "weight_bytes", None)
    summary["weights_bytes"] = weight_bytes() if weight_bytes else None
    decoder_bytes = getattr(candidate, "decoder_weight_bytes", None)
    summary["decoder_weights_bytes"] = decoder_bytes() if decoder_bytes else None
    summary["device_name"] = gpu.device_name(device)
    summary["status"] = "ok"
    store.write_json_atomic(run_dir / WORKER_FILE, summary)
    return 0


def _nota2025(candidate, job: dict, device: str, sync, rss: RssTracker, load_peak: dict) -> dict:
    """The organiser's efficiency loop; its peak counter includes the model load, as theirs did."""
    from harness import gpu
    from harness.profiles import measure_nota2025

    def peak_mb() -> float:
        if device.startswith("cuda"):
            return gpu.peak_report(device)["max_allocated_mb"]
        return max(load_peak["rss_peak_above_baseline_mb"], rss.report()["rss_peak_above_baseline_mb"])

    return measure_nota2025(candidate, job["nota_prompt"], sync, peak_mb)


def _warm_up(candidate, job: dict, timer: TokenTimer) -> None:
    """Runs the first readable sample `warmup` times; nothing from it is recorded."""
    if job["warmup"] <= 0:
        return
    for suite in job["suites"]:
        for sample in suite["samples"]:
            try:
                audio, _ = load_audio(sample["audio_path"])
            except AudioError:
                continue
            request = Request(sample["sample_id"], audio, suite["name"], suite["prompt"], suite["max_new_tokens"])
            for _ in range(job["warmup"]):
                timer.start()
                candidate.generate(request, timer.on_token)
            return


def _run_sample(candidate, suite: dict, sample: dict, timer: TokenTimer) -> dict:
    record = {
        "sample_id": sample["sample_id"],
        "task": suite["name"],
        "prediction": None,
        "references": sample["references"],
        "reference": sample["references"][0] if sample["references"] else None,
        "n_tokens": None,
        "ttft_ms": None,
        "tpot_ms": None,
        "e2e_ms": None,
        "audio_s": None,
        "error": None,
    }
    try:
        audio, rate = load_audio(sample["audio_path"])
    except AudioError as err:
        record["error"] = str(err)
        return record
    record["audio_s"] = len(audio) / SAMPLE_RATE
    record["original_sample_rate"] = rate
    request = Request(sample["sample_id"], audio, suite["name"], suite["prompt"], suite["max_new_tokens"])
    try:
        timer.start()
        generation = candidate.generate(request, timer.on_token)
        timing = timer.finish(generation.n_tokens)
    except Exception as err:  # one bad sample must not end the run
        record["error"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
        return record
    ms = 1000.0
    record.update(
        prediction=generation.text,
        n_tokens=timing.n_tokens,
        ttft_ms=None if timing.ttft_s is None else timing.ttft_s * ms,
        tpot_ms=None if timing.tpot_s is None else timing.tpot_s * ms,
        e2e_ms=timing.e2e_s * ms,
    )
    if generation.info:
        record["info"] = generation.info
    return record


def prepare(job: dict) -> int:
    candidate = build(CandidateSpec(**job["spec"]))
    if hasattr(candidate, "prepare"):
        candidate.prepare()
    return 0


def main(argv: list[str]) -> int:
    prepare_only = "--prepare" in argv
    paths = [a for a in argv if not a.startswith("--")]
    job = json.loads(Path(paths[0]).read_text(encoding="utf-8"))
    return prepare(job) if prepare_only else run_job(job)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
