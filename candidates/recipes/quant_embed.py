"""Token embeddings and output heads stored in int8, one scale per row (recipe step `embed-int8:PART`).

A language model's token embedding is often its largest tensor (Whisper tiny.en: 51864 x 384,
80 MB of its 144 MB in fp32), and most models tie the output projection to it. Linear-layer
recipes never touch it. Here the table is stored as int8 rows plus one fp32 scale per row
(symmetric, scale = max|row| / 127):

- a lookup dequantizes only the rows it reads;
- a *tied* output projection becomes `Int8TiedHead`, which reads the very same int8 rows: the
  logits are computed chunk by chunk (dequantize a block of rows into a small reused fp32 buffer,
  one GEMM, then the per-row scales), so no second copy of the table exists, quantized or not;
- an *untied* head gets its own int8 rows (`Int8Linear`, the same chunked product).

Why a chunked dequantizing product rather than a fused int8 kernel: on this AVX2 CPU,
torch 2.13's `aten._weight_int8pack_mm` (the weight-only int8 kernel) is ~2.4x slower than the
fp32 GEMV for a 51864 x 384 head, `torch._int_mm` slower still, and fbgemm's fast dynamic int8
GEMM needs its own packed copy of the weight, which would defeat the point (the embedding lookup
cannot read rows from it). The chunked product reads a quarter of the fp32 bytes and keeps the
buffer in cache, so it runs at about fp32 speed or better.
"""

from __future__ import annotations

import torch
from torch import nn

CHUNK_ROWS = 2048  # rows dequantized per GEMM: 2048 x 384 fp32 = 3 MB, about an L2/L3 slice


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: (int8 rows, fp32 scale per row) with row ~= int8 * scale.
    Block by block, so no full-size fp32 temporary exists beside the original."""
    n_rows = weight.shape[0]
    qweight = torch.empty(weight.shape, dtype=torch.int8)
    scale = torch.empty(n_rows, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, n_rows, CHUNK_ROWS):
            w = weight[start:start + CHUNK_ROWS].to(torch.float32, copy=True)  # never in place on the original
            s = w.abs().amax(dim=1) / 127.0
            scale[start:start + CHUNK_ROWS] = s
            w.div_(s.clamp(min=torch.finfo(torch.float32).tiny).unsqueeze(1)).round_().clamp_(-127, 127)
            qweight[start:start + CHUNK_ROWS] = w.to(torch.int8)
    return qweight, scale


def _dequantized_product(x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor,
                         bias: torch.Tensor | None) -> torch.Tensor:
    """x @ (qweight * scale[:, None]).T (+ bias), one block of rows at a time."""
    flat = x.reshape(-1, x.shape[-1])
    n_rows = qweight.shape[0]
    out_t = torch.empty(n_rows, flat.shape[0], dtype=x.dtype, device=x.device)  # result rows contiguous here
    block = torch.empty(min(CHUNK_ROWS, n_rows), qweight.shape[1], dtype=x.dtype, device=x.device)
    for start in range(0, n_rows, CHUNK_ROWS):
        rows = qweight[start:start + CHUNK_ROWS]
        dequant = block[: rows.shape[0]]
        dequant.copy_(rows)  # int8 -> float, into the reused buffer
        torch.mm(dequant, flat.T, out=out_t[start:start + rows.shape[0]])
    out_t.mul_(scale.to(x.dtype).unsqueeze(1))
    out = out_t.T
    if bias is not None:
        out = out + bias
    return out.reshape(*x.shape[:-1], n_rows)


class Int8Embedding(nn.Module):
    """`nn.Embedding` with int8 rows + fp32 per-row scales; returns `dtype` (the original's)."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32,
                 padding_idx: int | None = None, embed_scale: float | None = None):
        super().__init__()
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)
        self.num_embeddings, self.embedding_dim = qweight.shape
        self.dtype = dtype
        self.padding_idx = padding_idx
        self.embed_scale = embed_scale  # some families multiply embeddings by a constant (Gemma)

    @classmethod
    def from_float(cls, embedding: nn.Embedding) -> Int8Embedding:
        qweight, scale = quantize_rows(embedding.weight)
        embed_scale = getattr(embedding, "embed_scale", None)
        return cls(qweight, scale, embedding.weight.dtype, embedding.padding_idx,
                   None if embed_scale is None else float(embed_scale))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.qweight[ids].to(self.dtype) * self.scale[ids].to(self.dtype).unsqueeze(-1)
        return rows if self.embed_scale is None else rows * self.embed_scale

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 rows + fp32 scales, dtype={self.dtype}"


class Int8TiedHead(nn.Module):
    """An output projection tied to an `Int8Embedding`: logits from the embedding's own int8 rows.

    The embedding is held as a plain attribute, not a submodule, so its buffers are registered
    (and counted, and saved) once, under the embedding's name."""

    def __init__(self, embedding: Int8Embedding, bias: torch.Tensor | None = None):
        super().__init__()
        object.__setattr__(self, "tied_to", embedding)
        self.in_features, self.out_features = embedding.embedding_dim, embedding.num_embeddings
        if bias is not None:
            self.register_buffer("bias", bias)
        else:
            self.bias = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _dequantized_product(x, self.tied_to.qweight, self.tied_to.scale, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, tied int8 rows (no own copy)"


class Int8Linear(nn.Module):
    """A weight-only int8 linear (per output row), for an *untied* head: same product as the tied one."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)
        self.out_features, self.in_features = qweight.shape
        if bias is not None:
            self.register_buffer("bias", bias)
        else:
            self.bias = None

    @classmethod
    def from_float(cls, linear: nn.Linear) -> Int8Linear:
        qweight, scale = quantize_rows(linear.weight)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(qweight, scale, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _dequantized_product(x, self.qweight, self.scale, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 rows + fp32 scales"


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent_path) if parent_path else root, name, module)


def _input_embedding(part: nn.Module) -> tuple[str, nn.Embedding]:
    """The part's token embedding: what `get_input_embeddings()` returns, else its largest nn.Embedding."""
    getter = getattr(part, "get_input_embeddings", None)
    embedding = getter() if callable(getter) else None
    named = {id(m): n for n, m in part.named_modules()}
    if isinstance(embedding, nn.Embedding) and id(embedding) in named:
        return named[id(embedding)], embedding
    tables = [(n, m) for n, m in part.named_modules() if isinstance(m, nn.Embedding)]
    if not tables:
        raise ValueError(f"{type(part).__name__} has no token embedding (nn.Embedding) to quantize")
    return max(tables, key=lambda nm: nm[1].weight.numel())


def quantize_embeddings(model: nn.Module, part_path: str) -> dict:
    """Replaces the token embedding of the part at `part_path` (and every linear of the whole model
    tied to it, e.g. Whisper's `proj_out`) by int8 rows; an untied output head of the part
    (`get_output_embeddings()`) gets its own int8 rows. Returns what it did, for the run record."""
    part = model.get_submodule(part_path) if part_path else model
    name, embedding = _input_embedding(part)
    full_name = f"{part_path}.{name}" if part_path else name
    quantized = Int8Embedding.from_float(embedding)
    tied = [n for n, m in model.named_modules(remove_duplicate=False)
            if isinstance(m, nn.Linear) and m.weight is embedding.weight]
    _set_module(model, full_name, quantized)
    for head_name in tied:
        head = model.get_submodule(head_name)
        bias = None if head.bias is None else head.bias.detach().clone()
        _set_module(model, head_name, Int8TiedHead(quantized, bias))
    info = {"embedding": full_name, "rows": quantized.num_embeddings, "tied_heads": tied}
    getter = getattr(part, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if isinstance(head, nn.Linear):  # an untied head inside the part
        head_name = next(n for n, m in model.named_modules() if m is head)
        _set_module(model, head_name, Int8Linear.from_float(head))
        info["own_head"] = head_name
    return info
