"""The harness's own floors: the null candidate, `doctor`, `run --repeat`."""

from __future__ import annotations

import json

import pytest

from tests.conftest import bench, run_record_path


@pytest.mark.slow
@pytest.mark.heavy  # a probe subprocess per optional backend: ~1 min
def test_doctor_reports_floors_and_backends(tmp_path):
    out = bench("doctor", "--format", "json", "--results", str(tmp_path))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    # The harness's own memory above the baseline (decoding, buffers, records): ~1.2 MB here,
    # where it was ~70 MB before scipy.signal and the first decode moved before the baseline.
    assert 0 <= report["null_peak_memory_mb"] < 5
    assert report["null_ttft_ms"]["p50"] > 0
    assert report["clock_min_step_ns"] > 0 and report["copy_bandwidth_gbps"] > 0
    assert report["backends"]["torch"]["ok"] and set(report["backends"]) >= {"bitsandbytes", "ray", "fastapi"}
    record = json.loads((next(tmp_path.glob("*/run.json"))).read_text())
    assert record["candidate"] == "null" and record["status"] == "ok"
    assert record["suites"]["asr"]["n_samples"] == 10  # doctor's default --limit


def test_repeat_records_every_run_and_ranks_the_median(tmp_path):
    out = bench("run", "-c", "null", "--repeat", "3", "--limit", "3", "--warmup", "1", "--results", str(tmp_path))
    assert out.returncode == 0, out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    eff = record["efficiency"]
    repeats = eff["repeats"]
    assert repeats["n"] == 3 and repeats["errors"] == []
    for key in ("latency_ms", "peak_memory_mb"):
        values = repeats[key]["values"]
        assert len(values) == 3
        assert repeats[key]["min"] == min(values) and repeats[key]["max"] == max(values)
        assert eff[key] == repeats[key]["p50"] == sorted(values)[1]
    assert len(repeats["ttft_ms"]["values"]) == 3 and repeats["ttft_ms"]["values"][0] == eff["ttft_ms"]["p50"]
    # the printed TTFT is the median over the runs, as the latency beside it (not run 1's)
    assert f"TTFT p50 {sorted(repeats['ttft_ms']['values'])[1]:.1f} ms" in out.stdout
    assert "medians of 3 runs" in out.stdout
    run_dir = run_record_path(out.stdout).parent
    assert sorted(p.name for p in (run_dir / "repeats").iterdir()) == ["2", "3"]
    assert record["settings"]["repeat"] == 3


def test_repeat_of_a_batched_run_only_times(tmp_path):
    out = bench("run", "-c", "null", "--suite", "asr", "--repeat", "2", "--limit", "4", "--batch-size", "2",
                "--efficiency-samples", "2", "--warmup", "0", "--results", str(tmp_path))
    assert out.returncode == 0, out.stderr
    run_dir = run_record_path(out.stdout).parent
    record = json.loads((run_dir / "run.json").read_text())
    assert record["efficiency"]["repeats"]["n"] == 2 and len(record["efficiency"]["repeats"]["latency_ms"]["values"]) == 2
    repeat = run_dir / "repeats" / "2"
    timed = [json.loads(line)["sample_id"] for line in (repeat / "timings.jsonl").read_text().splitlines()]
    assert sorted(timed) == sorted(record["efficiency"]["timing"]["timed_samples"]["asr"])
    # the repeat re-used the run's predictions: no quality pass of its own
    assert (repeat / "predictions.jsonl").read_text() == (run_dir / "predictions.jsonl").read_text()
