"""A crash, a kill or a hang of the measured child is recorded with its cause; what was
predicted before stays in the record."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, bench, run_record_path

GOOD = sorted((REPO / "harness" / "data" / "demo_data" / "speech").iterdir())[0]


def data_with(tmp_path, fatal_id: str):
    path = tmp_path / f"{fatal_id}.json"
    entries = [{"testset_id": f"ok{i}", "path": str(GOOD), "task": "asr", "text": "hello world"} for i in range(2)]
    entries.append({"testset_id": fatal_id, "path": str(GOOD), "task": "asr", "text": "x"})
    entries.append({"testset_id": "after", "path": str(GOOD), "task": "asr", "text": "x"})
    path.write_text(json.dumps({"annotation": entries}))
    return path


@pytest.mark.parametrize("fatal_id, extra, cause", [
    ("crash", [], "child exited with status 3; see worker.log"),
    ("sigkill", [], "child killed by SIGKILL (the out-of-memory killer sends this)"),
    ("hang", ["--timeout-s", "15"], "killed after exceeding --timeout-s"),
])
def test_child_death_is_recorded_and_predictions_kept(plugin_site, tmp_path, fatal_id, extra, cause):
    out = bench("run", "-c", "echo", "--data", str(data_with(tmp_path, fatal_id)), "--warmup", "0",
                "--results", str(tmp_path / "r"), *extra, env=plugin_site)
    assert out.returncode == 1  # the run did not finish cleanly
    record = json.loads(run_record_path(out.stdout).read_text())
    assert record["status"] == "partial" and record["error"] == cause
    suite = record["suites"]["asr"]
    assert suite["n_predicted"] == 2 and suite["not_run"] == [fatal_id, "after"]
    assert suite["n_failed"] == 2 and suite["metrics_scored_only"]["wer"] == 0.0
    # The 2 samples that never ran count as empty predictions: 2 deletions over 6 words.
    assert suite["metrics"]["wer"] == pytest.approx(2 / 6) and suite["coverage"] == 0.5
    assert "Traceback" not in out.stderr
