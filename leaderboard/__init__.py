"""Leaderboard: read run records, rank candidates by weighted criterion ranks, render reports.

Never imports torch, transformers, harness or candidates: it only reads run.json files.
"""

from leaderboard.ranking import (
    CRITERIA,
    PROFILES,
    Criterion,
    CriterionValue,
    LeaderboardRow,
    parse_weights,
    rank,
)
from leaderboard.render import FORMATS, score_rule, to_json, to_table
from leaderboard.results import group_by_profile, latest_per_candidate, load_runs

__all__ = [
    "CRITERIA",
    "FORMATS",
    "PROFILES",
    "Criterion",
    "CriterionValue",
    "LeaderboardRow",
    "group_by_profile",
    "latest_per_candidate",
    "load_runs",
    "parse_weights",
    "rank",
    "score_rule",
    "to_json",
    "to_table",
]
