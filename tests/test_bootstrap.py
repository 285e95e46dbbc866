"""Bootstrap intervals: correct, reproducible, and fast enough for 3000 samples."""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.score import bootstrap, metrics


def test_1000_draws_over_3000_samples_under_2_s():
    rng = np.random.default_rng(123)
    n = 3000
    errors, words = rng.integers(0, 6, n), rng.integers(3, 30, n)
    cider, spice = rng.gamma(1.0, 0.5, n), rng.random(n)
    t0 = time.perf_counter()
    idx = bootstrap.draw_indices(n)
    wer = bootstrap.ratio_ci(errors, words, indices=idx)
    cis = [bootstrap.mean_ci(v, indices=idx) for v in (cider, spice, (cider + spice) / 2)]
    elapsed = time.perf_counter() - t0
    print(f"bootstrap: 1000 draws x {n} samples, WER + 3 mean metrics: {elapsed:.3f} s")
    assert elapsed < 2.0
    assert wer[0] < errors.sum() / words.sum() < wer[1]
    for ci, v in zip(cis, (cider, spice, (cider + spice) / 2), strict=True):
        assert ci[0] < v.mean() < ci[1]


def test_intervals_are_reproducible_and_shrink_with_more_samples():
    rng = np.random.default_rng(0)
    small, large = rng.random(50), rng.random(5000)
    assert bootstrap.mean_ci(small) == bootstrap.mean_ci(small)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(bootstrap.mean_ci(large)) < width(bootstrap.mean_ci(small)) / 4
    assert bootstrap.mean_ci([1.0]) is None  # one sample: no interval


def test_per_sample_wer_counts_sum_to_corpus_wer():
    refs = ["the cat sat on the mat", "hello world", "", "a b c d"]
    hyps = ["the cat sat on mat", "hello there world", "noise words", "a x c d e"]
    errors, words = metrics.wer_per_sample(refs, hyps)
    corpus = metrics.wer_of_normalized(refs, hyps)
    assert errors.sum() / words.sum() == pytest.approx(corpus["wer"])
    assert words.sum() == corpus["n_ref_words"]
    assert list(errors) == [1, 1, 2, 2]
