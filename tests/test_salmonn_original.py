"""The `salmonn-original` family against the organisers' own code.

tests/data/salmonn_original/reference.npz was written by scripts/salmonn_reference_golden.py:
the organisers' audiolm-trainer (torch 2.13 CPU, transformers 4.47.1, peft 0.3.0, librosa
0.10.2.post1, in its own venv) on the tiny original-format model of
candidates/checkpoints/salmonn_original_tiny.py, with BEATs and a LoRA whose B is non-zero.
Here the same files run through this repository's implementation, written apart from theirs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "salmonn_original"
RTOL = 1e-4  # relative to the largest magnitude of the tensor compared


def _golden_module():
    spec = importlib.util.spec_from_file_location("salmonn_golden", REPO / "scripts" / "salmonn_reference_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOLDEN = _golden_module()


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(DATA / "reference.npz"))


@pytest.fixture(scope="module")
def tiny():
    from candidates.checkpoints.salmonn_original_tiny import ensure_tiny

    return ensure_tiny()


def _candidate(tiny: Path, **generate):
    from harness.registry import build, resolve

    spec = resolve(str(tiny / "salmonn_eval_config.yaml"))
    spec.options = {**spec.options, "generate": {**spec.options["generate"], **generate}}
    candidate = build(spec)
    candidate.preload()
    candidate.load("cpu")
    return candidate


@pytest.fixture(scope="module")
def beam(tiny):
    return _candidate(tiny)


def _close(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| / max |theirs|."""
    assert ours.shape == theirs.shape
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def test_reference_data_belongs_to_this_tiny_model(reference, tiny):
    assert str(reference["checkpoint_sha256"]) == GOLDEN.checkpoint_digest(tiny), (
        "the tiny original-format model changed; rerun scripts/salmonn_reference_golden.py")


def test_fbank_matches_kaldi_native_fbank_at_80_bins():
    knf = pytest.importorskip("kaldi_native_fbank")
    from candidates.models.kaldi_fbank import fbank
    from harness.data.audio import load_audio

    audio, _ = load_audio(str(REPO / "harness/data/demo_data/speech/asr0001.flac"))
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = 16000
    opts.mel_opts.num_bins = 80
    online = knf.OnlineFbank(opts)
    online.accept_waveform(16000, (audio * 32768).tolist())
    online.input_finished()
    theirs = np.stack([online.get_frame(i) for i in range(online.num_frames_ready)])
    ours = fbank(torch.from_numpy(audio) * 32768, num_mel_bins=80).numpy()
    assert _close(ours, theirs) < 2e-4  # float32 FFTs differ; log amplifies it in near-silent bands


def test_fbank_matches_torchaudio_at_128_bins_with_its_empty_bin(reference):
    from candidates.models.kaldi_fbank import FLT_EPSILON, fbank

    wav = torch.from_numpy(reference["asr0001.audio"]) * 2 ** 15
    ours = fbank(wav, num_mel_bins=128).numpy()
    theirs = reference["fbank128.asr0001"]
    assert _close(ours, theirs) < 1e-6
    empty = np.flatnonzero((theirs == np.log(np.float64(FLT_EPSILON))).all(axis=0))  # float64 waveform: float64 log
    assert empty.tolist() == [3]  # one mel band holds no FFT bin at 128 bins / 512 points
    assert (ours[:, 3] == theirs[:, 3]).all()


@pytest.mark.parametrize("clip", sorted(GOLDEN.CLIPS))
def test_organisers_audio_loading_matches_theirs(reference, clip):
    from harness.data.organisers_audio import load_audio_organisers

    audio, _ = load_audio_organisers(str(GOLDEN.CLIPS[clip][0]))
    theirs = reference[f"{clip}.audio"]
    assert audio.dtype == np.float64 and audio.shape == theirs.shape
    assert np.abs(audio - theirs).max() < 1e-12


@pytest.mark.parametrize("clip", sorted(GOLDEN.CLIPS))
def test_speech_embeddings_and_first_step_logits_match_the_reference(beam, reference, clip):
    from harness.types import Request

    audio = reference[f"{clip}.audio"]
    speech = beam.speech_embeds(audio)[0].numpy()
    assert _close(speech, reference[f"{clip}.speech_embeds"]) < RTOL
    task = GOLDEN.CLIPS[clip][1]
    request = Request(clip, audio, task, beam.model_prompt(task), 12)
    with torch.inference_mode():
        logits = beam.generator()(**beam.inputs([request])).logits[0, -1].numpy()
    assert _close(logits, reference[f"{clip}.logits"]) < RTOL


def _tokens(candidate, audio, task: str) -> list[int]:
    from harness.types import Request

    request = Request("x", audio, task, candidate.model_prompt(task), 12)
    with torch.inference_mode():
        out = candidate.generator().generate(**candidate.inputs([request]),
                                             max_new_tokens=candidate.token_budget(request),
                                             **candidate.generate_kwargs())
    return out[0].tolist()


@pytest.mark.parametrize("clip", sorted(GOLDEN.CLIPS))
def test_beam4_tokens_and_text_equal_the_reference(beam, reference, clip):
    from harness.types import Request

    audio, task = reference[f"{clip}.audio"], GOLDEN.CLIPS[clip][1]
    assert _tokens(beam, audio, task) == reference[f"{clip}.beam"].tolist()
    generation = beam.generate(Request(clip, audio, task, beam.model_prompt(task), 12), lambda n=1: None)
    assert generation.text == str(reference[f"{clip}.beam_text"])
    assert generation.info["decoding"] == "beam-4"


def test_greedy_tokens_equal_the_reference(tiny, reference):
    greedy = _candidate(tiny, num_beams=1)
    for clip, (_, task) in GOLDEN.CLIPS.items():
        assert _tokens(greedy, reference[f"{clip}.audio"], task) == reference[f"{clip}.greedy"].tolist(), clip


def test_checkpoint_load_explains_every_key(beam):
    report = beam.load_report
    assert report["ckpt_unexpected"] == [] and report["ckpt_missing_trained"] == []
    assert list(report["ckpt_ignored"]) == ["speech_Qformer.bert.embeddings.position_ids"]
    assert report["ckpt_loaded"] == report["ckpt_tensors"] - 1


def test_timing_marks_every_beam_step(beam, reference):
    from harness.types import Request

    calls = []
    request = Request("t", reference["asr0001.audio"], "asr", beam.model_prompt("asr"), 12)
    generation = beam.generate(request, lambda n=1: calls.append(n))
    assert len(calls) == generation.n_tokens == generation.info["decode_steps"] >= generation.info["output_tokens"] > 0
    assert beam.run_info()["decoding"] == "beam-4"


# ------------------------------------------------------------------ the YAML


def _yaml(tmp_path: Path, tiny: Path, edit) -> Path:
    import yaml

    doc = yaml.safe_load((tiny / "salmonn_eval_config.yaml").read_text())
    for key in ("llama_path", "whisper_path", "beats_path", "ckpt"):
        doc["model"][key] = str(tiny / doc["model"][key])
    edit(doc)
    path = tmp_path / "salmonn_eval_config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_yaml_missing_file_names_the_key_and_path(tmp_path, tiny):
    from harness.registry import RegistryError, resolve

    path = _yaml(tmp_path, tiny, lambda d: d["model"].update(ckpt="nowhere/llama_stage2_ckpt.pth"))
    with pytest.raises(RegistryError, match=r"model\.ckpt.*nowhere/llama_stage2_ckpt\.pth.*not found"):
        resolve(str(path))


def test_yaml_relative_paths_resolve_against_its_folder(tiny):
    from harness.registry import resolve

    spec = resolve(str(tiny / "salmonn_eval_config.yaml"))
    assert spec.family == "salmonn-original"
    assert spec.options["ckpt"] == str(tiny / "ckpt.pth") and spec.options["llama_path"] == str(tiny / "llama")
    assert spec.options["generate"]["num_beams"] == 4


def test_yaml_unknown_keys_are_listed_as_ignored(tmp_path, tiny, capsys):
    from harness.registry import resolve

    def edit(doc):
        doc["model"]["use_flash_attn"] = True
        doc["generate"]["no_repeat_ngram_size"] = 3
        doc["datasets"] = {"prefix": "/data"}

    spec = resolve(str(_yaml(tmp_path, tiny, edit)))
    err = capsys.readouterr().err
    for key in ("model.use_flash_attn", "generate.no_repeat_ngram_size", "datasets:"):
        assert key in err and key in spec.provenance["ignored_keys"]
    assert "use_flash_attn" not in spec.options


def test_checkpoint_with_unexpected_keys_is_reported_by_name(tmp_path, tiny, capsys):
    state = torch.load(tiny / "ckpt.pth", weights_only=True)
    state["model"]["speech_Qformer.bert.encoder.layer.0.output.dense.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "odd.pth")
    path = _yaml(tmp_path, tiny, lambda d: d["model"].update(ckpt=str(tmp_path / "odd.pth")))
    from harness.registry import build, resolve

    candidate = build(resolve(str(path)))
    candidate.preload()
    candidate.load("cpu")
    assert candidate.load_report["ckpt_unexpected"] == ["speech_Qformer.bert.encoder.layer.0.output.dense.weight"]
    assert "speech_Qformer.bert.encoder.layer.0.output.dense.weight" in capsys.readouterr().err


def test_speech_only_without_beats(tmp_path, tiny, reference):
    """The original runs without `beats_path`: the Q-Former then reads Whisper alone."""
    state = torch.load(tiny / "ckpt.pth", weights_only=True)
    width = 64  # tiny Whisper d_model
    model = {k: v for k, v in state["model"].items() if not k.startswith(("ln_audio", "beats."))}
    for key in [k for k in model if "crossattention.self.key.weight" in k or "crossattention.self.value.weight" in k]:
        model[key] = model[key][:, :width].contiguous()
    torch.save({"model": model}, tmp_path / "speech_only.pth")
    path = _yaml(tmp_path, tiny, lambda d: d["model"].update(beats_path="", ckpt=str(tmp_path / "speech_only.pth")))
    from harness.registry import build, resolve

    candidate = build(resolve(str(path)))
    candidate.preload()
    candidate.load("cpu")
    assert candidate.model.beats is None and candidate.load_report["ckpt_unexpected"] == []
    assert candidate.speech_embeds(reference["asr0001.audio"]).shape == (1, 88, 64)


def test_toml_form_runs_the_builtin_tiny(tiny):
    from harness.registry import build, resolve

    candidate = build(resolve("salmonn-original-tiny"))
    assert candidate.uses_tiny() and candidate.path_of("ckpt") == tiny / "ckpt.pth"
    assert dataclasses.asdict(candidate.options)["generate"]["num_beams"] == 4


# ------------------------------------------------------------------ recipes


def _with_recipe(tiny: Path, recipe: list[str], calibrate=None):
    from harness.registry import build, resolve

    spec = resolve(str(tiny / "salmonn_eval_config.yaml"))
    spec.recipe = recipe
    candidate = build(spec)
    if candidate.needs_calibration():
        candidate.set_calibration(calibrate)
    candidate.preload()
    candidate.load("cpu")
    return candidate


def _first_logits(candidate, audio) -> np.ndarray:
    from harness.types import Request

    request = Request("x", audio, "asr", candidate.model_prompt("asr"), 12)
    with torch.inference_mode():
        return candidate.generator()(**candidate.inputs([request])).logits[0, -1].numpy()


def test_lora_merge_keeps_the_reference_logits(tiny, reference):
    merged = _with_recipe(tiny, ["lora-merge:llm"])
    assert merged.load_report["lora_kept_apart"] is False
    assert merged.recipe_applied()[0]["step"] == "lora-merge:llm"
    assert not any("lora_" in name for name, _ in merged.model.named_parameters())
    assert _close(_first_logits(merged, reference["asr0001.audio"]), reference["asr0001.logits"]) < RTOL


def test_int8_dynamic_needs_the_lora_merged_first(tiny, reference):
    from candidates.recipes import RecipeError
    from harness.registry import build, resolve

    spec = resolve(str(tiny / "salmonn_eval_config.yaml"))
    spec.recipe = ["int8-dynamic:llm"]
    with pytest.raises(RecipeError, match="add `lora-merge:llm` before it"):
        build(spec)
    quantized = _with_recipe(tiny, ["lora-merge:llm", "int8-dynamic:llm"])
    assert [a["step"] for a in quantized.recipe_applied()] == ["lora-merge:llm", "int8-dynamic:llm"]
    assert quantized.weight_bytes_by_part()["llm"] < _with_recipe(tiny, ["lora-merge:llm"]).weight_bytes_by_part()["llm"]
    assert np.isfinite(_first_logits(quantized, reference["asr0001.audio"])).all()


def test_prune_auto_drops_an_llm_layer_with_the_lora_kept(tiny, reference):
    from harness.types import Request

    calibration = [Request("c", reference["asr0001.audio"], "asr", "Recognize the speech.", 12)]
    pruned = _with_recipe(tiny, ["prune:llm:drop=auto:1"], calibrate=calibration)
    (step,) = pruned.recipe_applied()
    assert step["layers_before"] == 4 and step["layers_after"] == 3
    assert len(pruned.generator().model.layers) == 3
    assert np.isfinite(_first_logits(pruned, reference["asr0001.audio"])).all()


def test_toml_tiny_loads_beats_and_gives_the_yaml_logits(reference):
    from harness.registry import build, resolve

    candidate = build(resolve("salmonn-original-tiny"))
    candidate.preload()
    candidate.load("cpu")
    assert candidate.model.beats is not None and candidate.load_report["ckpt_unexpected"] == []
    assert _close(_first_logits(candidate, reference["asr0001.audio"]), reference["asr0001.logits"]) < RTOL


def test_a_sweep_takes_the_yaml_relative_to_the_sweep_file(tmp_path, tiny):
    import shutil

    from harness.sweep.spec import load_sweep

    folder = tmp_path / "team"
    shutil.copytree(tiny, folder)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('name = "salmonn-recipes"\ncandidates = ["team/salmonn_eval_config.yaml"]\n'
                     'recipes = ["", "nf4:llm", "lora-merge:llm+int8-dynamic:llm"]\n')
    cells = load_sweep(sweep).cells
    assert [c.spec.recipe for c in cells] == [[], ["nf4:llm"], ["lora-merge:llm", "int8-dynamic:llm"]]
    assert {c.spec.family for c in cells} == {"salmonn-original"}
    assert all(c.spec.options["ckpt"] == str(folder.resolve() / "ckpt.pth") for c in cells)
