"""One line of predictions.jsonl: one sample's answer, its timings, and what was done with its audio."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from records.fields import split_known, without_none

# Measured per request: null after an error, and in the batched quality pass (untimed).
TIMING_FIELDS = ("ttft_ms", "tpot_ms", "e2e_ms")
ALWAYS = ("sample_id", "task", "prediction", "references", "reference", "n_tokens", *TIMING_FIELDS, "audio_s", "error")


@dataclass
class Prediction:
    sample_id: str
    task: str
    references: list[str] = field(default_factory=list)
    prediction: str | None = None
    n_tokens: int | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    audio_s: float | None = None
    error: str | None = None
    # Written only when set:
    original_sample_rate: int | None = None
    audio_window_s: float | None = None  # the model's window, where the clip was longer (--long-audio)
    truncated_to_s: float | None = None
    chunks: int | None = None
    overlap_s: float | None = None
    unaligned_joins: int | None = None
    chunk_window_s: float | None = None  # the candidate's preferred (shorter) window that chunk mode used
    long_form: str | None = None  # "native": the model's own long-form algorithm answered (--long-audio native)
    windows: list[dict[str, Any]] | None = None  # per window / native segment: start_s, end_s, words, words_per_s
    quality_batch_size: int | None = None  # the batched quality pass (--batch-size)
    stream_buffered: bool | None = None  # a served answer that arrived buffered: its TPOT is not the model's
    info: dict[str, Any] | None = None  # the candidate's Generation.info
    prompt: str | None = None  # a per-sample question's exact prompt (suites mcq, qa)
    # `extra` also holds what the parent adds after the measured child (harness/score/tasks.py),
    # written even when null: mcq `choice` (the letter read, null: unparsed) and `correct`; qa
    # `judge_score` (N, null: unjudged), `judge_reply` (raw) and `judge_error`.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> str | None:
        return self.references[0] if self.references else None

    @property
    def key(self) -> tuple[str, str]:
        return self.task, self.sample_id

    def clear_timings(self) -> None:
        for name in TIMING_FIELDS:
            setattr(self, name, None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data["reference"] = self.reference
        ordered = {k: data[k] for k in ALWAYS} | {k: v for k, v in data.items() if k not in ALWAYS}
        return without_none(ordered, ALWAYS) | extra

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        known, extra = split_known(cls, data)
        extra.pop("reference", None)  # derived from references
        return cls(**known, extra=extra)


def as_prediction(line: Prediction | dict[str, Any]) -> Prediction:
    """`line` typed: a Prediction as it is, a dict (a predictions.jsonl line) read with from_dict."""
    return line if isinstance(line, Prediction) else Prediction.from_dict(line)
