"""A SALMONN-style audio LLM built from stock transformers parts.

Whisper encoder -> window-level Q-Former (one query per ~0.33 s window) -> linear projector
-> Llama causal LM. The whole model is a `PreTrainedModel`, so `save_pretrained` /
`from_pretrained` (and with them bitsandbytes quantization) work as for any transformers model.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    AutoConfig,
    Blip2QFormerConfig,
    Blip2QFormerModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedConfig,
    PreTrainedModel,
    WhisperConfig,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.models.whisper.modeling_whisper import WhisperEncoder

# The template SALMONN and the competition wrap every instruction in.
PROMPT_TEMPLATE = "USER: <Speech><SpeechHere></Speech> {}\nASSISTANT:"
AUDIO_PLACEHOLDER = "<SpeechHere>"


class SalmonnConfig(PreTrainedConfig):
    model_type = "lalm_salmonn"
    sub_configs_defaults = {
        "encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="whisper"),
        "qformer_config": SubConfigSpec(config_class=AutoConfig, model_type="blip_2_qformer"),
        "llm_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    encoder_config: dict | PreTrainedConfig | None = None
    qformer_config: dict | PreTrainedConfig | None = None
    llm_config: dict | PreTrainedConfig | None = None
    # Encoder frames per Q-Former window: 17 frames of 20 ms = 0.34 s, as in SALMONN.
    window_frames: int = 17
    num_query_tokens: int = 1
    tie_word_embeddings: bool = False


class SalmonnForConditionalGeneration(PreTrainedModel):
    config_class = SalmonnConfig
    base_model_prefix = "salmonn"
    main_input_name = "input_features"
    _no_split_modules = ["WhisperEncoderLayer", "LlamaDecoderLayer"]

    def __init__(self, config: SalmonnConfig):
        super().__init__(config)
        self.audio_encoder = WhisperEncoder(config.encoder_config)
        self.window_qformer = Blip2QFormerModel(config.qformer_config)
        self.query_tokens = nn.Parameter(
            torch.zeros(1, config.num_query_tokens, config.qformer_config.hidden_size)
        )
        self.speech_projector = nn.Linear(
            config.qformer_config.hidden_size, config.llm_config.hidden_size
        )
        self.llm = LlamaForCausalLM(config.llm_config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is self:
            nn.init.normal_(self.query_tokens, std=0.02)

    def encode_audio(self, input_features: torch.Tensor) -> torch.Tensor:
        """Log-mel features (B, n_mels, frames) -> LLM-space audio embeddings (B, windows, H)."""
        hidden = self.audio_encoder(input_features).last_hidden_state  # (B, T, C)
        batch, frames, channels = hidden.shape
        win = self.config.window_frames
        pad = (-frames) % win
        if pad:
            hidden = nn.functional.pad(hidden, (0, 0, 0, pad))
        windows = hidden.reshape(batch * ((frames + pad) // win), win, channels)
        queries = self.query_tokens.expand(windows.shape[0], -1, -1)
        out = self.window_qformer(query_embeds=queries, encoder_hidden_states=windows)
        per_window = out.last_hidden_state.reshape(batch, -1, out.last_hidden_state.shape[-1])
        return self.speech_projector(per_window)

    def build_inputs_embeds(
        self, input_features: torch.Tensor, prefix_ids: torch.Tensor, suffix_ids: torch.Tensor
    ) -> torch.Tensor:
        """Embeds `prefix <audio> suffix` as one sequence for the LLM."""
        embed = self.llm.get_input_embeddings()
        audio = self.encode_audio(input_features).to(embed.weight.dtype)
        return torch.cat([embed(prefix_ids), audio, embed(suffix_ids)], dim=1)

    def forward(self, input_features, prefix_ids, suffix_ids, labels=None, **kwargs):
        embeds = self.build_inputs_embeds(input_features, prefix_ids, suffix_ids)
        return self.llm(inputs_embeds=embeds, labels=labels, **kwargs)


def tiny_config(vocab_size: int, bos_token_id: int, eos_token_id: int, pad_token_id: int) -> SalmonnConfig:
    """About 30M parameters: small enough for CPU tests, shaped like the real thing."""
    encoder = WhisperConfig(
        num_mel_bins=80,
        d_model=256,
        encoder_layers=3,
        encoder_attention_heads=4,
        encoder_ffn_dim=1024,
        decoder_layers=1,
        decoder_attention_heads=4,
        decoder_ffn_dim=256,
        max_source_positions=1500,
        vocab_size=vocab_size,
        # Only the encoder is used: its decoder-side token ids must not point outside the vocab.
        pad_token_id=None,
        bos_token_id=None,
        eos_token_id=None,
        decoder_start_token_id=0,
    )
    qformer = Blip2QFormerConfig(
        hidden_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=1024,
        encoder_hidden_size=256,
        cross_attention_frequency=1,
    )
    llm = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=6,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        tie_word_embeddings=False,
    )
    return SalmonnConfig(encoder_config=encoder, qformer_config=qformer, llm_config=llm)


# Lets AutoConfig (used by AutoTokenizer and friends) read this checkpoint's config.json.
AutoConfig.register(SalmonnConfig.model_type, SalmonnConfig, exist_ok=True)
