"""WER and captioning metrics on hand-checked examples."""

from __future__ import annotations

import pytest

from harness import metrics


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
