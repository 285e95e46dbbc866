"""Long audio (`run --long-audio chunk|truncate|fail`) and each model's own prompts (`--prompts`).

The merge rule is tested on hand-made transcripts; the whole path (windows, one clock over all of
them, merge, record) on a real `bench.py run` with a plugin whose "recognizer" reads words off
the waveform exactly, so any word lost or doubled at a window join shows as WER above 0.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from harness.candidate import Candidate
from harness.data import long_audio, prompts
from harness.data.long_audio import LongAudioRefused, merge_pair, merge_transcripts, split, window_starts
from harness.types import SAMPLE_RATE, Generation, Request
from leaderboard.grouping import group_runs
from tests.conftest import bench, install_distribution, run_record_path

# ----------------------------------------------------------------------------- the merge rule


@pytest.mark.parametrize(
    ("before", "after", "expected", "aligned"),
    [
        # the overlap heard in both windows is kept once
        ("the library will stay open late", "open late on thursday evenings",
         "the library will stay open late on thursday evenings", True),
        # no overlap words (the overlap was silence): joined as they are
        ("go forward ten meters.", "Unless to be rather cold", "go forward ten meters. Unless to be rather cold", False),
        # compared after the Whisper normalizer: case, punctuation and spelled numbers differ
        ("Eight of spades, Ten of Clubs.", "ten of clubs four queen", "Eight of spades, Ten of Clubs. four queen", True),
        # words cut by the window edges: "heart" / "even" are fragments, the common run "of" aligns
        ("four of clubs seven of heart", "even of hearts he was", "four of clubs seven of hearts he was", True),
        # repeated words: the longest run wins, and of equally long runs the one nearest the join
        ("he said no no no", "no no no no stop", "he said no no no no stop", True),
        ("the cat saw the", "the dog ran", "the cat saw the dog ran", True),
        ("sat on the mat on the", "on the floor", "sat on the mat on the floor", True),
        # an empty window adds nothing and removes nothing
        ("hello world", "", "hello world", True),
        ("", "hello world", "hello world", True),
    ],
)
def test_merge_pair(before, after, expected, aligned):
    assert merge_pair(before, after, search_words=10) == (expected, aligned)


def test_merge_looks_only_near_the_join():
    """A common word far from the join (beyond the words the overlap can hold) is no alignment."""
    before = "alpha beta " + " ".join(f"w{i}" for i in range(20))
    assert merge_pair(before, "alpha beta gamma", search_words=10) == (before + " alpha beta gamma", False)


def test_merge_transcripts_counts_unaligned_joins():
    texts = ["one two three four", "three four five six", "seven eight", "eight nine"]
    assert merge_transcripts(texts) == ("one two three four five six seven eight nine", 1)


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
    assert chunked.record == {"audio_window_s": 30.0, "chunks": 3, "overlap_s": 2.0}
    pieces = chunked.requests
    assert [len(p.audio) for p in pieces[:2]] == [30 * SAMPLE_RATE] * 2
    assert all(np.shares_memory(p.audio, request.audio) for p in pieces)  # views: nothing copied
    assert all(p.prompt == "say it" and p.max_new_tokens == 64 for p in pieces)


def test_windows_start_at_the_quietest_point_of_the_overlap():
    audio = _request(70.0).audio.copy()
    audio[int(28.6 * SAMPLE_RATE) : int(28.8 * SAMPLE_RATE)] = 0.0  # a pause inside the first overlap
    starts = window_starts(audio, 30 * SAMPLE_RATE, 2 * SAMPLE_RATE)
    assert 28.6 <= starts[1] / SAMPLE_RATE < 28.8
    assert starts[1] + 28 * SAMPLE_RATE <= starts[2] < starts[1] + 30 * SAMPLE_RATE
    assert starts[-1] + 30 * SAMPLE_RATE >= len(audio) and len(starts) == 3
    # silence everywhere: the earliest frame; a last window that adds 10 ms of new audio still runs
    silent = np.zeros(int(30.01 * SAMPLE_RATE), np.float32)
    assert window_starts(silent, 30 * SAMPLE_RATE, 2 * SAMPLE_RATE) == [0, 28 * SAMPLE_RATE]
    assert long_audio.overlap_for(4.0) == 1.0 and long_audio.overlap_for(60.0) == 2.0


def test_combined_generation_counts_tokens_of_every_window():
    pieces = split(_request(40.0), 30.0, "chunk")
    gens = [Generation("a b c", n_tokens=3, info={"x": 1}), Generation("c d", n_tokens=2)]
    combined, unaligned = pieces.combine(gens)
    assert (combined.text, combined.n_tokens, unaligned) == ("a b c d", 5, 0)
    assert combined.info == {"windows": [{"x": 1}, {}]}
    assert pieces.combine([Generation("a", n_tokens=None), Generation("b", n_tokens=1)])[0].n_tokens is None


# ----------------------------------------------------------------------------- prompts


class _Prompted(Candidate):
    tasks = frozenset({"asr", "aac"})

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
# then 0.06 s of silence (so window edges fall anywhere in words). A word cut by a window edge is still read whole, as a real model often
# does, so the overlap of two windows holds the same words in both.
WORDS_PLUGIN = '''
import numpy as np
from harness.candidate import Candidate
from harness.types import Generation

VOCAB = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


class Words(Candidate):
    tasks = frozenset({"asr"})

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
'''
VOCAB = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


def _speak(path, indices):
    word, gap = int(0.2 * SAMPLE_RATE), int(0.06 * SAMPLE_RATE)
    audio = np.concatenate([np.concatenate([np.full(word, (k + 1) / 64), np.zeros(gap)]) for k in indices])
    sf.write(path, audio.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    return " ".join(VOCAB[k] for k in indices)


@pytest.fixture(scope="module")
def words_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("long")
    (tmp / "site").mkdir()
    env = install_distribution(tmp / "site", "lbplugin_words", WORDS_PLUGIN,
                               "[lalm_bench.candidates]\nwords = lbplugin_words:Words\n")
    rng = np.random.default_rng(7)
    long_ids = [int(k) for k in rng.integers(0, len(VOCAB), 44)]  # 11.44 s: four 4 s windows
    entries = [
        {"testset_id": "long", "path": "long.wav", "task": "asr", "text": _speak(tmp / "long.wav", long_ids)},
        {"testset_id": "short", "path": "short.wav", "task": "asr", "text": _speak(tmp / "short.wav", [1, 2, 3])},
    ]
    data = tmp / "d.json"
    data.write_text(json.dumps({"annotation": entries}))

    def run(*args):
        out = bench("run", "-c", "words", "--data", str(data), "--warmup", "1", "--results", str(tmp / "r"), *args, env=env)
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
    assert long["chunks"] >= 3 and long["audio_window_s"] == 4.0 and long["overlap_s"] == 1.0
    assert long["unaligned_joins"] == 0
    # one clock over all windows: every window's tokens counted, the first one timed as TTFT
    assert long["n_tokens"] > 44 and long["ttft_ms"] > 0 and long["tpot_ms"] > 0
    assert "chunks" not in predictions["short"]
    assert suite["long_audio"] == {
        "mode": "chunk", "window_s": 4.0, "overlap_s": 1.0, "n_longer_than_window": 1, "n_chunked": 1,
        "n_truncated": 0, "n_refused": 0, "n_unaligned_joins": 0,
    }
    assert suite["prompt"] == {"text": "Recognize the speech and give me the transcription.", "source": "suite"}
    assert record["settings"]["prompts"] == "suite" and record["settings"]["long_audio"] is None
    assert "long audio (chunk, window 4 s): 1 longer, 1 chunked" in stdout


def test_truncated_run_with_the_model_prompt(words_run):
    record, predictions, stdout = words_run("--long-audio", "truncate", "--prompts", "model")
    suite = record["suites"]["asr"]
    long = predictions["long"]
    assert long["truncated_to_s"] == 4.0 and "chunks" not in long
    assert len(long["prediction"].split()) == 16  # 4 s of 0.26 s words (the 16th cut): the rest is lost
    assert suite["metrics"]["deletions"] == 44 - 16 and suite["long_audio"]["n_truncated"] == 1
    assert suite["prompt"] == {"text": "Write down every word.", "source": "model"}
    assert long["info"] == {"prompt": "Write down every word."}
    assert record["settings"]["prompts"] == "model" and record["settings"]["long_audio"] == "truncate"
    assert "prompt: the model's own: 'Write down every word.'" in stdout


def test_fail_mode_fails_the_long_sample_alone(words_run):
    record, predictions, _ = words_run("--long-audio", "fail")
    suite = record["suites"]["asr"]
    assert [f["sample_id"] for f in suite["failures"]] == ["long"]
    assert suite["failures"][0]["reason"] == "audio is 11.4 s, longer than the model's window of 4 s (--long-audio fail)"
    assert suite["n_scored"] == 1 and suite["long_audio"]["n_refused"] == 1
    # The refused sample counts (its words are deletions); the answered one alone is perfect.
    assert suite["metrics_scored_only"]["wer"] == 0.0 and suite["metrics"]["wer"] > 0.9 and suite["coverage"] == 0.5
