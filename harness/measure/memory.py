"""Peak memory of the measured process and the bytes its model's weights take.

CPU: the ranking number is the peak resident set above the baseline taken after imports.
Linux lets a process reset its own high-water mark (VmHWM) by writing "5" to
/proc/self/clear_refs, so the peak covers only model load and requests. Where that is not
possible the peak since process start (ru_maxrss) is used and the record says so.
"""

from __future__ import annotations

import ctypes
import resource
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

MB = 1024 * 1024


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_bytes() -> int:
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb * 1024
    import psutil

    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


@dataclass
class RssTracker:
    baseline_bytes: int = 0
    peak_was_reset: bool = False

    def reset(self) -> None:
        """Takes the baseline now and, where the kernel allows it, restarts the peak from here."""
        import gc

        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.peak_was_reset = True
        except OSError:
            self.peak_was_reset = False
        self.baseline_bytes = current_rss_bytes()

    def restart_peak(self) -> None:
        """Starts a new peak window (keeping the baseline), e.g. between load and inference."""
        if self.peak_was_reset:
            Path("/proc/self/clear_refs").write_text("5")

    def report(self, earlier: dict | None = None) -> dict[str, float | str]:
        """Peak of the current window; with `earlier` (a previous window's report) the overall peak."""
        peak = peak_rss_bytes() / MB
        window = {
            "rss_baseline_mb": self.baseline_bytes / MB,
            "rss_peak_total_mb": peak,
            "rss_peak_above_baseline_mb": max(peak - self.baseline_bytes / MB, 0.0),
            "rss_peak_method": "VmHWM after clear_refs" if self.peak_was_reset else "ru_maxrss since start",
        }
        if earlier is None or not self.peak_was_reset:
            return window
        window["rss_peak_load_above_baseline_mb"] = earlier["rss_peak_above_baseline_mb"]
        window["rss_peak_inference_above_baseline_mb"] = window["rss_peak_above_baseline_mb"]
        # "load": the ranked peak was reached while loading (e.g. quantizing fp32 weights on load),
        # so it measures the recipe's loading, not what a deployment loading an export would hold.
        window["peak_phase"] = peak_phase(earlier["rss_peak_above_baseline_mb"], window["rss_peak_above_baseline_mb"])
        for key in ("rss_peak_total_mb", "rss_peak_above_baseline_mb"):
            window[key] = max(window[key], earlier[key])
        return window


@lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's malloc_trim, or None (another libc, another OS)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_heap() -> bool:
    """Frees unreachable objects, then hands the heap pages that freed memory left behind back to
    the OS (glibc `malloc_trim`).

    The worker calls it after loading and after each request, outside every timed span. glibc
    keeps freed chunks mapped (its mmap threshold rises to the largest tensor freed, so later
    tensors up to that size come from a heap it rarely shrinks), so without it a request's peak
    also counted what earlier requests had freed: on Whisper tiny.en int8 the peak crept from 141
    to 190 MB over 30 clips of the same size while the live memory stayed flat. Returns whether
    malloc_trim ran. It collects reference cycles first: transformers' generate leaves tensors in cycles (the
    caches of the last request, ~22 MB on Whisper tiny.en int8) that Python frees only when its
    cyclic collector happens to run, so they would count in the next request's peak."""
    import gc

    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def freeze_survivors() -> None:
    """Puts every object alive now out of the cyclic collector's reach (`gc.freeze`).

    Called once, right after loading and its `release_free_heap`: what is alive then (the
    frameworks, the model, the tokenizer) stays alive until the child exits. The collection after
    each request then walks only what requests made, which is where their reference cycles are.
    Before, it walked every object of torch and transformers each time: 220 ms per request on
    Whisper tiny (435,000 objects), longer than the request itself on short clips, and a third
    of a 30-clip run."""
    import gc

    gc.freeze()


def peak_phase(load_peak_mb: float, inference_peak_mb: float) -> str:
    """Which phase set the run's peak: "load" or "inference" (a tie counts as inference)."""
    return "load" if load_peak_mb > inference_peak_mb else "inference"


def tensor_bytes(module) -> int:
    """Bytes held by a torch module's parameters and buffers, as stored, quantized or not.

    `numel() * element_size()` is right for plain tensors only: a torchao or quanto weight is a
    tensor subclass that reports its logical dtype, so its inner tensors (found through the
    `__tensor_flatten__` protocol both libraries implement) are counted instead. bitsandbytes
    keeps packed uint8 data in the parameter and its scales in `quant_state` / `SCB`.
    `get_memory_footprint()` gets the subclasses wrong.
    """
    seen: set[int] = set()
    total = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += _stored_bytes(tensor)
    # torch.ao (dynamic-)quantized linears keep weight and bias in packed params, not parameters.
    from torch.ao.nn.quantized.modules.linear import LinearPackedParams

    for sub in module.modules():
        if isinstance(sub, LinearPackedParams):
            for t in sub._weight_bias():
                if t is not None:
                    total += t.numel() * t.element_size() + _qscale_bytes(t)
    return total


def _qscale_bytes(tensor) -> int:
    import torch

    if tensor.is_quantized and tensor.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        return tensor.q_per_channel_scales().numel() * 8 + tensor.q_per_channel_zero_points().numel() * 8
    return 0


def _stored_bytes(tensor) -> int:
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    if is_traceable_wrapper_subclass(tensor):
        inner, _ = tensor.__tensor_flatten__()
        return sum(_stored_bytes(getattr(tensor, name)) for name in inner)
    total = tensor.numel() * tensor.element_size()
    state = getattr(tensor, "quant_state", None)
    if state is not None:
        total += _quant_state_bytes(state)
    scb = getattr(tensor, "SCB", None)  # bitsandbytes int8 row scales
    if scb is not None:
        total += scb.numel() * scb.element_size()
    return total


def _quant_state_bytes(state) -> int:
    total = 0
    for name in ("absmax", "code"):
        t = getattr(state, name, None)
        if t is not None:
            total += t.numel() * t.element_size()
    nested = getattr(state, "state2", None)
    if nested is not None:
        total += _quant_state_bytes(nested)
    return total
