"""The measured child process: loads one candidate and runs every sample of a job.

Run as `python -m harness.measure.worker JOB.json` (or with `--prepare` to build cached weights
before measuring). It writes one line per sample to predictions.jsonl, flushed as it goes,
and a worker.json with the load time and memory at the end. The parent does all scoring.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from harness.candidate import Candidate, overrides
from harness.data import long_audio, prompts, questions
from harness.data.audio import audio_loader
from harness.data.errors import AudioError
from harness.measure import quality_pass
from harness.measure.memory import RssTracker, freeze_survivors, release_free_heap
from harness.measure.timing import TokenTimer
from harness.registry import build
from harness.spec import CandidateSpec
from harness.types import SAMPLE_RATE, Request
from records import files
from records.job import JobFile, JobSample, JobSuite
from records.prediction import Prediction
from records.worker_summary import WorkerSummary

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

    def begin(self, task: str, sample: JobSample) -> None:
        with self._lock:
            self._current = (task, sample.sample_id, time.monotonic(), sample.references)
            self._scale = 1

    def begin_batch(self, size: int) -> None:
        """A batch of `size` requests gets `size` times the limit; if it hangs nothing is written:
        the next child answers that batch's requests one at a time (harness.measure.quality_pass)."""
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
                    files.append_prediction(out, Prediction(
                        sample_id, task, references,
                        error=f"timed out after {self.limit_s:g} s (--sample-timeout-s); worker restarted",
                    ))
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


# The child's steps, in the one order that measures right: everything before `baseline` (imports,
# primed kernels, the family's preload, the bandwidth probe) is not the model's memory; the load
# is timed and its peak kept apart from the requests'; the report comes after the last request.
PHASES = ("setup", "preload", "baseline", "calibrate", "load", "inputs", "answer", "measure", "report")


class PhaseOrderError(RuntimeError):
    """A phase of the measured child ran before the phases it needs (a bug in the harness)."""


def phase(method):
    """Marks a ChildRun method as the phase of its name, run only right after the one before it."""

    @functools.wraps(method)
    def run(self: ChildRun, *args, **kwargs):
        name = method.__name__
        expected = PHASES[len(self.done)] if len(self.done) < len(PHASES) else None
        if name != expected:
            raise PhaseOrderError(f"worker phase {name!r} out of order: next is {expected!r} (done: {self.done})")
        result = method(self, *args, **kwargs)
        self.done.append(name)
        return result

    return run


# How this child reads its clips (`--audio-loading`), set once from the job when the child starts.
_LOADING = {"load": audio_loader("harness")}


class ChildRun:
    """One job in the measured child, as named phases (PHASES) that run in their order."""

    def __init__(self, job: JobFile):
        self.job = job
        _LOADING["load"] = audio_loader(job.options.get("audio_loading", "harness"))
        self.done: list[str] = []
        self.run_dir = Path(job.run_dir)
        self.predictions = self.run_dir / files.PREDICTIONS_FILE
        self.summary = WorkerSummary(status="running")
        self.window = contextlib.ExitStack()  # the measured window: the NVML poller runs inside it

    def run(self) -> int:
        import gc

        try:
            with self.window:
                for name in PHASES:
                    getattr(self, name)()
        finally:
            gc.unfreeze()  # `load` froze what was alive then; a caller in the same process (tests) gets it back
        return 0

    def _fail(self, what: str, err: Exception) -> None:
        """The run record shows why, not only worker.log's traceback."""
        self.summary.status, self.summary.error = "failed", f"{what} failed: {type(err).__name__}: {err}"
        files.write_worker_summary(self.run_dir, self.summary)

    @phase
    def setup(self) -> None:
        from harness.measure import gpu

        # Resumable: samples already recorded (by an earlier, killed child) are not run again.
        self.done_samples = {p.key: p for p in files.repair_predictions(self.predictions)}
        self.candidate = build(CandidateSpec(**self.job.spec))  # cheap by contract: no weights, no heavy imports
        served_by = self.candidate.served_by()
        uses_torch = self.candidate.imports_torch()
        if uses_torch:
            import_frameworks()
        _prime_harness(torch_kernels=uses_torch)
        # A served model's device is its server's; this process is only the (timed) client. A
        # candidate without torch computes on the CPU unless a device is named.
        if served_by:
            self.device = "served"
        elif not uses_torch and self.job.device == "auto":
            self.device = "cpu"
        else:
            self.device = gpu.resolve_device(self.job.device)
        self.summary.device = self.device

    @phase
    def preload(self) -> None:
        try:
            self.candidate.preload()  # the family's imports and tokenizer: before the baseline, like the harness's
        except Exception as err:  # a refused or missing checkpoint: the record says why, as for load
            self._fail("load", err)
            raise
        if overrides(self.candidate, "decoder_weight_bytes"):
            from harness.measure.roofline import measure_bandwidth_gbps

            # Before the memory baseline: the copy buffers must not count as the model's memory.
            self.summary.bandwidth_gbps = measure_bandwidth_gbps(self.device)

    @phase
    def baseline(self) -> None:
        from harness.measure import gpu

        self.rss = RssTracker()
        self.rss.reset()
        gpu.reset_peak(self.device)
        self.nvml = self.window.enter_context(gpu.NvmlPoller(self.device))

    @phase
    def calibrate(self) -> None:
        if self.candidate.needs_calibration():
            self.summary.calibration_ids = _calibrate(self.candidate, self.job)

    @phase
    def load(self) -> None:
        t0 = time.perf_counter()
        try:
            self.candidate.load(self.device)
        except Exception as err:
            self._fail("load", err)
            raise
        self.summary.load_s = time.perf_counter() - t0
        # Split the CPU peak into load and inference: quantize-on-load recipes peak while loading.
        self.load_peak = self.rss.report()
        self.heap_released = release_free_heap()  # what loading freed is not the model's memory
        freeze_survivors()  # the collection after each request walks only what requests made
        self.rss.restart_peak()

    @phase
    def inputs(self) -> None:
        from harness.measure import gpu

        self.audio_window_s = _settle_inputs(self.candidate, self.job, self.run_dir, self.summary)
        self.sync = gpu.synchronizer(self.device)
        if self.job.protocol == "nota2025":
            self.summary.nota2025 = _nota2025(self.candidate, self.job, self.device, self.sync, self.rss, self.load_peak)
        self.timer = TokenTimer(sync=self.sync)
        self.watchdog = SampleWatchdog(self.job.sample_timeout_s, self.predictions)

    @phase
    def answer(self) -> None:
        candidate, job, timer, window_s = self.candidate, self.job, self.timer, self.audio_window_s
        if job.batch_size > 1:  # batched quality pass, then batch-1 timing of chosen samples
            hooks = quality_pass.WorkerHooks(
                run_one=lambda suite, sample: _run_sample_and_release(candidate, suite, sample, timer, window_s),
                warm_up=lambda done_now: _warm_up(candidate, job, timer, done_now, self.watchdog, window_s),
                watchdog=self.watchdog, rss=self.rss, nvml=self.nvml,
            )
            self.summary.quality_pass = quality_pass.run_batched(candidate, job, self.device, self.done_samples, hooks)
            return
        _warm_up(candidate, job, timer, self.done_samples, self.watchdog, window_s)
        with open(self.predictions, "a", encoding="utf-8") as out:
            for suite in job.suites:
                for sample in suite.samples:
                    if (suite.name, sample.sample_id) in self.done_samples:
                        continue
                    self.watchdog.begin(suite.name, sample)
                    prediction = _run_sample_and_release(candidate, suite, sample, timer, window_s)
                    self.watchdog.end()
                    files.append_prediction(out, prediction)

    @phase
    def measure(self) -> None:
        from harness.measure import gpu

        self.window.close()  # the NVML poller stops: its peaks are final
        memory = self.rss.report(self.load_peak)
        memory["heap_released_between_requests"] = self.heap_released
        if self.device.startswith("cuda"):
            memory.update(gpu.peak_report(self.device))
            quality_pass.merge_gpu_peaks(memory, self.summary.quality_pass or {})
        memory.update(self.nvml.report())
        candidate, summary = self.candidate, self.summary
        summary.memory = memory
        summary.weights_bytes = candidate.weight_bytes()
        summary.weights_bytes_by_part = candidate.weight_bytes_by_part()
        summary.decoder_weights_bytes = candidate.decoder_weight_bytes()
        summary.recipe_applied = candidate.recipe_applied()
        summary.candidate_info = candidate.run_info()
        summary.external_memory = candidate.external_memory()
        candidate.close()
        summary.device_name = candidate.served_by() or gpu.device_name(self.device)  # after load: names resolved
        summary.gpu = gpu.identity(self.device)

    @phase
    def report(self) -> None:
        self.summary.status = "ok"
        files.write_worker_summary(self.run_dir, self.summary)


def run_job(job: JobFile) -> int:
    return ChildRun(job).run()


def _run_sample_and_release(candidate: Candidate, suite: JobSuite, sample: JobSample, timer: TokenTimer,
                            window_s: float | None) -> Prediction:
    prediction = _run_sample(candidate, suite, sample, timer, window_s)
    release_free_heap()  # untimed: the next request's peak starts from live memory
    return prediction


def _settle_inputs(candidate: Candidate, job: JobFile, run_dir: Path, summary: WorkerSummary) -> float | None:
    """After load: the prompt each suite uses (`--prompts`) and the model's audio window
    (`--long-audio`); the prompts are written at once, so a crash later still records them."""
    resolved = prompts.resolve(candidate, [s.to_dict() for s in job.suites], job.prompts)
    for suite in job.suites:
        suite.prompt = resolved[suite.name]["text"]
    files.write_json_atomic(run_dir / prompts.PROMPTS_FILE, resolved)
    summary.audio_window_s = candidate.audio_window_s()
    return summary.audio_window_s


def _nota2025(candidate: Candidate, job: JobFile, device: str, sync, rss: RssTracker, load_peak: dict) -> dict:
    """The organiser's efficiency loop; its peak counter includes the model load, as theirs did."""
    from harness.measure import gpu
    from harness.measure.nota2025 import measure_nota2025

    def peak_mb() -> float:
        if device.startswith("cuda"):
            return gpu.peak_report(device)["max_allocated_mb"]
        return max(load_peak["rss_peak_above_baseline_mb"], rss.report()["rss_peak_above_baseline_mb"])

    return measure_nota2025(candidate, job.nota_prompt, sync, peak_mb)


def _request(suite: JobSuite, sample: JobSample, audio) -> Request:
    prompt = questions.render(suite.prompt, sample.question, sample.choices)  # the suite's template, filled
    return Request(sample.sample_id, audio, suite.name, prompt, suite.max_new_tokens)


def _calibrate(candidate: Candidate, job: JobFile) -> list[str]:
    """Hands a seeded sample of the first suite's readable clips to recipes that need
    activations (harness/data/calibration.py); the ids go into the record."""
    from harness.data.calibration import pick_calibration

    suite = job.suites[0]
    picked = pick_calibration(suite.samples, lambda sample: _LOADING["load"](sample.audio_path)[0])
    requests = [_request(suite, sample, audio) for sample, audio in picked]
    candidate.set_calibration(requests)
    return [r.sample_id for r in requests]


def _warm_up(candidate: Candidate, job: JobFile, timer: TokenTimer, done: dict[tuple[str, str], Prediction],
             watchdog: SampleWatchdog, window_s: float | None) -> None:
    """Runs one sample `warmup` times; nothing from it is recorded.

    It prefers a sample an earlier child already predicted (known good), and never one that
    already failed, so a resumed run cannot hang again in its warm-up.
    """
    if job.warmup <= 0:
        return
    pairs = [(s, x) for s in job.suites for x in s.samples]
    good = [c for c in pairs if (c[0].name, c[1].sample_id) not in done or done[c[0].name, c[1].sample_id].error is None]
    fresh = [c for c in good if (c[0].name, c[1].sample_id) in done]
    for suite, sample in fresh + [c for c in good if c not in fresh]:
        try:
            audio, _ = _LOADING["load"](sample.audio_path)
        except AudioError:
            continue
        request = _request(suite, sample, audio)
        watchdog.begin(suite.name, sample)
        try:
            pieces = long_audio.split(request, window_s, suite.long_audio, candidate.preferred_window_s())
            answer = candidate.generate_long_form if pieces.native else candidate.generate
            for _ in range(job.warmup):
                timer.start()
                for piece in pieces.requests:
                    answer(piece, timer.on_token)
                release_free_heap()
        except long_audio.LongAudioRefused:  # --long-audio fail: this sample is refused; warm up on another
            continue
        except Exception:  # this sample will fail on its own turn; warm up on another
            traceback.print_exc()
            continue
        finally:
            watchdog.end()
        return


def _run_sample(candidate: Candidate, suite: JobSuite, sample: JobSample, timer: TokenTimer,
                window_s: float | None) -> Prediction:
    """The one builder of a measured prediction line (the batched pass starts from it too)."""
    record = Prediction(sample.sample_id, suite.name, sample.references)
    try:
        audio, rate = _LOADING["load"](sample.audio_path)
    except AudioError as err:
        record.error = str(err)
        return record
    record.audio_s = len(audio) / SAMPLE_RATE
    record.original_sample_rate = rate
    minimum = suite.min_audio_s
    if record.audio_s < minimum:
        record.error = (f"audio is {record.audio_s:.3f} s, shorter than the {suite.name} suite's minimum "
                        f"of {minimum:g} s (a broken or empty recording?)")
        return record
    request = _request(suite, sample, audio)
    if sample.question is not None:  # a per-sample prompt: the record keeps the exact text asked
        record.prompt = request.prompt
    try:
        pieces = long_audio.split(request, window_s, suite.long_audio, candidate.preferred_window_s())  # slices only
    except long_audio.LongAudioRefused as err:
        record.audio_window_s, record.error = window_s, str(err)
        return record
    for key, value in pieces.record.items():  # chunks / truncated_to_s / audio_window_s / overlap_s / long_form
        setattr(record, key, value)
    if pieces.native and not overrides(candidate, "generate_long_form"):
        record.error = (f"--long-audio native: candidate {candidate.name!r} has no long-form algorithm of its own; "
                        "use chunk, truncate or fail")
        return record
    answer = candidate.generate_long_form if pieces.native else candidate.generate
    try:
        timer.start()
        generations = [answer(piece, timer.on_token) for piece in pieces.requests]
        timing = timer.finish(long_audio.total_tokens(generations))
    except Exception as err:  # one bad sample must not end the run
        record.error = f"{type(err).__name__}: {err}"
        traceback.print_exc()
        return record
    generation = pieces.combine(generations)  # after the clock stopped
    record.windows = pieces.windows(generations)
    ms = 1000.0
    record.prediction = generation.text
    record.n_tokens = timing.n_tokens
    record.ttft_ms = None if timing.ttft_s is None else timing.ttft_s * ms
    record.tpot_ms = None if timing.tpot_s is None else timing.tpot_s * ms
    record.e2e_ms = timing.e2e_s * ms
    info = {k: v for k, v in generation.info.items() if not (pieces.native and k == "segments")}  # in `windows`
    record.info = info or None
    if any((g.info or {}).get("stream_buffered") for g in generations):  # a served answer that arrived buffered
        record.stream_buffered, record.tpot_ms = True, None  # its chunk gaps are not the model's TPOT
    return record


def prepare(spec: dict) -> int:
    build(CandidateSpec(**spec)).prepare()
    return 0


def main(argv: list[str]) -> int:
    prepare_only = "--prepare" in argv
    paths = [a for a in argv if not a.startswith("--")]
    if prepare_only:  # the file names the candidate only (bench.py serve writes one without a run)
        return prepare(files.read_json(Path(paths[0]))["spec"])
    return run_job(files.read_job(Path(paths[0])))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
