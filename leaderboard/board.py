"""The whole leaderboard: fair groups of runs, each ranked, with the lines that explain them.

Both ``bench.py leaderboard`` and ``bench.py report`` build their output from ``build``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leaderboard.grouping import Group, group_runs
from leaderboard.memory_notes import memory_phase_notes
from leaderboard.profiles import DEFAULT_PROFILE, EXACT_PROFILE, WeightProfile, load_profile
from leaderboard.ranking import LeaderboardRow, criteria_notes, rank
from leaderboard.results import latest_per_candidate, run_coverage
from leaderboard.stream_notes import buffered_stream_notes
from records.run_record import RunRecord, as_run_record

DEFAULT_BASELINE = "baseline"


@dataclass
class Section:
    index: int  # 1-based
    group: Group
    rows: list[LeaderboardRow]
    header: list[str] = field(default_factory=list)  # what the group shares, how it differs
    warnings: list[str] = field(default_factory=list)  # printed above the table
    _index: tuple[list, int, dict[str, RunRecord]] | None = field(default=None, init=False, repr=False, compare=False)

    def run_of(self, row: LeaderboardRow) -> RunRecord:
        # An index of the group's runs, not a scan per row, which made 2,000 rows quadratic;
        # built again if the group's run list is replaced or grows.
        runs = self.group.runs
        if self._index is None or self._index[0] is not runs or self._index[1] != len(runs):
            by_id: dict[str, RunRecord] = {}
            for run in runs:
                by_id.setdefault(run.run_id, run)  # the first of a run id, as the scan found it
            self._index = (runs, len(runs), by_id)
        return self._index[2][row.run_id]


def build(
    runs: list[RunRecord] | list[dict[str, Any]],
    weights: str | Mapping[str, float] | WeightProfile | None = None,
    baseline: str | None = None,
    mix: bool = False,
    min_coverage: float | None = None,
) -> list[Section]:
    """Group runs fairly (or all together with ``mix``), rank each group, explain each table.

    ``weights``: None ranks with ``competition``, except groups measured under the nota2025
    protocol, which get ``competition-exact`` (the organiser's exact ranks); a profile given
    here applies to every group. ``baseline``: the reference candidate for deltas; None means
    "baseline" when present. ``min_coverage`` (else the profile's ``min_coverage``): runs that
    predicted a smaller share of their planned samples are left out, each with a line that says
    why above its group's table.
    """
    runs = [as_run_record(r) for r in runs]
    chosen = load_profile(weights) if weights is not None else None
    runs = [r for r in runs if r.status != "failed"]
    groups = group_runs(runs, mix=mix)
    sections = []
    for i, group in enumerate(groups, 1):
        nota = group.kind.protocol == "nota2025" and not group.mixed
        profile = chosen or load_profile(EXACT_PROFILE if nota else DEFAULT_PROFILE)
        threshold = min_coverage if min_coverage is not None else profile.min_coverage
        group.runs, left_out = _apply_min_coverage(group.runs, threshold, min_coverage is not None)
        rows = rank(group.runs, profile, baseline=baseline or DEFAULT_BASELINE)
        n_cand = len(rows)
        label = f"Group {i} of {len(groups)}" if len(groups) > 1 else "Ranked together"
        header = [
            f"{label}: {group.describe()} "
            f"({n_cand} candidate{'s' if n_cand != 1 else ''}, {len(group.runs)} run{'s' if len(group.runs) != 1 else ''})"
        ]
        warnings = []
        if group.mixed:
            warnings.append(
                "WARNING: --mix ranks runs that are not comparable; the ranks mix measurement "
                f"conditions. {group.mixed[0]}."
            )
            header = [f"Ranked together (--mix): {len(group.runs)} runs"]
        if i > 1:
            header.append(
                f"Not ranked with group 1 because it differs in: {'; '.join(group.differences(groups[0]))}. "
                f"Runs: {_list_runs(group.runs)}"
            )
        header.append(_weights_line(profile, nota and chosen is None))
        header += criteria_notes(group.runs) + memory_phase_notes(group.runs) + buffered_stream_notes(group.runs)
        warnings += left_out
        if baseline and rows and rows[0].reference is None:
            warnings.append(f"reference candidate {baseline!r} has no run in this group; no deltas shown")
        sections.append(Section(i, group, rows, header, warnings))
    return sections


def _weights_line(profile: WeightProfile, nota_default: bool) -> str:
    if nota_default:
        return (f"Weights: {profile.name}, the organiser's exact ranks: runs measured under the nota2025 "
                "protocol are ranked with it unless --weights is given")
    where = "" if profile.source == "built-in" else f" ({profile.source})"
    return f"Weights: {profile.name}{where}"


def _apply_min_coverage(
    runs: list[dict[str, Any]], threshold: float | None, from_option: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """(runs kept, one line per run left out that would otherwise have been ranked)."""
    if threshold is None:
        return runs, []
    kept = [r for r in runs if (run_coverage(r) if run_coverage(r) is not None else 1.0) >= threshold]
    ranked = {r.candidate: r for r in latest_per_candidate(kept)}
    source = f"--min-coverage {threshold:g}" if from_option else f"the profile's min_coverage = {threshold:g}"
    lines = []
    for run in latest_per_candidate([r for r in runs if not any(r is k for k in kept)]):
        instead = ranked.get(run.candidate)
        if instead is not None and latest_per_candidate([instead, run])[0] is instead:
            continue  # an older run of a candidate whose newer run is ranked: not news
        line = (f"left out: run {run.run_id} of {run.candidate!r} predicted "
                f"{_percent(run_coverage(run))} of its planned samples, under {source} "
                "(failed, skipped and not-run samples count as empty predictions)")
        if instead is not None:
            line += f"; its earlier run {instead.get('run_id')} ({_percent(run_coverage(instead))}) is ranked instead"
        lines.append(line)
    return kept, lines


def _percent(value: float | None) -> str:
    return "an unknown share" if value is None else f"{value * 100:.1f}%"


def _list_runs(runs: list[RunRecord], limit: int = 6) -> str:
    names = [f"{r.run_id} ({r.candidate})" for r in runs[:limit]]
    more = f", and {len(runs) - limit} more" if len(runs) > limit else ""
    return ", ".join(names) + more
