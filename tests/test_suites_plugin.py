"""Suites as plugins, and real `bench.py run`s over the new data formats.

A throw-away distribution (module + dist-info with entry_points.txt) registers a suite under
`lalm_bench.suites` and a candidate that does it; a real `python bench.py run` subprocess runs
and scores it. The same candidate runs a Clotho CSV and a Hugging Face dataset folder.
"""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from harness.data.annotation import load_annotation_json
from harness.score import metrics
from harness.suites import DEMO_DATA
from tests.conftest import bench, install_distribution, run_record_path

pytestmark = pytest.mark.slow

PLUGIN = '''
from harness.candidate import Candidate
from harness.suites import Suite
from harness.types import Generation

CAPTIONS = ["a dog barks", "the wind is blowing", "a car drives past"]


def exact_match(predictions, references):
    scores = [float(p.strip() == refs[0].strip()) for p, refs in zip(predictions, references)]
    return {"accuracy": sum(scores) / len(scores), "per_sample": {"accuracy": scores}}


def make_suite():
    return Suite(name="beeps", description="How many beeps (a plugin suite)", prompt="How many beeps?",
                 max_new_tokens=2, primary_metric="accuracy", higher_is_better=True,
                 annotation_tasks=("beep_count",), metric=exact_match)


class Parrot(Candidate):
    """Answers from the audio length, so results depend on which clip it was given."""

    tasks = frozenset({"asr", "aac", "beeps"})

    def imports_torch(self):
        return False  # no framework: its measured child skips importing torch and transformers

    def load(self, device):
        pass

    def generate(self, request, on_token):
        seconds = len(request.audio) / 16000
        if request.task == "beeps":
            text = "2" if seconds > 0.75 else "1"
        elif request.task == "aac":
            text = CAPTIONS[int(seconds * 10) % 3]
        else:
            text = "hello world"
        on_token()
        on_token()
        return Generation(text=text)
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return install_distribution(
        tmp_path_factory.mktemp("suite_site"), "lbplug_suites", PLUGIN,
        "[lalm_bench.suites]\nbeeps = lbplug_suites:make_suite\n\n[lalm_bench.candidates]\nparrot = lbplug_suites:Parrot\n",
    )


def tone(path, seconds, rate=16000):
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), rate)
    return path


def run(site, *args):
    out = bench("run", "-c", "parrot", "--warmup", "0", *args, env=site)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    path = run_record_path(out.stdout)
    return json.loads(path.read_text()), path.parent


def test_plugin_suite_is_listed_run_and_scored(site, tmp_path):
    listed = bench("suites", env=site)
    assert listed.returncode == 0 and "beeps" in listed.stdout
    entries = [
        {"testset_id": f"b{i}", "path": str(tone(tmp_path / f"b{i}.wav", sec)), "task": "beep_count", "text": txt}
        for i, (sec, txt) in enumerate([(0.5, "1"), (1.0, "2"), (1.0, "1")])
    ]
    data = tmp_path / "beeps.json"
    data.write_text(json.dumps({"annotation": entries}))
    record, _ = run(site, "--data", str(data), "--results", str(tmp_path / "results"))
    block = record["suites"]["beeps"]
    assert block["metrics"]["accuracy"] == pytest.approx(2 / 3)
    assert block["primary_metric"] == "accuracy" and block["higher_is_better"] is True and block["extra"] is True
    assert re.fullmatch(r"[0-9a-f]{16}", block["dataset_hash"])
    lo, hi = block["metrics_ci"]["accuracy"]
    assert 0.0 <= lo <= 2 / 3 <= hi <= 1.0
    assert block["n_scored"] == 3 and block["n_failed"] == 0


def write_clotho_set(folder):
    """Three clips of different lengths with five captions each, as Clotho ships them."""
    folder.mkdir()
    refs = {
        "c1.wav": ["a dog barks twice", "a dog is barking", "barking dog nearby", "a small dog barks", "dog barks"],
        "c2.wav": ["the wind is blowing hard", "strong wind blows", "wind howls outside", "gusts of wind",
                   "wind blowing through trees"],
        "c3.wav": ["a car drives past", "a vehicle passes by", "traffic goes past", "an engine roars by",
                   "a car passes on the road"],
    }
    for k, name in enumerate(refs):
        tone(folder / name, 0.1 * k + 0.35, rate=44100)  # predictions rotate with the length (all above the 0.1 s floor)
    with open(folder / "clotho_captions_evaluation.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
        w.writerows([[n, *r] for n, r in refs.items()])
    return folder / "clotho_captions_evaluation.csv", refs


def test_clotho_is_scored_against_all_five_references_and_hf_matches(site, tmp_path):
    csv_path, refs = write_clotho_set(tmp_path / "clotho")
    record, folder = run(site, "--data", str(csv_path), "--results", str(tmp_path / "results"))
    block = record["suites"]["aac"]
    assert block["n_scored"] == 3 and block["metrics"]["n_references"] == 5
    preds = {json.loads(line)["sample_id"]: json.loads(line)["prediction"]
             for line in (folder / "predictions.jsonl").read_text().splitlines()}
    cands = [preds[n] for n in refs]
    all_five, _ = metrics.caption_metrics(cands, list(refs.values()))
    first_only, _ = metrics.caption_metrics(cands, [r[:1] for r in refs.values()])
    assert block["metrics"]["cider_d"] == pytest.approx(all_five["cider_d"])
    assert block["metrics"]["cider_d"] != pytest.approx(first_only["cider_d"])
    assert block["primary_metric"] == "spider" and block["extra"] is False
    assert "cider_d" in block["metrics_ci"]
    if block["metrics"]["spider"] is None:
        assert any("aac-metrics-download" in n for n in block["notices"])

    # The same clips as a Hugging Face dataset (bytes stored; the audio folder is gone): same score
    datasets = pytest.importorskip("datasets")
    src = tmp_path / "clotho"
    ds = datasets.Dataset.from_dict({
        "file_name": list(refs), "audio": [str(src / n) for n in refs], "captions": list(refs.values()),
    }).cast_column("audio", datasets.Audio())
    ds.save_to_disk(str(tmp_path / "hf"))
    shutil.rmtree(src)
    hf_record, _ = run(site, "--data", str(tmp_path / "hf"), "--results", str(tmp_path / "results"))
    hf_block = hf_record["suites"]["aac"]
    assert hf_block["n_failed"] == 0 and hf_block["n_scored"] == 3
    assert hf_block["metrics"]["cider_d"] == pytest.approx(block["metrics"]["cider_d"])
    assert hf_block["dataset_hash"] == block["dataset_hash"]


def test_librispeech_folder_gives_the_same_wer_as_the_demo_json(tmp_path, whisper_tiny_run):
    """whisper-tiny (real ASR) on 6 demo utterances, read from the demo JSON (the shared
    whisper_tiny_run: harness/data/demo_data/asr.json, --limit 6 --warmup 0) and from a LibriSpeech copy."""
    limit = "6"
    demo, _ = load_annotation_json(DEMO_DATA / "asr.json")
    chapter = tmp_path / "ls" / "test-clean" / "1089" / "134686"
    chapter.mkdir(parents=True)
    lines = []
    for k, sample in enumerate(demo[: int(limit)]):
        utt = f"1089-134686-{k:04d}"
        shutil.copy(sample.audio_path, chapter / f"{utt}.flac")
        lines.append(f"{utt} {sample.references[0].upper()}")  # LibriSpeech transcripts are upper case
    (chapter / "1089-134686.trans.txt").write_text("\n".join(lines) + "\n")
    results = str(tmp_path / "results")
    records = []
    for out in (whisper_tiny_run,
                bench("run", "-c", "whisper-tiny", "--data", str(tmp_path / "ls"), "--limit", limit, "--warmup", "0",
                      "--results", results)):
        assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
        records.append(json.loads(run_record_path(out.stdout).read_text())["suites"]["asr"])
    json_block, ls_block = records
    assert json_block["dataset"] == "demo:asr"  # the built-in demo suite: harness/data/demo_data/asr.json
    assert ls_block["n_scored"] == json_block["n_scored"] == int(limit)
    for key in ("wer", "substitutions", "deletions", "insertions", "hits", "n_ref_words"):
        assert ls_block["metrics"][key] == json_block["metrics"][key], key
    assert ls_block["metrics_ci"]["wer"] == pytest.approx(json_block["metrics_ci"]["wer"])
    lo, hi = json_block["metrics_ci"]["wer"]
    assert lo <= json_block["metrics"]["wer"] <= hi
