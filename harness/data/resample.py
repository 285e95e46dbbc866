"""scipy's `resample_poly`, block by block: the same numbers, bounded memory.

`resample_poly(x, up, down)` filters the whole signal at once, so decoding a clip held the clip
at its own rate two or three times over (the decoded frames, their mono mix, the filter's
input and output): ~6 MB above the memory baseline for a few seconds of 48-96 kHz stereo,
billed to whatever candidate was being measured. `StreamingResampler` takes the mono signal in
blocks and writes each finished output sample straight into the 16 kHz result.

It computes every output sample from the same filter taps and input samples, added in the same
order, as `resample_poly` (scipy's `upfirdn` sums each output over its taps from the oldest
input to the newest), so the result is bit-identical (tests/test_audio_floor.py checks rates
from 8 to 96 kHz and many lengths against scipy itself).
"""

from __future__ import annotations

import math

import numpy as np


class StreamingResampler:
    """`resample_poly(x, up, down)` of a float32 signal of `n_in` samples, fed in blocks."""

    def __init__(self, up: int, down: int, n_in: int):
        from scipy.signal import firwin

        g = math.gcd(up, down)
        up, down = up // g, down // g
        self.up, self.down, self.n_in = up, down, n_in
        n_out = n_in * up
        self.n_out = n_out // down + bool(n_out % down)
        # resample_poly's filter, as it builds it: designed in float64, used in x's dtype.
        max_rate = max(up, down)
        half_len = 10 * max_rate
        h = np.asarray(firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)), dtype=np.float32)
        h *= up
        n_pre_pad = down - half_len % down
        n_post_pad = 0
        self.n_pre_remove = (half_len + n_pre_pad) // down
        while _output_len(len(h) + n_pre_pad + n_post_pad, n_in, up, down) < self.n_out + self.n_pre_remove:
            n_post_pad += 1
        self.h = np.concatenate((np.zeros(n_pre_pad, np.float32), h, np.zeros(n_post_pad, np.float32)))
        self.taps_per_phase = -(-len(self.h) // up)  # upfirdn pads the filter to a multiple of up
        self.out = np.empty(self.n_out, dtype=np.float32)
        self._next = self.n_pre_remove  # the next output (in upfirdn's numbering) not written yet
        self._buf = np.zeros(0, dtype=np.float32)  # input samples [_start, _start + len(_buf))
        self._start = 0  # always a multiple of down, so a block's outputs align with the whole's
        self._seen = 0

    def feed(self, block: np.ndarray) -> None:
        self._seen += len(block)
        self._buf = np.concatenate((self._buf, block))
        self._emit()

    def result(self) -> np.ndarray:
        """The resampled signal; every one of the n_in samples must have been fed."""
        if self._seen != self.n_in:
            raise ValueError(f"fed {self._seen} samples, expected {self.n_in}")
        self._emit()
        return self.out

    def _emit(self) -> None:
        from scipy.signal import upfirdn

        end = self._start + len(self._buf)
        stop = self.n_pre_remove + self.n_out
        if end < self.n_in:  # outputs whose newest input sample has arrived
            stop = min(stop, -(-end * self.up // self.down))
        if stop <= self._next:
            return
        y = upfirdn(self.h, self._buf, self.up, self.down, mode="constant", cval=0)
        base = self._start * self.up // self.down
        self.out[self._next - self.n_pre_remove:stop - self.n_pre_remove] = y[self._next - base:stop - base]
        self._next = stop
        # Keep the inputs the next outputs still reach back to, from a multiple of down.
        oldest = max(0, self._next * self.down // self.up - self.taps_per_phase + 1)
        start = oldest // self.down * self.down
        if start > self._start:
            self._buf = self._buf[start - self._start:].copy()
            self._start = start


def _output_len(len_h: int, in_len: int, up: int, down: int) -> int:
    """upfirdn's output length (scipy.signal._upfirdn._output_len)."""
    return (((in_len - 1) * up + len_h) - 1) // down + 1
