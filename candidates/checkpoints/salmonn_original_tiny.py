"""A tiny original-format SALMONN (random weights, fixed seed), built offline, laid out as a team's
files are laid out for the organisers' evaluator:

    whisper/                  a transformers Whisper checkpoint (80 mel bins, 2+2 layers, d_model 64)
    llama/                    a transformers Llama (4 layers, hidden 64, tied head) + tokenizer with
                              Llama 3's special tokens (<|begin_of_text|>, <|end_of_text|>, <|eot_id|>)
    beats.pt                  {"cfg", "model"} of a 2-layer BEATs with the released options
                              (relative positions, gated bias, DeepNorm, fine-tuned predictor)
    ckpt.pth                  {"model": ...}: what the organisers' trainer saves (the trained
                              tensors, LoRA B non-zero, plus the tensors `named_parameters()` skips:
                              the tied LM head with the [PAD] row, BEATs' shared position table,
                              the Q-Former's position-id buffer)
    salmonn_eval_config.yaml  the organisers' YAML with relative paths to the above
    config.json               what was built (also the cache's "done" marker)

Used by tests/test_salmonn_original.py, scripts/salmonn_reference_golden.py and the
`salmonn-original-tiny` candidate.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.paths import build_once, cache_dir

TINY_VERSION = "v2"
SEED = 1919
VOCAB_SIZE = 1024
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
BEATS_CFG = {"input_patch_size": 16, "embed_dim": 32, "conv_bias": False, "encoder_layers": 2,
             "encoder_embed_dim": 48, "encoder_ffn_embed_dim": 96, "encoder_attention_heads": 4,
             "activation_fn": "gelu", "layer_norm_first": False, "deep_norm": True, "dropout": 0.1,
             "attention_dropout": 0.1, "activation_dropout": 0.0, "encoder_layerdrop": 0.05,
             "dropout_input": 0.0, "conv_pos": 16, "conv_pos_groups": 4, "relative_position_embedding": True,
             "num_buckets": 32, "max_distance": 80, "gru_rel_pos": True, "finetuned_model": True,
             "predictor_dropout": 0.0, "predictor_class": 5}
TINY_FILES = {"llama_path": "llama", "whisper_path": "whisper", "beats_path": "beats.pt", "ckpt": "ckpt.pth"}
YAML = """\
# A tiny original-format SALMONN (candidates/checkpoints/salmonn_original_tiny.py), in the
# layout of the organisers' salmonn_eval_config.yaml.
model:
  llama_path: "llama"
  whisper_path: "whisper"
  beats_path: "beats.pt"
  token: ""
  only_preprocessor: False
  ckpt: "ckpt.pth"
  freeze_whisper: True
  freeze_beats: True
  use_speech_Qformer: True
  freeze_speech_QFormer: False
  window_level_Qformer: True
  num_speech_query_token: 1
  second_per_window: 0.333333
  second_stride: 0.333333
  speech_llama_proj_model: ""
  freeze_speech_llama_proj: False
  lora: True
  lora_rank: 8
  lora_alpha: 32
  lora_dropout: 0.1
  multi_prompt: True
  prompt_template: "USER: {}\\nASSISTANT:"
  max_txt_len: 300
  end_sym: "<|end_of_text|>"

generate:
  max_new_tokens: 12
  num_beams: 4
  do_sample: False
  min_length: 1
  temperature: 1.0
  top_p: 0.9
  repetition_penalty: 1.0
  length_penalty: 1.0
  end_sym: "<|end_of_text|>"
"""


def default_tiny_path() -> Path:
    return cache_dir() / "models" / f"salmonn-original-tiny-{TINY_VERSION}"


def _tokenizer(out: Path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    from candidates.checkpoints.salmonn_tiny import corpus

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus(), vocab_size=VOCAB_SIZE, min_frequency=1, special_tokens=SPECIAL)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=SPECIAL[0], eos_token=SPECIAL[1])
    tok.add_special_tokens({"additional_special_tokens": [SPECIAL[2]]})
    tok.save_pretrained(out)
    # Llama 3's own tokenizer_config names this class; transformers 5 writes its new backend's
    # name, which the organisers' transformers 4.47 does not know.
    config_file = out / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["additional_special_tokens"] = config.pop("extra_special_tokens", [SPECIAL[2]])  # 4.47's key
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return tok


def _jitter(module, std: float) -> None:
    """Random values everywhere (LayerNorms included), so every tensor of the file matters."""
    import torch

    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * std)


def build(out: Path) -> None:
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, WhisperConfig, WhisperFeatureExtractor, WhisperModel

    from candidates.models.beats import BEATs, BEATsConfig
    from candidates.models.salmonn_original import SalmonnOriginal

    torch.manual_seed(SEED)
    whisper_config = WhisperConfig(vocab_size=512, num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
                                   encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                   decoder_ffn_dim=128, max_source_positions=1500, max_target_positions=64,
                                   decoder_start_token_id=1, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    whisper = WhisperModel(whisper_config)
    _jitter(whisper.encoder, 0.02)
    whisper.save_pretrained(out / "whisper")
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out / "whisper")

    cfg = BEATsConfig(BEATS_CFG)
    beats = BEATs(cfg)
    _jitter(beats, 0.05)
    torch.save({"cfg": dict(BEATS_CFG), "model": beats.state_dict()}, out / "beats.pt")

    tok = _tokenizer(out / "llama")
    eos = [tok.convert_tokens_to_ids(SPECIAL[1]), tok.convert_tokens_to_ids(SPECIAL[2])]
    llama_config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                               rope_theta=10000.0, tie_word_embeddings=True, initializer_range=0.3, bos_token_id=tok.bos_token_id,
                               eos_token_id=eos)
    llm = LlamaForCausalLM(llama_config)
    llm.generation_config.eos_token_id = eos
    llm.generation_config.bos_token_id = tok.bos_token_id
    llm.save_pretrained(out / "llama")

    # The trained parts, as the organisers' trainer holds them: [PAD] added, LoRA on q/v.
    tok.add_special_tokens({"pad_token": "[PAD]"})
    llm.resize_token_embeddings(len(tok), mean_resizing=False)
    llm = get_peft_model(llm, LoraConfig(task_type=TaskType.CAUSAL_LM, r=8, lora_alpha=32, lora_dropout=0.1))
    model = SalmonnOriginal(whisper.encoder, beats, 64)
    model.llama_model = llm
    with torch.no_grad():
        _jitter(model.speech_Qformer, 0.02)
        _jitter(model.ln_speech, 0.1)
        _jitter(model.ln_audio, 0.1)
        model.speech_query_tokens.normal_(0, 0.5)
        model.speech_llama_proj.weight.normal_(0, 0.3)  # speech tokens on the scale of the word embeddings
        for name, p in llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # non-zero: the LoRA changes the output
        llm.get_input_embeddings().weight[-1].normal_(0, 0.02)  # the [PAD] row, saved through the tied head
    trained = ("ln_speech", "ln_audio", "speech_Qformer", "speech_query_tokens", "speech_llama_proj", "lora_")
    named = {name for name, _ in model.named_parameters()}
    state = {k: v for k, v in model.state_dict().items()
             if k not in named or any(t in k for t in trained)}  # the trainer's save filter
    state["speech_Qformer.bert.embeddings.position_ids"] = torch.arange(512).expand((1, -1))  # BERT's buffer
    torch.save({"model": state, "config": {"model": "salmonn-original-tiny"}, "epoch": 0}, out / "ckpt.pth")
    (out / "salmonn_eval_config.yaml").write_text(YAML, encoding="utf-8")
    (out / "config.json").write_text(json.dumps({"built_by": __name__, "version": TINY_VERSION, "seed": SEED,
                                                 "ckpt_keys": sorted(state)}, indent=1) + "\n", encoding="utf-8")


def ensure_tiny(path: Path | None = None) -> Path:
    return build_once(path or default_tiny_path(), build)
