"""The job file (job.json): everything the measured child needs to run, written by the parent
before the child starts, and read again by `--resume`, repeats and `bench.py rescore`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from records.fields import split_known


@dataclass
class JobSample:
    sample_id: str
    audio_path: str
    references: list[str] = field(default_factory=list)
    duration_s: float | None = None  # batched runs only: from the file header, for length-sorted batches
    # Per-sample questions (suites mcq, qa): written only when set.
    question: str | None = None
    choices: list[str] | None = None
    answer: str | None = None
    category: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("duration_s", "question", "choices", "answer", "category"):
            if data[key] is None:
                del data[key]
        return data


@dataclass
class SkippedSample:
    """A sample refused as invalid (`--skip-invalid`): scored as an empty prediction."""

    where: str
    reason: str
    sample_id: str | None = None
    references: list[str] = field(default_factory=list)


@dataclass
class JobSuite:
    name: str
    prompt: str
    max_new_tokens: int
    dataset: str
    min_audio_s: float = 0.0
    long_audio: str = "truncate"  # job files from before --long-audio: families truncated
    samples: list[JobSample] = field(default_factory=list)
    skipped: list[SkippedSample] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["samples"] = [s.to_dict() for s in self.samples]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSuite:
        known, _ = split_known(cls, data)
        known["samples"] = [JobSample(**s) for s in data.get("samples", [])]
        known["skipped"] = [SkippedSample(**{"references": [], **q}) for q in data.get("skipped", [])]
        return cls(**known)


@dataclass
class JobFile:
    run_id: str
    run_dir: str
    created_at: str
    options: dict[str, Any]  # the RunOptions, paths as strings
    spec: dict[str, Any]  # the CandidateSpec
    device: str
    protocol: str = "default"
    nota_prompt: str = ""
    warmup: int = 0
    sample_timeout_s: float | None = None
    prompts: str = "suite"
    suites: list[JobSuite] = field(default_factory=list)
    # Batched runs (--batch-size N > 1) only:
    batch_size: int = 1
    efficiency_samples: int | None = None
    timed_samples: dict[str, list[str]] | None = None  # suite -> sample ids timed at batch 1
    batched: bool | None = None  # the candidate batches itself (generate_batch)
    repeat_of: str | None = None  # a repeat's job: the run it repeats
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["suites"] = [s.to_dict() for s in self.suites]
        extra = data.pop("extra")
        if self.batch_size == 1:
            for key in ("batch_size", "efficiency_samples", "timed_samples", "batched"):
                del data[key]
        if self.repeat_of is None:
            del data["repeat_of"]
        return data | extra

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobFile:
        known, extra = split_known(cls, data)
        options = dict(known.get("options") or {})
        if "profile" in options:  # job files written before the option was renamed `protocol`
            options.setdefault("protocol", options.pop("profile"))
        known["options"] = options
        known["suites"] = [JobSuite.from_dict(s) for s in data.get("suites", [])]
        return cls(**known, extra=extra)
