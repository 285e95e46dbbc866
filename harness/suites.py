"""Evaluation suites: which task, which prompt, how to score it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEMO_DATA = Path(__file__).parent / "demo_data"


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    prompt: str  # the instruction given to instruction-following candidates
    max_new_tokens: int
    primary_metric: str
    higher_is_better: bool
    annotation_tasks: tuple[str, ...]  # `task` values in annotation JSON that map here
    demo_file: Path


# Prompts are the competition's (DESIGN.md section 5), typo included, so scores are comparable.
SUITES: dict[str, Suite] = {
    "asr": Suite(
        name="asr",
        description="Speech recognition, scored by corpus WER after the Whisper normalizer",
        prompt="Recognize the speech and give me the transcription.",
        max_new_tokens=64,
        primary_metric="wer",
        higher_is_better=False,
        annotation_tasks=("asr",),
        demo_file=DEMO_DATA / "asr.json",
    ),
    "aac": Suite(
        name="aac",
        description="Audio captioning, scored by SPIDEr (CIDEr-D when SPICE is unavailable)",
        prompt="Please write down what your hear in the audio.",
        max_new_tokens=32,
        primary_metric="spider",
        higher_is_better=True,
        annotation_tasks=("aac", "audiocaption_v2", "audiocaption"),
        demo_file=DEMO_DATA / "aac.json",
    ),
}


def suite_for_task(task: str) -> Suite | None:
    """Maps an annotation `task` value to its suite."""
    for suite in SUITES.values():
        if task in suite.annotation_tasks:
            return suite
    return None


def parse_suite_list(text: str | None) -> list[str] | None:
    """"asr,aac" -> ["asr", "aac"]; raises ValueError naming unknown suites."""
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    return names
