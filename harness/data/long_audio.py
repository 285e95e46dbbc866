"""Audio longer than a candidate's window: the model's own long-form algorithm, chunked,
truncated or refused (`run --long-audio`).

The harness is the one place that decides; a candidate only declares its window
(`Candidate.audio_window_s()`, and the shorter `preferred_window_s()` it chunks best at), and
never cuts audio on its own.

- `native`: the whole clip goes to `Candidate.generate_long_form`, the model's own algorithm
  (Whisper: sequential 30 s windows placed by its timestamps). The default for a candidate that
  has one, wherever the suite would chunk (`mode_for`). TTFT is its first token; TPOT and the
  end-to-end time cover the whole answer, as for `chunk`.
- `chunk`: consecutive windows of at most the model's preferred length (its whole window unless
  it declares a shorter one), cut in pauses: each cut is the middle of the quietest `PAUSE_S` in
  the second half of the window (`window_bounds`). Windows do not overlap, so their transcripts
  are joined as they are, after the clock stopped. Each window is its own request to `generate`,
  with the same token callback, so TTFT is the time to the first token of the first window and
  TPOT spans the whole answer (the later windows' encoding and prefill included). Each window may
  answer with up to `window_budget` tokens: the suite's budget, or more where the window's speech
  may need more (64 tokens is about 20 s of read speech).
- `truncate`: the first window only; the record says `truncated_to_s`.
- `fail`: the sample fails with a reason naming both lengths.

Why no overlap (issue 20, measured in docs/guides/long-audio.md): windows that overlapped by up
to 2 s, each starting at the quietest 50 ms of that overlap, often started mid-sentence, and
Whisper (without timestamps) then ended the window after that sentence; and merging overlapping
transcripts on their longest common word run aligned on words ("he was") far from the real
overlap, cutting whole sentences. A cut in a real pause needs no merge.

All of this happens before the clock starts: finding the pauses reads half of each window's
audio, and the windows are slices (views) of the decoded array, never copies. The prediction
record keeps each window's (or native segment's) start, end, words and words per second
(`windows`), so a window that lost its speech shows as one with few words per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from harness.suites import LONG_AUDIO_MODES
from harness.types import SAMPLE_RATE, Generation, Request

MODES = LONG_AUDIO_MODES
FRAME_S = 0.05  # the resolution at which cuts are placed
PAUSE_S = 0.2  # a cut is the middle of the quietest stretch this long: longer than the silences inside words
# A window's token budget is at least this many tokens per second of its audio: fast read speech
# is about 4 words/s, and a word is about 1.3 tokens with its punctuation (Whisper, LLM tokenizers).
TOKENS_PER_S = 6


class LongAudioRefused(Exception):
    """`--long-audio fail` and the sample is longer than the window."""


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown --long-audio mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


def mode_for(asked: str | None, suite_mode: str, native: bool, candidate: str) -> str:
    """The mode a suite runs in: the one asked for, else `native` where the candidate has its own
    long-form algorithm and the suite would chunk, else the suite's default. Asking `native` of a
    candidate without one is a ValueError that says what to use instead."""
    if asked is None:
        return "native" if native and suite_mode == "chunk" else suite_mode
    if asked == "native" and not native:
        raise ValueError(f"--long-audio native: candidate {candidate!r} has no long-form algorithm of its own "
                         "(its class does not override Candidate.generate_long_form); use chunk, truncate or fail")
    return check_mode(asked)


def window_budget(suite_budget: int, seconds: float) -> int:
    """The tokens one window may answer with: the suite's budget, or `TOKENS_PER_S` per second
    of the window's audio when that is more (the suite's budget was set for one utterance)."""
    return max(suite_budget, math.ceil(seconds * TOKENS_PER_S))


@dataclass
class Pieces:
    """The requests one sample becomes, and what its prediction record says about it."""

    requests: list[Request]
    record: dict[str, Any] = field(default_factory=dict)  # chunks / truncated_to_s / audio_window_s / long_form
    native: bool = False  # one request, answered by Candidate.generate_long_form
    starts: list[int] = field(default_factory=list)  # chunk: each window's first sample

    def windows(self, generations: list[Generation]) -> list[dict[str, Any]] | None:
        """Where each window (chunk) or segment (native, when the model gave them) lies and how
        much it said: {start_s, end_s, words, words_per_s}, plus the window's tokens and budget
        (chunk), so a window that stopped early or hit its budget shows."""
        if self.native:
            segments = generations[0].info.get("segments") if generations else None
            return [_window(s["start_s"], s["end_s"], s.get("text", "")) for s in segments] if segments else None
        if len(self.requests) < 2:
            return None
        rows = []
        for start, request, generation in zip(self.starts, self.requests, generations, strict=True):
            row = _window(start / SAMPLE_RATE, (start + len(request.audio)) / SAMPLE_RATE, generation.text)
            rows.append({**row, "n_tokens": generation.n_tokens, "max_new_tokens": request.max_new_tokens})
        return rows

    def combine(self, generations: list[Generation]) -> Generation:
        """One answer from the windows' answers: their texts joined (the windows do not overlap)."""
        if len(generations) == 1:
            return generations[0]
        text = join_transcripts([g.text for g in generations])
        info = {"windows": [g.info for g in generations]} if any(g.info for g in generations) else {}
        return Generation(text=text, n_tokens=total_tokens(generations), info=info)


def join_transcripts(texts: list[str]) -> str:
    """The windows' transcripts in order, one space between them; empty windows add nothing."""
    return " ".join(t.strip() for t in texts if t.strip())


def total_tokens(generations: list[Generation]) -> int | None:
    """Tokens over all windows, or None (count the callbacks) when a window did not say."""
    counts = [g.n_tokens for g in generations]
    return None if any(c is None for c in counts) else sum(counts)


def _window(start_s: float, end_s: float, text: str) -> dict[str, Any]:
    words = len(text.split())
    seconds = max(end_s - start_s, 1e-9)
    return {"start_s": round(start_s, 3), "end_s": round(end_s, 3), "words": words,
            "words_per_s": round(words / seconds, 3)}


def split(request: Request, window_s: float | None, mode: str, preferred_s: float | None = None) -> Pieces:
    """The requests to send for `request` under `mode`; raises LongAudioRefused for `fail`.
    Audio up to `window_s` is one request in every mode; longer audio is chunked into windows of
    `preferred_s` (the candidate's preferred window, when shorter than `window_s`)."""
    audio_s = len(request.audio) / SAMPLE_RATE
    if window_s is None or audio_s <= window_s:
        return Pieces([request])
    noted = {"audio_window_s": window_s}
    if mode == "fail":
        raise LongAudioRefused(
            f"audio is {audio_s:.1f} s, longer than the model's window of {window_s:g} s (--long-audio fail)"
        )
    if mode == "native":
        return Pieces([request], {**noted, "long_form": "native"}, native=True)
    if mode == "truncate":
        size = int(round(window_s * SAMPLE_RATE))
        return Pieces([replace(request, audio=request.audio[:size])], {**noted, "truncated_to_s": window_s})
    chunk_s = min(window_s, preferred_s) if preferred_s else window_s
    size = int(round(chunk_s * SAMPLE_RATE))
    bounds = window_bounds(request.audio, size, size // 2)
    requests = [replace(request, audio=request.audio[a:b], max_new_tokens=window_budget(request.max_new_tokens, (b - a) / SAMPLE_RATE))
                for a, b in bounds]
    extra = {"chunk_window_s": chunk_s} if chunk_s < window_s else {}
    return Pieces(requests, {**noted, **extra, "chunks": len(requests)}, starts=[a for a, _ in bounds])


def window_bounds(audio: np.ndarray, size: int, search: int) -> list[tuple[int, int]]:
    """(start, end) sample offsets of consecutive windows of at most `size` samples that cover the
    audio without overlapping. Each cut (one window's end, the next one's start) is the middle of
    the quietest `PAUSE_S` stretch in the last `search` samples of the window, the latest such
    stretch on a tie (fewer windows in silence); in read speech that is a pause between sentences
    or words, so no word is cut in two. The last window runs to the end of the audio."""
    frame = max(1, int(FRAME_S * SAMPLE_RATE))
    span = max(1, round(PAUSE_S / FRAME_S))  # frames in one pause stretch
    bounds, start = [], 0
    while len(audio) - start > size:
        n_frames = min(search, size) // frame
        if n_frames <= span:  # too short to choose from: a cut at the window's end
            cut = start + size
        else:
            zone_start = start + size - n_frames * frame
            zone = audio[zone_start : start + size].reshape(n_frames, frame)
            energy = np.convolve(np.einsum("ij,ij->i", zone, zone), np.ones(span), mode="valid")
            quietest = len(energy) - 1 - int(np.argmin(energy[::-1]))  # the latest of equally quiet ones
            cut = zone_start + quietest * frame + span * frame // 2
        bounds.append((start, cut))
        start = cut
    bounds.append((start, len(audio)))
    return bounds


def suite_summary(mode: str, records: list, window_s: float | None) -> dict[str, Any]:
    """The `long_audio` block of a suite in run.json: the mode and what it did to how many samples
    (`records`: the suite's prediction lines, records.prediction.Prediction)."""
    longer = [r for r in records if r.audio_window_s is not None]
    window = window_s if window_s is not None else next((r.audio_window_s for r in longer), None)
    return {
        "mode": mode,
        "window_s": window,
        "chunk_window_s": next((r.chunk_window_s for r in longer if r.chunk_window_s), None),
        "n_longer_than_window": len(longer),
        "n_native": sum(1 for r in longer if r.long_form == "native"),
        "n_chunked": sum(1 for r in longer if r.chunks),
        "n_truncated": sum(1 for r in longer if r.truncated_to_s is not None),
        "n_refused": sum(1 for r in longer if r.error and not r.chunks and r.truncated_to_s is None and not r.long_form),
    }
