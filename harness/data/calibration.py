"""Which samples calibrate a recipe (steps that need activations: `prune drop=auto`, `wanda`,
`ria`, `drop-attn`/`drop-mlp`, `gptq`): a seeded random choice among the suite's readable
samples, kept in the suite's order, so a run and `bench.py export` on the same data pick the same
clips, and every run of one suite calibrates on the same ones. The run record lists their ids
(`calibration_ids`); their count is the record's calibration size."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

CALIBRATION_SEED = 0
CALIBRATION_SAMPLES = 4

T = TypeVar("T")


def pick_calibration(samples: Sequence[T], read: Callable[[T], Any], n: int = CALIBRATION_SAMPLES,
                     seed: int = CALIBRATION_SEED) -> list[tuple[T, Any]]:
    """Up to `n` (sample, read(sample)) pairs: samples drawn in a seeded random order, those that
    `read` refuses (it raises AudioError) skipped, returned in the suite's order."""
    from harness.data.errors import AudioError

    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    chosen: dict[int, Any] = {}
    for index in order:
        try:
            chosen[index] = read(samples[index])
        except AudioError:
            continue
        if len(chosen) == n:
            break
    return [(samples[i], chosen[i]) for i in sorted(chosen)]
