"""Audio-context trimming for Whisper encoders (recipe step `audio-ctx:encoder:pad_s=S`).

Whisper pads every clip to 30 s and encodes all 1500 positions, although a 4 s clip holds 200
positions of speech and 1300 of silence. This step encodes only the clip plus `pad_s` seconds of
its padding, and fills the rest of the 1500 positions with the encoding of a silent window,
computed once at load. The decoder still cross-attends to a full window, so it still sees where
speech ends; the encoder's work and activations shrink with the clip.

Why the filled tail: simply encoding a shorter window (whisper.cpp's `audio_ctx`) makes this
model loop on short real recordings ("10 of clubs 10 of clubs ..." on the pocketsphinx cards
clips, pad_s=6), because it was trained on 30 s windows only. With the tail, greedy WER was
unchanged on the demo speech (0.0305) and on real recordings (0.0381, 13 clips). The kept
log-mel frames are bit-identical to the 30 s features' first frames (tested); what differs from
the fp32 model is the encoding of the padding, which no longer attends to the speech.

The family computes the shorter features (`feature_samples`) and hands the encoder's output to
`generate` (HF's generate would pad the features back to 3000 frames).
"""

from __future__ import annotations

import math
import types

import torch
from torch import nn

SAMPLES_PER_POSITION = 320  # 2 mel frames of 160 samples (conv2 has stride 2)


def feature_samples(n_audio_samples: int, pad_s: float, sample_rate: int, window_s: float) -> int:
    """Samples to pad (or cut) a clip to: the clip plus `pad_s` of silence, a whole number of
    encoder positions, at most Whisper's window."""
    wanted = n_audio_samples + pad_s * sample_rate
    positions = math.ceil(wanted / SAMPLES_PER_POSITION)
    return int(min(positions * SAMPLES_PER_POSITION, window_s * sample_rate))


# What WhisperFeatureExtractor gives for digital silence: log10 of its 1e-10 floor (-10),
# normalized as (x + 4) / 4 (checked against the extractor in the tests).
SILENCE_LOG_MEL = -1.5


def _encode(self, input_features, **kwargs):
    """HF WhisperEncoder.forward's body, for any number of mel frames up to the window."""
    embeds = nn.functional.gelu(self.conv1(input_features))
    embeds = nn.functional.gelu(self.conv2(embeds)).permute(0, 2, 1)
    hidden = embeds + self.embed_positions.weight[: embeds.shape[1]]
    for layer in self.layers:
        hidden = layer(hidden, None, **kwargs)
    return self.layer_norm(hidden)


def _short_forward(self, input_features, attention_mask=None, **kwargs):
    """Encodes the frames given, then the silent window's encoding for the positions after them."""
    from transformers.modeling_outputs import BaseModelOutput

    limit = self.config.max_source_positions * self.conv1.stride[0] * self.conv2.stride[0]
    if input_features.shape[-1] > limit or input_features.shape[-1] % 2:
        raise ValueError(f"audio-ctx: expected an even number of mel frames up to {limit}, got {input_features.shape[-1]}")
    hidden = _encode(self, input_features, **kwargs)
    tail = self.silence_encoding[:, hidden.shape[1]:].to(hidden.dtype).expand(hidden.shape[0], -1, -1)
    return BaseModelOutput(last_hidden_state=torch.cat([hidden, tail], dim=1))


def trim_encoder_context(encoder) -> dict:
    """Encodes a silent window once, then lets the encoder take fewer than 3000 mel frames and
    fill the rest of the window from it; returns a note for the record."""
    needed = ("conv1", "conv2", "embed_positions", "layers", "layer_norm")
    if not all(hasattr(encoder, name) for name in needed) or not hasattr(encoder.config, "max_source_positions"):
        raise ValueError(f"audio-ctx: {type(encoder).__name__} is not a Whisper encoder (needs {', '.join(needed)})")
    frames = encoder.config.max_source_positions * encoder.conv1.stride[0] * encoder.conv2.stride[0]
    weight = encoder.conv1.weight
    silence = torch.full((1, encoder.config.num_mel_bins, frames), SILENCE_LOG_MEL, dtype=weight.dtype, device=weight.device)
    with torch.inference_mode():
        # Not a buffer: derived from the weights at every load, never saved nor counted as weights.
        encoder.silence_encoding = _encode(encoder, silence).clone()
    encoder.forward = types.MethodType(_short_forward, encoder)
    return {"note": "encodes the clip plus pad_s of its padding; the rest of the 30 s window comes from "
                    "the encoding of a silent window, computed at load",
            "silence_encoding_mb": round(encoder.silence_encoding.numel() * encoder.silence_encoding.element_size() / 2**20, 2)}
