"""`bench.py load` against the scripted streaming server: levels, throughput, errors, distinct
audio per request, and load records beside ranked runs in `leaderboard` and `report`."""

from __future__ import annotations

import json

import pytest

from tests.conftest import bench, run_record_path
from tests.scripted_openai_server import recorded_requests, running
from tests.test_openai_family import _toml

pytest.importorskip("openai", reason="family 'openai' needs the openai client: pip install 'lalm-bench[openai]'")

SCRIPT = {"first_delay_s": 0.25, "gap_s": 0.02, "failures": {"4": "500"}}


@pytest.mark.slow
def test_load_levels_errors_distinct_audio_and_the_report(tmp_path):
    results = tmp_path / "results"
    with running(SCRIPT) as (url, pid):
        path = _toml(tmp_path, url, server_pid=pid)
        out = bench("load", "-c", str(path), "--concurrency", "1,4", "--requests", "8", "--warmup", "1",
                    "--results", str(results), timeout=300)
        asked = [a for a in recorded_requests(url) if a.get("stream")]
    assert out.returncode == 1, out.stderr  # one request met a 500: status partial
    assert "status partial" in out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    assert record["kind"] == "load" and record["status"] == "partial"
    one, four = record["load"]["levels"]
    assert (one["concurrency"], four["concurrency"]) == (1, 4)
    # Streamed request 4 (after 1 warm-up) is the 3rd of level 1: one error there, with its reason.
    assert one["ok"] == 7 and one["errors"] == 1 and four["ok"] == 8 and four["errors"] == 0
    [(reason, count)] = one["error_reasons"].items()
    assert count == 1 and reason.startswith("ServedModelError: HTTP 500") and "scripted internal error" in reason
    # The server sleeps, it does not compute: 4 clients finish about 4x the requests per second.
    assert four["requests_per_s"] > 2 * one["requests_per_s"]
    assert one["ttft_ms"]["p50"] == pytest.approx(250.0, rel=0.3)
    assert one["tpot_ms"]["p50"] == pytest.approx(5 * 20.0 / 8, rel=0.3)  # 6 chunks, 9 tokens
    assert one["output_tokens"] == 7 * 9 and set(one["ttft_ms"]) == {"p50", "p90", "p99", "mean", "n"}
    assert one["itl_chunk_ms"]["n"] == 7 * 6  # role chunk + 6 content chunks per request
    assert record["load"]["server_memory"]["peak_mb"] > 5.0
    # No two requests, warm-up included, sent the same audio bytes (servers cache audio by content).
    assert len(asked) == 17 and len({a["audio_sha256"] for a in asked}) == 17
    assert "TTFT ms p50/p90/p99" in out.stdout and "1 x ServedModelError: HTTP 500" in out.stdout

    # The leaderboard ranks no load record (and does not fall over one); the report plots it.
    board = bench("leaderboard", "--results", str(results))
    assert board.returncode == 0, board.stderr
    assert "scripted" not in board.stdout
    report = bench("report", "--results", str(results), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<h2>Load tests</h2>" in page and 'alt="Throughput against TTFT"' in page and "scripted" in page


@pytest.mark.slow
def test_duration_bounds_a_level_and_in_process_candidates_are_refused(tmp_path):
    with running({"first_delay_s": 0.2, "gap_s": 0.0}) as (url, _):
        out = bench("load", "-c", str(_toml(tmp_path, url)), "--concurrency", "1", "--requests", "200",
                    "--duration-s", "1", "--warmup", "0", "--results", str(tmp_path / "results"), timeout=300)
    assert out.returncode == 0, out.stderr
    [level] = json.loads(run_record_path(out.stdout).read_text())["load"]["levels"]
    assert 1 <= level["requests_sent"] < 20 and level["not_started_after_duration"] == 200 - level["requests_sent"]
    refused = bench("load", "-c", "whisper-tiny", "--requests", "1")
    assert refused.returncode != 0 and "runs in-process; `load` tests a served model" in refused.stderr
