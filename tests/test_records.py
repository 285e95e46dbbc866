"""The typed records: each reads what earlier versions wrote, writes it back unchanged (unknown
keys included), and is the one form its writer and readers share."""

from __future__ import annotations

import pytest

from records.job import JobFile
from records.prediction import Prediction, as_prediction
from records.run_record import RunRecord, as_run_record
from records.schema import SCHEMA_VERSION, RecordError
from records.worker_summary import WorkerSummary


def test_a_prediction_line_round_trips_with_keys_this_version_does_not_know():
    line = {"sample_id": "a", "task": "asr", "prediction": "hi", "references": ["hi there"], "reference": "hi there",
            "n_tokens": 2, "ttft_ms": 1.5, "tpot_ms": 0.5, "e2e_ms": 2.0, "audio_s": 1.0, "error": None,
            "chunks": 2, "overlap_s": 2.0, "audio_window_s": 30.0, "from_a_newer_writer": {"x": 1}}
    prediction = Prediction.from_dict(line)
    assert (prediction.chunks, prediction.extra) == (2, {"from_a_newer_writer": {"x": 1}})
    assert prediction.to_dict() == line
    assert as_prediction(line) == prediction and as_prediction(prediction) is prediction


def test_a_failed_prediction_keeps_its_always_present_keys_null():
    out = Prediction("b", "aac", [], error="bad audio").to_dict()
    assert out == {"sample_id": "b", "task": "aac", "prediction": None, "references": [], "reference": None,
                   "n_tokens": None, "ttft_ms": None, "tpot_ms": None, "e2e_ms": None, "audio_s": None,
                   "error": "bad audio"}


def test_an_old_job_file_reads_with_its_renamed_option_and_default_long_audio():
    old = {"run_id": "r", "run_dir": "/x", "created_at": "2026-01-01T00:00:00+00:00",
           "options": {"candidate": "null", "profile": "nota2025"}, "spec": {"name": "null"}, "device": "cpu",
           "warmup": 0, "suites": [{"name": "asr", "prompt": "p", "max_new_tokens": 8, "dataset": "demo:asr",
                                    "samples": [{"sample_id": "a", "audio_path": "a.wav", "references": ["x"]}],
                                    "skipped": [{"where": "f:3", "reason": "missing", "sample_id": "b"}]}]}
    job = JobFile.from_dict(old)
    assert job.options["protocol"] == "nota2025" and "profile" not in job.options
    assert job.suites[0].long_audio == "truncate"  # what families did before --long-audio existed
    assert job.suites[0].skipped[0].references == []
    assert JobFile.from_dict(job.to_dict()) == job


def test_a_worker_summary_leaves_out_what_was_not_measured():
    summary = WorkerSummary(status="failed", device="cpu", error="load failed: OSError: x")
    assert summary.to_dict() == {"status": "failed", "device": "cpu", "error": "load failed: OSError: x"}
    assert WorkerSummary.from_dict(summary.to_dict()) == summary and not summary.ok


def test_a_run_record_from_before_the_rename_reads_typed_and_by_key():
    old = {"run_id": "r1", "candidate": "c", "status": "partial", "profile": "nota2025", "suites": {"asr": {"n": 1}},
           "a_plugin_key": [1, 2]}
    record = as_run_record(old)
    assert (record.protocol, record.schema_version, record.suite("asr"), record.suite("aac")) == \
        ("nota2025", SCHEMA_VERSION, {"n": 1}, {})
    assert record["status"] == "partial" and record.get("a_plugin_key") == [1, 2] and "load" not in record
    assert record.to_dict()["a_plugin_key"] == [1, 2] and "kind" not in record.to_dict()
    assert RunRecord.from_dict(record.to_dict()) == record


@pytest.mark.parametrize("bad, problem", [
    ([], "expected a JSON object"),
    ({"run_id": "r", "candidate": "c"}, "missing required key(s): status"),
    ({"run_id": "r", "candidate": "c", "status": "done"}, "unknown status 'done'"),
    ({"run_id": "r", "candidate": "c", "status": "ok", "schema_version": 99}, "unsupported schema_version 99"),
    ({"run_id": "r", "candidate": "c", "status": "ok", "suites": [1]}, "'suites' must be an object or null"),
])
def test_an_unusable_run_record_is_refused_naming_the_file(bad, problem):
    with pytest.raises(RecordError, match="results/x/run.json: ") as err:
        RunRecord.from_dict(bad, where="results/x/run.json")
    assert problem in str(err.value)
