"""Tiny random copies of transformers audio LLMs, built offline (fixed seed) for tests and demos.

Each builder writes an ordinary checkpoint folder (config, safetensors, tokenizer, processor files)
with `save_pretrained`, so the families always load through `from_pretrained(local_files_only=True)`,
exactly as they load a real checkpoint. The architecture, processor and prompt layout are the
real model's; the sizes are cut to a few hundred thousand parameters and the tokenizer is a
byte-level BPE trained here on a small corpus, carrying the model's own special tokens. Their
outputs are meaningless; their code paths, token streams and timings are real.

`ensure_tiny(name)` builds one into the cache once (harness/paths.py `build_once`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.paths import build_once, cache_dir

TINY_VERSION = "v1"  # bump when a builder changes, so old caches are not reused
SEED = 2026
VOCAB_SIZE = 1024

# The LLM and the audio encoder of every tiny copy (a few hundred thousand parameters each).
TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 4096}
WHISPER_ENCODER = {"d_model": 64, "encoder_layers": 2, "encoder_attention_heads": 4, "encoder_ffn_dim": 128}



def chat_template(open_turn: str, close_turn: str, audio: str, generation: str, prefix: str = "") -> str:
    """A chat template in a model's layout, shortened to what the tiny copies need: each turn is
    `open_turn` (its `{role}` filled in), the content (a string, or text and audio items, the
    audio written as the model's placeholder `audio`), then `close_turn`."""
    role = "{{ m['role'] }}"
    return (
        prefix + "{% for m in messages %}" + open_turn.replace("{role}", role)
        + "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
        + "{% if c['type'] == 'audio' %}" + audio + "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
        + close_turn + "{% endfor %}{% if add_generation_prompt %}" + generation + "{% endif %}"
    )


def chatml(audio: str) -> str:
    """The Qwen family's layout."""
    return chat_template("<|im_start|>{role}\n", "<|im_end|>\n", audio, "<|im_start|>assistant\n")


def default_path(name: str) -> Path:
    return cache_dir() / "models" / f"{name}-tiny-{TINY_VERSION}"


def ensure_tiny(name: str) -> Path:
    if name not in BUILDERS:
        raise KeyError(f"no tiny model {name!r}; known: {', '.join(sorted(BUILDERS))}")
    return build_once(default_path(name), BUILDERS[name])


# ---------------------------------------------------------------------------------- helpers


def tokenizer(special: list[str], eos: str, pad: str, chat_template: str | None = None, **named: str):
    """A byte-level BPE trained offline, with the model's special tokens; `named` become tokenizer
    attributes the processors read (e.g. audio_token="<|AUDIO|>")."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    from candidates.checkpoints.salmonn_tiny import corpus

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus(), vocab_size=VOCAB_SIZE, min_frequency=1, special_tokens=special)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=eos, pad_token=pad,
                                  extra_special_tokens=named or None)
    tok.add_special_tokens({"additional_special_tokens": [t for t in special if t not in (eos, pad)]})
    if chat_template:
        tok.chat_template = chat_template
    return tok


def text_config(tok, model_type: str | None = None, **overrides: Any) -> dict[str, Any]:
    config = {**TEXT, "vocab_size": len(tok), "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
              **overrides}
    if model_type:
        config["model_type"] = model_type
    return config


def save(out: Path, model, processor) -> None:
    model.generation_config.eos_token_id = model.config.get_text_config().eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _seeded(build: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(out: Path) -> None:
        import torch

        torch.manual_seed(SEED)
        build(out)

    run.__name__ = build.__name__
    return run


# --------------------------------------------------------------------------------- builders


def audioflamingo3(out: Path) -> None:
    from transformers import (
        AudioFlamingo3Config,
        AudioFlamingo3ForConditionalGeneration,
        AudioFlamingo3Processor,
        WhisperFeatureExtractor,
    )

    tok = tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>"], "<|im_end|>", "<|endoftext|>")
    processor = AudioFlamingo3Processor(WhisperFeatureExtractor(feature_size=128), tok,
                                        chat_template=chatml("<sound>"))
    config = AudioFlamingo3Config(
        audio_config={"num_mel_bins": 128, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "intermediate_size": 128},
        text_config=text_config(tok, "qwen2"),
        audio_token_id=tok.convert_tokens_to_ids("<sound>"),
    )
    save(out, AudioFlamingo3ForConditionalGeneration(config), processor)


def glmasr(out: Path) -> None:
    from transformers import GlmAsrConfig, GlmAsrForConditionalGeneration, GlmAsrProcessor, WhisperFeatureExtractor

    # GLM-ASR-Nano's layout: [gMASK]<sop><|user|>\n...<|assistant|>\n, the audio between markers.
    template = chat_template("<|{role}|>\n", "", "<|begin_of_audio|><|pad|><|end_of_audio|>\n", "<|assistant|>\n",
                             prefix="[gMASK]<sop>")
    special = ["<|endoftext|>", "[gMASK]", "<sop>", "<|user|>", "<|assistant|>", "<|system|>", "<|pad|>",
               "<|begin_of_audio|>", "<|end_of_audio|>"]
    tok = tokenizer(special, "<|endoftext|>", "<|endoftext|>")
    processor = GlmAsrProcessor(WhisperFeatureExtractor(feature_size=128), tok, chat_template=template)
    config = GlmAsrConfig(
        audio_config={"num_mel_bins": 128, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "num_key_value_heads": 4, "intermediate_size": 128},
        text_config=text_config(tok, "llama"),
        audio_token_id=tok.convert_tokens_to_ids("<|pad|>"),
    )
    save(out, GlmAsrForConditionalGeneration(config), processor)


def qwen3_asr(out: Path) -> None:
    from transformers import (
        Qwen3ASRConfig,
        Qwen3ASRFeatureExtractor,
        Qwen3ASRForConditionalGeneration,
        Qwen3ASRProcessor,
    )

    audio = "<|audio_start|><|audio_pad|><|audio_end|>"
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_start|>", "<|audio_pad|>", "<|audio_end|>",
               "<asr_text>"]
    tok = tokenizer(special, "<|im_end|>", "<|endoftext|>", audio_token="<|audio_pad|>",
                    audio_bos_token="<|audio_start|>", audio_eos_token="<|audio_end|>")
    processor = Qwen3ASRProcessor(Qwen3ASRFeatureExtractor(), tok, chat_template=chatml(audio))
    config = Qwen3ASRConfig(
        audio_config={**WHISPER_ENCODER, "output_dim": TEXT["hidden_size"], "downsample_hidden_size": 16},
        text_config=text_config(tok, "qwen3", head_dim=16),
        audio_token_id=tok.convert_tokens_to_ids("<|audio_pad|>"),
        timestamp_token_id=tok.convert_tokens_to_ids("<asr_text>"),
        pad_token_id=tok.pad_token_id,
        eos_token_id=[tok.eos_token_id, tok.pad_token_id],
    )
    save(out, Qwen3ASRForConditionalGeneration(config), processor)


def qwen2_5_omni(out: Path) -> None:
    from transformers import (
        Qwen2_5OmniThinkerConfig,
        Qwen2_5OmniThinkerForConditionalGeneration,
        WhisperFeatureExtractor,
    )

    from candidates.models.audio_processors import Qwen2_5OmniAudioProcessor

    names = {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
             "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>", "vision_bos_token": "<|vision_bos|>",
             "vision_eos_token": "<|vision_eos|>"}
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *names.values()]
    tok = tokenizer(special, "<|im_end|>", "<|endoftext|>", **names)
    processor = Qwen2_5OmniAudioProcessor(WhisperFeatureExtractor(feature_size=128), tok,
                                          chat_template=chatml("<|audio_bos|><|AUDIO|><|audio_eos|>"))
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in names.items()}
    config = Qwen2_5OmniThinkerConfig(
        audio_config={**WHISPER_ENCODER, "output_dim": TEXT["hidden_size"], "n_window": 50},
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                       "out_hidden_size": TEXT["hidden_size"], "fullatt_block_indexes": [0]},
        text_config=text_config(tok, rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                      "mrope_section": [2, 3, 3]}),
        audio_token_index=ids["audio_token"], image_token_index=ids["image_token"],
        video_token_index=ids["video_token"], audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"], vision_start_token_id=ids["vision_bos_token"],
        user_token_id=tok.convert_tokens_to_ids("<|im_start|>"),
    )
    save(out, Qwen2_5OmniThinkerForConditionalGeneration(config), processor)


# Voxtral's tokenizer is mistral-common's Tekken: a tiktoken BPE over bytes plus control tokens,
# read from tekken.json. The tiny one has the 256 single bytes (no merges) and the control tokens
# Voxtral uses, at the ranks the real file gives them ([AUDIO] = 24 is fixed in VoxtralProcessor).
TEKKEN_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TEKKEN_SPECIAL = 32


def tekken_json() -> dict[str, Any]:
    import base64

    from mistral_common.tokens.tokenizers.base import SpecialTokens as S

    names = [S.unk, S.bos, S.eos, S.begin_inst, S.end_inst, S.begin_tools, S.end_tools, S.begin_tool_results,
             S.end_tool_results, S.tool_calls, S.img, S.pad, S.img_break, S.img_end, S.prefix, S.middle, S.suffix,
             S.begin_system, S.end_system, S.begin_tool_content, S.args, S.call_id, "<SPECIAL_22>", "<SPECIAL_23>",
             S.audio, S.begin_audio, S.transcribe]
    return {
        "config": {"pattern": TEKKEN_PATTERN, "num_vocab_tokens": 256, "default_vocab_size": 256 + TEKKEN_SPECIAL,
                   "default_num_special_tokens": TEKKEN_SPECIAL, "version": "v7"},
        "vocab": [{"rank": i, "token_bytes": base64.b64encode(bytes([i])).decode(), "token_str": None}
                  for i in range(256)],
        "special_tokens": [{"rank": i, "token_str": str(n), "is_control": True} for i, n in enumerate(names)],
        "version": 1,
        "type": "Tekken",
        "audio": {"sampling_rate": 16000, "frame_rate": 12.5, "chunk_length_s": 30.0,
                  "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400}},
    }


def voxtral(out: Path) -> None:
    import json

    from transformers import (
        MistralCommonBackend,
        VoxtralConfig,
        VoxtralForConditionalGeneration,
        VoxtralProcessor,
        WhisperFeatureExtractor,
    )

    (out / "tekken.json").write_text(json.dumps(tekken_json()), encoding="utf-8")
    tok = MistralCommonBackend.from_pretrained(out, local_files_only=True)
    processor = VoxtralProcessor(WhisperFeatureExtractor(feature_size=128), tok)
    config = VoxtralConfig(
        # the projector stacks 4 encoder frames: intermediate_size must be 4 x hidden_size
        audio_config={"num_mel_bins": 128, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "intermediate_size": 256},
        text_config={**TEXT, "model_type": "llama", "vocab_size": len(tok), "head_dim": 16, "bos_token_id": 1,
                     "eos_token_id": 2, "pad_token_id": 11},
        audio_token_id=processor.audio_token_id,
    )
    save(out, VoxtralForConditionalGeneration(config), processor)


def granite_speech(out: Path) -> None:
    from transformers import GraniteSpeechConfig, GraniteSpeechForConditionalGeneration

    from candidates.models.audio_processors import granite_speech_processor

    # Granite 3.x's layout: <|start_of_role|>user<|end_of_role|>...<|end_of_text|>
    template = chat_template("<|start_of_role|>{role}<|end_of_role|>", "<|end_of_text|>\n", "<|audio|>",
                             "<|start_of_role|>assistant<|end_of_role|>")
    special = ["<|end_of_text|>", "<|pad|>", "<|start_of_role|>", "<|end_of_role|>", "<|audio|>"]
    tok = tokenizer(special, "<|end_of_text|>", "<|pad|>", chat_template=template)
    processor = granite_speech_processor(tokenizer=tok)
    config = GraniteSpeechConfig(
        text_config=text_config(tok, "granite"),
        encoder_config={"input_dim": 160, "num_layers": 2, "hidden_dim": 64, "num_heads": 4, "dim_head": 16,
                        "feedforward_mult": 2, "context_size": 200, "max_pos_emb": 512},
        projector_config={"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
                          "num_hidden_layers": 1, "encoder_hidden_size": 64, "cross_attention_frequency": 1},
        audio_token_index=tok.convert_tokens_to_ids("<|audio|>"),
        has_lora_adapter=False,  # the real 3.3 models ship a LoRA adapter (needs peft); the tiny has none
    )
    save(out, GraniteSpeechForConditionalGeneration(config), processor)


def phi4_multimodal(out: Path) -> None:
    from transformers import Phi4MultimodalConfig, Phi4MultimodalFeatureExtractor, Phi4MultimodalForCausalLM

    from candidates.models.audio_processors import Phi4MultimodalAudioProcessor

    # Phi-4-multimodal's layout: <|user|><|audio_1|>...<|end|><|assistant|> (one <|audio|> per clip here)
    template = chat_template("<|{role}|>", "<|end|>", "<|audio|>", "<|assistant|>")
    special = ["<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|image|>", "<|audio|>"]
    tok = tokenizer(special, "<|end|>", "<|endoftext|>", image_token="<|image|>", audio_token="<|audio|>")
    processor = Phi4MultimodalAudioProcessor(Phi4MultimodalFeatureExtractor(), tok, chat_template=template)
    config = Phi4MultimodalConfig(
        **TEXT, vocab_size=len(tok), bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,  # must lie inside the (tiny) vocabulary
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 28, "patch_size": 14, "crop_size": 28, "image_token_id": tok.image_token_id},
        audio_config={"hidden_size": 64, "intermediate_size": 128, "num_blocks": 2, "num_attention_heads": 4,
                      "ext_pw_out_channel": 64, "depthwise_separable_out_channel": 64, "nemo_conv_channels": 64,
                      "audio_token_id": tok.audio_token_id},
    )
    save(out, Phi4MultimodalForCausalLM(config), processor)


def gemma4(out: Path) -> None:
    from transformers import Gemma4AudioFeatureExtractor, Gemma4Config, Gemma4ForConditionalGeneration

    from candidates.models.audio_processors import Gemma4AudioProcessor

    names = {"audio_token": "<|audio|>", "boa_token": "<|audio>", "eoa_token": "<audio|>", "image_token": "<|image|>",
             "boi_token": "<|image>", "eoi_token": "<image|>"}
    # Gemma 4's layout: <bos><|turn>user\n...<turn|>\n<|turn>model\n
    template = chat_template("<|turn>{role}\n", "<turn|>\n", "<|audio|>", "<|turn>model\n", prefix="<bos>")
    tok = tokenizer(["<pad>", "<eos>", "<bos>", "<|turn>", "<turn|>", *names.values()], "<turn|>", "<pad>", **names)
    processor = Gemma4AudioProcessor(Gemma4AudioFeatureExtractor(), tok, chat_template=template)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in names.items()}
    config = Gemma4Config(
        text_config={**text_config(tok), "head_dim": 16, "sliding_window": 32,
                     "layer_types": ["sliding_attention", "full_attention"], "vocab_size_per_layer_input": len(tok),
                     "hidden_size_per_layer_input": 16, "bos_token_id": tok.convert_tokens_to_ids("<bos>")},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "num_key_value_heads": 2, "head_dim": 16, "position_embedding_size": 64},
        audio_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "output_proj_dims": 64},
        boi_token_id=ids["boi_token"], eoi_token_id=ids["eoi_token"], image_token_id=ids["image_token"],
        video_token_id=ids["image_token"], boa_token_id=ids["boa_token"], eoa_token_index=ids["eoa_token"],
        audio_token_id=ids["audio_token"],
    )
    save(out, Gemma4ForConditionalGeneration(config), processor)


def qwen2_audio(out: Path) -> None:
    from candidates.checkpoints.qwen2_audio_tiny import build

    build(out)  # its own seed: the same weights as before this module existed


BUILDERS: dict[str, Callable[[Path], None]] = {
    "qwen2-audio": qwen2_audio,
    "audioflamingo3": _seeded(audioflamingo3),
    "glm-asr": _seeded(glmasr),
    "qwen3-asr": _seeded(qwen3_asr),
    "voxtral": _seeded(voxtral),
    "granite-speech": _seeded(granite_speech),
    "phi4-multimodal": _seeded(phi4_multimodal),
    "qwen2.5-omni": _seeded(qwen2_5_omni),
    "gemma4": _seeded(gemma4),
}
