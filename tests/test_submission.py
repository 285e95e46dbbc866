"""Competition submission files: written from a real run, checked row by row."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from bench import cli
from harness.score.submission import validate_submission
from tests.conftest import REPO, bench, run_record_path

SPEECH = sorted((REPO / "harness" / "data" / "demo_data" / "speech").iterdir())


@pytest.fixture(scope="module")
def annotation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("comp")
    entries = [{"testset_id": f"test{i:04d}", "path": str(SPEECH[i]), "task": "asr"} for i in range(1, 4)]
    path = folder / "annotation.json"
    path.write_text(json.dumps({"annotation": entries}))
    return path


def test_submit_then_validate(plugin_site, annotation, tmp_path):
    out = bench("run", "-c", "echo", "--data", str(annotation), "--warmup", "0", "--results", str(tmp_path),
                env=plugin_site)
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = run_record_path(out.stdout).parent
    csv_path = tmp_path / "sub.csv"
    written = CliRunner().invoke(cli, ["submit", "--run", run_dir.name, "--task", "asr", "--results", str(tmp_path),
                                       "--out", str(csv_path)])
    assert written.exit_code == 0, written.output
    rows = list(csv.reader(csv_path.open()))
    assert rows == [["testset_id", "text"], ["test0001", "hello world"], ["test0002", "hello world"],
                    ["test0003", "hello world"]]
    ok = CliRunner().invoke(cli, ["validate", str(csv_path), "--data", str(annotation)])
    assert ok.exit_code == 0 and "valid" in ok.output
    wrong_task = CliRunner().invoke(cli, ["submit", "--run", run_dir.name, "--task", "aac", "--results", str(tmp_path)])
    assert wrong_task.exit_code != 0 and "no 'aac' suite" in wrong_task.output


def write(tmp_path, text):
    path = tmp_path / "s.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, expected", [
    ("", "empty file"),
    ("id,text\ntest0001,a\n", "row 1: columns must be exactly `testset_id,text`"),
    ("testset_id,text\nasr0001,a\n", "row 2: bad id 'asr0001'"),
    ("testset_id,text\ntest0001,a\ntest0001,b\n", "row 3: duplicate id 'test0001'"),
    ("testset_id,text\ntest0001,a,extra\n", "row 2: expected 2 fields"),
])
def test_validate_rejects_with_row_numbers(tmp_path, text, expected):
    problems = validate_submission(write(tmp_path, text))
    assert any(expected in p for p in problems), problems


def test_validate_with_annotation_finds_missing_and_unknown_ids(tmp_path, annotation):
    path = write(tmp_path, 'testset_id,text\ntest0001,"a, quoted ""text"""\ntest0009,b\n')
    result = CliRunner().invoke(cli, ["validate", str(path), "--data", str(annotation)])
    assert result.exit_code != 0
    assert "2 id(s) of the annotation missing: test0002, test0003" in result.output
    assert "row 3: id 'test0009' is not in the annotation" in result.output
