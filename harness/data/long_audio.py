"""Audio longer than a candidate's window: chunked, truncated or refused (`run --long-audio`).

The harness is the one place that decides; a candidate only declares its window
(`Candidate.audio_window_s()`), and never cuts audio on its own.

- `chunk`: windows of the model's length. Each window after the first starts inside the last
  `overlap_for(window)` seconds of the one before (2 s, or a quarter of the window when that is
  shorter), at the quietest 50 ms there, so words are rarely cut in two. Each window is its own request to
  `generate`, with the same token callback, so TTFT is the time to the first token of the first
  window and TPOT spans the whole answer (the later windows' encoding and prefill included).
  The window transcripts are then merged with `merge_transcripts`, after the clock stopped.
- `truncate`: the first window only; the record says `truncated_to_s`.
- `fail`: the sample fails with a reason naming both lengths.

All of this happens before the clock starts: finding the quiet points reads a few seconds of
audio per window, and the windows are slices (views) of the decoded array, never copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from harness.data.text import normalize_transcript
from harness.suites import LONG_AUDIO_MODES
from harness.types import SAMPLE_RATE, Generation, Request

MODES = LONG_AUDIO_MODES
OVERLAP_S = 2.0  # about 5 words of speech: enough for a common word run to align on
MAX_WORDS_PER_S = 5  # speech is rarely faster; bounds where the merge looks for the overlap
FRAME_S = 0.05  # the resolution at which a window's start is placed at the quietest point


class LongAudioRefused(Exception):
    """`--long-audio fail` and the sample is longer than the window."""


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown --long-audio mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


def overlap_for(window_s: float) -> float:
    return min(OVERLAP_S, window_s / 4)


@dataclass
class Pieces:
    """The requests one sample becomes, and what its prediction record says about it."""

    requests: list[Request]
    record: dict[str, Any] = field(default_factory=dict)  # chunks / truncated_to_s / audio_window_s

    def combine(self, generations: list[Generation]) -> tuple[Generation, int]:
        """One answer from the windows' answers; also returns how many window joins found no
        common words to align on (their texts were simply joined)."""
        if len(generations) == 1:
            return generations[0], 0
        text, unaligned = merge_transcripts([g.text for g in generations], self.record.get("overlap_s", OVERLAP_S))
        info = {"windows": [g.info for g in generations]} if any(g.info for g in generations) else {}
        return Generation(text=text, n_tokens=total_tokens(generations), info=info), unaligned


def total_tokens(generations: list[Generation]) -> int | None:
    """Tokens over all windows, or None (count the callbacks) when a window did not say."""
    counts = [g.n_tokens for g in generations]
    return None if any(c is None for c in counts) else sum(counts)


def split(request: Request, window_s: float | None, mode: str) -> Pieces:
    """The requests to send for `request` under `mode`; raises LongAudioRefused for `fail`."""
    audio_s = len(request.audio) / SAMPLE_RATE
    if window_s is None or audio_s <= window_s:
        return Pieces([request])
    noted = {"audio_window_s": window_s}
    if mode == "fail":
        raise LongAudioRefused(
            f"audio is {audio_s:.1f} s, longer than the model's window of {window_s:g} s (--long-audio fail)"
        )
    size = int(round(window_s * SAMPLE_RATE))
    if mode == "truncate":
        return Pieces([replace(request, audio=request.audio[:size])], {**noted, "truncated_to_s": window_s})
    starts = window_starts(request.audio, size, int(round(overlap_for(window_s) * SAMPLE_RATE)))
    requests = [replace(request, audio=request.audio[s : s + size]) for s in starts]
    return Pieces(requests, {**noted, "chunks": len(requests), "overlap_s": overlap_for(window_s)})


def window_starts(audio: np.ndarray, size: int, overlap: int) -> list[int]:
    """Start offsets of windows of `size` samples. Each window after the first starts at the
    quietest `FRAME_S` of the last `overlap` samples of the one before (the earliest such frame on
    a tie), so that a word is rarely cut in two; the windows overlap from there to the end of the
    earlier one. The last window runs to the end of the audio (it may be shorter than `size`) and
    always holds audio no other window has."""
    frame = max(1, int(FRAME_S * SAMPLE_RATE))
    starts = [0]
    while starts[-1] + size < len(audio):
        zone_start = starts[-1] + size - overlap
        n_frames = overlap // frame
        if n_frames < 2:  # too short to choose from: a fixed overlap
            starts.append(zone_start)
            continue
        zone = audio[zone_start : zone_start + n_frames * frame].reshape(n_frames, frame)
        quietest = int(np.argmin(np.einsum("ij,ij->i", zone, zone)))
        starts.append(zone_start + quietest * frame)
    return starts


# --------------------------------------------------------------------------- merging


def _tokens(words: list[str]) -> list[tuple[str, int]]:
    """Normalized tokens (Whisper English normalizer, word by word) with the index of the word
    each came from; words that normalize to nothing ("uh", a lone dash) give no token."""
    return [(token, i) for i, word in enumerate(words) for token in normalize_transcript(word).split()]


def _longest_common_run(tail: list[str], head: list[str]) -> tuple[int, int, int]:
    """(length, end in tail, end in head) of the longest run of equal tokens. Among runs of the
    same length, the one nearest the join wins: closest to the end of `tail` plus closest to the
    start of `head`, since that is where the overlapping audio is."""
    best = (0, 0, 0)
    best_distance = math.inf
    lengths = [0] * (len(head) + 1)
    for i in range(1, len(tail) + 1):
        previous = 0
        for j in range(1, len(head) + 1):
            current = lengths[j]
            lengths[j] = previous + 1 if tail[i - 1] == head[j - 1] else 0
            previous = current
            run = lengths[j]
            if run == 0:
                continue
            distance = (len(tail) - i) + (j - run)
            if run > best[0] or (run == best[0] and distance < best_distance):
                best, best_distance = (run, i, j), distance
    return best


def merge_pair(before: str, after: str, search_words: int) -> tuple[str, bool]:
    """Joins two window transcripts whose audio overlapped; returns (text, aligned).

    The rule: normalize the last `search_words` words of `before` and the first `search_words`
    of `after`, find their longest common run of words, keep `before` up to the end of that run
    and `after` from just past it. With no common word (the overlap was silence, or the model
    heard it differently in each window) the texts are joined as they are.
    """
    left, right = before.split(), after.split()
    if not left or not right:
        return " ".join(left + right), True
    tail_start = max(0, len(left) - search_words)
    tail = _tokens(left[tail_start:])
    head = _tokens(right[:search_words])
    run, tail_end, head_end = _longest_common_run([t for t, _ in tail], [t for t, _ in head])
    if run == 0:
        return " ".join(left + right), False
    keep_left = tail_start + tail[tail_end - 1][1] + 1
    skip_right = head[head_end - 1][1] + 1
    return " ".join(left[:keep_left] + right[skip_right:]), True


def merge_transcripts(texts: list[str], overlap_s: float = OVERLAP_S) -> tuple[str, int]:
    """Merges consecutive window transcripts; returns the text and the number of joins that
    found no common words to align on."""
    search_words = max(4, math.ceil(overlap_s * MAX_WORDS_PER_S))
    merged, unaligned = texts[0].strip() if texts else "", 0
    for text in texts[1:]:
        merged, aligned = merge_pair(merged, text, search_words)
        unaligned += not aligned
    return merged, unaligned


def suite_summary(mode: str, records: list, window_s: float | None) -> dict[str, Any]:
    """The `long_audio` block of a suite in run.json: the mode and what it did to how many samples
    (`records`: the suite's prediction lines, records.prediction.Prediction)."""
    longer = [r for r in records if r.audio_window_s is not None]
    window = window_s if window_s is not None else next((r.audio_window_s for r in longer), None)
    return {
        "mode": mode,
        "window_s": window,
        "overlap_s": overlap_for(window) if mode == "chunk" and window else None,
        "n_longer_than_window": len(longer),
        "n_chunked": sum(1 for r in longer if r.chunks),
        "n_truncated": sum(1 for r in longer if r.truncated_to_s is not None),
        "n_refused": sum(1 for r in longer if r.error and not r.chunks and r.truncated_to_s is None),
        "n_unaligned_joins": sum(r.unaligned_joins or 0 for r in longer),
    }
