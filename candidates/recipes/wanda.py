"""`wanda:PART:sparsity=S` / `wanda:PART:nm=N:M`: Wanda (Sun et al., "A Simple and Effective
Pruning Approach for Large Language Models", 2023; github.com/locuslab/wanda).

Each weight's score is |W_ij| * ||X_j||_2, where X_j is input feature j of the linear over every
calibration token. Scores are compared within each output row (the paper's per-output
comparison group): the lowest S of every row are zeroed, or, for N:M, all but the N highest of
every M consecutive weights of a row. No weight update follows (unlike SparseGPT).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from candidates.recipes import Step


def scores(weight, input_norms):
    """|W| * ||X_j||_2, broadcast over rows: weight [out, in], input_norms [in]."""
    return weight.detach().abs().float() * input_norms.reshape(1, -1).float()


def apply(part, step: Step, calibrate: Callable[[Any], list[Any]] | None) -> dict[str, Any]:
    from candidates.recipes.calibration import capture_linear_inputs, part_linears
    from candidates.recipes.sparsity import parse_target, prune_linears

    target = parse_target(step)
    linears = part_linears(part)
    capture = capture_linear_inputs(step.text, part, calibrate, linears)
    per_linear = {name: scores(m.weight.cpu(), capture.stats[name].norms()) for name, m in linears.items()}
    return {"calibration_samples": capture.samples, "comparison_group": "output row",
            **prune_linears(step, target, linears, per_linear)}
