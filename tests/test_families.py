"""The transformers families on their tiny random copies: every architecture loads through
`from_pretrained(local_files_only=True)` from a folder saved with `save_pretrained`, streams one
token callback per generated id, batches to the same greedy outputs as one at a time, exposes the
nota2025 prefill/decode_step pair, refuses audio longer than its window, and runs end to end
with `bench.py run` on the demo suites.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from harness.registry import build, resolve, spec_from_toml
from harness.types import SAMPLE_RATE, Request
from tests.conftest import REPO, bench, run_record_path
from tests.conftest import loaded as load_candidate

# Tiny candidate -> the demo suites it runs (ASR-only models do not caption).
TINIES = {
    "qwen2-audio-tiny": {"asr", "aac"},
    "audioflamingo3-tiny": {"asr", "aac"},
    "glm-asr-tiny": {"asr"},
    "qwen3-asr-tiny": {"asr"},
    "voxtral-tiny": {"asr", "aac"},
    "granite-speech-tiny": {"asr"},
    "phi4-multimodal-tiny": {"asr", "aac"},
    "qwen2.5-omni-tiny": {"asr", "aac"},
    "gemma4-tiny": {"asr", "aac"},
}
# qwen2-audio-tiny's `bench.py run --limit 2` is in tests/test_builtin_runs.py (heavy, with the full schema check).
BENCH_RUNS = sorted(set(TINIES) - {"qwen2-audio-tiny"})
SPEECH = REPO / "harness" / "data" / "demo_data" / "speech"
SOUNDS = REPO / "harness" / "data" / "demo_data" / "sounds"


def _needs(name: str) -> None:
    if name.startswith("voxtral"):
        pytest.importorskip("mistral_common", reason="voxtral needs mistral-common (pip install -e '.[voxtral]')")


def _audio(path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32")
    assert rate == SAMPLE_RATE
    return audio


def _requests(candidate, tasks: set[str]) -> list[Request]:
    """Two requests of different prompt lengths (the suite's and the model's own when it has one)."""
    speech = _audio(sorted(SPEECH.glob("*.flac"))[0])
    sound = _audio(sorted(SOUNDS.iterdir())[0])
    requests = [Request("asr-suite", speech, "asr", "Recognize the speech and give me the transcription.", 8)]
    if "aac" in tasks:
        requests.append(Request("aac-suite", sound, "aac", "Please write down what your hear in the audio.", 6))
    own = candidate.model_prompt("asr")
    requests.append(Request("asr-own", speech[: 2 * SAMPLE_RATE], "asr", own or "Transcribe.", 8))
    return requests


@pytest.fixture(scope="module")
def loaded(model_cache):
    """Each tiny candidate loaded once (its copy built on first use, as `bench.py run` does)."""
    return load_candidate


@pytest.mark.parametrize("name", [*sorted(TINIES), "baseline"])
def test_tiny_streams_batches_and_steps(loaded, name):
    """Each tiny copy, and the SALMONN-style `baseline` (fed embeddings, left-padded by hand)."""
    _needs(name)
    candidate = loaded(name)
    if name in TINIES:
        assert sum(p.numel() for p in candidate.model.parameters()) < (16e6 if name == "qwen2-audio-tiny" else 2e6)
    requests = _requests(candidate, TINIES.get(name, {"asr", "aac"}))
    one = []
    for request in requests:
        calls: list[int] = []
        generation = candidate.generate(request, calls.append)
        assert calls == [1] * len(calls) and len(calls) == generation.n_tokens > 0
        one.append(generation)
    # Left padding and attention masks: batch outputs equal batch-1 outputs, row by row.
    batch = candidate.generate_batch(requests)
    assert [(g.text, g.n_tokens) for g in batch] == [(g.text, g.n_tokens) for g in one]
    # nota2025: prefill + one decode step give the first two greedy tokens of generate.
    state = candidate.prefill(requests[0])
    first = int(state["token"])
    second = int(candidate.decode_step(state)["token"])
    assert [first, second] == _first_two_tokens(candidate, requests[0])
    by_part = candidate.weight_bytes_by_part()
    assert sum(by_part.values()) == candidate.weight_bytes() and min(by_part.values()) >= 0
    assert 0 < candidate.decoder_weight_bytes() < candidate.weight_bytes()


def _first_two_tokens(candidate, request) -> list[int]:
    import torch

    with torch.inference_mode():
        inputs = candidate.inputs([request])
        ids = candidate.generator().generate(**inputs, max_new_tokens=2, do_sample=False, **candidate.generate_kwargs())
        return candidate.new_tokens(ids, inputs)[0].tolist()


@pytest.mark.parametrize("name", ["qwen2-audio-tiny", "gemma4-tiny"])
def test_audio_longer_than_the_window_is_refused_not_cut(loaded, name):
    from candidates.families.transformers_base import LongAudioError

    candidate = loaded(name)
    window = candidate.audio_window_s()
    assert window == 30
    audio = np.zeros(int((window + 1) * SAMPLE_RATE), np.float32)
    with pytest.raises(LongAudioError, match=r"sample long is 31\.0 s, longer than the model's 30 s window"):
        candidate.generate(Request("long", audio, "asr", "x", 2), lambda count=1: None)


def test_windows_and_prompts_of_the_families(loaded):
    assert loaded("audioflamingo3-tiny").audio_window_s() == 600  # the processor's own max_audio_len
    assert loaded("glm-asr-tiny").audio_window_s() == 655
    assert loaded("qwen3-asr-tiny").audio_window_s() is None  # the processor never cuts
    assert loaded("audioflamingo3-tiny").model_prompt("asr") == "Transcribe the input speech."
    assert loaded("qwen2-audio-tiny").model_prompt("aac") == "Generate the caption in English:"
    assert loaded("qwen3-asr-tiny").model_prompt("asr") is None
    assert "not given to the model" in loaded("qwen3-asr-tiny").run_info()["prompt_note"]


def test_voxtral_own_prompt_is_its_transcription_request(loaded):
    """`lang:en[TRANSCRIBE]` (the model's own asr prompt) takes mistral-common's transcription
    request; any other prompt goes into a chat turn after the audio."""
    _needs("voxtral-tiny")
    candidate = loaded("voxtral-tiny")
    speech = _audio(sorted(SPEECH.glob("*.flac"))[0])
    own = candidate.inputs([Request("a", speech, "asr", candidate.model_prompt("asr"), 4)])
    chat = candidate.inputs([Request("a", speech, "asr", "Write it down.", 4)])
    decode = candidate.tokenizer.decode
    assert decode(own["input_ids"][0]).endswith("[/INST]lang:en[TRANSCRIBE]")
    assert decode(chat["input_ids"][0]).endswith("Write it down.[/INST]")
    assert candidate.audio_window_s() == 1800


def test_transcription_request_models_match_their_chat_path(loaded):
    """AF3 and GLM-ASR run from TOML alone: the chat path with the model's own prompt builds
    exactly the inputs of the processor's own `apply_transcription_request`."""
    speech = _audio(sorted(SPEECH.glob("*.flac"))[0])
    for name in ("audioflamingo3-tiny", "glm-asr-tiny"):
        candidate = loaded(name)
        ours = candidate.inputs([Request("a", speech, "asr", candidate.model_prompt("asr"), 4)])
        theirs = candidate.processor.apply_transcription_request(speech)
        assert ours["input_ids"].tolist() == theirs["input_ids"].tolist(), name
        assert np.array_equal(ours["input_features"].numpy(), theirs["input_features"].numpy()), name


# ------------------------------------------------------------------ model_path, each family

def _family_cases(model_cache) -> list[tuple[str, str, str]]:
    """(family, builtin candidate whose options are reused, folder saved by save_pretrained)."""
    from candidates.checkpoints.salmonn_tiny import ensure_tiny as salmonn_tiny
    from candidates.checkpoints.tiny_models import ensure_tiny

    cases = [("salmonn", "baseline", str(salmonn_tiny())), ("hf-audiolm", "audioflamingo3-tiny",
                                                            str(ensure_tiny("audioflamingo3")))]
    cases += [("qwen3-asr", "qwen3-asr-tiny", str(ensure_tiny("qwen3-asr"))),
              ("granite-speech", "granite-speech-tiny", str(ensure_tiny("granite-speech")))]
    try:
        import mistral_common  # noqa: F401

        cases.append(("voxtral", "voxtral-tiny", str(ensure_tiny("voxtral"))))
    except ImportError:
        pass
    try:
        from candidates.checkpoints.whisper_convert import ensure_converted

        cases.append(("whisper", "whisper-tiny-hf", str(ensure_converted())))
    except (ImportError, FileNotFoundError):
        pass
    return cases


def test_model_path_loads_that_folder_for_each_family(model_cache, tmp_path):
    """A candidate file with `model_path` loads that folder (a copy of the built-in one, so nothing
    else could have been read) through its family, and answers."""
    speech = _audio(sorted(SPEECH.glob("*.flac"))[0])
    families = []
    for family, builtin, folder in _family_cases(model_cache):
        copy = tmp_path / family
        shutil.copytree(folder, copy)
        options = {k: v for k, v in resolve(builtin).options.items() if k != "tiny"}
        lines = [f'family = "{family}"', "[options]", f'model_path = "{copy}"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in options.items() if v is not None and not isinstance(v, dict)]
        toml = tmp_path / f"{family}.toml"
        toml.write_text("\n".join(lines) + "\n")
        candidate = build(spec_from_toml(toml))
        candidate.load("cpu")
        assert candidate.model.name_or_path == str(copy), family
        generation = candidate.generate(Request("a", speech, "asr", "Transcribe.", 3), lambda count=1: None)
        assert generation.n_tokens >= 1, family
        families.append(family)
    assert {"salmonn", "hf-audiolm", "qwen3-asr", "granite-speech"} <= set(families)


def test_trust_check_names_the_family_loading(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    toml = tmp_path / "mine.toml"
    toml.write_text(f'family = "voxtral"\n[options]\nmodel_path = "{tmp_path}"\n')
    candidate = build(spec_from_toml(toml))
    with pytest.raises(PermissionError, match=r"^voxtral \(mine\): .* only pickle weights"):
        candidate.load("cpu")


# ------------------------------------------------------------------ bench.py run, each tiny

@pytest.fixture(scope="module")
def runs(model_cache, tmp_path_factory):
    """Every tiny through `bench.py run --limit 2`, two at a time (each measured run uses one thread)."""
    results = tmp_path_factory.mktemp("family-runs")
    names = [n for n in BENCH_RUNS if not n.startswith("voxtral")] + (["voxtral-tiny"] if _has_mistral() else [])

    def run(name: str):
        return name, bench("run", "-c", name, "--limit", "2", "--warmup", "0", "--results", str(results))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, names))


def _has_mistral() -> bool:
    try:
        import mistral_common  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("name", BENCH_RUNS)
def test_bench_run_each_tiny(runs, name):
    """Succeeds on the demo suites; no sample failed, and a sample fails when the tokens streamed
    differ from the ids generated (TransformersCandidate.generate checks it), so the streamed
    counts equal the generated ids for every sample."""
    _needs(name)
    out = runs[name]
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    assert record["status"] == "ok" and set(record["suites"]) == TINIES[name]
    assert all(s["n_failed"] == 0 and s["n_samples"] == 2 for s in record["suites"].values())
    lines = [json.loads(x) for x in (run_record_path(out.stdout).parent / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * len(TINIES[name])
    assert all(line["error"] is None and line["n_tokens"] >= 1 and line["ttft_ms"] > 0 for line in lines)
    assert record["efficiency"]["roofline"]["decoder_weights_mb"] > 0
