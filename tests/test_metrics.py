"""WER and captioning metrics on hand-checked examples."""

from __future__ import annotations

import pytest

from harness.score import metrics


def test_wer_uses_the_whisper_normalizer():
    # Casing, punctuation and "Mr." vs "mister" are normalized away: no error.
    out = metrics.wer_metrics(["Mr. Smith said: hello, world!"], ["mister smith said hello world"])
    assert out["wer"] == 0.0


def test_wer_is_corpus_level_with_edit_counts():
    # ref 1: 3 words, 1 substitution; ref 2: 2 words, 2 deletions -> 3 errors / 5 words
    out = metrics.wer_metrics(["a b c", "d e"], ["a x c", ""])
    assert out["wer"] == pytest.approx(0.6)
    assert (out["substitutions"], out["deletions"], out["insertions"], out["hits"]) == (1, 2, 0, 2)
    assert out["n_ref_words"] == 5


def test_empty_reference_counts_hypothesis_words_as_insertions():
    out = metrics.wer_metrics(["a b", ""], ["a b", "extra words"])
    assert out["wer"] == pytest.approx(1.0)  # 2 insertions over 2 reference words
    assert out["insertions"] == 2


def test_caption_metrics_without_spice_say_so(monkeypatch, tmp_path):
    monkeypatch.setenv("AAC_METRICS_CACHE", str(tmp_path))  # an empty cache: no jars
    refs = [["a dog barks loudly", "a dog is barking"], ["wind blows hard", "strong wind blowing"]]
    good, notices = metrics.caption_metrics(["a dog barks loudly", "wind blows hard"], refs)
    bad, _ = metrics.caption_metrics(["wind blows hard", "a dog barks loudly"], refs)
    assert good["spice"] is None and good["spider"] is None
    assert any("aac-metrics-download" in n for n in notices)
    assert good["cider_d"] > bad["cider_d"] >= 0.0
    assert 0.0 <= good["bleu_4"] <= 1.0 and 0.0 <= good["rouge_l"] <= 1.0


def test_spice_detection_needs_java_and_all_jars(tmp_path):
    spice = tmp_path / "aac-metrics" / "spice"
    (spice / "lib").mkdir(parents=True)
    for name in ("spice-1.0.jar", "lib/stanford-corenlp-3.6.0.jar"):
        (spice / name).write_bytes(b"")
    assert metrics.spice_status(tmp_path)[0] is None  # models jar still missing
    (spice / "lib" / "stanford-corenlp-3.6.0-models.jar").write_bytes(b"")
    import shutil

    assert (metrics.spice_status(tmp_path)[0] == tmp_path) == (shutil.which("java") is not None)


def test_caption_normalization():
    assert metrics.normalize_caption("A Dog, barking!  Loudly.") == "a dog barking loudly"


def test_caption_metrics_load_only_aac_metrics_text_metrics_and_match_the_full_package():
    """Scoring captions must not pay for `import aac_metrics` (BERTScore, SBERT: transformers),
    must leave no half-imported aac_metrics behind, and must give the package's own numbers."""
    import json
    import subprocess
    import sys

    refs = [["a dog barks loudly", "a dog is barking"], ["wind blows hard", "strong wind blowing"]]
    cands = ["a dog barks", "wind blows"]
    code = (
        "import json, sys\nfrom harness.score import metrics\n"
        f"cands, refs = {cands!r}, {refs!r}\n"
        "light, _ = metrics.caption_metrics(cands, refs)\n"
        "heavy = [m for m in ('transformers', 'sentence_transformers', 'torchmetrics') if m in sys.modules]\n"
        "left = [m for m in sys.modules if m.split('.')[0] == 'aac_metrics']\n"
        "import aac_metrics\nfrom aac_metrics.functional import bleu, cider_d, rouge_l\n"  # the real package, afterwards
        "refs = [[metrics.normalize_caption(r) for r in rs] for rs in refs]\n"
        "full = {'cider_d': float(cider_d(cands, refs)[0]['cider_d']), 'bleu_4': float(bleu(cands, refs, n=4)[0]['bleu_4']),\n"
        "        'rouge_l': float(rouge_l(cands, refs)[0]['rouge_l'])}\n"
        "print(json.dumps({'light': light, 'full': full, 'heavy': heavy, 'left': left,\n"
        "                  'package': aac_metrics.AACMetric.__module__, 'cider_d': cider_d.__module__}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert child["heavy"] == [] and child["left"] == []
    assert (child["package"], child["cider_d"]) == ("aac_metrics.classes.base", "aac_metrics.functional.cider_d")
    assert child["full"]["cider_d"] > 0
    for name, value in child["full"].items():
        assert child["light"][name] == pytest.approx(value), name
