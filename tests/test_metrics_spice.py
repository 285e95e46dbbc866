"""SPICE / SPIDEr: detection of Java and the jars, the absent path, and the present path through
a stand-in `java` (the real jars cannot be fetched here), including aac-metrics' Java version check."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from harness.score import metrics

LIB_JARS = [  # what aac-metrics 0.5.4 checks for in aac-metrics/spice/lib
    "ejml-0.23.jar", "fst-2.47.jar", "guava-19.0.jar", "hamcrest-core-1.3.jar", "jackson-core-2.5.3.jar",
    "javassist-3.19.0-GA.jar", "json-simple-1.1.1.jar", "junit-4.12.jar", "lmdbjni-0.4.6.jar",
    "lmdbjni-linux64-0.4.6.jar", "lmdbjni-osx64-0.4.6.jar", "lmdbjni-win64-0.4.6.jar", "Meteor-1.5.jar",
    "objenesis-2.4.jar", "SceneGraphParser-1.0.jar", "slf4j-api-1.7.12.jar", "slf4j-simple-1.7.21.jar",
    "stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar",
]

# Stands in for `java -jar spice-1.0.jar IN -cache DIR -out OUT -subset`: reports Java 17 (which
# aac-metrics' check rejects) and scores each clip by word overlap with its references.
FAKE_JAVA = f'''#!{sys.executable}
import json, sys
args = sys.argv[1:]
if args == ["-version"]:
    print('openjdk version "17.0.15" 2025-04-15', file=sys.stderr)
    sys.exit(0)
items = json.load(open(args[3]))
out = []
for item in items:
    words = set(item["test"].split())
    refs = set(w for r in item["refs"] for w in r.split())
    out.append({{"image_id": item["image_id"], "scores": {{"All": {{"f": len(words & refs) / max(len(words), 1)}}}}}})
json.dump(out, open(args[args.index("-out") + 1], "w"))
'''

REFS = [["a dog barks loudly", "a dog is barking"], ["wind blows hard", "strong wind blowing"],
        ["a car passes by", "a vehicle drives past"]]
CANDS = ["a dog barks", "wind blowing", "a bird sings"]


def fake_cache(root):
    spice = root / "aac-metrics" / "spice"
    (spice / "lib").mkdir(parents=True)
    (spice / "spice-1.0.jar").write_bytes(b"")
    for name in LIB_JARS:
        (spice / "lib" / name).write_bytes(b"")
    return root


@pytest.fixture
def fake_java(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = bin_dir / "java"
    java.write_text(FAKE_JAVA)
    java.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return java


def test_absent_jars_give_null_and_one_line_notice(tmp_path, monkeypatch):
    monkeypatch.setenv("AAC_METRICS_CACHE", str(tmp_path))
    m, notices, per_sample = metrics.caption_scores(CANDS, REFS)
    assert m["spice"] is None and m["spider"] is None and m["cider_d"] is not None
    assert "spice" not in per_sample and len(per_sample["cider_d"]) == 3
    notice = [n for n in notices if "SPICE" in n]
    assert len(notice) == 1 and "\n" not in notice[0] and "aac-metrics-download" in notice[0]
    assert str(tmp_path) in notice[0]
    # --aac-cache names the folder that was searched
    _, reason = metrics.spice_status(tmp_path / "elsewhere")
    assert str(tmp_path / "elsewhere") in reason


def test_detection_accepts_the_cache_root_or_its_aac_metrics_folder(tmp_path, fake_java):
    root = fake_cache(tmp_path / "cache")
    assert metrics.spice_status(root) == (root, "")
    assert metrics.spice_status(root / "aac-metrics")[0] == root
    (root / "aac-metrics" / "spice" / "lib" / "stanford-corenlp-3.6.0-models.jar").unlink()
    found, reason = metrics.spice_status(root)
    assert found is None and "stanford-corenlp-3.6.0-models.jar" in reason


def test_no_java_is_reported(tmp_path, monkeypatch):
    root = fake_cache(tmp_path / "cache")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    found, reason = metrics.spice_status(root)
    assert found is None and "Java not found" in reason


def test_present_path_reports_spice_and_spider_despite_java_17(tmp_path, fake_java):
    from aac_metrics.utils.checks import check_java_path

    assert not check_java_path(str(fake_java))  # aac-metrics itself would refuse this Java
    root = fake_cache(tmp_path / "cache")
    m, notices, per_sample = metrics.caption_scores(CANDS, REFS, aac_cache=root)
    assert not [n for n in notices if "SPICE" in n], notices
    expected = np.array([1.0, 1.0, 1 / 3])  # word overlap, as the stand-in scores it
    np.testing.assert_allclose(per_sample["spice"], expected)
    assert m["spice"] == pytest.approx(expected.mean())
    assert m["spider"] == pytest.approx((m["cider_d"] + m["spice"]) / 2)
    np.testing.assert_allclose(per_sample["spider"], (per_sample["cider_d"] + expected) / 2)


def test_all_references_count(tmp_path, monkeypatch):
    monkeypatch.setenv("AAC_METRICS_CACHE", str(tmp_path))
    all_refs, _ = metrics.caption_metrics(CANDS, REFS)
    first, _ = metrics.caption_metrics(CANDS, [r[:1] for r in REFS])
    assert all_refs["n_references"] == 2 and first["n_references"] == 1
    assert all_refs["cider_d"] != pytest.approx(first["cider_d"])


def test_spice_failure_keeps_the_other_metrics(tmp_path, fake_java):
    root = fake_cache(tmp_path / "cache")
    fake_java.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(1)\n")
    m, notices, _ = metrics.caption_scores(CANDS, REFS, aac_cache=root)
    assert m["spice"] is None and m["spider"] is None and m["cider_d"] is not None
    assert any(n.startswith("SPICE failed") for n in notices)
    json.dumps(m)  # the record stays serializable
