"""Long audio (`run --long-audio native|chunk|truncate|fail`) and each model's own prompts (`--prompts`).

The cut rule is tested on hand-made audio; the whole path (windows, one clock over all of them,
join, record; a native long-form hook; the error when native is asked of a candidate without one)
on a real `bench.py run` with a plugin whose "recognizer" reads words off the waveform exactly, so
any word lost or doubled at a window join shows as WER above 0.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from harness.candidate import Candidate
from harness.data import prompts
from harness.data.long_audio import LongAudioRefused, join_transcripts, mode_for, split, window_bounds, window_budget
from harness.types import SAMPLE_RATE, Generation, Request
from leaderboard.grouping import group_runs
from tests.conftest import bench, install_distribution, run_record_path

# ----------------------------------------------------------------------------- cutting


def _request(seconds: float, fill: float = 0.1) -> Request:
    rng = np.random.default_rng(0)
    audio = (fill * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
    return Request("s", audio, "asr", "say it", 64)


def test_short_audio_and_no_window_pass_through():
    request = _request(3.0)
    assert split(request, 3.0, "fail").requests == [request]
    assert split(_request(100.0), None, "fail").requests[0].audio.shape == (100 * SAMPLE_RATE,)


def test_fail_truncate_and_chunk():
    request = _request(65.0)
    with pytest.raises(LongAudioRefused, match=r"^audio is 65.0 s, longer than the model's window of 30 s \(--long-audio fail\)$"):
        split(request, 30.0, "fail")
    truncated = split(request, 30.0, "truncate")
    assert truncated.record == {"audio_window_s": 30.0, "truncated_to_s": 30.0}
    assert len(truncated.requests) == 1 and len(truncated.requests[0].audio) == 30 * SAMPLE_RATE
    chunked = split(request, 30.0, "chunk")
    assert chunked.record == {"audio_window_s": 30.0, "chunks": 3}
    pieces = chunked.requests
    assert all(15 * SAMPLE_RATE <= len(p.audio) <= 30 * SAMPLE_RATE for p in pieces[:2])
    assert sum(len(p.audio) for p in pieces) == len(request.audio)  # no overlap, nothing left out
    assert all(np.shares_memory(p.audio, request.audio) for p in pieces)  # views: nothing copied
    assert all(p.prompt == "say it" for p in pieces)
    # 30 s of speech may need more than the suite's 64 tokens; a short last window keeps 64
    assert [p.max_new_tokens for p in pieces] == [window_budget(64, len(p.audio) / SAMPLE_RATE) for p in pieces]
    assert window_budget(64, 30.0) == 180 and window_budget(64, 5.0) == 64


def test_native_is_one_request_and_preferred_window_chunks_shorter():
    request = _request(65.0)
    native = split(request, 30.0, "native")
    assert native.native and native.requests == [request]
    assert native.record == {"audio_window_s": 30.0, "long_form": "native"}
    assert not split(_request(20.0), 30.0, "native").native  # fits the window: a plain request
    preferred = split(request, 30.0, "chunk", preferred_s=20.0)
    assert preferred.record == {"audio_window_s": 30.0, "chunk_window_s": 20.0, "chunks": len(preferred.requests)}
    assert 4 <= len(preferred.requests) <= 7  # cuts in the second half of each 20 s window
    assert all(len(p.audio) <= 20 * SAMPLE_RATE for p in preferred.requests)
    # audio that fits the model's whole window is never cut, whatever it prefers
    assert len(split(_request(25.0), 30.0, "chunk", preferred_s=20.0).requests) == 1


def test_mode_for_defaults_to_native_where_the_candidate_has_it():
    assert mode_for(None, "chunk", True, "w") == "native"
    assert mode_for(None, "chunk", False, "w") == "chunk"
    assert mode_for(None, "truncate", True, "w") == "truncate"  # aac: the suite's own default
    assert mode_for("chunk", "chunk", True, "w") == "chunk"
    with pytest.raises(ValueError, match=r"--long-audio native: candidate 'w' has no long-form algorithm of its own"):
        mode_for("native", "chunk", False, "w")


def _speechlike(pauses_s: list[tuple[float, float]], seconds: float) -> np.ndarray:
    """Noise at speech level with silent pauses at the given (start, end) seconds."""
    audio = _request(seconds).audio.copy()
    for a, b in pauses_s:
        audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] = 0.0
    return audio


def test_cuts_fall_in_pauses_and_windows_do_not_overlap():
    # pauses at 12.0-12.4 s (inside the search zone of the first 20 s window: its second half)
    # and at 9.0-9.5 s (outside it: ignored); the next window's zone holds the pause at 27.0-27.3 s
    audio = _speechlike([(9.0, 9.5), (12.0, 12.4), (27.0, 27.3)], 45.0)
    bounds = window_bounds(audio, 20 * SAMPLE_RATE, 10 * SAMPLE_RATE)
    cuts = [b / SAMPLE_RATE for _, b in bounds[:-1]]
    assert 12.0 <= cuts[0] <= 12.4 and 27.0 <= cuts[1] <= 27.3
    assert bounds[0][0] == 0 and bounds[-1][1] == len(audio)
    assert all(end == start for (_, end), (start, _) in zip(bounds, bounds[1:], strict=False))  # contiguous
    assert all(b - a <= 20 * SAMPLE_RATE for a, b in bounds)


def test_a_pause_shorter_than_a_stretch_loses_to_a_longer_one():
    """A 100 ms gap (a stop closure inside a word) is not where a cut goes when a real 300 ms
    pause is in reach, though both are equally silent frame by frame."""
    audio = _speechlike([(17.0, 17.1), (13.0, 13.3)], 30.0)
    (_, cut), _ = window_bounds(audio, 20 * SAMPLE_RATE, 10 * SAMPLE_RATE)
    assert 13.0 <= cut / SAMPLE_RATE <= 13.3


def test_silence_everywhere_cuts_late_and_the_last_window_is_short():
    silent = np.zeros(int(30.01 * SAMPLE_RATE), np.float32)
    bounds = window_bounds(silent, 20 * SAMPLE_RATE, 10 * SAMPLE_RATE)
    assert len(bounds) == 2 and 19.8 <= bounds[0][1] / SAMPLE_RATE <= 20.0 and bounds[1][1] == len(silent)
    # a search zone too short to hold a pause stretch: the cut is the window's end
    assert window_bounds(silent, 4 * SAMPLE_RATE, 800)[:2] == [(0, 4 * SAMPLE_RATE), (4 * SAMPLE_RATE, 8 * SAMPLE_RATE)]


def test_join_and_window_records():
    assert join_transcripts([" He was here.", "", "Ten of clubs. "]) == "He was here. Ten of clubs."
    pieces = split(_request(40.0), 30.0, "chunk")
    gens = [Generation("a b c", n_tokens=3, info={"x": 1}), Generation("d", n_tokens=2)]
    combined = pieces.combine(gens)
    assert (combined.text, combined.n_tokens) == ("a b c d", 5)
    assert combined.info == {"windows": [{"x": 1}, {}]}
    assert pieces.combine([Generation("a", n_tokens=None), Generation("b", n_tokens=1)]).n_tokens is None
    windows = pieces.windows(gens)
    assert [w["words"] for w in windows] == [3, 1] and windows[0]["start_s"] == 0.0
    assert windows[0]["end_s"] == windows[1]["start_s"] and windows[1]["end_s"] == 40.0
    assert windows[0]["words_per_s"] == round(3 / windows[0]["end_s"], 3)
    assert windows[0]["n_tokens"] == 3 and windows[0]["max_new_tokens"] == pieces.requests[0].max_new_tokens
    # native: the model's segments, when it gave them
    native = split(_request(40.0), 30.0, "native")
    segs = [{"start_s": 0.0, "end_s": 4.0, "text": "one two"}, {"start_s": 4.0, "end_s": 40.0, "text": ""}]
    assert native.windows([Generation("one two", info={"segments": segs})]) == [
        {"start_s": 0.0, "end_s": 4.0, "words": 2, "words_per_s": 0.5},
        {"start_s": 4.0, "end_s": 40.0, "words": 0, "words_per_s": 0.0},  # a dropped window shows
    ]
    assert native.windows([Generation("one two")]) is None


# ----------------------------------------------------------------------------- prompts


class _Prompted(Candidate):
    tasks = frozenset({"asr", "aac"})

    def imports_torch(self):
        return False  # no framework: its measured child skips importing torch and transformers

    def load(self, device):
        pass

    def generate(self, request, on_token):
        return Generation("")

    def model_prompt(self, task):
        return "Transcribe the audio." if task == "asr" else None


def test_prompts_resolve_per_suite():
    suites = [{"name": "asr", "prompt": "Recognize."}, {"name": "aac", "prompt": "Describe."}]
    assert prompts.resolve(_Prompted(), suites, "suite") == {
        "asr": {"text": "Recognize.", "source": "suite"}, "aac": {"text": "Describe.", "source": "suite"},
    }
    model = prompts.resolve(_Prompted(), suites, "model")
    assert model["asr"] == {"text": "Transcribe the audio.", "source": "model"}
    assert model["aac"]["source"] == "suite" and model["aac"]["text"] == "Describe." and "no prompt" in model["aac"]["note"]
    with pytest.raises(ValueError, match="unknown --prompts mode 'mine'"):
        prompts.check_mode("mine")


def test_runs_with_different_prompt_modes_are_ranked_apart():
    def run(run_id, mode):
        settings = {} if mode is None else {"prompts": mode}
        return {"run_id": run_id, "candidate": run_id, "settings": settings,
                "environment": {"device": "cpu", "threads": 1}, "suites": {"asr": {"dataset_hash": "h"}}}

    groups = group_runs([run("a", None), run("b", "suite"), run("c", "model")])
    assert [sorted(r["run_id"] for r in g.runs) for g in groups] == [["a", "b"], ["c"]]
    assert "prompts: model" in groups[1].describe() and "prompts" not in groups[0].describe()
    assert groups[1].differences(groups[0]) == ["prompts model vs suite"]


# ----------------------------------------------------------------------------- a real run

# A "recognizer" that reads words off the waveform: each word is 0.2 s at a level that names it,
# then 0.06 s of silence, and every fourth word ends a "sentence" with 0.3 s more of silence, as
# read speech pauses between sentences. A word cut in two by a window edge would be read twice.
# `NativeWords` also has a long-form algorithm of its own: the whole clip, one segment per sentence.
WORDS_PLUGIN = '''
import numpy as np
from harness.candidate import Candidate
from harness.types import Generation

VOCAB = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


class Words(Candidate):
    tasks = frozenset({"asr"})

    def imports_torch(self):
        return False  # no framework: its measured child skips importing torch and transformers

    def load(self, device):
        pass

    def audio_window_s(self):
        return 4.0

    def model_prompt(self, task):
        return "Write down every word."

    def generate(self, request, on_token):
        voiced = np.abs(request.audio) > 1e-4
        edges = np.flatnonzero(np.diff(np.concatenate([[False], voiced, [False]]).astype(np.int8)))
        words = []
        for start, end in zip(edges[::2], edges[1::2]):
            words.append(VOCAB[int(round(float(np.median(request.audio[start:end])) * 64)) - 1])
            on_token()
        return Generation(text=" ".join(words), n_tokens=len(words), info={"prompt": request.prompt})


class NativeWords(Words):
    def generate_long_form(self, request, on_token):
        words = self.generate(request, on_token).text.split()
        segments = [{"start_s": 1.34 * i, "end_s": 1.34 * (i + 1), "text": " ".join(words[4 * i : 4 * i + 4])}
                    for i in range((len(words) + 3) // 4)]
        return Generation(text=" ".join(words), n_tokens=len(words), info={"segments": segments, "native": True})
'''
VOCAB = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


def _speak(path, indices):
    word, gap, pause = int(0.2 * SAMPLE_RATE), int(0.06 * SAMPLE_RATE), int(0.3 * SAMPLE_RATE)
    audio = np.concatenate([np.concatenate([np.full(word, (k + 1) / 64), np.zeros(gap + (pause if i % 4 == 3 else 0))])
                            for i, k in enumerate(indices)])
    sf.write(path, audio.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    return " ".join(VOCAB[k] for k in indices)


@pytest.fixture(scope="module")
def words_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("long")
    (tmp / "site").mkdir()
    env = install_distribution(tmp / "site", "lbplugin_words", WORDS_PLUGIN,
                               "[lalm_bench.candidates]\nwords = lbplugin_words:Words\n"
                               "words-native = lbplugin_words:NativeWords\n")
    rng = np.random.default_rng(7)
    long_ids = [int(k) for k in rng.integers(0, len(VOCAB), 44)]  # 14.74 s: four or more 4 s windows
    entries = [
        {"testset_id": "long", "path": "long.wav", "task": "asr", "text": _speak(tmp / "long.wav", long_ids)},
        {"testset_id": "short", "path": "short.wav", "task": "asr", "text": _speak(tmp / "short.wav", [1, 2, 3])},
    ]
    data = tmp / "d.json"
    data.write_text(json.dumps({"annotation": entries}))

    def run(*args, candidate="words"):
        out = bench("run", "-c", candidate, "--data", str(data), "--warmup", "1", "--results", str(tmp / "r"), *args, env=env)
        assert out.returncode in (0, 1), out.stdout + out.stderr
        path = run_record_path(out.stdout)
        predictions = {r["sample_id"]: r for r in map(json.loads, (path.parent / "predictions.jsonl").read_text().splitlines())}
        return json.loads(path.read_text()), predictions, out.stdout

    return run


def test_chunked_run_loses_and_doubles_nothing(words_run):
    record, predictions, stdout = words_run()  # default for asr: chunk
    suite = record["suites"]["asr"]
    assert suite["metrics"]["wer"] == 0.0, predictions["long"]["prediction"]
    long = predictions["long"]
    assert long["chunks"] >= 4 and long["audio_window_s"] == 4.0 and "overlap_s" not in long
    windows = long["windows"]  # where each window lies and how much it said
    assert len(windows) == long["chunks"] and windows[0]["start_s"] == 0.0 and windows[-1]["end_s"] == 14.74
    assert sum(w["words"] for w in windows) == 44
    assert all(2.0 < w["words_per_s"] < 4.0 for w in windows[:-1])  # full windows of this steady speech
    # one clock over all windows: every window's tokens counted, the first one timed as TTFT
    assert long["n_tokens"] == 44 and long["ttft_ms"] > 0 and long["tpot_ms"] > 0
    assert "chunks" not in predictions["short"]
    assert suite["long_audio"] == {
        "mode": "chunk", "window_s": 4.0, "chunk_window_s": None, "n_longer_than_window": 1, "n_native": 0,
        "n_chunked": 1, "n_truncated": 0, "n_refused": 0,
    }
    assert suite["prompt"] == {"text": "Recognize the speech and give me the transcription.", "source": "suite"}
    assert record["settings"]["prompts"] == "suite" and record["settings"]["long_audio"] is None
    assert "long audio (chunk, window 4 s): 1 longer, 1 chunked" in stdout


def test_truncated_run_with_the_model_prompt(words_run):
    record, predictions, stdout = words_run("--long-audio", "truncate", "--prompts", "model")
    suite = record["suites"]["asr"]
    long = predictions["long"]
    assert long["truncated_to_s"] == 4.0 and "chunks" not in long
    assert len(long["prediction"].split()) == 12  # 4 s: three sentences of four words; the rest is lost
    assert suite["metrics"]["deletions"] == 44 - 12 and suite["long_audio"]["n_truncated"] == 1
    assert suite["prompt"] == {"text": "Write down every word.", "source": "model"}
    assert long["info"] == {"prompt": "Write down every word."}
    assert record["settings"]["prompts"] == "model" and record["settings"]["long_audio"] == "truncate"
    assert "prompt: the model's own: 'Write down every word.'" in stdout


def test_fail_mode_fails_the_long_sample_alone(words_run):
    record, predictions, _ = words_run("--long-audio", "fail")
    suite = record["suites"]["asr"]
    assert [f["sample_id"] for f in suite["failures"]] == ["long"]
    assert suite["failures"][0]["reason"] == "audio is 14.7 s, longer than the model's window of 4 s (--long-audio fail)"
    assert suite["n_scored"] == 1 and suite["long_audio"]["n_refused"] == 1
    # The refused sample counts (its words are deletions); the answered one alone is perfect.
    assert suite["metrics_scored_only"]["wer"] == 0.0 and suite["metrics"]["wer"] > 0.9 and suite["coverage"] == 0.5


def test_native_is_the_default_where_the_candidate_has_it(words_run):
    record, predictions, stdout = words_run(candidate="words-native")
    suite = record["suites"]["asr"]
    long = predictions["long"]
    assert suite["metrics"]["wer"] == 0.0
    assert long["long_form"] == "native" and "chunks" not in long and long["audio_window_s"] == 4.0
    assert long["info"] == {"native": True}  # the segments went to `windows`
    assert [w["words"] for w in long["windows"]] == [4] * 11 and long["windows"][0]["words_per_s"] == round(4 / 1.34, 3)
    # one clock over the whole answer, as in chunk mode
    assert long["n_tokens"] == 44 and long["ttft_ms"] > 0 and long["tpot_ms"] > 0
    assert "long_form" not in predictions["short"]  # fits the window: a plain request
    assert suite["long_audio"]["mode"] == "native" and suite["long_audio"]["n_native"] == 1
    assert "long audio (native, window 4 s): 1 longer, 1 native, 0 chunked" in stdout
    # asked for chunk, the same candidate chunks
    record, predictions, _ = words_run("--long-audio", "chunk", candidate="words-native")
    assert predictions["long"]["chunks"] >= 4 and record["suites"]["asr"]["long_audio"]["mode"] == "chunk"


def test_native_asked_of_a_candidate_without_it_is_refused_before_the_run(tmp_path):
    env = install_distribution(tmp_path, "lbplugin_words2", WORDS_PLUGIN, "[lalm_bench.candidates]\nwords2 = lbplugin_words2:Words\n")
    out = bench("run", "-c", "words2", "--long-audio", "native", "--results", str(tmp_path / "r"), env=env)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert ("--long-audio native: candidate 'words2' has no long-form algorithm of its own (its class does not "
            "override Candidate.generate_long_form); use chunk, truncate or fail") in out.stdout + out.stderr
    assert not (tmp_path / "r").exists()  # refused before a run folder was made
