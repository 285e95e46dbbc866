"""Everything CUDA-specific the measurement needs, in one place.

The rest of the harness calls these helpers and never touches torch.cuda or NVML itself, so the
CPU path stays free of GPU assumptions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device")
    return requested


def synchronizer(device: str) -> Callable[[], None] | None:
    """torch.cuda.synchronize on a GPU (so timestamps follow the device), nothing on a CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.synchronize


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_report(device: str) -> dict[str, float]:
    import torch

    mb = 1024 * 1024
    return {
        "max_allocated_mb": torch.cuda.max_memory_allocated(device) / mb,
        "max_reserved_mb": torch.cuda.max_memory_reserved(device) / mb,
    }


class NvmlPoller:
    """Polls this process's GPU memory as NVML (and nvidia-smi) reports it."""

    def __init__(self, device: str, interval_s: float = 0.05):
        self.peak_bytes = 0
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._enabled = device.startswith("cuda")
        self._index = int(device.split(":")[1]) if ":" in device else 0

    def __enter__(self) -> NvmlPoller:
        if self._enabled:
            try:
                import pynvml

                pynvml.nvmlInit()
                self._handle = pynvml.nvmlDeviceGetHandleByIndex(self._index)
                self._thread = threading.Thread(target=self._poll, daemon=True)
                self._thread.start()
            except Exception:  # NVML missing or unusable: the record shows None
                self._enabled = False
        return self

    def _poll(self) -> None:
        import os

        import pynvml

        pid = os.getpid()
        while not self._stop.is_set():
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(self._handle):
                if proc.pid == pid and proc.usedGpuMemory:
                    self.peak_bytes = max(self.peak_bytes, proc.usedGpuMemory)
            self._stop.wait(self._interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def report(self) -> dict[str, float | None]:
        return {"nvml_used_mb": self.peak_bytes / (1024 * 1024) if self._enabled else None}
