"""`run --batch-size N`: the batched, untimed quality pass and the batch-1 timing after it.

A throw-away plugin candidate (a real installed distribution) implements `generate_batch` and
logs every call it gets (pid, kind, sample ids) to a file, so the tests see exactly how the
harness batched, fell back, resumed and timed. Its answer depends on the audio only, so a
prediction filed under the wrong sample id would not match the batch-1 run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from harness.data.audio import audio_duration_s
from harness.measure.quality_pass import select_for_timing
from tests.conftest import REPO, bench, install_distribution, run_record_path

SPEECH = sorted((REPO / "harness" / "data" / "demo_data" / "speech").iterdir())

BATCHER = '''
import json
import os
import time

import numpy as np
import scipy.signal  # noqa: F401 (imported here, the harness's first audio decode stays within a short --sample-timeout-s)

from harness.candidate import Candidate
from harness.types import Generation


def _log(kind, ids):
    with open(os.environ["LB_BATCH_LOG"], "a") as out:
        out.write(json.dumps({"pid": os.getpid(), "kind": kind, "ids": ids}) + "\\n")


def _answer(request):
    if "boom" in request.sample_id:
        raise RuntimeError("scripted failure")
    if "hang" in request.sample_id:
        time.sleep(600)
    return f"clip {len(request.audio)} sum {int(np.abs(request.audio).sum() * 1000)}"


class Batcher(Candidate):
    """Test plugin that batches: text from the audio alone."""

    tasks = frozenset({"asr"})

    def imports_torch(self):
        return False  # no framework: its measured child skips importing torch and transformers

    def load(self, device):
        pass

    def generate(self, request, on_token):
        _log("single", [request.sample_id])
        text = _answer(request)
        for _ in range(2):
            time.sleep(0.002)
            on_token()
        return Generation(text=text)

    def generate_batch(self, requests):
        ids = [r.sample_id for r in requests]
        _log("batch", ids)
        marker = os.environ.get("LB_CRASH_ONCE")
        if marker and any("crash" in i for i in ids) and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(3)
        if any("hang" in i for i in ids):
            time.sleep(600)
        return [Generation(text=_answer(r)) for r in requests]
'''


@pytest.fixture(scope="module")
def batcher_env(tmp_path_factory):
    return install_distribution(tmp_path_factory.mktemp("site"), "lbplugin_batcher", BATCHER,
                                "[lalm_bench.candidates]\nbatcher = lbplugin_batcher:Batcher\n")


def _calls(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _predictions(run_dir, name="predictions.jsonl") -> list[dict]:
    return [json.loads(line) for line in (run_dir / name).read_text().splitlines()]


def _clips(tmp_path, ids_and_seconds) -> list[dict]:
    """Noise clips of chosen lengths, so the length order (and so the batches) is known."""
    rng = np.random.default_rng(0)
    entries = []
    for sample_id, seconds in ids_and_seconds:
        path = tmp_path / f"{sample_id}.wav"
        sf.write(path, (rng.standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32), 16000)
        entries.append({"testset_id": sample_id, "path": str(path), "task": "asr", "text": "clip"})
    return entries


def _annotation(tmp_path, entries):
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"annotation": entries}))
    return path


# ---------------------------------------------------------------------- which samples are timed


def test_timing_selection_is_deterministic_and_spread_over_lengths():
    durations = [(f"s{i:03d}", float(d)) for i, d in enumerate(np.random.default_rng(1).permutation(100) + 1)]
    chosen = select_for_timing(durations, 10, "asr")
    assert chosen == select_for_timing(list(durations), 10, "asr")  # same input, same clips
    assert len(chosen) == 10
    order = [sid for sid, _ in durations]
    assert chosen == sorted(chosen, key=order.index)  # dataset order
    # one clip from each duration decile (1-10 s, 11-20 s, ...)
    length = dict(durations)
    assert sorted(int((length[c] - 1) // 10) for c in chosen) == list(range(10))
    assert select_for_timing(durations, 10, "aac") != chosen  # each suite draws its own
    assert select_for_timing(durations, 10, "asr", seed=1) != chosen  # the seed matters


def test_timing_selection_takes_all_when_fewer_and_skips_unreadable():
    durations = [("a", 1.0), ("b", None), ("c", 3.0)]
    assert select_for_timing(durations, 50, "asr") == ["a", "c"]
    assert select_for_timing(durations, 1, "asr") in (["a"], ["c"])


# ---------------------------------------------------------------------- real runs


@pytest.mark.slow
def test_batched_predictions_equal_batch_1_and_timing_stays_at_batch_1(batcher_env, tmp_path):
    log = tmp_path / "calls.jsonl"
    env = {**batcher_env, "LB_BATCH_LOG": str(log)}
    common = ["run", "-c", "batcher", "--limit", "10", "--warmup", "1", "--results", str(tmp_path / "r")]
    one = bench(*common, env=env)
    assert one.returncode == 0, one.stdout + one.stderr
    one_dir = run_record_path(one.stdout).parent
    log.unlink()
    eight = bench(*common, "--batch-size", "4", "--efficiency-samples", "3", env=env)
    assert eight.returncode == 0, eight.stdout + eight.stderr
    run_dir = run_record_path(eight.stdout).parent
    record = json.loads((run_dir / "run.json").read_text())

    # batch 1 is today's run: every prediction timed, no batching keys in its record
    one_record = json.loads((one_dir / "run.json").read_text())
    assert "quality_pass" not in one_record["efficiency"] and "batch_size" not in one_record["settings"]
    assert one_record["efficiency"]["n_requests"] == 10

    # identical predictions, each sample once
    batched = {r["sample_id"]: r for r in _predictions(run_dir)}
    assert len(_predictions(run_dir)) == len(batched) == 10
    assert {k: r["prediction"] for k, r in batched.items()} == {r["sample_id"]: r["prediction"] for r in _predictions(one_dir)}
    assert record["suites"]["asr"]["metrics"] == one_record["suites"]["asr"]["metrics"]

    # batches of 4, 4, 2, longest clips first; the batched records carry no timings
    batches = [c["ids"] for c in _calls(log) if c["kind"] == "batch"]
    assert [len(b) for b in batches] == [4, 4, 2]
    durations = {s: batched[s]["audio_s"] for s in batched}
    flat = [s for b in batches for s in b]
    assert sorted(flat) == sorted(batched) and [durations[s] for s in flat] == sorted(durations.values(), reverse=True)
    for r in batched.values():
        assert r["ttft_ms"] is None and r["tpot_ms"] is None and r["e2e_ms"] is None and r["audio_s"] > 0

    # timing: the chosen 3 clips, one by one after one warm-up request, through TokenTimer
    demo = json.loads((REPO / "harness" / "data" / "demo_data" / "asr.json").read_text())["annotation"][:10]
    expected = select_for_timing(
        [(e["testset_id"], audio_duration_s(str(REPO / "harness" / "data" / "demo_data" / e["path"]))) for e in demo], 3, "asr")
    efficiency = record["efficiency"]
    assert efficiency["timing"]["timed_samples"] == {"asr": expected} and efficiency["timing"]["batch_size"] == 1
    singles = [c["ids"][0] for c in _calls(log) if c["kind"] == "single"]
    assert len(singles) == 1 + 3 and singles[1:] == expected
    timed = _predictions(run_dir, "timings.jsonl")
    assert [t["sample_id"] for t in timed] == expected and all(t["ttft_ms"] > 0 and t["tpot_ms"] > 0 for t in timed)
    assert efficiency["n_requests"] == record["suites"]["asr"]["efficiency"]["n_requests"] == 3
    assert efficiency["ttft_ms"]["n"] == 3 and efficiency["latency_ms"] > 0

    quality = efficiency["quality_pass"]
    assert quality["batch_size"] == 4 and quality["batched"] is True and quality["n_samples"] == 10
    assert quality["samples_per_s"] > 0 and quality["rtfx"] > 0 and quality["wall_s"] > 0
    assert quality["timed_prediction_mismatches"] == [] and quality["batch_failures"] == []
    assert record["settings"]["batch_size"] == 4 and record["settings"]["efficiency_samples"] == 3
    assert "quality pass: batches of 4" in eight.stdout


def test_candidate_without_generate_batch_answers_one_at_a_time(plugin_site, tmp_path):
    entries = [{"testset_id": f"s{i}", "path": str(SPEECH[i]), "task": "asr", "text": "hello world"} for i in range(3)]
    out = bench("run", "-c", "echo", "--data", str(_annotation(tmp_path, entries)), "--batch-size", "8",
                "--efficiency-samples", "2", "--warmup", "0", "--results", str(tmp_path / "r"), env=plugin_site)
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    quality = record["efficiency"]["quality_pass"]
    assert quality["batched"] is False and "does not implement generate_batch" in quality["note"]
    assert quality["n_samples"] == 3 and record["suites"]["asr"]["metrics"]["wer"] == 0.0
    assert record["efficiency"]["n_requests"] == 2
    run_dir = run_record_path(out.stdout).parent
    assert all(r["quality_batch_size"] == 1 and r["e2e_ms"] is None for r in _predictions(run_dir))


@pytest.mark.slow
def test_failed_batch_runs_alone_and_a_killed_child_resumes_without_redoing(batcher_env, tmp_path):
    """Lengths fix the batches: [a6 a5-boom a4] raises, so its requests are answered alone (the
    culprit fails alone); [a3 a2-crash a1] kills the child; --resume answers that unfinished
    batch one request at a time, batches the rest, and redoes nothing already written."""
    ids = ["a0", "a1", "a2-crash", "a3", "a4", "a5-boom", "a6"]
    data = _annotation(tmp_path, _clips(tmp_path, [(sid, 0.5 + 0.1 * i) for i, sid in enumerate(ids)]))
    log = tmp_path / "calls.jsonl"
    env = {**batcher_env, "LB_BATCH_LOG": str(log), "LB_CRASH_ONCE": str(tmp_path / "crashed")}
    results = tmp_path / "r"
    first = bench("run", "-c", "batcher", "--data", str(data), "--batch-size", "3", "--efficiency-samples", "7",
                  "--warmup", "0", "--results", str(results), env=env)
    assert first.returncode == 1 and "child exited with status 3" in first.stdout
    run_dir = run_record_path(first.stdout).parent
    written = [r["sample_id"] for r in _predictions(run_dir)]
    assert sorted(written) == ["a4", "a5-boom", "a6"]
    first_pid = _calls(log)[0]["pid"]

    resumed = bench("run", "--resume", "latest", "--results", str(results), env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    records = _predictions(run_dir)
    assert sorted(r["sample_id"] for r in records) == sorted(ids)  # each sample exactly once
    by_id = {r["sample_id"]: r for r in records}
    assert by_id["a5-boom"]["error"] == "RuntimeError: scripted failure"

    calls = _calls(log)
    before = [(c["kind"], c["ids"]) for c in calls if c["pid"] == first_pid]
    assert before == [("batch", ["a6", "a5-boom", "a4"]), ("single", ["a6"]), ("single", ["a5-boom"]),
                      ("single", ["a4"]), ("batch", ["a3", "a2-crash", "a1"])]
    after = [(c["kind"], c["ids"]) for c in calls if c["pid"] != first_pid]
    quality_calls = after[:4]
    assert quality_calls == [("single", ["a3"]), ("single", ["a2-crash"]), ("single", ["a1"]), ("batch", ["a0"])]
    timed = [c[1][0] for c in after[4:]]
    assert timed == [i for i in ids if i != "a5-boom"]  # every clip timed but the one that failed

    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok"
    quality = record["efficiency"]["quality_pass"]
    assert quality["batch_failures"] == [
        {"task": "asr", "sample_ids": ["a6", "a5-boom", "a4"], "error": "RuntimeError: scripted failure"}]
    assert quality["n_samples"] == 4  # the killed child's pass never finished: only the second one counts
    assert quality["timed_prediction_mismatches"] == []
    assert record["efficiency"]["timing"]["not_timed"] == [
        {"task": "asr", "sample_id": "a5-boom", "reason": "failed in the quality pass: RuntimeError: scripted failure"}]
    assert record["efficiency"]["n_requests"] == 6


@pytest.mark.slow
def test_hung_batch_is_answered_alone_by_a_fresh_child(batcher_env, tmp_path):
    data = _annotation(tmp_path, _clips(tmp_path, [("b0", 0.5), ("b1-hang", 0.6), ("b2", 0.7)]))
    log = tmp_path / "calls.jsonl"
    out = bench("run", "-c", "batcher", "--data", str(data), "--batch-size", "3", "--sample-timeout-s", "3",
                "--warmup", "0", "--results", str(tmp_path / "r"), env={**batcher_env, "LB_BATCH_LOG": str(log)})
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    assert record["restarts_after_sample_timeout"] == 2  # the batch, then the culprit alone
    suite = record["suites"]["asr"]
    assert [f["sample_id"] for f in suite["failures"]] == ["b1-hang"] and suite["n_scored"] == 2
    kinds = [(c["kind"], c["ids"]) for c in _calls(log)][:4]
    assert kinds == [("batch", ["b2", "b1-hang", "b0"]), ("single", ["b2"]), ("single", ["b1-hang"]), ("single", ["b0"])]


def test_batch_size_is_refused_under_nota2025(plugin_site, tmp_path):
    out = bench("run", "-c", "echo", "--protocol", "nota2025", "--batch-size", "4", "--results", str(tmp_path / "r"),
                env=plugin_site)
    assert out.returncode != 0 and "--batch-size applies to the default protocol only" in out.stderr
    assert not (tmp_path / "r").exists()  # refused before anything ran
