"""Leaderboard ranking, loading and rendering, checked against tables worked out by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from leaderboard import load_runs, parse_weights, rank, to_json, to_table
from leaderboard.results import latest_per_candidate

REPO = Path(__file__).resolve().parents[1]


def make_run(
    candidate: str,
    *,
    wer: float | None = None,
    spider: float | None = None,
    cider_d: float | None = None,
    memory: float | None = None,
    latency: float | None = None,
    asr: bool = True,
    aac: bool = True,
    status: str = "ok",
    created_at: str | None = "2026-11-25T01:45:00+00:00",
    run_id: str | None = None,
) -> dict[str, Any]:
    """A run.json record shaped like the harness writes it."""
    suites: dict[str, Any] = {}
    if asr:
        suites["asr"] = {
            "dataset": "demo",
            "n_samples": 24,
            "n_failed": 0,
            "metrics": {"wer": wer, "cer": None},
        }
    if aac:
        suites["aac"] = {
            "dataset": "demo",
            "n_samples": 12,
            "n_failed": 0,
            "metrics": {"cider_d": cider_d, "spider": spider, "spice": None},
        }
    return {
        "schema_version": 1,
        "run_id": run_id or f"20261125-014500-{candidate}-0000",
        "candidate": candidate,
        "created_at": created_at,
        "status": status,
        "protocol": "default",
        "environment": {"device": "cpu", "threads": 1},
        "suites": suites,
        "efficiency": {
            "ttft_ms": {"p50": 10.0, "p90": 12.0},
            "tpot_ms": {"p50": 2.0, "p90": 3.0},
            "latency_ms": latency,
            "peak_memory_mb": memory,
            "weights_mb": 1.0,
        },
    }


def write_run(results: Path, record: dict[str, Any] | str, folder: str | None = None) -> Path:
    """Write a record (or raw text) to results/<run_id>/run.json."""
    name = folder or (record["run_id"] if isinstance(record, dict) else "raw")
    run_dir = results / name
    run_dir.mkdir(parents=True)
    text = record if isinstance(record, str) else json.dumps(record)
    (run_dir / "run.json").write_text(text, encoding="utf-8")
    return run_dir / "run.json"


def four_runs() -> list[dict[str, Any]]:
    """The main hand-worked field: N = 4 candidates; asr_only has no aac suite."""
    return [
        make_run("baseline", wer=0.10, spider=0.30, cider_d=0.50, memory=1000, latency=50),
        make_run("int8", wer=0.12, spider=0.28, cider_d=0.45, memory=600, latency=40),
        make_run("nf4", wer=0.12, spider=0.25, cider_d=0.40, memory=400, latency=60),
        make_run("asr_only", wer=0.08, aac=False, memory=700, latency=20),
    ]


def summary(rows) -> list[tuple[str, int, float, dict[str, int]]]:
    return [
        (r.candidate, r.rank, r.score, {k: v.rank for k, v in r.criteria.items()}) for r in rows
    ]


# ---------------------------------------------------------------- ranking math


def test_default_profile_ranks_by_hand():
    # Per-criterion ranks (N = 4):
    #   wer  (min): asr_only .08 -> 1, baseline .10 -> 2, int8 .12 & nf4 .12 tie -> 3, 3
    #   spider(max): baseline .30 -> 1, int8 .28 -> 2, nf4 .25 -> 3, asr_only missing -> N = 4
    #   memory(min): nf4 400 -> 1, int8 600 -> 2, asr_only 700 -> 3, baseline 1000 -> 4
    #   latency(min): asr_only 20 -> 1, int8 40 -> 2, baseline 50 -> 3, nf4 60 -> 4
    # competition = 1*wer + 1*spider + 2*memory + 2*latency (its tolerances, 10% memory and 10%
    # latency, group nothing here: neighbouring values are further apart):
    #   asr_only 1 + 4 + 2*3 + 2*1 = 13
    #   int8     3 + 2 + 2*2 + 2*2 = 13   (ties asr_only -> both rank 1)
    #   nf4      3 + 3 + 2*1 + 2*4 = 16   -> rank 3 (minimum rank after a 2-way tie)
    #   baseline 2 + 1 + 2*4 + 2*3 = 17   -> rank 4
    rows = rank(four_runs())
    assert summary(rows) == [
        ("asr_only", 1, 13.0, {"wer": 1, "spider": 4, "memory_mb": 3, "latency_ms": 1}),
        ("int8", 1, 13.0, {"wer": 3, "spider": 2, "memory_mb": 2, "latency_ms": 2}),
        ("nf4", 3, 16.0, {"wer": 3, "spider": 3, "memory_mb": 1, "latency_ms": 4}),
        ("baseline", 4, 17.0, {"wer": 2, "spider": 1, "memory_mb": 4, "latency_ms": 3}),
    ]
    # The ASR-only candidate shows n/a for the caption criterion, still with rank N.
    spider = rows[0].criteria["spider"]
    assert (spider.value, spider.rank, spider.metric) == (None, 4, "spider")


def test_ties_share_minimum_rank():
    # wer values .2, .1, .1, .3 -> ranks 3, 1, 1, 4 (not 2.5 or dense 1, 1, 2)
    runs = [
        make_run(name, wer=w, spider=0.1, memory=1, latency=1)
        for name, w in [("a", 0.2), ("b", 0.1), ("c", 0.1), ("d", 0.3)]
    ]
    rows = rank(runs, "wer=1")
    # Only wer is scored: score = wer rank. Final: b 1, c 1, a 3, d 4.
    assert [(r.candidate, r.rank, r.score) for r in rows] == [
        ("b", 1, 1.0),
        ("c", 1, 1.0),
        ("a", 3, 3.0),
        ("d", 4, 4.0),
    ]


def test_memory_dominant_weights_change_the_winner():
    # Same field, weights wer=1, spider=1, memory=10, latency=1 (ranks from the test above):
    #   nf4      3 + 3 + 10*1 + 4 = 20 -> 1
    #   int8     3 + 2 + 10*2 + 2 = 27 -> 2
    #   asr_only 1 + 4 + 10*3 + 1 = 36 -> 3
    #   baseline 2 + 1 + 10*4 + 3 = 46 -> 4
    rows = rank(four_runs(), "wer=1,spider=1,memory=10,latency=1")
    assert [(r.candidate, r.rank, r.score) for r in rows] == [
        ("nf4", 1, 20.0),
        ("int8", 2, 27.0),
        ("asr_only", 3, 36.0),
        ("baseline", 4, 46.0),
    ]


def test_candidate_without_asr_suite_gets_rank_n():
    # N = 3. captioner has no asr suite -> wer rank 3.
    #   wer   (min): a .1 -> 1, b .2 -> 2, captioner missing -> 3
    #   spider(max): captioner .4 -> 1, a .3 -> 2, b .2 -> 3
    #   memory(min): all 100 -> 1, 1, 1
    #   latency(min): all 10 -> 1, 1, 1
    # weights 1,1,2,2: a 1+2+2+2 = 7, captioner 3+1+2+2 = 8, b 2+3+2+2 = 9
    runs = [
        make_run("a", wer=0.1, spider=0.3, memory=100, latency=10),
        make_run("b", wer=0.2, spider=0.2, memory=100, latency=10),
        make_run("captioner", asr=False, spider=0.4, memory=100, latency=10),
    ]
    rows = rank(runs)
    assert summary(rows) == [
        ("a", 1, 7.0, {"wer": 1, "spider": 2, "memory_mb": 1, "latency_ms": 1}),
        ("captioner", 2, 8.0, {"wer": 3, "spider": 1, "memory_mb": 1, "latency_ms": 1}),
        ("b", 3, 9.0, {"wer": 2, "spider": 3, "memory_mb": 1, "latency_ms": 1}),
    ]
    assert rows[1].criteria["wer"].value is None


def test_spider_present_for_some_runs_is_not_replaced_by_cider():
    # b has spider null but a cider_d: the criterion stays spider and b is missing (rank N=2).
    runs = [
        make_run("a", wer=0.1, spider=0.01, cider_d=0.02, memory=1, latency=1),
        make_run("b", wer=0.1, spider=None, cider_d=0.9, memory=1, latency=1),
    ]
    rows = {r.candidate: r for r in rank(runs)}
    assert rows["a"].criteria["spider"].rank == 1
    assert rows["b"].criteria["spider"].rank == 2
    assert rows["b"].criteria["spider"].value is None
    assert rows["b"].criteria["spider"].metric == "spider"


def test_cider_d_fallback_when_spider_null_everywhere():
    # spider is null for every run -> CIDEr-D ranked instead (higher better), N = 3:
    #   cider_d: b .0312 -> 1, a .0100 -> 2, asr_only (no aac) -> 3
    #   wer: a .1 -> 1, b .2 -> 2, asr_only .3 -> 3; memory, latency all tie -> 1
    # weights 1,1,2,2: a 1+2+2+2 = 7, b 2+1+2+2 = 7, asr_only 3+3+2+2 = 10
    runs = [
        make_run("a", wer=0.1, cider_d=0.0100, memory=5, latency=5),
        make_run("b", wer=0.2, cider_d=0.0312, memory=5, latency=5),
        make_run("asr_only", wer=0.3, aac=False, memory=5, latency=5),
    ]
    rows = rank(runs)
    assert [(r.candidate, r.rank, r.score) for r in rows] == [
        ("a", 1, 7.0),
        ("b", 1, 7.0),
        ("asr_only", 3, 10.0),
    ]
    assert {r.criteria["spider"].metric for r in rows} == {"cider_d"}
    assert [r.criteria["spider"].rank for r in rows] == [2, 1, 3]

    table = to_table(rows, "table")
    assert "CIDEr-D (SPIDEr n/a)" in table
    assert "0.0312 (1)" in table and "n/a (3)" in table
    assert (
        "Score = 1xWER(↓) + 1xCIDEr-D(↑, SPICE unavailable) + 2xMemory(↓) "
        "+ 2xLatency(↓); lower score is better"
    ) in table
    assert to_json(rows)[1]["criteria"]["spider"] == {
        "value": 0.0312,
        "rank": 1,
        "metric": "cider_d",
    }
    assert "cider_d,cider_d_rank" in to_table(rows, "csv").splitlines()[0]


def test_rank_uses_newest_run_and_skips_failed():
    runs = [
        make_run("a", wer=0.9, created_at="2026-11-25T01:00:00+00:00", run_id="r-old"),
        make_run("a", wer=0.1, created_at="2026-11-25T02:00:00+00:00", run_id="r-new"),
        make_run(
            "a", wer=0.5, created_at="2026-11-25T03:00:00+00:00", run_id="r-fail", status="failed"
        ),
    ]
    (row,) = rank(runs)
    assert (row.run_id, row.criteria["wer"].value) == ("r-new", 0.1)


def test_empty_input_gives_no_rows():
    assert rank([]) == []
    assert to_table([], "table") == "No runs to rank."


# ---------------------------------------------------------------- results loading


def test_latest_per_candidate_by_created_at_then_run_id():
    runs = [
        # Later instant although the string sorts earlier (+01:00 offset): 01:30Z vs 01:00Z.
        make_run("a", created_at="2026-11-25T02:30:00+01:00", run_id="a-1"),
        make_run("a", created_at="2026-11-25T01:00:00Z", run_id="a-9"),
        # Same created_at -> run_id decides.
        make_run("b", created_at="2026-11-25T01:00:00+00:00", run_id="b-1"),
        make_run("b", created_at="2026-11-25T01:00:00+00:00", run_id="b-2"),
        # A null created_at counts as oldest.
        make_run("c", created_at=None, run_id="c-9"),
        make_run("c", created_at="2026-01-01T00:00:00+00:00", run_id="c-1"),
    ]
    assert [r["run_id"] for r in latest_per_candidate(runs)] == ["a-1", "b-2", "c-1"]


def test_load_runs_newest_wins(tmp_path):
    write_run(
        tmp_path,
        make_run("a", wer=0.5, created_at="2026-11-24T00:00:00+00:00", run_id="20261124-a"),
    )
    write_run(
        tmp_path,
        make_run("a", wer=0.2, created_at="2026-11-25T00:00:00+00:00", run_id="20261125-a"),
    )
    write_run(tmp_path, make_run("b", wer=0.3, run_id="20261125-b"))
    runs, warnings = load_runs(tmp_path)
    assert warnings == []
    rows = rank(runs, "wer=1")
    assert [(r.candidate, r.run_id, r.criteria["wer"].value) for r in rows] == [
        ("a", "20261125-a", 0.2),
        ("b", "20261125-b", 0.3),
    ]


def test_corrupt_records_warn_and_do_not_crash(tmp_path):
    good = write_run(tmp_path, make_run("good", wer=0.1, memory=1, latency=1))
    bad_json = write_run(tmp_path, "{not json", folder="bad-json")
    no_candidate = make_run("x")
    del no_candidate["candidate"]
    missing = write_run(tmp_path, no_candidate, folder="no-candidate")
    not_object = write_run(tmp_path, "[1, 2]", folder="a-list")
    bad_status = write_run(tmp_path, make_run("y", status="weird"), folder="bad-status")
    failed = write_run(tmp_path, make_run("z", status="failed", run_id="z-run"))
    (tmp_path / "in-progress").mkdir()  # no run.json: ignored silently
    (tmp_path / "notes.txt").write_text("not a run folder")

    runs, warnings = load_runs(tmp_path)
    assert [r["candidate"] for r in runs] == ["good"]
    assert len(warnings) == 5
    joined = "\n".join(warnings)
    for path in (bad_json, missing, not_object, bad_status, failed):
        assert str(path) in joined
    assert str(good) not in joined
    assert "not valid JSON" in joined
    assert "missing required key(s): candidate" in joined
    assert "failed; not ranked" in joined
    assert [r.candidate for r in rank(runs)] == ["good"]


def test_load_runs_missing_dir(tmp_path):
    runs, warnings = load_runs(tmp_path / "nope")
    assert runs == [] and len(warnings) == 1 and "does not exist" in warnings[0]


def test_non_numeric_metric_is_missing_not_a_crash():
    run = make_run("a", wer=0.1, memory=1, latency=1)
    run["efficiency"]["latency_ms"] = "n/a"
    run["suites"]["asr"]["metrics"] = None
    (row,) = rank([run])
    assert row.criteria["latency_ms"].value is None
    assert row.criteria["wer"].value is None


# ---------------------------------------------------------------- weights


def test_parse_weights_profile_string_and_aliases():
    expected = {"wer": 1.0, "spider": 1.0, "memory_mb": 2.0, "latency_ms": 2.0, "extra": 1.0}
    assert parse_weights() == expected
    assert parse_weights("competition") == parse_weights("competition-exact") == expected
    assert parse_weights("wer=1, spider=1, memory=2, latency=2, extra=1") == expected
    assert parse_weights("memory_mb=3") == {
        "wer": 0.0,
        "spider": 0.0,
        "memory_mb": 3.0,
        "latency_ms": 0.0,
        "extra": 0.0,
    }
    assert parse_weights({"latency": 0.5})["latency_ms"] == 0.5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("wer=1,bleu=2", "unknown criterion 'bleu'"),
        ("wer=abc", "not a number"),
        ("wer=-1", ">= 0"),
        ("wer=nan", ">= 0"),
        ("wer=1,wer=2", "more than once"),
        ("wer=1,,spider=1", "expected NAME=NUMBER"),
        ("wer=0,spider=0", "at least one weight"),
        ("fancy", "unknown weight profile"),
        ("", "unknown weight profile"),
    ],
)
def test_parse_weights_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_weights(spec)


def test_fractional_weights_tie_exactly():
    # 0.1*3 + 0 vs 0.3*1 ... both 0.3: float noise must not break the tie.
    runs = [
        make_run("a", wer=0.3, spider=0.9, memory=1, latency=1),
        make_run("b", wer=0.1, spider=0.1, memory=1, latency=1),
        make_run("c", wer=0.2, spider=0.5, memory=1, latency=1),
    ]
    # wer ranks: b 1, c 2, a 3; spider ranks: a 1, c 2, b 3
    # weights wer=0.1, spider=0.1: a 0.3+0.1 = 0.4, b 0.1+0.3 = 0.4, c 0.2+0.2 = 0.4
    rows = rank(runs, "wer=0.1,spider=0.1")
    assert [(r.candidate, r.rank) for r in rows] == [("a", 1), ("b", 1), ("c", 1)]
    assert {r.score for r in rows} == {0.4}


# ---------------------------------------------------------------- rendering


def test_json_shape():
    rows = rank(four_runs(), baseline=None)  # no reference: no deltas
    out = to_json(rows)
    json.dumps(out)  # serializable
    assert out[0] == {
        "candidate": "asr_only",
        "run_id": "20261125-014500-asr_only-0000",
        "rank": 1,
        "score": 13.0,
        "criteria": {
            "wer": {"value": 0.08, "rank": 1},
            "spider": {"value": None, "rank": 4, "metric": "spider"},
            "memory_mb": {"value": 700.0, "rank": 3},
            "latency_ms": {"value": 20.0, "rank": 1},
        },
        "coverage": None,  # these hand-written records carry no sample counts
    }


def test_table_and_markdown_cells_and_footer():
    rows = rank(four_runs(), baseline=None)
    for fmt in ("table", "markdown"):
        text = to_table(rows, fmt)
        assert "SPIDEr" in text and "CIDEr-D (SPIDEr n/a)" not in text
        assert "0.080 (1)" in text  # WER 3 decimals
        assert "0.3000 (1)" in text  # SPIDEr 4 decimals
        assert "n/a (4)" in text
        assert "1000.0 (4)" in text and "20.0 (1)" in text
        assert (
            "Score = 1xWER(↓) + 1xSPIDEr(↑) + 2xMemory(↓) + 2xLatency(↓); lower score is better"
        ) in text
    assert to_table(rows, "markdown").startswith("|   Rank | Candidate   |")


def test_csv_has_raw_columns_and_no_footer():
    lines = to_table(rank(four_runs(), baseline=None), "csv").splitlines()
    assert lines[0] == (
        "rank,candidate,run_id,score,wer,wer_rank,spider,spider_rank,"
        "memory_mb,memory_mb_rank,latency_ms,latency_ms_rank"
    )
    assert lines[1] == "1,asr_only,20261125-014500-asr_only-0000,13,0.08,1,,4,700.0,3,20.0,1"
    assert len(lines) == 5 and not any("Score =" in line for line in lines)


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        to_table([], "html")


def test_unscored_criteria_are_named_in_footer():
    text = to_table(rank(four_runs(), "wer=1"), "table")
    assert (
        "Score = 1xWER(↓); lower score is better (shown, not scored: SPIDEr, Memory, Latency)"
    ) in text


# ---------------------------------------------------------------- import hygiene


def test_import_does_not_pull_torch_or_pandas():
    code = (
        "import leaderboard, sys; "
        "bad = [m for m in ('torch', 'transformers', 'harness', 'candidates', 'pandas') "
        "if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_random_weight_runs_are_marked_in_table_and_json():
    runs = four_runs()
    runs[1]["candidate_info"] = {"weights": "random"}  # as the salmonn and tiny families write it
    rows = rank(runs, baseline=None)
    marked = [r.candidate for r in rows if r.random_weights]
    assert marked == [runs[1]["candidate"]]
    text = to_table(rows)
    assert f"{runs[1]['candidate']} (random weights)" in text
    assert "(random weights): a built-in tiny model with random weights" in text
    items = {item["candidate"]: item for item in to_json(rows)}
    assert items[runs[1]["candidate"]]["random_weights"] is True
    assert all("random_weights" not in item for name, item in items.items() if name != runs[1]["candidate"])
    assert "random weights" not in to_table(rank(four_runs(), baseline=None))
