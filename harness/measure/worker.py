"""The measured child process: loads one candidate and runs every sample of a job.

Run as `python -m harness.worker JOB.json` (or with `--prepare` to build cached weights
before measuring). It writes one line per sample to predictions.jsonl, flushed as it goes,
and a worker.json with the load time and memory at the end. The parent does all scoring.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from harness.candidate import Candidate, overrides
from harness.data import long_audio, prompts
from harness.data.audio import load_audio
from harness.data.errors import AudioError
from harness.measure import quality_pass
from harness.measure.memory import RssTracker, release_free_heap
from harness.measure.timing import TokenTimer
from harness.registry import build
from harness.run import store
from harness.spec import CandidateSpec
from harness.types import SAMPLE_RATE, Request

WORKER_FILE = "worker.json"
# Exit status meaning "one sample hung and was recorded as failed: start a fresh child".
SAMPLE_TIMEOUT_EXIT = 75


class SampleWatchdog:
    """Ends the process when one request runs past the per-sample limit.

    A hung request cannot be interrupted from Python, so the only safe way on is a new process:
    the watchdog records the sample as failed, then exits with SAMPLE_TIMEOUT_EXIT and the
    parent starts a fresh child that skips every sample already recorded.
    """

    def __init__(self, limit_s: float | None, predictions: Path):
        self.limit_s = limit_s
        self.predictions = predictions
        self._current: tuple[str, str | None, float, list] | None = None
        self._scale = 1
        self._lock = threading.Lock()
        if limit_s:
            threading.Thread(target=self._watch, daemon=True).start()

    def begin(self, task: str, sample: dict) -> None:
        with self._lock:
            self._current = (task, sample["sample_id"], time.monotonic(), sample.get("references", []))
            self._scale = 1

    def begin_batch(self, size: int) -> None:
        """A batch of `size` requests gets `size` times the limit; if it hangs nothing is written:
        the next child answers that batch's requests one at a time (harness.quality_pass)."""
        with self._lock:
            self._current = ("", None, time.monotonic(), [])
            self._scale = size

    def write_failures_to(self, path: Path) -> None:
        self.predictions = path

    def end(self) -> None:
        with self._lock:
            self._current = None

    def _watch(self) -> None:
        while True:
            time.sleep(0.2)
            with self._lock:
                current = self._current
                if current is None or time.monotonic() - current[2] <= self.limit_s * self._scale:
                    continue
                task, sample_id, _, references = current
                if sample_id is None:  # a batch
                    os._exit(SAMPLE_TIMEOUT_EXIT)
                with open(self.predictions, "a", encoding="utf-8") as out:
                    store.append_jsonl(out, {
                        "sample_id": sample_id, "task": task, "prediction": None, "references": references,
                        "reference": references[0] if references else None, "n_tokens": None, "ttft_ms": None,
                        "tpot_ms": None, "e2e_ms": None, "audio_s": None,
                        "error": f"timed out after {self.limit_s:g} s (--sample-timeout-s); worker restarted",
                    })
                os._exit(SAMPLE_TIMEOUT_EXIT)


def import_frameworks() -> None:
    """Imports the frameworks before the memory baseline, so they do not count as the model's, and
    gives torch the pinned thread count (`OMP_NUM_THREADS`, set by the runner or `bench.py serve`)."""
    import torch

    try:
        import transformers  # noqa: F401
    except ImportError:
        pass
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


def _prime_harness(torch_kernels: bool = True) -> None:
    """Loads what the harness itself uses per sample before the memory baseline, so the null
    candidate's floor is ~0: scipy.signal alone is ~70 MB of imports, and the first decode and
    resample allocate libsndfile's and the resampler's buffers; the first call of each torch kernel
    faults its library code in (~20 MB)."""
    from harness.data.audio import prime_audio_decoding
    from harness.measure.kernel_primer import prime_torch_kernels

    prime_audio_decoding()
    if torch_kernels:  # a served candidate's client never imports torch
        prime_torch_kernels()


def run_job(job: dict) -> int:
    from harness.measure import gpu

    run_dir = Path(job["run_dir"])
    predictions = run_dir / store.PREDICTIONS_FILE
    # Resumable: samples already recorded (by an earlier, killed child) are not run again.
    done = {(r.get("task"), r.get("sample_id")): r for r in store.repair_jsonl(predictions)}
    spec = CandidateSpec(**job["spec"])
    candidate = build(spec)  # cheap by contract: no weights, no heavy imports
    served_by = candidate.served_by()
    if served_by is None:
        import_frameworks()
    _prime_harness(torch_kernels=served_by is None)
    # A served model's device is its server's; this process is only the (timed) client.
    device = "served" if served_by else gpu.resolve_device(job["device"])
    summary: dict = {"status": "running", "device": device}
    try:
        candidate.preload()  # the family's imports and tokenizer: before the baseline, like the harness's
    except Exception as err:  # a refused or missing checkpoint: the record says why, as for load
        summary.update(status="failed", error=f"load failed: {type(err).__name__}: {err}")
        store.write_json_atomic(run_dir / WORKER_FILE, summary)
        raise
    if overrides(candidate, "decoder_weight_bytes"):
        from harness.measure.roofline import measure_bandwidth_gbps

        # Before the memory baseline: the copy buffers must not count as the model's memory.
        summary["bandwidth_gbps"] = measure_bandwidth_gbps(device)
    rss = RssTracker()
    rss.reset()
    gpu.reset_peak(device)
    with gpu.NvmlPoller(device) as nvml:
        if candidate.needs_calibration():
            summary["calibration_ids"] = _calibrate(candidate, job)
        t0 = time.perf_counter()
        try:
            candidate.load(device)
        except Exception as err:  # the run record shows why, not only worker.log's traceback
            summary.update(status="failed", error=f"load failed: {type(err).__name__}: {err}")
            store.write_json_atomic(run_dir / WORKER_FILE, summary)
            raise
        summary["load_s"] = time.perf_counter() - t0
        # Split the CPU peak into load and inference: quantize-on-load recipes peak while loading.
        load_peak = rss.report()
        heap_released = release_free_heap()  # what loading freed is not the model's memory
        rss.restart_peak()
        window_s = _settle_inputs(candidate, job, run_dir, summary)
        sync = gpu.synchronizer(device)
        if job.get("protocol") == "nota2025":
            summary["nota2025"] = _nota2025(candidate, job, device, sync, rss, load_peak)
        timer = TokenTimer(sync=sync)
        watchdog = SampleWatchdog(job.get("sample_timeout_s"), predictions)
        if job.get("batch_size", 1) > 1:  # batched quality pass, then batch-1 timing of chosen samples
            hooks = quality_pass.WorkerHooks(
                run_one=lambda suite, sample: _run_sample_and_release(candidate, suite, sample, timer, window_s),
                warm_up=lambda done_now: _warm_up(candidate, job, timer, done_now, watchdog, window_s),
                watchdog=watchdog, rss=rss, nvml=nvml,
            )
            summary["quality_pass"] = quality_pass.run_batched(candidate, job, device, done, hooks)
        else:
            _warm_up(candidate, job, timer, done, watchdog, window_s)
            with open(predictions, "a", encoding="utf-8") as out:
                for suite in job["suites"]:
                    for sample in suite["samples"]:
                        if (suite["name"], sample["sample_id"]) in done:
                            continue
                        watchdog.begin(suite["name"], sample)
                        record = _run_sample_and_release(candidate, suite, sample, timer, window_s)
                        watchdog.end()
                        store.append_jsonl(out, record)
    summary["memory"] = rss.report(load_peak)
    summary["memory"]["heap_released_between_requests"] = heap_released
    if device.startswith("cuda"):
        summary["memory"].update(gpu.peak_report(device))
        quality_pass.merge_gpu_peaks(summary["memory"], summary.get("quality_pass") or {})
    summary["memory"].update(nvml.report())
    summary["weights_bytes"] = candidate.weight_bytes()
    summary["weights_bytes_by_part"] = candidate.weight_bytes_by_part()
    summary["decoder_weights_bytes"] = candidate.decoder_weight_bytes()
    summary["recipe_applied"] = candidate.recipe_applied()
    summary["candidate_info"] = candidate.run_info()
    summary["external_memory"] = candidate.external_memory()
    candidate.close()
    summary["device_name"] = candidate.served_by() or gpu.device_name(device)  # after load: names resolved
    summary["gpu"] = gpu.identity(device)
    summary["status"] = "ok"
    store.write_json_atomic(run_dir / WORKER_FILE, summary)
    return 0


def _run_sample_and_release(candidate: Candidate, suite: dict, sample: dict, timer: TokenTimer,
                            window_s: float | None) -> dict:
    record = _run_sample(candidate, suite, sample, timer, window_s)
    release_free_heap()  # untimed: the next request's peak starts from live memory
    return record


def _settle_inputs(candidate: Candidate, job: dict, run_dir: Path, summary: dict) -> float | None:
    """After load: the prompt each suite uses (`--prompts`) and the model's audio window
    (`--long-audio`); the prompts are written at once, so a crash later still records them."""
    resolved = prompts.resolve(candidate, job["suites"], job.get("prompts", "suite"))
    for suite in job["suites"]:
        suite["prompt"] = resolved[suite["name"]]["text"]
    store.write_json_atomic(run_dir / prompts.PROMPTS_FILE, resolved)
    summary["audio_window_s"] = candidate.audio_window_s()
    return summary["audio_window_s"]


def _nota2025(candidate: Candidate, job: dict, device: str, sync, rss: RssTracker, load_peak: dict) -> dict:
    """The organiser's efficiency loop; its peak counter includes the model load, as theirs did."""
    from harness.measure import gpu
    from harness.measure.nota2025 import measure_nota2025

    def peak_mb() -> float:
        if device.startswith("cuda"):
            return gpu.peak_report(device)["max_allocated_mb"]
        return max(load_peak["rss_peak_above_baseline_mb"], rss.report()["rss_peak_above_baseline_mb"])

    return measure_nota2025(candidate, job["nota_prompt"], sync, peak_mb)


def _calibrate(candidate: Candidate, job: dict, n: int = 4) -> list[str]:
    """Hands the first few readable samples of the first suite to recipes that need activations."""
    suite = job["suites"][0]
    requests = []
    for sample in suite["samples"]:
        try:
            audio, _ = load_audio(sample["audio_path"])
        except AudioError:
            continue
        requests.append(Request(sample["sample_id"], audio, suite["name"], suite["prompt"], suite["max_new_tokens"]))
        if len(requests) == n:
            break
    candidate.set_calibration(requests)
    return [r.sample_id for r in requests]


def _warm_up(candidate: Candidate, job: dict, timer: TokenTimer, done: dict, watchdog: SampleWatchdog,
             window_s: float | None) -> None:
    """Runs one sample `warmup` times; nothing from it is recorded.

    It prefers a sample an earlier child already predicted (known good), and never one that
    already failed, so a resumed run cannot hang again in its warm-up.
    """
    if job["warmup"] <= 0:
        return
    candidates = [(s, x) for s in job["suites"] for x in s["samples"]]
    good = [c for c in candidates if (done.get((c[0]["name"], c[1]["sample_id"])) or {}).get("error") is None]
    fresh = [c for c in good if (c[0]["name"], c[1]["sample_id"]) in done]
    for suite, sample in fresh + [c for c in good if c not in fresh]:
        try:
            audio, _ = load_audio(sample["audio_path"])
        except AudioError:
            continue
        request = Request(sample["sample_id"], audio, suite["name"], suite["prompt"], suite["max_new_tokens"])
        watchdog.begin(suite["name"], sample)
        try:
            pieces = long_audio.split(request, window_s, _long_audio_mode(suite))
            for _ in range(job["warmup"]):
                timer.start()
                for piece in pieces.requests:
                    candidate.generate(piece, timer.on_token)
                release_free_heap()
        except long_audio.LongAudioRefused:  # --long-audio fail: this sample is refused; warm up on another
            continue
        except Exception:  # this sample will fail on its own turn; warm up on another
            traceback.print_exc()
            continue
        finally:
            watchdog.end()
        return


def _long_audio_mode(suite: dict) -> str:
    return suite.get("long_audio", "truncate")  # job files from before --long-audio: families truncated


def _run_sample(candidate: Candidate, suite: dict, sample: dict, timer: TokenTimer, window_s: float | None) -> dict:
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
    minimum = suite.get("min_audio_s", 0.0)
    if record["audio_s"] < minimum:
        record["error"] = (f"audio is {record['audio_s']:.3f} s, shorter than the {suite['name']} suite's minimum "
                           f"of {minimum:g} s (a broken or empty recording?)")
        return record
    request = Request(sample["sample_id"], audio, suite["name"], suite["prompt"], suite["max_new_tokens"])
    try:
        pieces = long_audio.split(request, window_s, _long_audio_mode(suite))  # slices only: no copies
    except long_audio.LongAudioRefused as err:
        record.update(audio_window_s=window_s, error=str(err))
        return record
    record.update(pieces.record)
    try:
        timer.start()
        generations = [candidate.generate(piece, timer.on_token) for piece in pieces.requests]
        timing = timer.finish(long_audio.total_tokens(generations))
    except Exception as err:  # one bad sample must not end the run
        record["error"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
        return record
    generation, unaligned = pieces.combine(generations)  # after the clock stopped
    if len(generations) > 1:
        record["unaligned_joins"] = unaligned
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
    build(CandidateSpec(**job["spec"])).prepare()
    return 0


def main(argv: list[str]) -> int:
    prepare_only = "--prepare" in argv
    paths = [a for a in argv if not a.startswith("--")]
    job = json.loads(Path(paths[0]).read_text(encoding="utf-8"))
    return prepare(job) if prepare_only else run_job(job)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
