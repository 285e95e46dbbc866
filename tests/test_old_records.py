"""A run folder written before the typed records (tests/data/old_run, commit f78f741) still
loads, ranks and rescores, and reads back to exactly what was written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.commands.rescore import rescore_run
from leaderboard import load_runs, rank
from records import files
from records.run_record import RunRecord
from tests.conftest import bench

OLD = Path(__file__).parent / "data" / "old_run"
RUN_ID = "20261204-122328-null-4df873"


@pytest.fixture
def results(tmp_path) -> Path:
    shutil.copytree(OLD, tmp_path / "results", ignore=shutil.ignore_patterns("README.md"))
    return tmp_path / "results"


def test_the_old_record_reads_back_to_what_was_written():
    data = json.loads((OLD / RUN_ID / files.RUN_FILE).read_text())
    assert "schema_version" in data and "kind" not in data  # as the old writer wrote it
    assert RunRecord.from_dict(data).to_dict() == data
    job = files.read_job(OLD / RUN_ID / files.JOB_FILE)
    assert job.to_dict() == json.loads((OLD / RUN_ID / files.JOB_FILE).read_text())
    lines = files.read_jsonl(OLD / RUN_ID / files.PREDICTIONS_FILE)
    assert [p.to_dict() for p in files.read_predictions(OLD / RUN_ID / files.PREDICTIONS_FILE)] == lines
    assert files.read_worker_summary(OLD / RUN_ID).ok


def test_the_old_record_ranks(results):
    runs, warnings = load_runs(results)
    assert warnings == [] and [r.run_id for r in runs] == [RUN_ID]
    assert [(row.candidate, row.run_id) for row in rank(runs, "wer=1")] == [("null", RUN_ID)]
    out = bench("leaderboard", "--results", str(results), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert [row["candidate"] for row in json.loads(out.stdout)] == ["null"]


def test_the_old_record_rescores(results):
    run_dir = results / RUN_ID
    before = (run_dir / files.RUN_FILE).read_bytes()
    assert not rescore_run(run_dir).changed
    assert (run_dir / files.RUN_FILE).read_bytes() == before  # unchanged: not even rewritten

    path = run_dir / files.PREDICTIONS_FILE
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0]["prediction"] = lines[0]["references"][0]  # now exactly right
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = rescore_run(run_dir)
    assert result.changed and any(c.startswith("asr.wer: 1 -> ") for c in result.changes)
    old, new = json.loads(before), files.read_run_record(run_dir)
    assert new.suite("asr")["metrics"]["wer"] < 1.0 and new.history[-1]["metrics"]["asr"]["wer"] == 1.0
    # Everything but the scores is kept as the old writer wrote it.
    kept = {k: v for k, v in new.to_dict().items() if k not in ("suites", "coverage", "history")}
    assert kept == {k: v for k, v in old.items() if k not in ("suites", "coverage")}
