"""Shared by the weight-pruning steps (`wanda:`, `ria:`): parsing their target, turning a score
matrix into a mask, zeroing the weights, and measuring what was done.

Targets:
- `sparsity=S` (0 < S < 1): unstructured; exactly floor(S * n) weights of each comparison group
  are zeroed (the lowest scores; a stable sort breaks ties by column).
- `nm=N:M`: semi-structured; in every run of M consecutive input weights of a row, the N with the
  highest scores are kept and the M - N others zeroed (NVIDIA's "2:4" = 2 kept of every 4).

Zeros stored in a dense fp32/bf16 matrix save no memory and no time: the weight bytes and the
matmuls are the same. Only 2:4 on a CUDA GPU can run faster, through torch's semi-structured
sparse tensors (`to_sparse_semi_structured`, `semi_structured_2_4`); on the CPU torch has no such
kernel, and the step's record says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from candidates.recipes import RecipeError, Step

DENSE_NOTE = ("the zeros are stored in the dense weight matrix: no memory and no time are saved "
              "(the weight bytes and the matmuls are unchanged)")


@dataclass(frozen=True)
class Target:
    sparsity: float  # the fraction zeroed: S, or (M - N) / M
    n: int = 0  # N:M: kept per group (0: unstructured)
    m: int = 0

    @property
    def structured(self) -> bool:
        return self.m > 0

    def describe(self) -> str:
        return f"{self.n}:{self.m}" if self.structured else f"unstructured {self.sparsity:g}"


def parse_target(step: Step) -> Target:
    """`sparsity=S` or `nm=N:M` (one of them), checked."""
    has_s, has_nm = "sparsity" in step.args, "nm" in step.args
    if has_s == has_nm or set(step.args) - {"sparsity", "nm"}:
        raise RecipeError(f"{step.text}: expected {step.op}:PART:sparsity=S (0 < S < 1) or {step.op}:PART:nm=N:M")
    if has_s:
        try:
            s = float(step.args["sparsity"])
        except ValueError:
            s = -1.0
        if not 0 < s < 1:
            raise RecipeError(f"{step.text}: sparsity must be a number between 0 and 1 (e.g. sparsity=0.5)")
        return Target(s)
    n_text, _, m_text = step.args["nm"].partition(":")
    try:
        n, m = int(n_text), int(m_text)
    except ValueError:
        n = m = 0
    if not 0 < n < m:
        raise RecipeError(f"{step.text}: expected nm=N:M with 0 < N < M (N kept of every M, e.g. nm=2:4)")
    return Target((m - n) / m, n, m)


def mask_per_row(scores, fraction: float):
    """True where a weight is pruned: the floor(fraction * columns) lowest scores of each row."""
    import torch

    k = int(scores.shape[1] * fraction)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    order = torch.sort(scores, dim=1, stable=True).indices
    mask.scatter_(1, order[:, :k], True)
    return mask


def mask_per_layer(scores, fraction: float):
    """True where a weight is pruned: the floor(fraction * all weights) lowest scores of the matrix."""
    import torch

    k = int(scores.numel() * fraction)
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    mask[torch.sort(scores.flatten(), stable=True).indices[:k]] = True
    return mask.reshape(scores.shape)


def mask_n_of_m(scores, n: int, m: int):
    """True where a weight is pruned: in each group of m consecutive columns of a row, all but
    the n highest scores."""
    import torch

    rows, cols = scores.shape
    if cols % m:
        raise RecipeError(f"N:M sparsity needs the input width ({cols}) to be a multiple of M={m}")
    groups = scores.reshape(rows, cols // m, m)
    order = torch.sort(groups, dim=2, stable=True).indices
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(2, order[:, :, : m - n], True)
    return mask.reshape(rows, cols)


def measure(weight, target: Target) -> dict[str, Any]:
    """The measured sparsity of a weight matrix, and for N:M whether every group holds at most N
    nonzeros (counted on the stored values, not on the mask)."""
    zeros = int((weight == 0).sum())
    out: dict[str, Any] = {"shape": list(weight.shape), "zeros": zeros, "weights": weight.numel(),
                           "sparsity": round(zeros / weight.numel(), 6)}
    if target.structured:
        rows, cols = weight.shape
        nonzero = (weight != 0).reshape(rows, cols // target.m, target.m).sum(2)
        out["nm_verified"] = bool((nonzero <= target.n).all())
        out["max_nonzeros_per_group"] = int(nonzero.max())
    return out


def prune_linears(step: Step, target: Target, linears: dict[str, Any], scores: dict[str, Any],
                  per_layer_unstructured: bool = False) -> dict[str, Any]:
    """Zeroes each linear's weights by its score; returns the step's record: per linear the
    measured sparsity (and the N:M check), the total, and what it saves (nothing, stored dense)."""
    import torch

    layers = {}
    with torch.no_grad():
        for name, linear in linears.items():
            score = scores[name]
            if target.structured:
                mask = mask_n_of_m(score, target.n, target.m)
            elif per_layer_unstructured:
                mask = mask_per_layer(score, target.sparsity)
            else:
                mask = mask_per_row(score, target.sparsity)
            linear.weight[mask.to(linear.weight.device)] = 0
            layers[name] = measure(linear.weight.detach().cpu(), target)
    zeros = sum(v["zeros"] for v in layers.values())
    total = sum(v["weights"] for v in layers.values())
    out: dict[str, Any] = {
        "target": target.describe(), "linears": len(layers), "measured_sparsity": round(zeros / total, 6),
        "min_linear_sparsity": min(v["sparsity"] for v in layers.values()),
        "max_linear_sparsity": max(v["sparsity"] for v in layers.values()),
        "storage": "dense", "saves": DENSE_NOTE, "per_linear": layers,
    }
    if target.structured:
        out["nm_verified"] = all(v["nm_verified"] for v in layers.values())
        out["semi_structured_2_4"] = semi_structured(linears, target)
        if out["semi_structured_2_4"]["applied"]:
            out["storage"] = "semi-structured 2:4 (CUDA) where applied, dense elsewhere"
            out["saves"] = "the 2:4 linears run torch's sparse kernels: measure, do not assume, the effect"
    return out


def semi_structured(linears: dict[str, Any], target: Target) -> dict[str, Any]:
    """2:4 on a CUDA GPU: each linear's weight becomes torch's semi-structured sparse tensor
    (values + metadata, run by its sparse kernels). Elsewhere the record says it is unavailable.
    Not verified on a GPU by this project's tests (none here): the record says what happened."""
    import torch

    if (target.n, target.m) != (2, 4):
        return {"applied": False, "why": f"{target.n}:{target.m} has no sparse kernel in torch; stored dense"}
    devices = {str(m.weight.device) for m in linears.values()}
    if not all(d.startswith("cuda") for d in devices):
        return {"applied": False, "why": "torch's 2:4 kernels (to_sparse_semi_structured) need a CUDA GPU; "
                                         f"unavailable on {', '.join(sorted(devices))}, so the zeros stay dense"}
    from torch.sparse import to_sparse_semi_structured

    done, dense = [], {}
    with torch.no_grad():
        for name, linear in linears.items():
            try:
                linear.weight = torch.nn.Parameter(to_sparse_semi_structured(linear.weight), requires_grad=False)
            except (RuntimeError, ValueError) as err:  # a shape or dtype the kernels refuse
                dense[name] = str(err).splitlines()[0]
                continue
            done.append(name)
    return {"applied": bool(done), "linears": len(done), "left_dense": dense,
            "note": "unverified by this project's tests (no GPU here); compare its latency with the dense 2:4 run"}
