"""BEATs (Chen et al., "BEATs: Audio Pre-Training with Acoustic Tokenizers", 2022), the audio
encoder of the original SALMONN, written from the paper and the released checkpoints' `cfg`.

A released checkpoint is a `.pt` holding `{"cfg": {...}, "model": state_dict}`; the parameter
names here are the checkpoint's, so `load_state_dict(ckpt["model"])` loads it unchanged:

- `patch_embedding` (16x16 conv over the 128-bin fbank), `layer_norm`, `post_extract_proj`;
- `encoder.pos_conv.0.{weight_g, weight_v, bias}`: a grouped convolutional position embedding
  with weight normalisation over every dim but the kernel's (dim 2), followed by dropping the
  last frame (even kernel) and a GELU;
- `encoder.layers.N.self_attn.{q,k,v,out}_proj`, `relative_attention_bias` (T5-style buckets,
  one table shared by every layer, stored under each layer's name), `grep_linear` / `grep_a`
  (the gated relative position bias of WavLM), `self_attn_layer_norm`, `fc1`, `fc2`,
  `final_layer_norm`, with post-norm and DeepNorm residual scaling (alpha = (2 L)^(1/4));
- `encoder.layer_norm`, and `predictor` in fine-tuned checkpoints (not used by SALMONN).

Inputs are waveforms at 16 kHz in [-1, 1]; features are Kaldi fbanks of the waveform times
2^15 (candidates/models/kaldi_fbank.py), normalised with the released mean and std.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from candidates.models.kaldi_fbank import fbank

FBANK_MEAN, FBANK_STD = 15.41663, 6.55582

# The released config's fields and their defaults (the checkpoint's `cfg` overrides them).
DEFAULTS: dict[str, Any] = {
    "input_patch_size": 16, "embed_dim": 512, "conv_bias": False,
    "encoder_layers": 12, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12, "activation_fn": "gelu", "layer_norm_first": False, "deep_norm": False,
    "conv_pos": 128, "conv_pos_groups": 16, "relative_position_embedding": False, "num_buckets": 320,
    "max_distance": 1280, "gru_rel_pos": False, "finetuned_model": False, "predictor_class": 527,
}
# Training-only fields of a released cfg: read and ignored (dropouts, layer drop, gradient scaling).
TRAINING_ONLY = {"dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop", "dropout_input",
                 "layer_wise_gradient_decay_ratio", "predictor_dropout"}


class BEATsConfig:
    """The released `cfg` dict as attributes; unknown fields are kept (and listed by `unknown`)."""

    def __init__(self, cfg: dict[str, Any] | None = None):
        self.__dict__.update(DEFAULTS)
        self.__dict__.update(cfg or {})
        self.unknown = sorted(set(cfg or {}) - set(DEFAULTS) - TRAINING_ONLY)
        if self.activation_fn != "gelu":
            raise ValueError(f"BEATs cfg: activation_fn {self.activation_fn!r} is not supported (only gelu, as released)")
        if self.deep_norm and self.layer_norm_first:
            raise ValueError("BEATs cfg: deep_norm and layer_norm_first cannot both be set")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "unknown"}


class WeightNormConv1d(nn.Module):
    """A Conv1d whose weight is `weight_v * weight_g / |weight_v|`, the norm taken over dims 0 and 1
    for each kernel position (weight normalisation with dim=2), stored as the checkpoint stores it."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.padding, self.groups = kernel // 2, groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel).normal_(0, 0.02))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.weight_v.norm(dim=(0, 1), keepdim=True)
        weight = self.weight_v * (self.weight_g / norm)
        return nn.functional.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class DropLast(nn.Module):
    """Drops the last frame: an even kernel with padding k//2 makes one frame too many."""

    def __init__(self, kernel: int):
        super().__init__()
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :-self.remove] if self.remove else x


class MultiheadAttention(nn.Module):
    def __init__(self, cfg: BEATsConfig, has_relative_bias: bool):
        super().__init__()
        dim, self.num_heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.head_dim = dim // self.num_heads
        self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.q_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.num_buckets, self.max_distance = cfg.num_buckets, cfg.max_distance
        if has_relative_bias:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, self.num_heads)
        self.gru_rel_pos = cfg.gru_rel_pos
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, self.num_heads, 1, 1))

    def _buckets(self, relative: torch.Tensor) -> torch.Tensor:
        """T5's bidirectional buckets: half for each direction, exact up to a quarter, then log-spaced."""
        half = self.num_buckets // 2
        buckets = (relative > 0).long() * half
        relative = relative.abs()
        exact = half // 2
        large = exact + (torch.log(relative.float() / exact) / math.log(self.max_distance / exact)
                         * (half - exact)).long()
        large = torch.clamp(large, max=half - 1)
        return buckets + torch.where(relative < exact, relative, large)

    def position_bias(self, length: int) -> torch.Tensor:
        """(heads, length, length) bias from the shared table."""
        positions = torch.arange(length)
        buckets = self._buckets(positions[None, :] - positions[:, None]).to(self.relative_attention_bias.weight.device)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, time, dim); bias: (heads, time, time) or None."""
        batch, length, dim = x.shape
        split = lambda t: t.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q_raw = split(self.q_proj(x))
        k, v = split(self.k_proj(x)), split(self.v_proj(x))
        scores = (q_raw * self.head_dim ** -0.5) @ k.transpose(-1, -2)  # (b, h, t, t)
        if bias is not None:
            bias = bias.unsqueeze(0)
            if self.gru_rel_pos:
                # WavLM's gate: two sigmoid gates from the unscaled query of each position.
                gates = torch.sigmoid(self.grep_linear(q_raw).view(batch, self.num_heads, length, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias
            scores = scores + bias
        attn = torch.softmax(scores, dim=-1) @ v
        return self.out_proj(attn.transpose(1, 2).reshape(batch, length, dim))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: BEATsConfig, has_relative_bias: bool):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.self_attn = MultiheadAttention(cfg, has_relative_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, cfg.encoder_ffn_embed_dim), nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = cfg.layer_norm_first
        self.alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x).float()).type_as(x))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.self_attn(self.self_attn_layer_norm(x), bias)
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x * self.alpha + self.self_attn(x, bias))
        return self.final_layer_norm(x * self.alpha + self._ffn(x))


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.pos_conv = nn.Sequential(WeightNormConv1d(dim, cfg.conv_pos, cfg.conv_pos_groups), DropLast(cfg.conv_pos),
                                      nn.GELU())
        self.relative = cfg.relative_position_embedding
        self.layers = nn.ModuleList(EncoderLayer(cfg, self.relative) for _ in range(cfg.encoder_layers))
        if self.relative:  # one table for all layers, as released: each layer's name points at layer 0's
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm_first = cfg.layer_norm_first
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        # The bias is computed once, by the first layer, and handed on unchanged (ungated).
        bias = self.layers[0].self_attn.position_bias(x.shape[1]) if self.relative else None
        for layer in self.layers:
            x = layer(x, bias)
        return self.layer_norm(x) if self.layer_norm_first else x


class BEATs(nn.Module):
    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        self.cfg = cfg
        self.post_extract_proj = (nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim)
                                  if cfg.embed_dim != cfg.encoder_embed_dim else None)
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, kernel_size=cfg.input_patch_size,
                                         stride=cfg.input_patch_size, bias=cfg.conv_bias)
        self.encoder = TransformerEncoder(cfg)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        if cfg.finetuned_model:
            self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class)

    @staticmethod
    def features(waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, frames, 128) normalised fbanks of 16 kHz waveforms, computed in the waveforms'
        dtype (float64 for the organisers' loader) and returned in float32."""
        banks = [fbank(w * 2 ** 15, num_mel_bins=128, sample_frequency=16000.0) for w in waveforms]
        return ((torch.stack(banks) - FBANK_MEAN) / (2 * FBANK_STD)).to(torch.float32)

    def extract_features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, patches, encoder_embed_dim) for unpadded 16 kHz waveforms (batch, samples)."""
        x = self.features(waveforms).unsqueeze(1).to(self.patch_embedding.weight.dtype)
        x = self.patch_embedding(x)  # (b, embed, time / 16, 128 / 16)
        x = self.layer_norm(x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x)


def load_beats(path, map_location: str = "cpu") -> tuple[BEATs, list[str]]:
    """A BEATs model from a released `.pt` ({"cfg", "model"}); the second value lists the cfg fields
    this implementation does not know (they are reported, never silently used)."""
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(checkpoint, dict) or "cfg" not in checkpoint or "model" not in checkpoint:
        keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path}: not a BEATs checkpoint (expected a dict with 'cfg' and 'model', got {keys})")
    cfg = BEATsConfig(checkpoint["cfg"])
    model = BEATs(cfg)
    result = model.load_state_dict(checkpoint["model"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{path}: BEATs weights do not match its cfg (missing: {result.missing_keys[:5]}, "
                         f"unexpected: {result.unexpected_keys[:5]})")
    return model.eval(), cfg.unknown
