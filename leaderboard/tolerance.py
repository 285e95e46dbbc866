"""Noise-aware ranks: values within a relative tolerance of their group's best share one rank.

The rule, per criterion: sort the values from the best; the first value opens a group; each
next value joins the current group when it is within ``tolerance`` of the group's FIRST (best)
value, relative to that value (``|v - first| <= tolerance * |first|``), else it opens a new
group. A group shares one rank: under ``ties = "min"`` (competition ranking) 1 + the number of
candidates in better groups; under ``ties = "average"`` the mean of the positions it occupies.
Missing values rank last (N). Tolerance 0 groups equal values only: the exact ranking.

Grouping from the group's first value (not chaining neighbour to neighbour) keeps a slow drift
of small steps from merging values that are far apart.
"""

from __future__ import annotations

from typing import Literal

# Relative slack so that a value exactly at the tolerance (70.31 * 1.02) is not lost to rounding.
_SLACK = 1e-9


def tolerant_ranks(
    values: list[float | None],
    direction: Literal["min", "max"],
    tolerance: float = 0.0,
    ties: str = "min",
) -> list[float]:
    """The rank of each value (same order as ``values``); None ranks last (len(values))."""
    n = len(values)
    order = sorted((i for i, v in enumerate(values) if v is not None),
                   key=lambda i: values[i] if direction == "min" else -values[i])  # type: ignore[operator]
    groups: list[list[int]] = []
    for i in order:
        value = values[i]
        if groups:
            first = values[groups[-1][0]]
            bound = tolerance * abs(first) * (1 + _SLACK) if tolerance else 0.0  # type: ignore[arg-type]
            if abs(value - first) <= bound:  # type: ignore[operator]
                groups[-1].append(i)
                continue
        groups.append([i])
    ranks = [float(n)] * n
    better = 0
    for group in groups:
        shared = better + 1 if ties == "min" else better + (len(group) + 1) / 2
        for i in group:
            ranks[i] = float(shared)
        better += len(group)
    return ranks
