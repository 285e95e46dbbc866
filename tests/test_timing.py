"""TTFT/TPOT definitions checked exactly on a scripted clock."""

from __future__ import annotations

import pytest

from harness.measure.timing import TokenTimer, latency_ms, summarize


class FakeClock:
    def __init__(self, times: list[float]):
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def timed(times: list[float], tokens: list[int]):
    """start at times[0], one callback per entry of `tokens` at the next times, finish at the last."""
    timer = TokenTimer(clock=FakeClock(times))
    timer.start()
    for count in tokens:
        timer.on_token(count)
    return timer.finish()


def test_streaming_request_follows_vllm_definitions():
    # start 10.0, tokens at 10.5, 10.6, 10.8, 11.1, end 11.2
    t = timed([10.0, 10.5, 10.6, 10.8, 11.1, 11.2], [1, 1, 1, 1])
    assert t.ttft_s == pytest.approx(0.5)
    assert t.tpot_s == pytest.approx((11.1 - 10.5) / 3)  # (t_last - t_first) / (n - 1)
    assert t.e2e_s == pytest.approx(1.2)
    assert t.n_tokens == 4


def test_single_token_has_no_tpot():
    t = timed([0.0, 0.25, 0.3], [1])
    assert t.ttft_s == pytest.approx(0.25)
    assert t.tpot_s is None


def test_non_streaming_engine_reports_tpot_na_not_zero():
    # All 12 tokens arrive in one callback at the end.
    t = timed([0.0, 2.0, 2.0], [12])
    assert t.ttft_s == pytest.approx(2.0)
    assert t.tpot_s is None
    assert t.n_tokens == 12


def test_chunked_stream_divides_by_tokens_after_the_first_chunk():
    # 5 tokens at 1.0, then 3 more at 1.6: 0.6 s for 3 tokens.
    t = timed([0.0, 1.0, 1.6, 1.7], [5, 3])
    assert t.tpot_s == pytest.approx(0.2)


def test_served_chunks_take_the_token_count_from_the_engine():
    # A server streams 3 chunks (callbacks) at 1.0, 1.3, 1.6 s but reports 7 completion tokens:
    # TPOT = (t_last - t_first) / (completion_tokens - 1), vLLM's definition, never per chunk.
    timer = TokenTimer(clock=FakeClock([0.0, 1.0, 1.3, 1.6, 1.7]))
    timer.start()
    for _ in range(3):
        timer.on_token()
    t = timer.finish(7)
    assert t.ttft_s == pytest.approx(1.0)
    assert t.tpot_s == pytest.approx(0.6 / 6)
    assert t.n_tokens == 7


def test_no_tokens_at_all():
    t = timed([0.0, 0.4], [])
    assert t.ttft_s is None and t.tpot_s is None and t.e2e_s == pytest.approx(0.4)


def test_sync_runs_before_every_clock_read():
    calls = []
    timer = TokenTimer(clock=FakeClock([0.0, 1.0, 2.0, 3.0]), sync=lambda: calls.append(1))
    timer.start()
    timer.on_token()
    timer.on_token()
    timer.finish()
    assert len(calls) == 4


def test_summary_percentiles_and_latency():
    # numpy linear percentiles of [10, 20, 30, 40, 50]: p50 30, p90 46
    ttft = summarize([10.0, 20.0, None, 30.0, 40.0, 50.0])
    assert (ttft["p50"], ttft["p90"], ttft["mean"], ttft["n"]) == (30.0, pytest.approx(46.0), 30.0, 5)
    tpot = summarize([2.0, 4.0])
    assert latency_ms(ttft, tpot) == pytest.approx(33.0)
    assert latency_ms(ttft, summarize([None, None])) == 30.0  # TPOT n/a: TTFT alone
    assert summarize([None])["p50"] is None
