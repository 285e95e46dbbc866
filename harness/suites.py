"""Evaluation suites: which task, which prompt, how to score it.

The built-in suites are `asr` and `aac` (the competition's two named tasks) and the extra
suites `mcq` and `qa`, whose samples carry their own question (docs/guides/tasks.md). Third-party packages add suites through the entry-point
group `lalm_bench.suites`; the object an entry point names is a `Suite`, or a callable (a class
or factory) returning one:

```toml
[project.entry-points."lalm_bench.suites"]
beep = "my_package.suites:BEEP_SUITE"
```

A plugin suite gives its `metric(predictions, references) -> dict` (or `(dict, notices)`), with
`predictions` a list of strings and `references` a list of reference lists, and names the key of
that dict that ranks (`primary_metric`, `higher_is_better`). Plugin suites are `extra`: the
leaderboard ranks their primary metric in its "extra" criterion.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

DEMO_DATA = Path(__file__).parent / "data" / "demo_data"
ENTRY_POINT_GROUP = "lalm_bench.suites"
# What a suite (or `--long-audio`) does with audio longer than the model's window (harness/data/long_audio.py);
# `native`: the model's own long-form algorithm (Candidate.generate_long_form), the default where it has one and
# the suite chunks.
LONG_AUDIO_MODES = ("chunk", "truncate", "fail", "native")
# Whose prompt a request carries (`--prompts`): the suite's (competition) one or the model's own (harness/data/prompts.py).
PROMPT_MODES = ("suite", "model")

# metric(predictions, references) -> {"name": value, ...} or ({...}, ["notice", ...])
Metric = Callable[[list[str], list[list[str]]], Any]


@dataclass(frozen=True)
class Suite:
    name: str  # also the task name handed to candidates in `Request.task`
    description: str
    prompt: str  # the instruction given to instruction-following candidates
    max_new_tokens: int
    primary_metric: str
    higher_is_better: bool
    annotation_tasks: tuple[str, ...] = ()  # `task` values in annotation JSON that map here
    demo_file: Path | None = None  # annotation JSON run when no --data is given
    metric: Metric | None = None  # None for the built-ins (scored in harness.score.scoring)
    extra: bool = True  # not one of the competition's two named tasks
    # Shorter clips fail with their length instead of being answered (a 3 ms "utterance" is a
    # broken file, not a test item); a suite of very short sounds sets this to 0.
    min_audio_s: float = 0.1
    long_audio: str = "truncate"  # audio longer than the model's window: one of LONG_AUDIO_MODES
    # The primary metric's [worst, best] bounds; the leaderboard needs them to combine several
    # extra suites into its one `extra` criterion (docs/guides/tasks.md). None: unbounded.
    primary_range: tuple[float, float] | None = None

    def __post_init__(self):
        if not self.annotation_tasks:
            object.__setattr__(self, "annotation_tasks", (self.name,))
        if self.long_audio not in LONG_AUDIO_MODES:
            raise ValueError(f"suite {self.name!r}: long_audio must be one of {', '.join(LONG_AUDIO_MODES)}, "
                             f"not {self.long_audio!r}")


# Prompts are the competition's (docs/concepts/measurement.md, nota2025), typo included, so scores are comparable.
BUILTIN_SUITES: tuple[Suite, ...] = (
    Suite(
        name="asr",
        description="Speech recognition, scored by corpus WER after the Whisper normalizer",
        prompt="Recognize the speech and give me the transcription.",
        max_new_tokens=64,
        primary_metric="wer",
        higher_is_better=False,
        annotation_tasks=("asr",),
        demo_file=DEMO_DATA / "asr.json",
        extra=False,
        long_audio="chunk",  # every window transcribed, cut in pauses, joined: nothing is lost (native where the model has it)
    ),
    Suite(
        name="aac",
        description="Audio captioning, scored by SPIDEr (CIDEr-D when SPICE is unavailable)",
        prompt="Please write down what your hear in the audio.",
        max_new_tokens=32,
        primary_metric="spider",
        higher_is_better=True,
        annotation_tasks=("aac", "audiocaption_v2", "audiocaption"),
        demo_file=DEMO_DATA / "aac.json",
        extra=False,
    ),
    # Per-sample questions (docs/guides/tasks.md): the prompt is a template filled with each
    # sample's question and its choices, "(A) ...", one per line, in the file's order.
    Suite(
        name="mcq",
        description="Multiple-choice audio questions (MMAU, AIR-Bench foundation), scored by accuracy",
        prompt="{question}\n{choices}\nAnswer with the letter of the correct option.",
        max_new_tokens=12,  # "(C) three", or a short sentence naming it
        primary_metric="accuracy",
        higher_is_better=True,
        annotation_tasks=("mcq",),
        demo_file=DEMO_DATA / "mcq.json",
        min_audio_s=0.05,
        primary_range=(0.0, 1.0),
    ),
    Suite(
        name="qa",
        description="Open audio questions (AIR-Bench chat), scored 1-10 by an LLM judge (run --judge)",
        prompt="{question}",
        max_new_tokens=32,
        primary_metric="judge_score",
        higher_is_better=True,
        annotation_tasks=("qa",),
        demo_file=DEMO_DATA / "qa.json",
        min_audio_s=0.05,
        primary_range=(1.0, 10.0),
    ),
)

# Entry points that could not be loaded, as "name: reason" (shown by `bench.py suites`).
PLUGIN_ERRORS: list[str] = []


@lru_cache(maxsize=1)
def all_suites() -> dict[str, Suite]:
    """Built-in suites, then every suite registered under `lalm_bench.suites`."""
    suites = {s.name: s for s in BUILTIN_SUITES}
    PLUGIN_ERRORS.clear()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            suite = obj if isinstance(obj, Suite) else obj()
            if not isinstance(suite, Suite):
                raise TypeError(f"expected a harness.suites.Suite, got {type(suite).__name__}")
            if suite.name in suites:
                raise ValueError(f"suite name {suite.name!r} is already registered")
            if suite.metric is None:
                raise ValueError("a plugin suite needs a metric function")
        except Exception as err:  # one broken plugin must not take the built-in suites down
            PLUGIN_ERRORS.append(f"{ep.name} ({ep.value}): {type(err).__name__}: {err}")
            print(f"warning: suite plugin {ep.name!r} not loaded: {err}", file=sys.stderr)
            continue
        suites[suite.name] = suite
    return suites


class _Registry(Mapping):
    """`SUITES[name]`, `for name in SUITES`, `SUITES.values()`: a live view of `all_suites()`."""

    def __getitem__(self, name: str) -> Suite:
        return all_suites()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(all_suites())

    def __len__(self) -> int:
        return len(all_suites())


SUITES: Mapping[str, Suite] = _Registry()


def suite_for_task(task: str) -> Suite | None:
    """Maps an annotation `task` value to its suite."""
    for suite in all_suites().values():
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
