"""Records passed between the harness and candidates. The interface a candidate implements is the
base class `harness.candidate.Candidate`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000

# Called by a candidate once a token (or `count` tokens at once) exists; the harness times it.
TokenCallback = Callable[..., None]


@dataclass
class Request:
    """One audio clip and one task, as handed to a candidate."""

    sample_id: str
    audio: np.ndarray  # float32 mono at SAMPLE_RATE, decoded and resampled by the harness
    task: str
    prompt: str
    max_new_tokens: int


@dataclass
class Generation:
    """What a candidate returns for one request."""

    text: str
    n_tokens: int | None = None  # tokens generated; the harness counts callbacks when None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    """One evaluation item, whatever file format it came from."""

    sample_id: str
    task: str  # suite name: "asr", "aac", ...
    audio_path: str
    references: list[str]
    source: str = ""  # "file:line" style location for error messages
    # A per-sample question (suites `mcq`, `qa`; harness/data/questions.py): the suite's prompt is a
    # template that receives `question` and, for multiple choice, the `choices` (`answer` is one of them).
    question: str | None = None
    choices: list[str] | None = None
    answer: str | None = None
    category: str | None = None  # mcq: accuracy is also reported per category
