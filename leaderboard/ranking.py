"""Weighted-rank leaderboard: rank each criterion, score = sum(weight x rank), rank the score.

This is the competition's rule (lower score is better), so the table is directly comparable
with its public leaderboard. Ranking needs no pandas (``to_frame`` and a DataFrame input use
it), so ``bench.py leaderboard`` never imports it.

``rank`` ranks the runs it is given as ONE comparable set; splitting runs into fair groups
(profile, device kind, datasets) is ``leaderboard.grouping``'s job.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from leaderboard.profiles import (
    ALIASES,
    DEFAULT_PROFILE,
    WeightProfile,
    load_profile,
)
from leaderboard.results import latest_per_candidate, run_coverage
from leaderboard.tolerance import tolerant_ranks
from records.fields import is_mapping
from records.run_record import RunRecord, as_run_record

Direction = Literal["min", "max"]
CORE_SUITES = ("asr", "aac")


def finite_number(value: Any) -> float | None:
    """`value` as a float, or None for anything that is not a finite number.

    Run records come from JSON written by other code: anything that is not a finite number
    (null, "n/a", NaN, a bool) is "no value" rather than a crash or a ranked number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def value_at(run: RunRecord | Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """The value at a path such as ("efficiency", "latency_ms"): the record's field, then its
    nested blocks; None where any step is missing."""
    node: Any = getattr(as_run_record(run), keys[0], None)
    for key in keys[1:]:
        if not is_mapping(node):
            return None
        node = node.get(key)
    return node


def _path(*keys: str) -> Callable[[Mapping[str, Any]], float | None]:
    """Build an extractor that walks nested dicts and returns a number or None."""
    return lambda run: finite_number(value_at(run, keys))


def _interval(*keys: str) -> Callable[[Mapping[str, Any]], tuple[float, float] | None]:
    """Build an extractor for a [lo, hi] bootstrap interval, or None."""

    def extract(run: Mapping[str, Any]) -> tuple[float, float] | None:
        node = value_at(run, keys)
        if isinstance(node, (list, tuple)) and len(node) == 2:
            lo, hi = finite_number(node[0]), finite_number(node[1])
            if lo is not None and hi is not None:
                return (lo, hi)
        return None

    return extract


def _no_interval(run: Mapping[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class Repeats:
    """The spread of a run's repeated timed passes (`run --repeat N`, `efficiency.repeats`)."""

    n: int
    p50: float
    min: float
    max: float
    values: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "p50": self.p50, "min": self.min, "max": self.max, "values": list(self.values)}


def _repeats(key: str) -> Callable[[Mapping[str, Any]], Repeats | None]:
    """Extractor for `efficiency.repeats.<key>` ({"p50", "min", "max", "values"}, with "n" beside)."""

    def extract(run: Mapping[str, Any]) -> Repeats | None:
        node = value_at(run, ("efficiency", "repeats"))
        if not is_mapping(node) or not is_mapping(node.get(key)):
            return None
        spread = node[key]
        p50, lo, hi = (finite_number(spread.get(k)) for k in ("p50", "min", "max"))
        n = node.get("n")
        if p50 is None or lo is None or hi is None or isinstance(n, bool) or not isinstance(n, int):
            return None
        values = spread.get("values")
        values = tuple(v for v in (finite_number(x) for x in values) if v is not None) if isinstance(values, list) else ()
        return Repeats(n, p50, lo, hi, values)

    return extract


@dataclass(frozen=True)
class Criterion:
    key: str  # stable name used in weights and JSON
    label: str  # column header
    direction: Direction  # "min": lower is better
    extract: Callable[[Mapping[str, Any]], float | None]
    metric: str = ""  # which metric is actually ranked (differs from key on fallback)
    ci: Callable[[Mapping[str, Any]], tuple[float, float] | None] = _no_interval
    suite: str | None = None  # for the extra criterion: which suite
    repeats: Callable[[Mapping[str, Any]], Repeats | None] = _no_interval  # spread of repeated passes

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ValueError(f"direction must be 'min' or 'max', got {self.direction!r}")
        if not self.metric:
            object.__setattr__(self, "metric", self.key)


WER = Criterion(
    "wer", "WER", "min", _path("suites", "asr", "metrics", "wer"),
    ci=_interval("suites", "asr", "metrics_ci", "wer"),
)
SPIDER = Criterion(
    "spider", "SPIDEr", "max", _path("suites", "aac", "metrics", "spider"),
    ci=_interval("suites", "aac", "metrics_ci", "spider"),
)
# SPIDEr needs SPICE, which cannot run without the CoreNLP 3.6.0 jars (docs/concepts/measurement.md);
# then CIDEr-D, the other half of SPIDEr, is ranked in its place and says so.
CIDER_D_FALLBACK = replace(
    SPIDER,
    label="CIDEr-D (SPIDEr n/a)",
    extract=_path("suites", "aac", "metrics", "cider_d"),
    metric="cider_d",
    ci=_interval("suites", "aac", "metrics_ci", "cider_d"),
)
MEMORY = Criterion("memory_mb", "Memory MB", "min", _path("efficiency", "peak_memory_mb"),
                   repeats=_repeats("peak_memory_mb"))
LATENCY = Criterion("latency_ms", "Latency ms", "min", _path("efficiency", "latency_ms"),
                    repeats=_repeats("latency_ms"))

CRITERIA: dict[str, Criterion] = {c.key: c for c in (WER, SPIDER, MEMORY, LATENCY)}
# Kept for callers of the earlier API; profiles live in leaderboard/builtin_profiles/*.toml.
PROFILES: dict[str, dict[str, float]] = {DEFAULT_PROFILE: dict(load_profile(DEFAULT_PROFILE).weights)}

__all__ = ["ALIASES", "CRITERIA", "PROFILES", "Criterion", "rank", "parse_weights"]


def parse_weights(spec: str | Mapping[str, float] | WeightProfile | None = None) -> dict[str, float]:
    """Weights of any profile form (name, TOML file, "wer=1,memory=2" string, mapping)."""
    return dict(load_profile(spec).weights)


# ---------------------------------------------------------------- the extra criterion


def extra_suites(runs: list[Mapping[str, Any]]) -> dict[str, tuple[str, Direction]]:
    """Suites beyond ASR/captioning that the runs carry: name -> (primary metric, direction).

    A suite counts as extra when its block says ``"extra": true`` (or is not asr/aac and says
    nothing) and names its ``primary_metric``; ``higher_is_better`` gives the direction (the
    first run that has the suite decides).
    """
    found: dict[str, tuple[str, Direction]] = {}
    for run in runs:
        for name, block in (run.suites or {}).items():
            if name in found or not is_mapping(block):
                continue
            flag = block.get("extra")
            if not (flag is True or (flag is None and name not in CORE_SUITES)):
                continue
            metric = block.get("primary_metric")
            if not isinstance(metric, str) or not metric:
                continue
            direction: Direction = "max" if block.get("higher_is_better", True) else "min"
            found[name] = (metric, direction)
    return dict(sorted(found.items()))


def extra_criterion(runs: list[Mapping[str, Any]]) -> Criterion | None:
    """The one `extra` criterion (weight x1 in the competition profile).

    One extra suite with a value: its primary metric. Several, each with a declared
    `primary_range` ([worst, best]): the mean of their primary metrics, each scaled to 0 (worst)
    .. 1 (best); a run that lacks one of them (or has no value for it) scores 0 for that suite.
    Suites that no ranked run has a value for (e.g. qa, not judged) are left out. Without ranges
    to combine on, the first suite alone, as before.
    """
    suites = extra_suites(runs)
    if not suites:
        return None
    combined = _combined_suites(runs, suites)
    if len(combined) >= 2:
        names = list(combined)
        return Criterion(
            "extra", "extra: mean of " + ", ".join(names), "max", _scaled_mean(combined),
            metric="scaled_mean", suite="+".join(names),
        )
    valued = {n: v for n, v in suites.items() if _has_value(runs, n, v[0])} or suites
    name, (metric, direction) = next(iter(valued.items()))
    return Criterion(
        "extra", f"{name}: {metric}", direction, _path("suites", name, "metrics", metric),
        metric=metric, ci=_interval("suites", name, "metrics_ci", metric), suite=name,
    )


def _has_value(runs: list[Mapping[str, Any]], name: str, metric: str) -> bool:
    return any(finite_number(_path("suites", name, "metrics", metric)(run)) is not None for run in runs)


def _combined_suites(runs, suites) -> dict[str, tuple[str, float, float]]:
    """name -> (metric, worst, best) of the extra suites that can be combined: a range, and a value somewhere."""
    out = {}
    for name, (metric, _) in suites.items():
        bounds = next((value_at(r, ("suites", name, "primary_range")) for r in runs
                       if isinstance(value_at(r, ("suites", name, "primary_range")), list)), None)
        if (isinstance(bounds, list) and len(bounds) == 2 and all(finite_number(b) is not None for b in bounds)
                and bounds[0] != bounds[1] and _has_value(runs, name, metric)):
            out[name] = (metric, float(bounds[0]), float(bounds[1]))
    return out


def _scaled_mean(combined: dict[str, tuple[str, float, float]]) -> Callable[[Mapping[str, Any]], float | None]:
    def extract(run: Mapping[str, Any]) -> float | None:
        if not any(isinstance(value_at(run, ("suites", name)), Mapping) for name in combined):
            return None  # the run has none of the extra suites: n/a, ranked last
        scaled = []
        for name, (metric, worst, best) in combined.items():
            value = finite_number(value_at(run, ("suites", name, "metrics", metric)))
            scaled.append(0.0 if value is None else min(1.0, max(0.0, (value - worst) / (best - worst))))
        return sum(scaled) / len(scaled)

    return extract


def extra_parts(runs: list[Mapping[str, Any]]) -> list[Criterion]:
    """With several extra suites, each one's own metric as a column of weight 0 (shown, scored only
    through `extra`), except the one the `extra` column already is."""
    suites = extra_suites(runs)
    if len(suites) < 2:
        return []
    extra = extra_criterion(runs)
    return [
        Criterion(f"extra.{name}", f"{name}: {metric}", direction, _path("suites", name, "metrics", metric),
                  metric=metric, ci=_interval("suites", name, "metrics_ci", metric), suite=name)
        for name, (metric, direction) in suites.items()
        if extra is None or extra.suite != name
    ]


def _why_left_out(runs: list[Mapping[str, Any]], name: str, metric: str) -> str:
    if _has_value(runs, name, metric):
        return "no primary_range to combine it on"
    if metric == "judge_score":  # suite qa
        return "no run has a value: not judged (bench.py run --judge FILE)"
    return "no run has a value"


def criteria_notes(runs: list[Mapping[str, Any]]) -> list[str]:
    """Lines for the table header: which suite(s) the extra criterion ranks, and what it leaves out."""
    suites = extra_suites(runs)
    if not suites:
        return []
    combined = _combined_suites(runs, suites)
    if len(combined) >= 2:
        parts = ", ".join(f"{n} {m} ({w:g} -> 0, {b:g} -> 1)" for n, (m, w, b) in combined.items())
        note = (f"Extra criterion: the mean of {parts}, each scaled to 0-1 (a suite a run lacks counts 0); "
                "the suites' own columns are shown, not scored")
        others = [n for n in suites if n not in combined]
    else:
        criterion = extra_criterion(runs)
        first = criterion.suite if criterion else next(iter(suites))
        metric, direction = suites[first]
        better = "higher" if direction == "max" else "lower"
        note = f"Extra criterion: suite {first!r}, metric {metric} ({better} is better)"
        others = [n for n in suites if n != first]
    if others:
        reasons = [f"{n} ({_why_left_out(runs, n, suites[n][0])})" for n in others]
        note += "; other extra suites, shown but not scored: " + ", ".join(reasons)
    return [note]


def resolve_criteria(runs: list[Mapping[str, Any]]) -> list[Criterion]:
    """The criteria to rank these runs on: CIDEr-D fallback applied, extra added when present."""
    spider_missing_everywhere = all(SPIDER.extract(run) is None for run in runs)
    criteria = [
        CIDER_D_FALLBACK if c is SPIDER and spider_missing_everywhere else c
        for c in CRITERIA.values()
    ]
    extra = extra_criterion(runs)
    return criteria + ([extra, *extra_parts(runs)] if extra else [])


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class CriterionValue:
    value: float | None  # None: the run has no value (shown as n/a, ranked last)
    rank: float  # an int, or a half-integer under ties = "average"
    metric: str  # the metric actually ranked, e.g. "cider_d" for the spider criterion
    weight: float = 0.0  # kept with the row so reports can print the scoring rule
    ci: tuple[float, float] | None = None  # bootstrap interval, when the run has one
    label: str = ""  # column header
    direction: Direction = "min"
    suite: str | None = None
    tolerance: float = 0.0  # relative: values this close to their group's best share a rank
    repeats: Repeats | None = None  # spread of repeated timed passes (memory, latency)


@dataclass(frozen=True)
class Delta:
    value: float | None  # None when either side has no value
    unit: Literal["pt", "x", "diff"]  # pt: percentage points; x: ratio; diff: difference


@dataclass(frozen=True)
class LeaderboardRow:
    candidate: str
    run_id: str
    rank: int
    score: float
    criteria: dict[str, CriterionValue] = field(default_factory=dict)
    reference: str | None = None  # the candidate the deltas are relative to
    deltas: dict[str, Delta] = field(default_factory=dict)
    ties: str = "min"
    coverage: float | None = None  # predicted / planned samples, the lowest of the run's suites
    scored_only: bool = False  # an older record: its metrics leave unpredicted samples out
    profile: str = DEFAULT_PROFILE  # the weight profile that ranked it
    tolerance_note: str | None = None  # the profile's tolerance rule, in words
    random_weights: bool = False  # the candidate ran a built-in tiny random-weight checkpoint


def _delta(key: str, value: float | None, ref: float | None) -> Delta:
    if key in ("memory_mb", "latency_ms"):
        ok = value is not None and ref is not None and ref > 0
        return Delta(value / ref if ok else None, "x")  # type: ignore[operator]
    ok = value is not None and ref is not None
    if key == "wer":
        return Delta((value - ref) * 100 if ok else None, "pt")  # type: ignore[operator]
    return Delta(value - ref if ok else None, "diff")  # type: ignore[operator]


def _as_rank(value: float) -> float:
    return int(value) if float(value).is_integer() else float(value)


def round_half_even(value: float, decimals: int) -> float:
    """numpy's rounding (scale, round half to even, scale back), which the scores have always had:
    `round(x, 9)` rounds the decimal value exactly and can differ in the last place."""
    scale = 10.0**decimals
    scaled = value * scale
    return (round(scaled) / scale) or math.copysign(0.0, scaled)


def min_ranks(values: list[float]) -> list[int]:
    """Competition ranks, lower is better: 1 + how many values are smaller (1, 1, 3)."""
    ordered = sorted(values)
    return [bisect_left(ordered, v) + 1 for v in values]


# ---------------------------------------------------------------- DataFrame input


def runs_from_frame(frame: Any) -> list[dict[str, Any]]:
    """Rebuild nested run records from ``load_results``' flattened DataFrame."""
    runs = []
    for flat in frame.to_dict(orient="records"):
        run: dict[str, Any] = {}
        for column, value in flat.items():
            if isinstance(value, float) and math.isnan(value):
                continue  # a column another run has
            node = run
            *parents, leaf = str(column).split(".")
            for part in parents:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
            node[leaf] = value
        runs.append(run)
    return runs


# ---------------------------------------------------------------- ranking


def rank(
    runs: Any,
    weights: str | Mapping[str, float] | WeightProfile | None = None,
    baseline: str | None = "baseline",
) -> list[LeaderboardRow]:
    """Rank the newest non-failed run of each candidate; rows sorted by rank, then name.

    ``runs``: run records (dicts) or the DataFrame of ``load_results``. ``weights``: any
    profile form (see ``leaderboard.profiles``). ``baseline``: the candidate the deltas are
    relative to; no deltas when it is None or not among the runs.
    """
    pd = sys.modules.get("pandas")  # a DataFrame exists only once pandas is imported
    if pd is not None and isinstance(runs, pd.DataFrame):
        runs = runs_from_frame(runs)
    runs = [as_run_record(r) for r in runs]
    profile = load_profile(weights)
    weights_ = profile.weights
    runs = latest_per_candidate([r for r in runs if r.status != "failed"])
    if not runs:
        return []
    criteria = resolve_criteria(runs)
    names = [run.candidate for run in runs]

    # Plain lists, no pandas: importing it and reading cells one by one was most of the time of a
    # leaderboard over 10,000 runs (docs/guides/leaderboard.md, "Speed").
    values = {c.key: [c.extract(run) for run in runs] for c in criteria}  # a number or None
    # Ties share the lowest rank (1, 1, 3), or the mean rank (1.5, 1.5, 3) under ties = "average";
    # values within the profile's tolerance of their group's best tie (leaderboard.tolerance); a
    # missing value gets the worst rank N.
    ranks = {c.key: tolerant_ranks(values[c.key], c.direction, profile.tolerance.get(c.key, 0.0), profile.ties)
             for c in criteria}
    # Keys outside the profile (an extra suite's own column, `extra.NAME`) are shown with weight 0.
    scores = [0.0] * len(runs)
    for c in criteria:  # summed criterion by criterion, in the profile's order
        scores = [s + r * weights_.get(c.key, 0.0) for s, r in zip(scores, ranks[c.key], strict=True)]
    # Round before ranking so that e.g. 0.1*3 and 0.3 tie as they should.
    scores = [round_half_even(s, 9) for s in scores]
    final = min_ranks(scores)

    ref = names.index(baseline) if baseline in names else None
    rows = []
    for i, (name, run) in enumerate(zip(names, runs, strict=True)):
        cvs = {
            c.key: CriterionValue(
                value=values[c.key][i],
                rank=_as_rank(ranks[c.key][i]),
                metric=c.metric,
                weight=weights_.get(c.key, 0.0),
                ci=c.ci(run),
                label=c.label,
                direction=c.direction,
                suite=c.suite,
                tolerance=profile.tolerance.get(c.key, 0.0),
                repeats=c.repeats(run),
            )
            for c in criteria
        }
        deltas = {}
        if ref is not None:
            deltas = {c.key: _delta(c.key, values[c.key][i], values[c.key][ref]) for c in criteria}
        rows.append(
            LeaderboardRow(
                candidate=name,
                run_id=run.run_id,
                rank=final[i],
                score=scores[i],
                criteria=cvs,
                reference=names[ref] if ref is not None else None,
                deltas=deltas,
                ties=profile.ties,
                coverage=run_coverage(run),
                scored_only=_scored_only(run),
                random_weights=_random_weights(run),
                profile=profile.name,
                tolerance_note=profile.describe_tolerance(),
            )
        )
    return sorted(rows, key=lambda row: (row.rank, row.candidate))


def _random_weights(run: Mapping[str, Any]) -> bool:
    """The candidate says it ran random weights (`candidate_info.weights`, from its family)."""
    info = run.get("candidate_info")
    return isinstance(info, Mapping) and info.get("weights") == "random"


def _scored_only(run: Mapping[str, Any]) -> bool:
    """True for a record written before failures counted: a suite without `metrics_scored_only`
    scored only the samples that have a prediction (`bench.py rescore` applies the rule)."""
    suites = run.suites
    return is_mapping(suites) and any(
        is_mapping(b) and "metrics_scored_only" not in b for b in suites.values())


def to_frame(rows: list[LeaderboardRow]) -> Any:
    """Ranked rows as a DataFrame (one row per candidate): for notebooks."""
    import pandas as pd

    records = []
    for row in rows:
        record: dict[str, Any] = {"rank": row.rank, "candidate": row.candidate, "score": row.score,
                                  "run_id": row.run_id, "coverage": row.coverage}
        for key, cv in row.criteria.items():
            record[key] = cv.value
            record[f"{key}_rank"] = cv.rank
            if cv.ci is not None:
                record[f"{key}_ci_lo"], record[f"{key}_ci_hi"] = cv.ci
        for key, delta in row.deltas.items():
            record[f"{key}_delta_{delta.unit}"] = delta.value
        records.append(record)
    return pd.DataFrame.from_records(records)
