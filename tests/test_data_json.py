"""Annotation JSON: every problem at once, each with its sample id and the entry's JSON line."""

from __future__ import annotations

import json

import pytest

from harness.data.annotation import load_annotation_json
from harness.data.errors import DataError
from tests.test_data import tone


def test_problems_name_sample_id_and_json_line(tmp_path):
    tone(tmp_path / "ok.wav")
    entries = [
        {"testset_id": "test0001", "path": "ok.wav", "task": "asr", "text": "hello"},
        {"testset_id": "test0002", "path": "ok.wav", "task": "translate"},
        {"path": "ok.wav", "task": "asr"},
        {"testset_id": "test0004", "path": "gone.wav", "task": "audiocaption_v2"},
        {"testset_id": "test0005", "path": "ok.wav", "task": "asr", "references": "not a list"},
        "not an object",
        {"testset_id": 7, "path": "ok.wav", "task": "asr"},
    ]
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"meta": {"annotation": "decoy"}, "annotation": entries}, indent=2))
    lines = path.read_text().splitlines()
    starts = [i + 1 for i, line in enumerate(lines) if line.strip() in ("{", '"not an object",')]
    starts = starts[1:]  # the top-level object opens first; "meta": { is not a lone brace
    samples, problems = load_annotation_json(path)
    assert [s.sample_id for s in samples] == ["test0001"]
    assert samples[0].source == f"{path}:{starts[0]}"
    by_line = {p.where.split("line ")[1].split(",")[0].rstrip(")"): str(p) for p in problems}
    assert set(by_line) == {str(n) for n in starts[1:]}
    text = "\n".join(map(str, problems))
    assert f"annotation[1] (line {starts[1]}, testset_id 'test0002'): unknown task 'translate'" in text
    assert f"annotation[2] (line {starts[2]}): missing field(s) testset_id" in text
    assert f"(line {starts[3]}, testset_id 'test0004'): audio file not found" in text
    assert "testset_id 'test0005'): wrong type for field(s) references" in text
    assert f"annotation[5] (line {starts[5]}): not an object" in text
    assert "wrong type for field(s) testset_id" in text


def test_malformed_json_gives_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"annotation": [\n  {"testset_id": "a",}\n]}')
    with pytest.raises(DataError, match="invalid JSON at line 2 column 22"):
        load_annotation_json(path)
