"""Reading evaluation data: SALMONN-style annotation JSON and the audio it points at."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from harness.suites import suite_for_task
from harness.types import SAMPLE_RATE, Sample


class DataError(Exception):
    """A data file is unusable; `problems` lists every issue found, each naming its sample."""

    def __init__(self, path: Path, problems: list):
        self.path = path
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{path}: {len(problems)} problem(s):\n  {shown}{more}")


class AudioError(Exception):
    """One sample's audio cannot be used; the message is the one-line reason."""


@dataclass
class Problem:
    """One invalid sample: where it is, why, and the suite it would have belonged to."""

    where: str
    reason: str
    sample_id: str | None = None
    suite: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def load_annotation_json(path: Path, audio_root: Path | None = None) -> tuple[list[Sample], list[Problem]]:
    """Reads and checks the whole file before anything runs.

    Returns the valid samples and one Problem per invalid entry; raises DataError when the file
    itself is unusable (missing, not JSON, wrong shape).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, ["file not found"])
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(path, [f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"]) from None
    entries = doc.get("annotation") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise DataError(path, ['top level must be an object {"annotation": [ ... ]}'])

    root = Path(audio_root) if audio_root else path.parent
    problems: list[Problem] = []
    samples: list[Sample] = []
    ids = Counter(e.get("testset_id") for e in entries if isinstance(e, dict))
    for index, entry in enumerate(entries):
        where = f"annotation[{index}]"
        if not isinstance(entry, dict):
            problems.append(Problem(where, "not an object"))
            continue
        sample_id = entry.get("testset_id")
        where = f"{where} (testset_id {sample_id!r})" if sample_id else where
        suite = suite_for_task(entry["task"]) if entry.get("task") else None
        suite_name = suite.name if suite else None
        missing = [k for k in ("testset_id", "path", "task") if not entry.get(k)]
        if missing:
            problems.append(Problem(where, f"missing field(s) {', '.join(missing)}", sample_id, suite_name))
            continue
        if ids[sample_id] > 1:
            problems.append(Problem(where, f"duplicate testset_id (appears {ids[sample_id]} times)", sample_id, suite_name))
            continue
        if suite is None:
            problems.append(Problem(where, f"unknown task {entry['task']!r}", sample_id))
            continue
        audio = Path(entry["path"])
        audio = audio if audio.is_absolute() else root / audio
        if not audio.is_file():
            problems.append(Problem(where, f"audio file not found: {audio}", sample_id, suite_name))
            continue
        references = entry.get("references") or ([entry["text"]] if entry.get("text") else [])
        samples.append(Sample(sample_id, suite.name, str(audio), [str(r) for r in references], f"{path}:{where}"))
    return samples, problems


def load_audio(path: str) -> tuple[np.ndarray, int]:
    """Any libsndfile format -> (float32 mono at 16 kHz, original sample rate)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for unreadable files
        raise AudioError(f"cannot decode audio {path}: {err}") from None
    if data.shape[0] == 0:
        raise AudioError(f"audio file {path} holds no samples")
    mono = data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise AudioError(f"audio file {path} contains NaN or infinite samples")
    if rate != SAMPLE_RATE:
        g = gcd(rate, SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32), rate
