"""Fair comparisons (grouping by profile, device kind, threads, datasets), deltas, intervals,
the DataFrame API and the JSON shape of `bench.py leaderboard`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from bench import cli
from leaderboard import build, group_runs, load_results, rank, to_frame, to_json, to_table
from tests.test_leaderboard import make_run, write_run


def run_on(candidate, *, threads=1, device="cpu", device_name="Xeon", data="h-asr", aac_data="h-aac", **kw):
    run = make_run(candidate, **kw)
    run["environment"] = {"device": device, "device_name": device_name, "threads": threads}
    for suite, block in run["suites"].items():
        block["dataset_hash"] = data if suite == "asr" else aac_data
    return run


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_runs_differing_only_in_threads_are_not_ranked_together(tmp_path):
    write_run(tmp_path, run_on("a", threads=1, wer=0.1, memory=10, latency=10, run_id="r-a1"))
    write_run(tmp_path, run_on("b", threads=1, wer=0.2, memory=10, latency=10, run_id="r-b1"))
    write_run(tmp_path, run_on("b", threads=2, wer=0.2, memory=10, latency=5, run_id="r-b2"))
    groups = group_runs(load_results_runs(tmp_path))
    assert [sorted(r["run_id"] for r in g.runs) for g in groups] == [["r-a1", "r-b1"], ["r-b2"]]
    assert groups[1].differences(groups[0]) == ["threads 2 vs 1"]

    out = invoke("leaderboard", "--results", tmp_path).output
    assert "Group 1 of 2" in out and "Group 2 of 2" in out and "1 thread" in out and "2 threads" in out
    assert "Not ranked with group 1 because it differs in: threads 2 vs 1. Runs: r-b2 (b)" in out

    rows = json.loads(invoke("leaderboard", "--results", tmp_path, "--format", "json").output)
    assert [(r["group"], r["candidate"], r["rank"]) for r in rows] == [(1, "a", 1), (1, "b", 2), (2, "b", 1)]


def load_results_runs(path):
    from leaderboard import load_runs

    return load_runs(path)[0]


def test_mix_ranks_everything_together_with_a_warning(tmp_path):
    write_run(tmp_path, run_on("a", threads=1, wer=0.1, memory=10, latency=10, run_id="r-a1"))
    write_run(tmp_path, run_on("b", threads=2, wer=0.2, memory=10, latency=5, run_id="r-b2"))
    result = invoke("leaderboard", "--results", tmp_path, "--mix")
    out = result.output
    warning = out.index("WARNING: --mix ranks runs that are not comparable")
    assert "threads 2 vs 1" in out[warning:]
    assert warning < out.index("Rank")
    rows = json.loads(invoke("leaderboard", "--results", tmp_path, "--mix", "--format", "json").stdout)
    assert {r["group"] for r in rows} == {1} and len(rows) == 2


def test_grouping_by_device_profile_and_dataset():
    runs = [
        run_on("a", run_id="1"),
        run_on("b", device="cuda:0", device_name="NVIDIA H100", run_id="2"),
        run_on("c", device="cuda:1", device_name="NVIDIA H100", threads=4, run_id="3"),  # same GPU kind
        run_on("d", data="other", run_id="4"),
        {**run_on("e", run_id="5"), "protocol": "nota2025"},
        run_on("f", aac=False, run_id="6"),  # ASR only, same ASR data: joins a's group
    ]
    groups = group_runs(runs)
    assert [sorted(r["candidate"] for r in g.runs) for g in groups] == [["a", "f"], ["b", "c"], ["d"], ["e"]]
    assert groups[2].differences(groups[0]) == ["asr dataset other vs h-asr"]
    assert groups[3].differences(groups[0]) == ["measurement protocol nota2025 vs default"]
    assert "device cuda (NVIDIA H100) vs cpu (Xeon)" in groups[1].differences(groups[0])


def test_missing_hash_falls_back_to_dataset_name():
    a, b = make_run("a", run_id="1"), make_run("b", run_id="2")
    b["suites"]["asr"]["dataset"] = "librispeech"
    assert len(group_runs([a, b])) == 2
    b["suites"]["asr"]["dataset"] = "demo"
    assert len(group_runs([a, b])) == 1


def test_deltas_against_the_reference():
    runs = [
        make_run("baseline", wer=0.100, cider_d=0.50, memory=1000, latency=150),
        make_run("nf4", wer=0.114, cider_d=0.45, memory=430, latency=99),
    ]
    rows = {r.candidate: r for r in rank(runs)}
    d = rows["nf4"].deltas
    assert rows["nf4"].reference == "baseline"
    assert d["wer"].unit == "pt" and d["wer"].value == pytest.approx(1.4)
    assert d["memory_mb"].unit == "x" and d["memory_mb"].value == pytest.approx(0.43)
    assert d["latency_ms"].value == pytest.approx(0.66)
    assert d["spider"].unit == "diff" and d["spider"].value == pytest.approx(-0.05)
    text = to_table(list(rows.values()))
    for cell in ("+1.4 pt", "0.43x", "0.66x", "-0.0500", "baseline (ref)"):
        assert cell in text
    item = to_json([rows["nf4"]])[0]
    assert item["reference"] == "baseline" and item["deltas"]["memory_mb"] == {"value": pytest.approx(0.43), "unit": "x"}
    # another reference, and none
    by_nf4 = {r.candidate: r for r in rank(runs, baseline="nf4")}
    assert by_nf4["baseline"].deltas["memory_mb"].value == pytest.approx(1000 / 430)
    assert all(not r.deltas and r.reference is None for r in rank(runs, baseline=None))


def test_cli_baseline_option(tmp_path):
    write_run(tmp_path, make_run("x", wer=0.2, memory=200, latency=10))
    write_run(tmp_path, make_run("y", wer=0.1, memory=100, latency=10))
    out = invoke("leaderboard", "--results", tmp_path, "--baseline", "x").output
    assert "0.50x" in out and "-10.0 pt" in out and "x (ref)" in out
    assert "ΔWER" not in invoke("leaderboard", "--results", tmp_path).output  # no `baseline` candidate
    bad = invoke("leaderboard", "--results", tmp_path, "--baseline", "nobody")
    assert bad.exit_code != 0 and "no run of that candidate" in bad.output


def test_confidence_intervals(tmp_path):
    run = make_run("a", wer=0.123, cider_d=0.3, memory=1, latency=1)
    run["suites"]["asr"]["metrics_ci"] = {"wer": [0.101, 0.150]}
    run["suites"]["aac"]["metrics_ci"] = {"cider_d": [0.2, 0.4], "spider": None}
    other = make_run("b", wer=0.2, memory=1, latency=1)
    (row, row_b) = rank([run, other])
    assert row.criteria["wer"].ci == (0.101, 0.150) and row.criteria["spider"].ci == (0.2, 0.4)
    assert row_b.criteria["wer"].ci is None
    assert "0.123 [0.101, 0.150] (1)" in to_table([row, row_b], ci=True)
    assert "[0.101" not in to_table([row, row_b])
    write_run(tmp_path, run)
    write_run(tmp_path, other)
    rows = json.loads(invoke("leaderboard", "--results", tmp_path, "--ci", "--format", "json").output)
    assert rows[0]["criteria"]["wer"]["ci"] == [0.101, 0.150] and rows[1]["criteria"]["wer"]["ci"] is None
    assert "0.123 [0.101, 0.150] (1)" in invoke("leaderboard", "--results", tmp_path, "--ci").output


def test_load_results_dataframe_and_rank_it(tmp_path):
    write_run(tmp_path, make_run("a", wer=0.3, memory=5, latency=5, run_id="r1", created_at="2026-01-01T00:00:00Z"))
    write_run(tmp_path, make_run("a", wer=0.1, memory=5, latency=5, run_id="r2", created_at="2026-01-02T00:00:00Z"))
    write_run(tmp_path, make_run("b", wer=0.2, memory=5, latency=5, run_id="r3"))
    df = load_results(tmp_path)
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert {"suites.asr.metrics.wer", "efficiency.latency_ms", "environment.threads", "candidate"} <= set(df.columns)
    assert df.set_index("run_id").loc["r2", "suites.asr.metrics.wer"] == 0.1
    rows = rank(df, "wer=1")
    assert [(r.candidate, r.run_id, r.rank) for r in rows] == [("a", "r2", 1), ("b", "r3", 2)]
    assert rows == rank(load_results_runs(tmp_path), "wer=1")  # same answer as from the records
    frame = to_frame(rows)
    assert list(frame["candidate"]) == ["a", "b"] and "wer_rank" in frame.columns
    assert load_results(tmp_path / "none").empty


def test_build_sections_explain_each_table():
    runs = [run_on("a", threads=1, run_id="1"), run_on("b", threads=8, run_id="2")]
    sections = build(runs)
    assert [s.index for s in sections] == [1, 2]
    assert sections[0].header[0].startswith("Group 1 of 2: protocol: default")
    assert "threads 8 vs 1" in sections[1].header[1]
