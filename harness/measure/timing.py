"""Token timestamps and the latency definitions of docs/concepts/measurement.md.

The harness owns the clock: a candidate only calls `on_token()` when a token exists. TTFT runs
from the hand-over of the decoded waveform to the first token; TPOT is the vLLM definition
`(t_last - t_first) / (n_tokens - 1)`, and is None (n/a) when the tokens did not arrive
separately (fewer than 2 tokens, or all of them in one callback).

When the engine reports its own token count (`Generation.n_tokens`, e.g. a server's
`usage.completion_tokens`), that count is the divisor's source: a served stream calls `on_token`
once per chunk, a chunk may hold several tokens, and only the total is known. TPOT is then
`(t_last_chunk - t_first_chunk) / (n_tokens - first_count)`, which is the vLLM definition
`(t_last - t_first) / (completion_tokens - 1)` for a first chunk of one token.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class RequestTiming:
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float
    n_tokens: int


class TokenTimer:
    """Collects token timestamps for one request.

    `sync` runs before each clock read (torch.cuda.synchronize on a GPU) so that the time
    is taken when the device work is done, not when it was queued.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter, sync: Callable[[], None] | None = None):
        self._clock = clock
        self._sync = sync
        self.start_time = 0.0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.n_tokens = 0
        self._first_count = 0

    def _now(self) -> float:
        if self._sync is not None:
            self._sync()
        return self._clock()

    def start(self) -> None:
        self.start_time = self._now()
        self.first_time = self.last_time = None
        self.n_tokens = self._first_count = 0

    def on_token(self, count: int = 1, text: str | None = None) -> None:
        """Called by the candidate when `count` new tokens exist (1 for streaming decoders); their
        text, when a candidate gives it, is not needed for timing."""
        now = self._now()
        if self.first_time is None:
            self.first_time = now
            self._first_count = count
        self.last_time = now
        self.n_tokens += count

    def finish(self, n_tokens: int | None = None) -> RequestTiming:
        end = self._now()
        tokens = n_tokens if n_tokens is not None else self.n_tokens
        ttft = None if self.first_time is None else self.first_time - self.start_time
        tpot = None
        # Tokens after the first callback, over the time they took: with one token per
        # callback this is exactly (t_last - t_first) / (n - 1). The engine's own count, when
        # given, wins over the callbacks' (a served stream's chunks are not tokens).
        later_tokens = tokens - self._first_count
        if self.first_time is not None and later_tokens > 0 and self.last_time > self.first_time:
            tpot = (self.last_time - self.first_time) / later_tokens
        return RequestTiming(ttft_s=ttft, tpot_s=tpot, e2e_s=end - self.start_time, n_tokens=tokens)


# A served answer whose chunks mostly arrive together was buffered by the server (or a proxy):
# the client's TPOT is then the time to parse chunks, not the model's time per token. Flagged when
# at least BUFFERED_SHARE of the gaps between its chunks are under BUFFERED_GAP_MS, on answers of
# at least BUFFERED_MIN_TOKENS tokens (docs/guides/served-models.md#buffered-streams).
BUFFERED_GAP_MS = 1.0
BUFFERED_SHARE = 0.9
BUFFERED_MIN_TOKENS = 8
BUFFERED_RULE = (f">= {BUFFERED_SHARE:.0%} of inter-chunk gaps under {BUFFERED_GAP_MS:g} ms on answers of "
                 f">= {BUFFERED_MIN_TOKENS} tokens")


def stream_buffered(gaps_ms: list[float], n_tokens: int) -> bool:
    """Whether a streamed answer arrived buffered (see BUFFERED_RULE)."""
    if n_tokens < BUFFERED_MIN_TOKENS or not gaps_ms:
        return False
    return sum(gap < BUFFERED_GAP_MS for gap in gaps_ms) >= BUFFERED_SHARE * len(gaps_ms)


def buffered_reason(n_buffered: int, n_requests: int) -> str:
    """Why a run's (or a load level's) TPOT is unavailable when some of its answers were buffered."""
    return (f"TPOT unavailable: {n_buffered} of {n_requests} answers arrived as a buffered stream ({BUFFERED_RULE}), "
            "so the gaps between chunks are not the model's time per token; latency is the median TTFT, "
            "which then covers the whole decode")


def summarize(values_ms: list[float | None]) -> dict[str, float | int | None]:
    """p50/p90/mean/stdev over the requests that have a value; all None when none has."""
    present = [v for v in values_ms if v is not None]
    if not present:
        return {"p50": None, "p90": None, "mean": None, "stdev": None, "n": 0}
    arr = np.asarray(present, dtype=float)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "mean": float(arr.mean()),
        "stdev": float(statistics.stdev(present)) if len(present) > 1 else 0.0,
        "n": len(present),
    }


def latency_ms(ttft: dict, tpot: dict) -> float | None:
    """The ranking criterion: median TTFT + median TPOT.

    For a candidate whose tokens all arrive at once (TPOT n/a) the TTFT already covers the whole
    decode, so latency is the median TTFT alone; the record flags that case separately.
    """
    if ttft["p50"] is None:
        return None
    return ttft["p50"] + (tpot["p50"] or 0.0)
