"""Weighted-rank leaderboard: rank each criterion, score = sum(weight x rank), rank the score.

This is the competition's rule (lower score is better), so the table is directly comparable
with its public leaderboard. pandas is imported inside ``rank`` only, to keep
``import leaderboard`` (and ``bench.py --help``) fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from leaderboard.results import latest_per_candidate

Direction = Literal["min", "max"]


def _number(value: Any) -> float | None:
    # Run records come from JSON written by other code: treat anything that is not a finite
    # number (null, "n/a", NaN, a bool) as "no value" rather than crashing or ranking it.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _path(*keys: str) -> Callable[[Mapping[str, Any]], float | None]:
    """Build an extractor that walks nested dicts and returns a number or None."""

    def extract(run: Mapping[str, Any]) -> float | None:
        node: Any = run
        for key in keys:
            if not isinstance(node, Mapping):
                return None
            node = node.get(key)
        return _number(node)

    return extract


@dataclass(frozen=True)
class Criterion:
    key: str  # stable name used in weights and JSON
    label: str  # column header
    direction: Direction  # "min": lower is better
    extract: Callable[[Mapping[str, Any]], float | None]
    metric: str = ""  # which metric is actually ranked (differs from key on fallback)

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ValueError(f"direction must be 'min' or 'max', got {self.direction!r}")
        if not self.metric:
            object.__setattr__(self, "metric", self.key)


WER = Criterion("wer", "WER", "min", _path("suites", "asr", "metrics", "wer"))
SPIDER = Criterion("spider", "SPIDEr", "max", _path("suites", "aac", "metrics", "spider"))
# SPIDEr needs SPICE, which cannot run without the CoreNLP 3.6.0 jars (DESIGN.md section 5);
# then CIDEr-D, the other half of SPIDEr, is ranked in its place and says so.
CIDER_D_FALLBACK = replace(
    SPIDER,
    label="CIDEr-D (SPIDEr n/a)",
    extract=_path("suites", "aac", "metrics", "cider_d"),
    metric="cider_d",
)
MEMORY = Criterion("memory_mb", "Memory MB", "min", _path("efficiency", "peak_memory_mb"))
LATENCY = Criterion("latency_ms", "Latency ms", "min", _path("efficiency", "latency_ms"))

CRITERIA: dict[str, Criterion] = {c.key: c for c in (WER, SPIDER, MEMORY, LATENCY)}
ALIASES = {"memory": "memory_mb", "latency": "latency_ms"}
PROFILES: dict[str, dict[str, float]] = {
    # The competition's weights: efficiency counts twice as much as quality.
    "nota2025": {"wer": 1.0, "spider": 1.0, "memory_mb": 2.0, "latency_ms": 2.0},
}
DEFAULT_PROFILE = "nota2025"


def parse_weights(spec: str | Mapping[str, float] | None = None) -> dict[str, float]:
    """Turn a profile name, a "wer=1,memory=2,..." string or a mapping into full weights.

    Criteria left out get weight 0: they are still shown in the table but not scored.
    """
    if spec is None:
        spec = DEFAULT_PROFILE
    if isinstance(spec, str):
        text = spec.strip()
        if text in PROFILES:
            return dict(PROFILES[text])
        if "=" not in text:
            raise ValueError(
                f"unknown weight profile {text!r}; use one of {', '.join(sorted(PROFILES))} "
                "or a string like 'wer=1,spider=1,memory=2,latency=2'"
            )
        pairs: list[tuple[str, str]] = []
        for part in text.split(","):
            name, sep, number = part.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"bad weight {part.strip()!r}: expected NAME=NUMBER")
            pairs.append((name.strip(), number.strip()))
    else:
        pairs = [(str(k), v) for k, v in spec.items()]

    weights = dict.fromkeys(CRITERIA, 0.0)
    seen: set[str] = set()
    for name, raw in pairs:
        key = ALIASES.get(name.lower(), name.lower())
        if key not in CRITERIA:
            known = sorted({*CRITERIA, *ALIASES})
            raise ValueError(f"unknown criterion {name!r}; known: {', '.join(known)}")
        if key in seen:
            raise ValueError(f"criterion {key!r} is given more than once")
        seen.add(key)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"weight for {name!r} is not a number: {raw!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weight for {name!r} must be a finite number >= 0, got {raw!r}")
        weights[key] = value
    if not any(weights.values()):
        raise ValueError("at least one weight must be greater than 0")
    return weights


@dataclass(frozen=True)
class CriterionValue:
    value: float | None  # None: the run has no value (shown as n/a, ranked last)
    rank: int
    metric: str  # the metric actually ranked, e.g. "cider_d" for the spider criterion
    weight: float = 0.0  # kept with the row so reports can print the scoring rule


@dataclass(frozen=True)
class LeaderboardRow:
    candidate: str
    run_id: str
    rank: int
    score: float
    criteria: dict[str, CriterionValue] = field(default_factory=dict)


def resolve_criteria(runs: list[Mapping[str, Any]]) -> list[Criterion]:
    """The criteria to rank these runs on, with the CIDEr-D fallback applied if needed."""
    spider_missing_everywhere = all(SPIDER.extract(run) is None for run in runs)
    return [
        CIDER_D_FALLBACK if c is SPIDER and spider_missing_everywhere else c
        for c in CRITERIA.values()
    ]


def rank(
    runs: list[dict[str, Any]], weights: str | Mapping[str, float] | None = None
) -> list[LeaderboardRow]:
    """Rank the newest non-failed run of each candidate; rows sorted by rank, then name."""
    import pandas as pd  # lazy: see module docstring

    weights = parse_weights(weights)
    runs = latest_per_candidate([r for r in runs if r.get("status") != "failed"])
    if not runs:
        return []
    criteria = resolve_criteria(runs)
    n = len(runs)
    names = [run["candidate"] for run in runs]

    values = pd.DataFrame(
        {c.key: [c.extract(run) for run in runs] for c in criteria}, index=names, dtype="float64"
    )
    ranks = pd.DataFrame(index=names)
    for c in criteria:
        # Ties share the lowest rank (1, 1, 3); a missing value gets the worst rank N.
        ranked = values[c.key].rank(method="min", ascending=c.direction == "min")
        ranks[c.key] = ranked.fillna(n).astype(int)

    score = sum(ranks[c.key] * weights[c.key] for c in criteria)
    # Round before ranking so that e.g. 0.1*3 and 0.3 tie as they should.
    final = score.round(9).rank(method="min").astype(int)

    rows = [
        LeaderboardRow(
            candidate=name,
            run_id=run["run_id"],
            rank=int(final[name]),
            score=float(round(score[name], 9)),
            criteria={
                c.key: CriterionValue(
                    value=_number(values.at[name, c.key]),  # NaN -> None
                    rank=int(ranks.at[name, c.key]),
                    metric=c.metric,
                    weight=weights[c.key],
                )
                for c in criteria
            },
        )
        for name, run in zip(names, runs, strict=True)
    ]
    return sorted(rows, key=lambda row: (row.rank, row.candidate))
