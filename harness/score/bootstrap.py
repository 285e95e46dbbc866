"""Bootstrap confidence intervals over samples, vectorized with numpy.

Each draw resamples the scored samples with replacement (same draws for every metric of a
suite, fixed seed, so a run's intervals are reproducible); the interval is the percentile range
of the metric over the draws (95%: the 2.5th and 97.5th percentiles).

- Corpus WER per draw = sum of the drawn samples' word errors / sum of their reference words,
  from per-sample counts computed once (`harness.score.metrics.wer_per_sample`).
- Mean metrics (CIDEr-D, SPICE, SPIDEr) per draw = mean of the drawn per-sample scores.
"""

from __future__ import annotations

import numpy as np

DRAWS = 1000
SEED = 0
LEVEL = 0.95


def draw_indices(n: int, draws: int = DRAWS, seed: int = SEED) -> np.ndarray:
    """(draws, n) sample indices, drawn with replacement."""
    index_type = np.int32 if n < 2**31 else np.int64
    return np.random.default_rng(seed).integers(0, n, size=(draws, n), dtype=index_type)


def _interval(values: np.ndarray, level: float) -> list[float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def ratio_ci(numerators, denominators, draws: int = DRAWS, seed: int = SEED, level: float = LEVEL,
             indices: np.ndarray | None = None) -> list[float] | None:
    """Interval of sum(num) / sum(den) (e.g. corpus WER = errors / reference words)."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.size < 2:
        return None
    idx = draw_indices(num.size, draws, seed) if indices is None else indices
    with np.errstate(divide="ignore", invalid="ignore"):
        values = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    return _interval(values, level)


def mean_ci(scores, draws: int = DRAWS, seed: int = SEED, level: float = LEVEL,
            indices: np.ndarray | None = None) -> list[float] | None:
    """Interval of the mean of per-sample scores."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size < 2:
        return None
    idx = draw_indices(values.size, draws, seed) if indices is None else indices
    return _interval(values[idx].mean(axis=1), level)
