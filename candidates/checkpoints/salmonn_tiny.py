"""Builds the built-in tiny SALMONN-style checkpoint (random weights, fixed seed) offline.

The folder it writes is an ordinary transformers checkpoint (config, safetensors weights,
tokenizer, feature extractor), so the candidate always goes through `from_pretrained`.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from harness.paths import build_once, cache_dir

TINY_VERSION = "v2"  # bump when the architecture or seed changes, so old caches are not reused
SEED = 1234
VOCAB_SIZE = 2048
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]

# A small fixed corpus: enough for a byte-level BPE to learn common English pieces.
_SUBJECTS = ["a man", "a woman", "the dog", "a bird", "the wind", "a car", "the rain", "people", "a bell", "water"]
_VERBS = ["speaks", "sings", "barks", "chirps", "blows", "passes by", "falls", "talk", "rings", "flows"]
_PLACES = ["in the distance", "nearby", "loudly", "softly", "outside", "in a room", "on the street", "at night"]
_EXTRA = [
    "USER: <Speech><SpeechHere></Speech> Recognize the speech and give me the transcription.",
    "ASSISTANT: Please write down what your hear in the audio.",
    "the quick brown fox jumps over the lazy dog while birds sing in the morning",
    "she said that the meeting would start at nine and end before noon today",
]


def default_tiny_path() -> Path:
    return cache_dir() / "models" / f"salmonn-tiny-{TINY_VERSION}"


def corpus() -> list[str]:
    lines = [f"{s} {v} {p}" for s, v, p in itertools.product(_SUBJECTS, _VERBS, _PLACES)]
    return lines + _EXTRA * 20


def _build_tokenizer(out: Path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus(), vocab_size=VOCAB_SIZE, min_frequency=1, special_tokens=SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.save_pretrained(out)
    return tokenizer


def build_tiny(out: Path) -> None:
    import torch
    from transformers import WhisperFeatureExtractor

    from candidates.models.salmonn_model import SalmonnForConditionalGeneration, tiny_config

    tokenizer = _build_tokenizer(out)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out)
    torch.manual_seed(SEED)
    config = tiny_config(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    SalmonnForConditionalGeneration(config).save_pretrained(out)


def ensure_tiny(path: Path | None = None) -> Path:
    return build_once(path or default_tiny_path(), build_tiny)
