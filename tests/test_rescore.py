"""`bench.py rescore`: suite blocks rebuilt from predictions.jsonl and job.json, timings untouched."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.score import metrics
from tests.conftest import bench, run_record_path


@pytest.fixture(scope="module")
def finished_run(plugin_site, tmp_path_factory):
    """A real run of the echo plugin on 3 demo ASR samples (it answers "hello world")."""
    results = tmp_path_factory.mktemp("rescore")
    out = bench("run", "-c", "echo", "--limit", "3", "--warmup", "0", "--results", str(results), env=plugin_site)
    assert out.returncode == 0, out.stdout + out.stderr
    return run_record_path(out.stdout).parent


@pytest.fixture
def run_dir(finished_run, tmp_path):
    copy = tmp_path / "results" / finished_run.name
    shutil.copytree(finished_run, copy)
    return copy


def test_rescore_of_an_unchanged_run_reproduces_it_exactly(run_dir):
    before = (run_dir / "run.json").read_bytes()
    out = bench("rescore", run_dir.name, "--results", str(run_dir.parent))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{run_dir.name}: unchanged"
    assert (run_dir / "run.json").read_bytes() == before


def test_rescore_after_an_edited_prediction_reports_and_keeps_history(run_dir):
    old = json.loads((run_dir / "run.json").read_text())
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["prediction"] = first["reference"]  # now exactly right
    lines[0] = json.dumps(first)
    (run_dir / "predictions.jsonl").write_text("\n".join(lines) + "\n")

    out = bench("rescore", str(run_dir))
    assert out.returncode == 0, out.stderr
    new = json.loads((run_dir / "run.json").read_text())
    old_wer, new_wer = old["suites"]["asr"]["metrics"]["wer"], new["suites"]["asr"]["metrics"]["wer"]
    assert new_wer < old_wer
    assert f"asr.wer: {old_wer:.6g} -> {new_wer:.6g}" in out.stdout
    assert new["history"][-1]["metrics"] == {"asr": old["suites"]["asr"]["metrics"]}
    assert new["history"][-1]["rescored_at"]
    # timings are measurements: never changed by re-scoring
    assert new["efficiency"] == old["efficiency"]
    assert new["suites"]["asr"]["efficiency"] == old["suites"]["asr"]["efficiency"]
    # a second rescore finds nothing new
    again = bench("rescore", str(run_dir))
    assert again.stdout.strip().endswith("unchanged") and len(json.loads((run_dir / "run.json").read_text())["history"]) == 1


def test_rescore_brings_an_old_record_to_the_failure_rule(run_dir):
    """A record written before failures counted: a failed sample was left out of `metrics`."""
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    failed = json.loads(lines[0])
    failed.update(prediction=None, error="RuntimeError: scripted")
    rest = [json.loads(line) for line in lines[1:]]
    rest[0]["prediction"] = rest[0]["reference"]  # one right answer, so that WER is not 1 both ways
    lines = [json.dumps(r) for r in (failed, *rest)]
    (run_dir / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    record = json.loads((run_dir / "run.json").read_text())
    block = record["suites"]["asr"]
    # what the old scorer wrote: the metrics of the two predicted samples, no coverage fields
    block["metrics"] = metrics.wer_metrics([r["reference"] for r in rest], [r["prediction"] for r in rest])
    block.pop("metrics_scored_only")
    block.pop("coverage")
    record.pop("coverage")
    (run_dir / "run.json").write_text(json.dumps(record))

    out = bench("rescore", "--all", "--results", str(run_dir.parent))
    assert out.returncode == 0, out.stderr
    new = json.loads((run_dir / "run.json").read_text())
    assert new["coverage"] == pytest.approx(2 / 3) and new["suites"]["asr"]["coverage"] == pytest.approx(2 / 3)
    words = len(metrics.normalize_transcript(failed["reference"]).split())
    assert new["suites"]["asr"]["metrics"]["deletions"] == block["metrics"]["deletions"] + words
    assert new["suites"]["asr"]["metrics_scored_only"] == block["metrics"]
    assert "asr.wer:" in out.stdout and "asr.coverage: absent -> 0.666667" in out.stdout


@pytest.mark.parametrize("missing", ["job.json", "predictions.jsonl", "run.json"])
def test_a_missing_file_is_named(run_dir, missing):
    (run_dir / missing).unlink()
    out = bench("rescore", run_dir.name, "--results", str(run_dir.parent))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert str(run_dir / missing) in out.stderr


def test_all_goes_on_past_a_broken_run(run_dir):
    broken = run_dir.parent / "20200101-000000-broken-000000"
    broken.mkdir()
    (broken / "run.json").write_text(json.dumps({"run_id": broken.name}))
    out = bench("rescore", "--all", "--results", str(run_dir.parent))
    assert out.returncode == 1
    assert f"{broken / 'job.json'}: not found" in out.stderr
    assert f"{run_dir.name}: unchanged" in out.stdout


def test_rescore_needs_a_run_or_all(tmp_path):
    out = bench("rescore", "--results", str(tmp_path))
    assert out.returncode != 0 and "--all" in out.stderr
