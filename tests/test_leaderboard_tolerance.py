"""Noise-aware ranks: values within a profile's tolerance of their group's best share a rank.

Hand-worked tables; the README's worked example is the first test.
"""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
from click.testing import CliRunner

from bench import cli
from leaderboard import build, load_profile, rank, to_json, to_table, tolerant_ranks
from tests.test_leaderboard import make_run, write_run


def test_readme_worked_example():
    # Memory MB under a 5% tolerance, sorted from the best:
    #   70.31 opens group 1 (it reaches up to 70.31 * 1.05 = 73.83): 70.45 ... 72.00 join
    #   74.50 is 5.96% above 70.31: opens group 2 (up to 78.23), which 76.00 joins (+2.01%)
    #   80.00 is 7.38% above 74.50: opens group 3
    values = [76.00, 70.58, 72.00, 70.31, 80.00, 74.50, 70.67, 70.45]
    tolerance = 0.05
    # The default's own tolerances (from the spreads measured in competition.toml):
    default = load_profile("competition").tolerance
    assert (default["memory_mb"], default["latency_ms"]) == (0.10, 0.10)
    assert tolerant_ranks(values, "min", tolerance) == [6, 1, 1, 1, 8, 6, 1, 1]
    assert tolerant_ranks(values, "min", tolerance, ties="average") == [6.5, 3, 3, 3, 8, 6.5, 3, 3]
    assert tolerant_ranks(values, "min", 0.0) == [7, 3, 5, 1, 8, 6, 4, 2]


def test_groups_are_measured_from_their_first_value_not_chained():
    # 100 -> 101.5 joins (1.5%), 103 is 3% above 100: a new group, which 104.5 joins (1.46%).
    assert tolerant_ranks([100.0, 101.5, 103.0, 104.5], "min", 0.02) == [1, 1, 3, 3]


def test_higher_is_better_and_missing_values():
    # SPIDEr-like, tolerance 5%: 0.40 opens, 0.39 joins (2.5%), 0.37 is 7.5% below 0.40.
    assert tolerant_ranks([0.37, None, 0.40, 0.39], "max", 0.05) == [3, 4, 1, 1]


def test_tolerance_zero_is_the_exact_ranking():
    rng = random.Random(0)
    for _ in range(50):
        values = [rng.choice([1.0, 2.0, 2.5, 3.0, None]) for _ in range(rng.randint(1, 7))]
        for ties in ("min", "average"):
            for direction in ("min", "max"):
                expected = pd.Series(values, dtype="float64").rank(method=ties, ascending=direction == "min")
                expected = expected.fillna(len(values)).tolist()
                assert tolerant_ranks(values, direction, 0.0, ties) == expected


def four_close_runs():
    """The issue's example: four runs whose peak memory is 70.31-70.67 MB (0.5% apart)."""
    return [
        make_run(name, wer=0.1, spider=0.3, memory=mem, latency=lat)
        for name, mem, lat in (("a", 70.31, 200.0), ("b", 70.45, 203.0), ("c", 70.58, 250.0), ("d", 70.67, 206.0))
    ]


def test_issue_example_shares_one_memory_rank_under_the_default():
    rows = {r.candidate: r for r in rank(four_close_runs())}
    assert [rows[n].criteria["memory_mb"].rank for n in "abcd"] == [1, 1, 1, 1]
    # latency: 200, 203, 206 are within the default tolerance of 200; 250 is not
    assert [rows[n].criteria["latency_ms"].rank for n in "abcd"] == [1, 1, 4, 1]
    exact = {r.candidate: r for r in rank(four_close_runs(), "competition-exact")}
    assert [exact[n].criteria["memory_mb"].rank for n in "abcd"] == [1, 2, 3, 4]
    text = to_table(list(rows.values()))
    assert "Noise-aware ranks: memory values within" in text and "of their group's best share a rank" in text


def test_profile_file_tolerance_and_its_errors(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("[weights]\nmemory = 1\n[tolerance]\nmemory = 0.001\nwer = 0.1\n")
    profile = load_profile(path)
    assert profile.tolerance["memory_mb"] == 0.001 and profile.tolerance["wer"] == 0.1
    rows = {r.candidate: r for r in rank(four_close_runs(), profile)}
    assert [rows[n].criteria["memory_mb"].rank for n in "abcd"] == [1, 2, 3, 4]  # 0.1% groups nothing here
    for text, message in (("[weights]\nwer = 1\n[tolerance]\nwer = 1.5\n", r"tolerance for 'wer' must be"),
                          ("[weights]\nwer = 1\n[tolerance]\nbleu = 0.1\n", "unknown criterion 'bleu'"),
                          ("tolerance = 0.1\n[weights]\nwer = 1\n", "tolerance must be a table"),
                          ("min_coverage = 2\n[weights]\nwer = 1\n", "min_coverage must be")):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_profile(path)


def test_nota2025_runs_are_ranked_exactly_unless_weights_are_given(tmp_path):
    runs = four_close_runs()
    for run in runs:
        run["protocol"] = "nota2025"
    (section,) = build(runs)
    assert any(line.startswith("Weights: competition-exact") and "nota2025" in line for line in section.header)
    assert [r.criteria["memory_mb"].rank for r in sorted(section.rows, key=lambda r: r.candidate)] == [1, 2, 3, 4]
    (section,) = build(runs, "competition")
    assert "Weights: competition" in section.header
    assert {r.criteria["memory_mb"].rank for r in section.rows} == {1}
    for run in runs:
        write_run(tmp_path, run)
    out = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path)])
    assert out.exit_code == 0 and "Weights: competition-exact" in out.output


def with_repeats(run, latencies, memories):
    ordered_l, ordered_m = sorted(latencies), sorted(memories)
    run["efficiency"]["latency_ms"] = ordered_l[len(latencies) // 2]
    run["efficiency"]["peak_memory_mb"] = ordered_m[len(memories) // 2]
    run["efficiency"]["repeats"] = {
        "n": len(latencies),
        "latency_ms": {"p50": ordered_l[len(latencies) // 2], "min": ordered_l[0], "max": ordered_l[-1],
                       "values": latencies},
        "peak_memory_mb": {"p50": ordered_m[len(memories) // 2], "min": ordered_m[0], "max": ordered_m[-1],
                           "values": memories},
    }
    return run


def test_ci_shows_the_spread_of_repeated_passes(tmp_path):
    repeated = with_repeats(make_run("rep", wer=0.1, spider=0.3), [231.0, 225.1, 240.3, 229.0, 233.2],
                            [70.4, 70.3, 70.6, 70.5, 70.4])
    single = make_run("one", wer=0.2, spider=0.2, memory=80.0, latency=300.0)
    rows = rank([repeated, single])
    text = to_table(rows, ci=True)
    assert "231.0 [225.1–240.3] (×5) (1)" in text and "70.4 [70.3–70.6] (×5) (1)" in text
    assert "repeated timed passes" in text
    assert "[225.1" not in to_table(rows)  # only with --ci
    item = next(r for r in to_json(rows, ci=True) if r["candidate"] == "rep")
    assert item["criteria"]["latency_ms"]["repeats"] == {
        "n": 5, "p50": 231.0, "min": 225.1, "max": 240.3, "values": [231.0, 225.1, 240.3, 229.0, 233.2]}
    assert next(r for r in to_json(rows, ci=True) if r["candidate"] == "one")["criteria"]["memory_mb"]["repeats"] is None
    csv_text = to_table(rows, "csv")
    assert "latency_ms_repeat_min,latency_ms_repeat_max,latency_ms_repeat_n" in csv_text.splitlines()[0]

    write_run(tmp_path, repeated)
    write_run(tmp_path, single)
    out = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path), "--ci", "--format", "json"])
    data = {r["candidate"]: r for r in json.loads(out.output)}
    assert data["rep"]["criteria"]["memory_mb"]["repeats"]["max"] == 70.6
