"""A real vLLM (CPU build) serving a tiny random Qwen2-Audio: the `openai` candidate on the demo
ASR suite and a load test at concurrency 1 and 4. Needs the venv of scripts/make_vllm_venv.sh
(`$LALM_BENCH_VLLM_PYTHON`, else .vllm-venv/ in the repository); CI builds it."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import bench, run_record_path
from tests.test_openai_family import _toml
from tests.vllm_server import SERVED_NAME, tiny_model, vllm_python, vllm_server

pytest.importorskip("openai", reason="family 'openai' needs the openai client: pip install 'lalm-bench[openai]'")
PYTHON = vllm_python()
CONFIGURED = os.environ.get("LALM_BENCH_VLLM_PYTHON")  # set (as CI sets it): a missing venv fails, never skips
pytestmark = pytest.mark.skipif(
    PYTHON is None and not CONFIGURED,
    reason="no vLLM venv: build it with scripts/make_vllm_venv.sh (or set LALM_BENCH_VLLM_PYTHON to its python)",
)


@pytest.mark.slow
@pytest.mark.heavy
def test_openai_candidate_and_load_test_against_a_real_vllm(tmp_path):
    assert PYTHON is not None, (f"LALM_BENCH_VLLM_PYTHON={CONFIGURED} is not a file: build the venv with "
                                "scripts/make_vllm_venv.sh or unset the variable")
    model = tiny_model(PYTHON)
    results = tmp_path / "results"
    with vllm_server(PYTHON, model, tmp_path) as (url, pid):
        path = _toml(tmp_path, url, model=SERVED_NAME, server_pid=pid)
        run = bench("run", "-c", str(path), "--suite", "asr", "--limit", "5", "--warmup", "1",
                    "--results", str(results), timeout=600)
        load = bench("load", "-c", str(path), "--concurrency", "1,4", "--requests", "8", "--warmup", "1",
                     "--results", str(results), timeout=600)
    assert "Traceback" not in run.stderr, run.stderr
    record = json.loads(run_record_path(run.stdout).read_text())
    assert record["status"] == "ok", record["error"]
    suite, eff = record["suites"]["asr"], record["efficiency"]
    assert suite["n_scored"] == 5 and suite["metrics"]["wer"] is not None  # random weights: WER is noise
    assert eff["ttft_ms"]["n"] == 5
    _real_tpot_or_buffered(eff, "the run")
    assert eff["peak_memory_kind"] == "server_rss_peak" and eff["peak_memory_mb"] > 500
    assert record["candidate_info"]["audio_probe"]["verdict"].startswith("audio used: +")
    predictions = [json.loads(x) for x in (run_record_path(run.stdout).parent / "predictions.jsonl").read_text().splitlines()]
    # Tokens are counted by the server; Qwen2-Audio adds prompt tokens with the audio (25 per second).
    by_length = sorted(predictions, key=lambda p: p["audio_s"])
    assert by_length[0]["info"]["prompt_tokens"] < by_length[-1]["info"]["prompt_tokens"]
    assert all(p["n_tokens"] == p["info"]["completion_tokens"] for p in predictions)

    assert load.returncode == 0, load.stdout + load.stderr
    load_record = json.loads(run_record_path(load.stdout).read_text())
    one, four = load_record["load"]["levels"]
    assert one["ok"] == 8 and four["ok"] == 8 and one["errors"] == four["errors"] == 0
    assert four["output_tokens_per_s"] > 0 and four["ttft_ms"]["p99"] >= four["ttft_ms"]["p50"]
    for level in (one, four):
        _real_tpot_or_buffered(level, f"load level c={level['concurrency']}")
    print(  # the numbers the served-models note quotes (pytest -s shows them)
        f"\nvLLM run: TTFT p50 {eff['ttft_ms']['p50']:.1f} ms, TPOT p50 {_ms(eff['tpot_ms']['p50'])}, "
        f"server peak RSS {eff['peak_memory_mb']:.0f} MB, WER {suite['metrics']['wer']:.3f}\n"
        + "\n".join(
            f"vLLM load c={lv['concurrency']}: {lv['requests_per_s']:.2f} req/s, {lv['output_tokens_per_s']:.1f} tok/s, "
            f"TTFT p50/p90/p99 {lv['ttft_ms']['p50']:.0f}/{lv['ttft_ms']['p90']:.0f}/{lv['ttft_ms']['p99']:.0f} ms, "
            f"TPOT p50 {_ms(lv['tpot_ms']['p50'])}, ITL p50/p99 {lv['itl_chunk_ms']['p50']:.1f}/{lv['itl_chunk_ms']['p99']:.1f} ms"
            for lv in (one, four))
    )


def _real_tpot_or_buffered(block: dict, what: str) -> None:
    """A tiny model on a CPU vLLM needs well over 1 ms per decode step: either its TPOT is real (all
    requests timed, none under 1 ms), or the stream came buffered and TPOT is unavailable with the
    reason; never the near-zero gap between chunks that arrived together."""
    reason = block.get("tpot_unavailable_reason")
    if reason:
        assert block["tpot_ms"]["p50"] is None and "arrived as a buffered stream" in reason, (what, block)
    else:
        assert block["tpot_ms"]["n"] > 0 and block["tpot_ms"]["p50"] >= 1.0, (what, block["tpot_ms"])


def _ms(value: float | None) -> str:
    return "n/a (buffered stream)" if value is None else f"{value:.2f} ms"
