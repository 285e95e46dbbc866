"""Real runs of every built-in candidate on demo samples, in real child processes.

Each candidate runs once per test session (module fixture); the tests then check the run
record's schema, the memory fields, and the leaderboard over the three runs.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import bench, run_record_path

pytestmark = pytest.mark.slow

# 2 samples per suite (CIDEr-D needs 2 clips); whisper-tiny does asr only.
RUNS = {"baseline": "2", "qlora4bit": "2", "whisper-tiny": "2"}
# heavy: tests/test_recipes.py covers the recipe steps in process, tests/test_families.py the
# qwen2-audio family in process (test_tiny_streams_batches_and_steps)
HEAVY_RUNS = {"qwen2-audio-tiny": "2", "int8": "2", "pruned": "2"}

REQUIRED = {
    "": ["schema_version", "run_id", "candidate", "created_at", "status", "protocol", "environment", "suites", "efficiency"],
    "environment": ["python", "torch", "transformers", "device", "device_name", "threads", "git_sha"],
    "efficiency": ["ttft_ms", "tpot_ms", "e2e_ms", "latency_ms", "peak_memory_mb", "weights_mb", "tokens_per_s", "rtfx"],
    "efficiency.ttft_ms": ["p50", "p90", "mean", "stdev"],
    "efficiency.tpot_ms": ["p50", "p90", "mean", "stdev"],
}
PREDICTION_KEYS = {"sample_id", "task", "prediction", "reference", "n_tokens", "ttft_ms", "e2e_ms", "error"}


def _run_all(results, names: dict[str, str]) -> dict:
    records = {}
    for name, limit in names.items():
        out = bench("run", "--candidate", name, "--limit", limit, "--warmup", "1", "--results", str(results))
        assert out.returncode == 0, f"{name}:\n{out.stdout}\n{out.stderr}"
        path = run_record_path(out.stdout)
        records[name] = (json.loads(path.read_text()), path.parent)
    return records


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    return results, _run_all(results, RUNS)


@pytest.fixture(scope="module")
def heavy_runs(tmp_path_factory):
    return _run_all(tmp_path_factory.mktemp("heavy_results"), HEAVY_RUNS)


def _get(record: dict, dotted: str):
    for part in filter(None, dotted.split(".")):
        record = record[part]
    return record


@pytest.mark.parametrize("name", [*RUNS, pytest.param("qwen2-audio-tiny", marks=pytest.mark.heavy)])
def test_run_record_schema(request, runs, name):
    record, folder = runs[1][name] if name in RUNS else request.getfixturevalue("heavy_runs")[name]
    for where, keys in REQUIRED.items():
        block = _get(record, where)
        missing = [k for k in keys if k not in block]
        assert not missing, f"{name}: {where or 'top level'} lacks {missing}"
    assert record["status"] == "ok" and record["environment"]["threads"] == 1
    for suite in record["suites"].values():
        assert {"dataset", "n_samples", "n_failed", "metrics"} <= set(suite)
        assert suite["n_failed"] == 0
    lines = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == int({**RUNS, **HEAVY_RUNS}[name]) * len(record["suites"])
    for line in lines:
        assert PREDICTION_KEYS <= set(line) and line["error"] is None and line["ttft_ms"] > 0


def test_suites_and_metrics(runs):
    records = {name: rec for name, (rec, _) in runs[1].items()}
    assert set(records["baseline"]["suites"]) == {"asr", "aac", "mcq", "qa"}
    assert set(records["whisper-tiny"]["suites"]) == {"asr"}
    aac = records["baseline"]["suites"]["aac"]["metrics"]
    assert aac["cider_d"] is not None and aac["spider"] is None and aac["spice"] is None
    # A real model on clean synthetic speech; the tiny random models produce noise.
    assert records["whisper-tiny"]["suites"]["asr"]["metrics"]["wer"] < 0.35
    assert records["baseline"]["suites"]["asr"]["metrics"]["wer"] > 0.9


@pytest.mark.heavy
def test_recipes_are_recorded_and_shrink_weights(runs, heavy_runs):
    records = {name: rec for name, (rec, _) in {**runs[1], **heavy_runs}.items()}
    base = records["baseline"]["efficiency"]["weights_mb"]
    assert records["int8"]["recipe_applied"] == [{"step": "int8-dynamic:llm"}]
    assert records["int8"]["efficiency"]["weights_mb"] < 0.6 * base
    pruned = records["pruned"]["recipe_applied"][0]
    assert pruned["layers_after"] == pruned["layers_before"] - 2 and len(pruned["dropped_layers"]) == 2
    assert records["pruned"]["calibration_ids"] == ["asr0001", "asr0002"]  # --limit 2
    assert records["pruned"]["efficiency"]["weights_mb"] < base
    assert set(records["qwen2-audio-tiny"]["suites"]) == {"asr", "aac"}


def test_memory_fields(runs):
    base = runs[1]["baseline"][0]["efficiency"]
    nf4 = runs[1]["qlora4bit"][0]["efficiency"]
    assert nf4["weights_mb"] < 0.6 * base["weights_mb"]  # LLM linears are about 2/3 of the weights
    for eff in (base, nf4):
        assert eff["peak_memory_mb"] > 0 and eff["peak_memory_kind"] == "cpu_rss_peak_above_baseline"
        assert eff["memory"]["rss_peak_total_mb"] >= eff["peak_memory_mb"]
    # streaming decoders have a TPOT; faster-whisper (one segment per clip) does not
    assert base["tpot_ms"]["p50"] > 0
    whisper = runs[1]["whisper-tiny"][0]["efficiency"]
    assert whisper["tpot_ms"]["p50"] is None and "latency_note" in whisper


def test_leaderboard_over_real_runs(runs):
    results = runs[0]
    out = bench("leaderboard", "--results", str(results), "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = {r["candidate"]: r for r in json.loads(out.stdout)}
    assert set(rows) == set(RUNS)
    assert rows["whisper-tiny"]["criteria"]["wer"]["rank"] == 1
    assert rows["whisper-tiny"]["criteria"]["spider"] == {"value": None, "rank": len(RUNS), "metric": "cider_d"}
    table = bench("leaderboard", "--results", str(results))
    assert "CIDEr-D" in table.stdout and "whisper-tiny" in table.stdout


def test_roofline_for_decoders_only(runs):
    for name in ("baseline", "qlora4bit"):
        roof = runs[1][name][0]["efficiency"]["roofline"]
        assert roof["bandwidth_gbps"] > 0 and roof["tpot_bound_ms"] > 0
        assert roof["tpot_over_bound"] > 1  # nothing decodes faster than it can read its weights
    nf4 = runs[1]["qlora4bit"][0]["efficiency"]["roofline"]
    base = runs[1]["baseline"][0]["efficiency"]["roofline"]
    assert nf4["decoder_weights_mb"] < base["decoder_weights_mb"] / 4
    assert runs[1]["whisper-tiny"][0]["efficiency"]["roofline"] is None


@pytest.mark.heavy  # test_whisper_hf keeps a nota2025 run in the default suite
def test_nota2025_profile_real_run(runs, tmp_path):
    out = bench("run", "-c", "baseline", "--protocol", "nota2025", "--limit", "2", "--results", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    eff = record["efficiency"]
    assert record["protocol"] == "nota2025" and eff["supported"] and eff["iterations"] == 10
    assert len(eff["ttft_ms"]["values"]) == 10 and eff["tpot_ms"]["mean"] > 0
    assert eff["latency_ms"] == pytest.approx(eff["ttft_ms"]["mean"] + eff["tpot_ms"]["mean"])
    assert eff["peak_memory_mb"] > 0
    aac = record["suites"]["aac"]["metrics"]
    assert aac["spider"] == aac["cider_d"] and aac["n_references"] == 1
