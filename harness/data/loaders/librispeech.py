"""LibriSpeech folders: `SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt` beside `UTTERANCE.flac` files.

Each transcript line is `SPEAKER-CHAPTER-UTT TRANSCRIPT`; the audio is `SPEAKER-CHAPTER-UTT.flac`
in the same folder. `--data` may point at the corpus root, a split folder (`test-clean`) or
any folder above the speaker folders. Samples are ordered by transcript file, then line.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from harness.data.errors import DataError, Problem
from harness.types import Sample


def load_librispeech(root: Path) -> tuple[list[Sample], list[Problem]]:
    root = Path(root)
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise DataError(root, ["no transcript files (SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt) found"])
    entries: list[tuple[str, str, Path, str]] = []  # id, text, audio, where
    problems: list[Problem] = []
    for trans in transcripts:
        for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{trans}:{lineno}"
            parts = line.strip().split(maxsplit=1)
            if len(parts) < 2:
                problems.append(Problem(where, f"expected 'UTTERANCE-ID TRANSCRIPT', got {line.strip()!r}",
                                        parts[0], "asr"))
                continue
            utt, text = parts
            entries.append((utt, text, trans.parent / f"{utt}.flac", where))
    counts = Counter(utt for utt, *_ in entries)
    samples = []
    for utt, text, audio, where in entries:
        if counts[utt] > 1:
            problems.append(Problem(f"{where} ({utt})", f"duplicate utterance id (appears {counts[utt]} times)",
                                    utt, "asr", [text]))
        elif not audio.is_file():
            problems.append(Problem(f"{where} ({utt})", f"audio file not found: {audio}", utt, "asr", [text]))
        else:
            samples.append(Sample(utt, "asr", str(audio), [text], where))
    return samples, problems
