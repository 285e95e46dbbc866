"""Activation statistics of a part's linear layers, captured while the family answers its
calibration requests (the run's own suite samples, handed to the candidate by the harness through
`set_calibration`; audio goes through encoder and adapter as in a real answer).

A recipe step receives the family's `calibrate(part)` callable (the same one `prune drop=auto`
uses): it runs the calibration requests through the model. Here forward pre-hooks on the part's
linears accumulate, per input feature j, the sum of squares of X_j over every token the layer saw
(Wanda's and RIA's ||X_j||_2), and optionally X^T X (GPTQ's Hessian). Nothing is stored per token.

One pass per step, from the model as it is when the step runs (earlier steps already applied).
The papers' code goes layer by layer, feeding each layer the outputs of layers already pruned or
quantized; that is not done here (it would run the calibration once per layer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class CalibrationError(ValueError):
    """A step needs activations and none came; the message names the step."""


@dataclass
class LinearStats:
    """What one linear saw: its inputs' squared norms per input feature, the token count, and
    (when asked) the sum of x x^T over tokens."""

    sq_norms: Any  # torch.Tensor [in_features], float64
    tokens: int = 0
    xtx: Any = None  # torch.Tensor [in_features, in_features], float64, or None
    calls: int = 0

    def norms(self):
        """||X_j||_2 over every token seen (the l2 norm of column j of the stacked inputs)."""
        return self.sq_norms.sqrt()


@dataclass
class Capture:
    stats: dict[str, LinearStats] = field(default_factory=dict)
    samples: int = 0


def part_linears(part) -> dict[str, Any]:
    """The plain `torch.nn.Linear` modules of the part's transformer blocks (its `layers` list),
    by name inside the part: an LM head or projector outside the blocks is left alone, as the
    papers do. A part without a layer list gives all its linears. A module already quantized or
    replaced by an earlier step is not a plain Linear and is skipped."""
    import torch

    from candidates.recipes import RecipeError, decoder_layers

    try:
        _, path = decoder_layers(part)
        prefix = path + "."
    except RecipeError:
        prefix = ""
    return {name: m for name, m in part.named_modules() if type(m) is torch.nn.Linear and name.startswith(prefix)}


def capture_linear_inputs(step_text: str, part, calibrate: Callable[[Any], list[Any]] | None,
                          linears: dict[str, Any], hessian: bool = False) -> Capture:
    """Runs the family's calibration pass with hooks on `linears`; returns their statistics."""
    import torch

    if calibrate is None:
        raise CalibrationError(f"{step_text}: this family gives no calibration inputs")
    capture = Capture({name: LinearStats(torch.zeros(m.in_features, dtype=torch.float64))
                       for name, m in linears.items()})

    def hook_for(name: str):
        stats = capture.stats[name]

        def hook(_module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64)
            stats.sq_norms += (x * x).sum(0)
            stats.tokens += x.shape[0]
            stats.calls += 1
            if hessian:
                stats.xtx = x.T @ x if stats.xtx is None else stats.xtx.addmm_(x.T, x)

        return hook

    handles = [m.register_forward_pre_hook(hook_for(name)) for name, m in linears.items()]
    try:
        capture.samples = len(calibrate(part))
    finally:
        for handle in handles:
            handle.remove()
    if capture.samples == 0:
        raise CalibrationError(f"{step_text}: no calibration requests came (the run's first suite had no "
                               "readable sample); this step needs activations")
    unseen = [n for n, s in capture.stats.items() if s.tokens == 0]
    if unseen:
        raise CalibrationError(f"{step_text}: linears {', '.join(unseen[:4])} saw no input while the model "
                               "answered the calibration requests; they cannot be scored")
    return capture
