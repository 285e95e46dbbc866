"""`gptq:PART:bits=B,group=G`: GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization
for Generative Pre-trained Transformers", ICLR 2023; github.com/IST-DASLab/gptq), written here.

Why not a library: `gptqmodel` needs torch >= 2.14.1 and has no wheel for this platform (its
source build fails to find torch), `llmcompressor` pins transformers <= 5.17, AutoGPTQ is
archived; this project runs torch 2.13 and transformers 5.25.

Per linear, with H = X^T X / tokens from the calibration inputs (candidates/recipes/calibration.py)
plus 1% of its mean diagonal (dampening), columns are quantized left to right; each column's
rounding error, scaled by the inverse Hessian's Cholesky factor, is spread over the columns not
yet quantized (in blocks of 128 columns, the paper's lazy batch updates). Each row's group of G
consecutive input weights gets an asymmetric min-max grid of 2^B levels (the range always holds
0), computed when the group's first column is reached. No activation reordering (act-order).

Storage (`GPTQLinear`): the B-bit codes packed into bytes (8/B per byte), one scale (model dtype)
and one B-bit zero point (a byte) per row and group, and the bias. The forward dequantizes the
weight and runs a dense matmul: it saves memory, not compute (there is no int4 matmul on CPU).
The record gives each linear's output error on the calibration data, relative to the weight's
output, for GPTQ and for plain round-to-nearest with the same grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from candidates.recipes import RecipeError, Step

PACKABLE_BITS = (2, 4, 8)
DAMP = 0.01
BLOCK = 128


def parse_gptq(step: Step) -> tuple[int, int]:
    try:
        bits, group = int(step.args.get("bits", "")), int(step.args.get("group", ""))
    except ValueError:
        bits = group = 0
    if bits not in PACKABLE_BITS or group < 1 or set(step.args) != {"bits", "group"}:
        raise RecipeError(f"{step.text}: expected gptq:PART:bits=B,group=G with B in {PACKABLE_BITS} "
                          "(codes packed per byte) and G >= 1 (e.g. bits=4,group=128)")
    return bits, group


def _grid(segment: torch.Tensor, maxq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of `segment`: an asymmetric min-max scale and integer zero point (range holds 0)."""
    low = segment.min(dim=1).values.clamp(max=0)
    high = segment.max(dim=1).values.clamp(min=0)
    flat = low == high
    low, high = torch.where(flat, -1.0, low), torch.where(flat, 1.0, high)
    scale = (high - low) / maxq
    return scale, torch.round(-low / scale)


def _round(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int) -> torch.Tensor:
    return torch.clamp(torch.round(w / scale) + zero, 0, maxq)


def quantize(weight: torch.Tensor, hessian: torch.Tensor, bits: int, group: int, damp: float = DAMP,
             block: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GPTQ of one weight [out, in] against `hessian` [in, in]: integer codes [out, in], scales
    and zero points [out, in / group]."""
    w = weight.detach().to(torch.float64).clone()
    h = hessian.to(torch.float64).clone()
    rows, cols = w.shape
    maxq = 2**bits - 1
    dead = torch.diag(h) == 0  # inputs that were always zero: their weights cannot matter
    h[dead, dead] = 1
    w[:, dead] = 0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(cols, dtype=h.dtype)
    upper = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    codes = torch.zeros(rows, cols, dtype=torch.float64)
    scales = torch.zeros(rows, cols // group, dtype=torch.float64)
    zeros = torch.zeros_like(scales)
    for start in range(0, cols, block):
        end = min(start + block, cols)
        tile = w[:, start:end].clone()
        errors = torch.zeros_like(tile)
        for i in range(end - start):
            col = start + i
            if col % group == 0:  # the group's grid, from its columns as updated so far
                current = torch.cat([tile[:, i:], w[:, end:]], dim=1)[:, :group]
                scales[:, col // group], zeros[:, col // group] = _grid(current, maxq)
            scale, zero = scales[:, col // group], zeros[:, col // group]
            q = _round(tile[:, i], scale, zero, maxq)
            codes[:, col] = q
            error = (tile[:, i] - (q - zero) * scale) / upper[col, col]
            tile[:, i:] -= error.unsqueeze(1) @ upper[col, col:end].unsqueeze(0)
            errors[:, i] = error
        w[:, end:] -= errors @ upper[start:end, end:]
    return codes.to(torch.uint8), scales, zeros.to(torch.uint8)


def round_to_nearest(weight: torch.Tensor, bits: int, group: int):
    """The same grid without error feedback (the baseline GPTQ is compared with)."""
    w = weight.detach().to(torch.float64)
    rows, cols = w.shape
    maxq = 2**bits - 1
    scales, zeros = _grid(w.reshape(rows * (cols // group), group), maxq)
    scales, zeros = scales.reshape(rows, -1), zeros.reshape(rows, -1)
    codes = _round(w, scales.repeat_interleave(group, 1), zeros.repeat_interleave(group, 1), maxq)
    return codes.to(torch.uint8), scales, zeros.to(torch.uint8)


def dequantize(codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, group: int) -> torch.Tensor:
    rows, cols = codes.shape
    grouped = codes.reshape(rows, cols // group, group).to(scales.dtype)
    return ((grouped - zeros.unsqueeze(2).to(scales.dtype)) * scales.unsqueeze(2)).reshape(rows, cols)


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes [out, in] of `bits` bits -> bytes [out, in * bits / 8], low bits first."""
    per = 8 // bits
    rows, cols = codes.shape
    parts = codes.to(torch.int32).reshape(rows, cols // per, per)
    shifts = torch.arange(per, dtype=torch.int32) * bits
    return (parts << shifts).sum(dim=2).to(torch.uint8)


def unpack(packed: torch.Tensor, bits: int) -> torch.Tensor:
    per = 8 // bits
    shifts = torch.arange(per, dtype=torch.uint8, device=packed.device) * bits
    return ((packed.unsqueeze(2) >> shifts) & (2**bits - 1)).reshape(packed.shape[0], -1)


class GPTQLinear(nn.Module):
    """A linear stored as packed B-bit codes + per-group scales and zero points; dequantized at
    each forward into a dense weight for the matmul (memory saved, not compute)."""

    def __init__(self, qweight: torch.Tensor, scales: torch.Tensor, qzeros: torch.Tensor, bits: int, group: int,
                 in_features: int, bias: torch.Tensor | None = None):
        super().__init__()
        self.bits, self.group, self.in_features = bits, group, in_features
        self.out_features = qweight.shape[0]
        self.register_buffer("qweight", qweight)
        self.register_buffer("scales", scales)
        self.register_buffer("qzeros", qzeros)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    def dequantized(self) -> torch.Tensor:
        return dequantize(unpack(self.qweight, self.bits), self.scales, self.qzeros, self.group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.dequantized().to(x.dtype), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, group={self.group}"


def _relative_output_error(delta: torch.Tensor, weight: torch.Tensor, hessian: torch.Tensor) -> float:
    """tr(dW H dW^T) / tr(W H W^T): the squared output error on the calibration inputs, relative."""
    h = hessian.to(torch.float64)
    w = weight.to(torch.float64)
    return float(((delta @ h) * delta).sum() / ((w @ h) * w).sum())


def apply(part, step: Step, calibrate: Callable[[Any], list[Any]] | None) -> dict[str, Any]:
    from candidates.recipes.calibration import capture_linear_inputs, part_linears
    from candidates.recipes.quant_embed import _set_module

    bits, group = parse_gptq(step)
    linears = part_linears(part)
    narrow = [n for n, m in linears.items() if m.in_features % group or m.in_features % (8 // bits)]
    if narrow:
        raise RecipeError(f"{step.text}: input width of {narrow[0]} ({linears[narrow[0]].in_features}) is not a "
                          f"multiple of group={group}; pick a group that divides every input width")
    capture = capture_linear_inputs(step.text, part, calibrate, linears, hessian=True)
    per_linear = {}
    stored = dense = 0
    for name, linear in linears.items():
        stats = capture.stats[name]
        hessian = stats.xtx / stats.tokens
        weight = linear.weight.detach().cpu()
        codes, scales, zeros = quantize(weight, hessian, bits, group)
        rtn = dequantize(*round_to_nearest(weight, bits, group), group)
        dtype = linear.weight.dtype
        bias = None if linear.bias is None else linear.bias.detach().clone()
        module = GPTQLinear(pack(codes, bits), scales.to(dtype), zeros, bits, group, linear.in_features, bias)
        w64 = weight.to(torch.float64)
        per_linear[name] = {
            "shape": list(weight.shape),
            "output_error_gptq": round(_relative_output_error(dequantize(codes, scales, zeros, group) - w64, w64,
                                                              hessian), 8),
            "output_error_rtn": round(_relative_output_error(rtn - w64, w64, hessian), 8),
        }
        from harness.measure.memory import tensor_bytes

        dense += tensor_bytes(linear)
        stored += tensor_bytes(module)
        _set_module(part, name, module.to(linear.weight.device))
    better = sum(v["output_error_gptq"] <= v["output_error_rtn"] for v in per_linear.values())
    return {"calibration_samples": capture.samples, "bits": bits, "group": group, "linears": len(per_linear),
            "bytes_before": dense, "bytes_after": stored, "gptq_beats_rtn": f"{better}/{len(per_linear)}",
            "storage": f"packed {bits}-bit codes + per-group scales/zeros; dequantized to a dense weight at each "
                       "forward (saves memory, not compute)",
            "per_linear": per_linear}
