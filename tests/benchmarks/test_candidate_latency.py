"""Regression benchmarks: TTFT and TPOT of a fixed demo request for each built-in candidate.

    pytest tests/benchmarks --benchmark-autosave                                   # record
    pytest tests/benchmarks --benchmark-compare --benchmark-compare-fail=median:25%  # gate
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.benchmarks.conftest import loaded

BUILTINS = ["baseline", "qlora4bit", "whisper-tiny"]


def _ignore_token(count: int = 1) -> None:
    pass


@pytest.mark.parametrize("name", BUILTINS)
def test_ttft(benchmark, demo_request, name):
    """Prefill and first token (max_new_tokens=1); for whisper-tiny, which is not streamed, the whole request."""
    candidate = loaded(name)
    benchmark.group = f"ttft:{name}"
    request = dataclasses.replace(demo_request, max_new_tokens=1)
    result = benchmark.pedantic(candidate.generate, args=(request, _ignore_token), rounds=7, warmup_rounds=1)
    assert result.text is not None


@pytest.mark.parametrize("name", ["baseline", "qlora4bit"])
def test_tpot(benchmark, demo_request, name):
    """One decode step with the KV cache, after a fresh prefill each round."""
    candidate = loaded(name)
    benchmark.group = f"tpot:{name}"
    benchmark.pedantic(
        candidate.decode_step, setup=lambda: ((candidate.prefill(demo_request),), {}), rounds=20, warmup_rounds=2
    )
