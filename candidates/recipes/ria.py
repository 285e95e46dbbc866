"""`ria:PART:sparsity=S` / `ria:PART:nm=N:M`: Relative Importance and Activations (Zhang et al.,
"Plug-and-Play: An Efficient Post-training Pruning Method for Large Language Models", ICLR 2024).

Each weight's score is (|W_ij| / sum_k |W_ik| + |W_ij| / sum_k |W_kj|) * ||X_j||_2 ** a, with
a = 0.5: its share of its output row's total plus its share of its input column's total, times
the input feature's activation norm to the power a. Unstructured targets compare scores across
the whole matrix (the authors' default; relative importance already normalizes rows and
columns); N:M keeps the N highest of every M consecutive weights of a row. The authors' optional
channel permutation for N:M is not done here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from candidates.recipes import Step

ALPHA = 0.5


def scores(weight, input_norms, alpha: float = ALPHA):
    w = weight.detach().abs().float()
    tiny = 1e-30  # an all-zero row or column: its weights score 0, not 0/0
    relative = w / w.sum(dim=1, keepdim=True).clamp_min(tiny) + w / w.sum(dim=0, keepdim=True).clamp_min(tiny)
    return relative * input_norms.reshape(1, -1).float() ** alpha


def apply(part, step: Step, calibrate: Callable[[Any], list[Any]] | None) -> dict[str, Any]:
    from candidates.recipes.calibration import capture_linear_inputs, part_linears
    from candidates.recipes.sparsity import parse_target, prune_linears

    target = parse_target(step)
    linears = part_linears(part)
    capture = capture_linear_inputs(step.text, part, calibrate, linears)
    per_linear = {name: scores(m.weight.cpu(), capture.stats[name].norms()) for name, m in linears.items()}
    group = "N:M groups of a row" if target.structured else "whole matrix"
    return {"calibration_samples": capture.samples, "comparison_group": group, "alpha": ALPHA,
            **prune_linears(step, target, linears, per_linear, per_layer_unstructured=True)}
