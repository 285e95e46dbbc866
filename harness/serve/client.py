"""Helpers for models served outside the measured process (the `openai` family, `bench.py load`).

- `encode_audio`: the waveform as the bytes a server receives (WAV or FLAC, 16-bit);
- `distinct_copy`: the same clip with +-1 LSB of seeded dither, so that a repeated clip never
  reaches a server as identical bytes (vLLM caches multimodal preprocessing and prefixes by
  content: a repeat would be timed 3-5x faster than a first request);
- `ProcessTreeMemory`: the peak memory of a server's process tree, sampled from the client.
Nothing here imports torch.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import numpy as np

from harness.types import SAMPLE_RATE

MB = 1024 * 1024
_LSB = 1.0 / 32768.0  # one step of 16-bit PCM


def encode_audio(audio: np.ndarray, fmt: str) -> bytes:
    """16-bit PCM WAV or FLAC bytes of a float32 mono clip at SAMPLE_RATE."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, format=fmt.upper(), subtype="PCM_16")
    return buffer.getvalue()


def distinct_copy(audio: np.ndarray, seed: int | list[int]) -> np.ndarray:
    """The clip plus +-1 LSB of dither from `seed`: inaudible, below 16-bit quantization noise,
    but different bytes for every seed."""
    rng = np.random.default_rng(seed)
    return (audio + rng.choice(np.array([-_LSB, _LSB], dtype=np.float32), size=audio.shape)).astype(np.float32)


class ProcessTreeMemory:
    """Peak memory of a process and all its descendants, sampled in a background thread.

    CPU: the sum of the processes' RSS (pages shared between them count once per process, so
    this is an upper bound). GPU: the memory NVML reports for those processes.
    Raises psutil.NoSuchProcess at construction when `pid` does not exist.
    """

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        import psutil

        from harness.measure.gpu import NvmlProcessMemory

        self.pid = pid
        self.interval_s = interval_s
        self._root = psutil.Process(pid)
        self._nvml = NvmlProcessMemory()
        self.start_rss_mb: float | None = None
        self.peak_rss_mb = 0.0
        self.peak_gpu_mb: float | None = None
        self.max_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.start_rss_mb = self.sample()
        self._thread = threading.Thread(target=self._run, name="server-memory", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> float:
        """One sample now; returns the tree's RSS in MB."""
        import psutil

        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:  # the server is gone; keep the peak seen so far
            return 0.0
        rss = 0
        pids = set()
        for proc in procs:
            try:
                rss += proc.memory_info().rss
                pids.add(proc.pid)
            except psutil.NoSuchProcess:
                continue
        gpu = self._nvml.used_mb(pids)
        if gpu is not None:
            self.peak_gpu_mb = max(self.peak_gpu_mb or 0.0, gpu)
        self.peak_rss_mb = max(self.peak_rss_mb, rss / MB)
        self.max_processes = max(self.max_processes, len(pids))
        self.samples += 1
        return rss / MB

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def report(self) -> dict[str, Any]:
        """`peak_mb` is the ranked number: NVML's per-process memory on a GPU machine (None, with
        the reason, when NVML never listed the tree's processes), the RSS sum elsewhere."""
        every = f"sampled every {self.interval_s:g} s from the client: process {self.pid} and its descendants"
        if not self._nvml.available:
            peak, kind = self.peak_rss_mb, "server_rss_peak"
            reason = f"{every} (sum of RSS; shared pages count once per process)"
        elif self._nvml.seen:
            peak, kind = self.peak_gpu_mb, "server_nvml_used"
            reason = f"{every} (NVML per-process GPU memory, summed over GPUs)"
        else:
            peak, kind = None, "server_gpu_memory_not_seen"
            reason = (f"{every}: a GPU is present but NVML never listed one of these processes with its memory "
                      "(a container's pid namespace, MIG, or a server on the CPU); rss_peak_mb is their RSS")
        return {
            "peak_mb": peak,
            "kind": kind,
            "reason": reason,
            "server_pid": self.pid,
            "rss_peak_mb": self.peak_rss_mb,
            "rss_at_start_mb": self.start_rss_mb,
            "nvml_used_peak_mb": self.peak_gpu_mb,
            "nvml_device_used_peak_mb": self._nvml.device_used_peak_mb,
            "processes": self.max_processes,
            "samples": self.samples,
        }
