"""Leaderboard: read run records, rank candidates by weighted criterion ranks, render reports.

Never imports torch, transformers, harness or candidates: it only reads run.json files.

Notebook use::

    import leaderboard as lb
    df = lb.load_results("results")            # one row per run, flattened metric columns
    rows = lb.rank(df, "competition")          # or "competition-exact", a .toml file, "wer=1,memory=2"
    lb.to_frame(rows)                          # the ranked table as a DataFrame
"""

from leaderboard.board import Section, build
from leaderboard.grouping import Group, group_runs, protocol_of
from leaderboard.profiles import WeightProfile, builtin_profiles, load_profile
from leaderboard.ranking import (
    CRITERIA,
    PROFILES,
    Criterion,
    CriterionValue,
    Delta,
    LeaderboardRow,
    criteria_notes,
    parse_weights,
    rank,
    to_frame,
)
from leaderboard.render import FORMATS, cells, footer_lines, score_rule, to_json, to_table
from leaderboard.results import latest_per_candidate, load_results, load_runs, run_coverage
from leaderboard.tolerance import tolerant_ranks

__all__ = [
    "CRITERIA",
    "FORMATS",
    "PROFILES",
    "Criterion",
    "CriterionValue",
    "Delta",
    "Group",
    "LeaderboardRow",
    "Section",
    "WeightProfile",
    "build",
    "builtin_profiles",
    "cells",
    "criteria_notes",
    "footer_lines",
    "group_runs",
    "latest_per_candidate",
    "load_profile",
    "load_results",
    "load_runs",
    "parse_weights",
    "protocol_of",
    "rank",
    "run_coverage",
    "score_rule",
    "to_frame",
    "to_json",
    "to_table",
    "tolerant_ranks",
]
