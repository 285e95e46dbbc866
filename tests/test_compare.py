"""`bench.py compare RUN_A RUN_B`: criteria side by side, and the samples that differ most."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bench import cli
from leaderboard.compare import resolve_run
from tests.test_leaderboard import make_run, write_run

REF = "the cat sat on the mat"


def _predictions(folder, asr, aac=()):
    lines = [
        {"sample_id": f"a{i:02d}", "task": "asr", "prediction": p, "reference": REF, "references": [REF], "error": None}
        for i, p in enumerate(asr)
    ]
    lines += [
        {"sample_id": f"c{i:02d}", "task": "aac", "prediction": p, "reference": refs[0], "references": refs, "error": None}
        for i, (p, refs) in enumerate(aac)
    ]
    (folder / "predictions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def _two_runs(tmp_path, aac_a=(), aac_b=()):
    a = write_run(tmp_path, make_run("baseline", wer=0.5, cider_d=0.3, memory=1000, latency=150, run_id="r-a")).parent
    b = write_run(tmp_path, make_run("nf4", wer=0.4, cider_d=0.2, memory=430, latency=99, run_id="r-b")).parent
    same = [REF] * 8
    # Sample a08..a19: A and B differ by a growing number of wrong words.
    asr_a = same + [REF] * 12
    asr_b = same + [" ".join(["x"] * k + REF.split()[k:]) for k in [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6]]
    _predictions(a, asr_a, aac_a)
    _predictions(b, asr_b, aac_b)
    return a, b


def test_compare_criteria_and_top_samples(tmp_path):
    _two_runs(tmp_path)
    result = CliRunner().invoke(cli, ["compare", "r-a", "r-b", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "A: baseline  run r-a" in out and "B: nf4  run r-b" in out
    assert "-10.0 pt" in out and "0.43x" in out and "0.66x" in out and "-0.1000" in out
    assert "asr: the 10 samples where per-sample WER differs most (B - A)" in out
    block = out.split("asr: the 10 samples")[1]
    assert block.count("    A:   ") == 10
    # the largest differences first: 6 of 6 words wrong (WER 1.0), in sample id order
    first = block.splitlines()[1]
    assert first.startswith("  a13  WER A 0.000  B 1.000  (+1.000)")
    assert "B:   x x x x x x" in block
    assert "a00" not in block  # identical samples are never shown


def test_compare_accepts_folders_and_candidate_names(tmp_path):
    a, b = _two_runs(tmp_path)
    assert resolve_run(str(a), tmp_path)[0]["run_id"] == "r-a"
    assert resolve_run(str(b / "run.json"), tmp_path)[0]["run_id"] == "r-b"
    assert resolve_run("nf4", tmp_path)[0]["run_id"] == "r-b"
    result = CliRunner().invoke(cli, ["compare", "r-a", "nobody", "--results", str(tmp_path)])
    assert result.exit_code != 0 and "no run 'nobody'" in result.output


def test_compare_warns_when_conditions_differ_and_handles_missing_predictions(tmp_path):
    a = make_run("a", wer=0.1, memory=1, latency=1, run_id="r-1")
    b = make_run("b", wer=0.2, memory=1, latency=1, run_id="r-2")
    b["environment"]["threads"] = 4
    write_run(tmp_path, a)
    write_run(tmp_path, b)
    out = CliRunner().invoke(cli, ["compare", "r-1", "r-2", "--results", str(tmp_path)]).output
    assert "WARNING: these runs were not measured under the same conditions: threads 4 vs 1" in out
    assert "no per-sample comparison" in out


def test_compare_captions_per_sample_cider(tmp_path):
    refs = [["a dog barks loudly", "a dog is barking"], ["rain falls on a roof", "heavy rain"],
            ["a car passes by", "traffic noise"], ["birds sing in the morning", "birds chirping"]]
    aac_a = [(r[0], r) for r in refs]  # perfect captions
    aac_b = [(refs[0][0], refs[0]), ("wind", refs[1]), (refs[2][0], refs[2]), (refs[3][0], refs[3])]
    _two_runs(tmp_path, aac_a, aac_b)
    out = CliRunner().invoke(cli, ["compare", "r-a", "r-b", "--results", str(tmp_path)]).output
    assert "aac: the " in out and "per-sample CIDEr-D differs most" in out
    block = out.split("per-sample CIDEr-D differs most")[1]
    assert block.splitlines()[1].lstrip().startswith("c01")
    assert "B:   wind" in block
