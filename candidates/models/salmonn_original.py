"""The original SALMONN (Tang et al., ICLR 2024), as the NOTA 2025 organisers trained it
(github.com/nota-github/audiolm-trainer): Whisper encoder + BEATs + window-level Q-Former +
projector + an LLM with LoRA, with the module names of that code, so that a checkpoint saved by
it (`torch.load(ckpt)["model"]`) loads here by name.

Module names (those of the checkpoint):
- `speech_encoder`: a transformers Whisper encoder; `ln_speech`: LayerNorm(d_model)
- `beats`: BEATs (candidates/models/beats.py); `ln_audio`: LayerNorm(BEATs width)
- `speech_Qformer.bert`: a 2-layer BERT (bert-base-uncased's shape) whose input is only the
  query token: `embeddings.LayerNorm`, then per layer self-attention (`attention.self`,
  `attention.output`), cross-attention to the audio (`crossattention.*`, keys and values of the
  encoder width) and the query feed-forward (`intermediate_query`, `output_query`). The
  original also builds word/position embeddings and a text feed-forward and then deletes them;
  they are never built here.
- `speech_query_tokens` (1, 1, 768); `speech_llama_proj`: Linear(768, LLM hidden)
- `llama_model`: the LLM, wrapped by peft when LoRA is on
  (`llama_model.base_model.model.model.layers.N.self_attn.q_proj.lora_A.default.weight`).

Windows: the concatenated (Whisper ‖ BEATs) frames are cut into windows of
round(1500 * second_per_window / 30) frames (17 for 1/3 s) at the same stride; each window is
one Q-Former batch item, and its query outputs are the speech tokens (88 per 30 s clip).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# bert-base-uncased's config.json: the Q-Former's shape (the original reads it from the hub).
BERT_BASE = {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
             "hidden_act": "gelu", "initializer_range": 0.02}
WHISPER_FRAMES_PER_30S = 1500


class BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_width: int):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key, self.value = nn.Linear(kv_width, hidden), nn.Linear(kv_width, hidden)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(t.shape[0], t.shape[1], self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(context)), split(self.value(context))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        out = torch.softmax(scores, dim=-1) @ v
        return out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)


class BertOutput(nn.Module):
    """dense -> LayerNorm(residual + .): BERT's `attention.output` and `output_query`."""

    def __init__(self, inner: int, hidden: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(inner, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_width: int, eps: float):
        super().__init__()
        self.self = BertSelfAttention(hidden, heads, kv_width)
        self.output = BertOutput(hidden, hidden, eps)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, context), x)


class BertIntermediate(nn.Module):
    def __init__(self, hidden: int, inner: int):
        super().__init__()
        self.dense = nn.Linear(hidden, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))


class QFormerLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, encoder_width: int, eps: float):
        super().__init__()
        self.attention = BertAttention(hidden, heads, hidden, eps)
        self.crossattention = BertAttention(hidden, heads, encoder_width, eps)
        self.intermediate_query = BertIntermediate(hidden, inner)
        self.output_query = BertOutput(inner, hidden, eps)

    def forward(self, queries: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        x = self.attention(queries, queries)
        x = self.crossattention(x, audio)
        return self.output_query(self.intermediate_query(x), x)


class QFormerEmbeddings(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)


class QFormerEncoder(nn.Module):
    def __init__(self, layers: list[QFormerLayer]):
        super().__init__()
        self.layer = nn.ModuleList(layers)


class QFormerBert(nn.Module):
    def __init__(self, encoder_width: int, num_layers: int = 2, **config):
        super().__init__()
        c = {**BERT_BASE, **config}
        self.embeddings = QFormerEmbeddings(c["hidden_size"], c["layer_norm_eps"])
        self.encoder = QFormerEncoder([
            QFormerLayer(c["hidden_size"], c["num_attention_heads"], c["intermediate_size"], encoder_width,
                         c["layer_norm_eps"]) for _ in range(num_layers)])

    def forward(self, queries: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        x = self.embeddings.LayerNorm(queries)
        for layer in self.encoder.layer:
            x = layer(x, audio)
        return x


class SpeechQFormer(nn.Module):
    """Holds `bert` so the names are `speech_Qformer.bert.*`, as in the original."""

    def __init__(self, encoder_width: int, num_layers: int = 2):
        super().__init__()
        self.bert = QFormerBert(encoder_width, num_layers)
        self.hidden_size = BERT_BASE["hidden_size"]


class SalmonnOriginal(nn.Module):
    """The composite; the LLM is attached by the family (it may be quantized, LoRA-wrapped or merged)."""

    def __init__(self, speech_encoder: nn.Module, beats: nn.Module | None, llm_hidden: int,
                 num_query_tokens: int = 1, second_per_window: float = 0.333333, second_stride: float = 0.333333):
        super().__init__()
        d_model = speech_encoder.config.d_model
        self.speech_encoder = speech_encoder
        self.ln_speech = nn.LayerNorm(d_model)
        self.beats = beats
        width = d_model
        if beats is not None:
            self.ln_audio = nn.LayerNorm(beats.cfg.encoder_embed_dim)
            width += beats.cfg.encoder_embed_dim
        self.speech_Qformer = SpeechQFormer(width)
        self.speech_query_tokens = nn.Parameter(torch.zeros(1, num_query_tokens, BERT_BASE["hidden_size"]))
        self.speech_llama_proj = nn.Linear(BERT_BASE["hidden_size"], llm_hidden)
        self.kernel = round(WHISPER_FRAMES_PER_30S * second_per_window / 30.0)
        self.stride = round(WHISPER_FRAMES_PER_30S * second_stride / 30.0)
        self.llama_model: nn.Module | None = None

    def encode_speech(self, spectrogram: torch.Tensor, raw_wav: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, windows * queries, LLM hidden) speech embeddings. `raw_wav`: unpadded 16 kHz
        waveforms for BEATs (one clip per call when their lengths differ), or None (speech only)."""
        speech = self.ln_speech(self.speech_encoder(spectrogram).last_hidden_state)
        if self.beats is not None and raw_wav is not None:
            audio = self.ln_audio(self.beats.extract_features(raw_wav).to(speech.dtype))
            gap = speech.shape[1] - audio.shape[1]  # zero-pad the shorter one after its LayerNorm
            if gap > 0:
                audio = nn.functional.pad(audio, (0, 0, 0, gap))
            elif gap < 0:
                speech = nn.functional.pad(speech, (0, 0, 0, -gap))
            speech = torch.cat([speech, audio], dim=-1)
        batch, frames, width = speech.shape
        windows = (frames - self.kernel) // self.stride + 1  # unfold's count: a partial last window is dropped
        starts = torch.arange(windows, device=speech.device) * self.stride
        index = starts[:, None] + torch.arange(self.kernel, device=speech.device)[None, :]
        windowed = speech[:, index].reshape(batch * windows, self.kernel, width)
        queries = self.speech_query_tokens.expand(windowed.shape[0], -1, -1)
        out = self.speech_llama_proj(self.speech_Qformer.bert(queries, windowed))
        return out.reshape(batch, -1, out.shape[-1])
