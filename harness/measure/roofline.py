"""A lower bound on TPOT: a decoder must read all its weights once per generated token.

bound = bytes of decoder weights / memory bandwidth. The bandwidth is measured on the spot
with a large copy (read + write), as a streaming kernel would see it, with the same threads
the model uses. The ratio measured TPOT / bound says how far a candidate is from the memory
wall: near 1 means it is bandwidth-bound, far above means overheads dominate.
"""

from __future__ import annotations

import time
from typing import Any

COPY_MB = 256  # far larger than any CPU cache, small enough to allocate anywhere


def measure_bandwidth_gbps(device: str, size_mb: int = COPY_MB, repeats: int = 5) -> float:
    """Best-of-N copy bandwidth in GB/s (bytes read + bytes written per second)."""
    import torch

    from harness.measure.gpu import synchronizer

    sync = synchronizer(device) or (lambda: None)
    n = size_mb * 1024 * 1024 // 4
    if device.startswith("cuda"):
        src = torch.ones(n, dtype=torch.float32, device=device)
        dst = torch.empty_like(src)
    else:
        src, dst = _unmalloced_buffer(n), _unmalloced_buffer(n)
        src.fill_(1.0)
    dst.copy_(src)  # first touch: page faults are not bandwidth
    best = float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        dst.copy_(src)
        sync()
        best = min(best, time.perf_counter() - t0)
    del src, dst
    return 2 * n * 4 / best / 1e9


def _unmalloced_buffer(n_floats: int):
    """A float32 CPU tensor on its own anonymous mapping, bypassing malloc. This runs in the
    measured process before its memory baseline: freeing two 256 MB malloc'ed tensors would
    raise glibc's dynamic mmap threshold to its 32 MB maximum, after which every tensor up to
    32 MB comes from a heap that fragments (Whisper tiny.en int8: +20 MB per request)."""
    import mmap

    import torch

    buffer = mmap.mmap(-1, n_floats * 4)  # unmapped when the tensor (holding it) is freed
    return torch.frombuffer(buffer, dtype=torch.float32)


def roofline(decoder_bytes: int | None, bandwidth_gbps: float | None, tpot_ms: float | None) -> dict[str, Any] | None:
    if not decoder_bytes or not bandwidth_gbps:
        return None
    bound_ms = decoder_bytes / (bandwidth_gbps * 1e9) * 1000.0
    return {
        "bandwidth_gbps": bandwidth_gbps,
        "decoder_weights_mb": decoder_bytes / (1024 * 1024),
        "tpot_bound_ms": bound_ms,
        "tpot_over_bound": tpot_ms / bound_ms if tpot_ms else None,
    }
