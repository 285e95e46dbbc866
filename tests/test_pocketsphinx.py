"""The `pocketsphinx` family: CMU PocketSphinx with the English models its package ships."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from harness.spec import CandidateSpec
from harness.types import SAMPLE_RATE, Request
from tests.conftest import REPO, bench, run_record_path

pytest.importorskip("pocketsphinx")

SPEECH = sorted((REPO / "harness" / "data" / "demo_data" / "speech").glob("*.flac"))


@pytest.fixture(scope="module")
def candidate():
    from candidates.families.pocketsphinx_asr import PocketSphinxCandidate

    cand = PocketSphinxCandidate(CandidateSpec(name="pocketsphinx", family="pocketsphinx"))
    cand.load("cpu")
    return cand


def test_two_utterances_one_callback_each(candidate):
    refs = {a["testset_id"]: a["text"] for a in json.loads((REPO / "harness/data/demo_data/asr.json").read_text())["annotation"]}
    for path in SPEECH[:2]:
        audio, rate = sf.read(path, dtype="float32")
        assert rate == SAMPLE_RATE
        calls: list[int] = []
        gen = candidate.generate(Request(path.stem, audio, "asr", "", 64), calls.append)
        words = gen.text.split()
        assert calls == [len(words)] and gen.n_tokens == len(words) > 3
        ref = set(refs[path.stem].lower().strip(".").split())
        assert len(ref & set(words)) >= len(ref) // 2, (gen.text, refs[path.stem])


def test_silence_gives_no_token(candidate):
    calls: list[int] = []
    gen = candidate.generate(Request("silence", np.zeros(SAMPLE_RATE, np.float32), "asr", "", 8), calls.append)
    assert gen.n_tokens == len(gen.text.split()) and len(calls) == (1 if gen.text else 0)


def test_weight_bytes_are_its_model_files(candidate):
    files = {p.name for p in candidate.model_files()}
    assert {"means", "variances", "mdef", "en-us.lm.bin", "cmudict-en-us.dict"} <= files
    assert 20e6 < candidate.weight_bytes() < 100e6


def test_recipes_refused():
    from candidates.families.pocketsphinx_asr import PocketSphinxCandidate

    with pytest.raises(ValueError, match="not supported"):
        PocketSphinxCandidate(CandidateSpec(name="x", family="pocketsphinx", recipe=["int8"]))


@pytest.mark.slow
def test_bench_run_pocketsphinx(model_cache, tmp_path):
    out = bench("run", "-c", "pocketsphinx", "--limit", "3", "--warmup", "1", "--results", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    assert record["status"] == "ok" and set(record["suites"]) == {"asr"}
    wer = record["suites"]["asr"]["metrics"]["wer"]
    print(f"pocketsphinx WER on 3 demo clips: {wer:.3f}")
    assert wer < 0.5
    eff = record["efficiency"]
    assert eff["tpot_ms"]["p50"] is None and eff["ttft_ms"]["p50"] > 0 and "latency_note" in eff
    assert eff["roofline"] is None and 20 < eff["weights_mb"] < 100
