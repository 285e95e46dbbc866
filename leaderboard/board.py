"""The whole leaderboard: fair groups of runs, each ranked, with the lines that explain them.

Both ``bench.py leaderboard`` and ``bench.py report`` build their output from ``build``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leaderboard.grouping import Group, group_runs
from leaderboard.memory_notes import memory_phase_notes
from leaderboard.profiles import WeightProfile, load_profile
from leaderboard.ranking import LeaderboardRow, criteria_notes, rank

DEFAULT_BASELINE = "baseline"


@dataclass
class Section:
    index: int  # 1-based
    group: Group
    rows: list[LeaderboardRow]
    header: list[str] = field(default_factory=list)  # what the group shares, how it differs
    warnings: list[str] = field(default_factory=list)  # printed above the table

    def run_of(self, row: LeaderboardRow) -> dict[str, Any]:
        return next(r for r in self.group.runs if r.get("run_id") == row.run_id)


def build(
    runs: list[dict[str, Any]],
    weights: str | Mapping[str, float] | WeightProfile | None = None,
    baseline: str | None = None,
    mix: bool = False,
) -> list[Section]:
    """Group runs fairly (or all together with ``mix``), rank each group, explain each table.

    ``baseline``: the reference candidate for deltas; None means "baseline" when present.
    """
    profile = load_profile(weights)
    runs = [r for r in runs if r.get("status") != "failed"]
    groups = group_runs(runs, mix=mix)
    sections = []
    for i, group in enumerate(groups, 1):
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
        header += criteria_notes(group.runs) + memory_phase_notes(group.runs)
        if baseline and rows and rows[0].reference is None:
            warnings.append(f"reference candidate {baseline!r} has no run in this group; no deltas shown")
        sections.append(Section(i, group, rows, header, warnings))
    return sections


def _list_runs(runs: list[dict[str, Any]], limit: int = 6) -> str:
    names = [f"{r.get('run_id')} ({r.get('candidate')})" for r in runs[:limit]]
    more = f", and {len(runs) - limit} more" if len(runs) > limit else ""
    return ", ".join(names) + more
