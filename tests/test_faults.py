"""Nothing lost, nothing trusted blindly: bad inputs, kills, resume, hangs, concurrent runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import soundfile as sf

from tests.conftest import REPO, bench, run_record_path

SPEECH = sorted((REPO / "harness" / "data" / "demo_data" / "speech").iterdir())


def write_annotation(path, entries):
    path.write_text(json.dumps({"annotation": entries}, indent=1))
    return path


@pytest.mark.slow
def test_corpus_of_bad_inputs(tmp_path):
    """Each fault is either rejected up front with its id or fails alone at run time with its reason."""
    rate = 16000
    good = np.asarray(sf.read(SPEECH[0])[0], dtype=np.float32)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all\n")
    sf.write(tmp_path / "full.flac", good, rate)
    data = (tmp_path / "full.flac").read_bytes()
    (tmp_path / "truncated.flac").write_bytes(data[: len(data) // 2])
    sf.write(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32), rate)
    sf.write(tmp_path / "short.wav", good[:160], rate)  # 10 ms
    sf.write(tmp_path / "whole.wav", good, rate)
    whole = (tmp_path / "whole.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(whole[:44 + 100])  # the header still declares every frame
    sf.write(tmp_path / "long.wav", np.tile(good, 1 + int(45 * rate / len(good))), rate)  # > 30 s window
    nan = good.copy()
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, rate, subtype="FLOAT")
    entries = [
        {"testset_id": "good", "path": str(SPEECH[1]), "task": "asr", "text": "x"},
        {"testset_id": "empty", "path": "empty.wav", "task": "asr", "text": "x"},
        {"testset_id": "text", "path": "text.wav", "task": "asr", "text": "x"},
        {"testset_id": "hostname", "path": "/etc/hostname", "task": "asr", "text": "x"},
        {"testset_id": "truncated", "path": "truncated.flac", "task": "asr", "text": "x"},
        {"testset_id": "truncwav", "path": "truncated.wav", "task": "asr", "text": "x"},
        {"testset_id": "zero", "path": "zero.wav", "task": "asr", "text": "x"},
        {"testset_id": "short", "path": "short.wav", "task": "asr", "text": "x"},
        {"testset_id": "long", "path": "long.wav", "task": "asr", "text": "x"},
        {"testset_id": "nan", "path": "nan.wav", "task": "asr", "text": "x"},
        {"testset_id": "twice", "path": str(SPEECH[2]), "task": "asr", "text": "x"},
        {"testset_id": "twice", "path": str(SPEECH[3]), "task": "asr", "text": "x"},
        {"testset_id": "nofile", "path": "missing.wav", "task": "asr", "text": "x"},
        {"testset_id": "notask", "path": str(SPEECH[4])},
    ]
    annotation = write_annotation(tmp_path / "bad.json", entries)

    refused = bench("run", "-c", "baseline", "--data", str(annotation), "--results", str(tmp_path / "r"))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    for sample_id in ("twice", "nofile", "notask"):
        assert sample_id in refused.stderr
    assert not (tmp_path / "r").exists()  # rejected before any model loaded

    out = bench("run", "-c", "baseline", "--data", str(annotation), "--skip-invalid", "--warmup", "1",
                "--results", str(tmp_path / "r"))
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = run_record_path(out.stdout).parent
    suite = json.loads((run_dir / "run.json").read_text())["suites"]["asr"]
    reasons = {f["sample_id"]: f["reason"] for f in suite["failures"]}
    assert set(reasons) == {"empty", "text", "hostname", "truncated", "truncwav", "short", "zero", "nan", "twice", "nofile"}
    assert f"truncated: header declares {len(good)} frames, file holds 50" in reasons["truncwav"]
    assert "truncated: header declares" in reasons["truncated"]
    assert "audio is 0.010 s, shorter than the asr suite's minimum of 0.1 s" in reasons["short"]
    for sample_id in ("empty", "text", "hostname"):
        assert "cannot decode audio" in reasons[sample_id]
    assert "zero.wav holds no samples" in reasons["zero"]
    assert "NaN" in reasons["nan"]
    assert reasons["nofile"].startswith("skipped:") and "not found" in reasons["nofile"]
    assert reasons["twice"].startswith("skipped:") and "duplicate" in reasons["twice"]
    predictions = {r["sample_id"]: r for r in map(json.loads, (run_dir / "predictions.jsonl").read_text().splitlines())}
    for sample_id in ("good", "long"):
        assert predictions[sample_id]["error"] is None and predictions[sample_id]["prediction"] is not None
    # The family never cuts audio itself: it declares its 30 s window and the harness chunks the
    # 45 s clip (run --long-audio chunk, the default for asr).
    assert predictions["long"]["chunks"] == 2 and predictions["long"]["audio_window_s"] == 30
    assert predictions["long"]["audio_s"] > 45
    # "twice" x2 and "nofile" belong to asr; "notask" has no suite and no place in it
    assert suite["n_samples"] == 13 and suite["n_scored"] == 2


def _predicted(run_dir) -> list[str]:
    path = run_dir / "predictions.jsonl"
    return [json.loads(line)["sample_id"] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("victim", [pytest.param("child", marks=pytest.mark.heavy), "parent"])
def test_sigkill_then_resume_gives_every_sample_once_and_same_metrics(tmp_path, victim, whisper_tiny_run):
    """SIGKILL the measured child (the parent records a partial run) or the whole bench.py (the
    child dies with it, no run.json is written); either way --resume completes the run."""
    args = ["run", "-c", "whisper-tiny", "--limit", "6", "--warmup", "0"]  # as whisper_tiny_run (conftest)
    whole = whisper_tiny_run
    assert whole.returncode == 0, whole.stderr
    expected = json.loads(run_record_path(whole.stdout).read_text())["suites"]["asr"]["metrics"]

    results = tmp_path / "killed"
    parent = subprocess.Popen([sys.executable, str(REPO / "bench.py"), *args, "--results", str(results)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    run_dir = None
    while time.monotonic() < deadline:
        dirs = list(results.glob("*")) if results.exists() else []
        if dirs and len(_predicted(dirs[0])) >= 2:
            run_dir = dirs[0]
            break
        time.sleep(0.1)
    assert run_dir is not None, "no predictions appeared"
    children = psutil.Process(parent.pid).children(recursive=True)
    (children[0] if victim == "child" else parent).send_signal(signal.SIGKILL)
    parent.wait(timeout=120)
    psutil.wait_procs(children, timeout=30)  # a killed parent takes its child along (PR_SET_PDEATHSIG)
    assert not any(c.is_running() for c in children)
    if victim == "child":
        record = json.loads((run_dir / "run.json").read_text())
        assert record["status"] == "partial" and "SIGKILL" in record["error"]
    else:
        assert not (run_dir / "run.json").exists()
    done_before = _predicted(run_dir)
    assert 2 <= len(done_before) < 6
    with open(run_dir / "predictions.jsonl", "a") as handle:  # a torn last line, as a kill can leave
        handle.write('{"sample_id": "asr00')

    resumed = bench("run", "--resume", "latest", "--results", str(results))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    ids = _predicted(run_dir)
    assert len(ids) == len(set(ids)) == 6 and ids[: len(done_before)] == done_before
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok"
    assert record["suites"]["asr"]["metrics"] == expected


def test_hung_sample_fails_alone_and_the_run_goes_on(plugin_site, tmp_path):
    entries = [{"testset_id": i, "path": str(SPEECH[0]), "task": "asr", "text": "hello world"}
               for i in ("first", "hang", "after")]
    data = write_annotation(tmp_path / "d.json", entries)
    out = bench("run", "-c", "echo", "--data", str(data), "--sample-timeout-s", "3", "--warmup", "0",
                "--results", str(tmp_path / "r"), env=plugin_site)
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    suite = record["suites"]["asr"]
    assert record["status"] == "ok" and record["restarts_after_sample_timeout"] == 1
    assert [f["sample_id"] for f in suite["failures"]] == ["hang"]
    assert "timed out after 3 s" in suite["failures"][0]["reason"]
    assert suite["n_scored"] == 2 and suite["metrics_scored_only"]["wer"] == 0.0
    # The hung sample counts as an empty prediction: its 2 words are deletions, 2 of 6 words.
    assert suite["metrics"]["wer"] == pytest.approx(2 / 6) and suite["coverage"] == pytest.approx(2 / 3)


def test_two_runs_into_one_folder_at_once(plugin_site, tmp_path):
    env = {**os.environ, **plugin_site}
    cmd = [sys.executable, str(REPO / "bench.py"), "run", "-c", "echo", "--limit", "3", "--warmup", "0",
           "--results", str(tmp_path)]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    paths = {run_record_path(o) for o in outs}
    assert len(paths) == 2
    for path in paths:
        record = json.loads(path.read_text())
        assert record["status"] == "ok" and record["suites"]["asr"]["n_predicted"] == 3
        assert len(_predicted(path.parent)) == 3


def test_pickle_checkpoints_are_refused_unless_allowed(tmp_path):
    from candidates.families.transformers_base import check_checkpoint

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(PermissionError, match="pytorch_model.bin.*allow_pickle = true"):
        check_checkpoint(tmp_path, allow_pickle=False)
    check_checkpoint(tmp_path, allow_pickle=True)
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_checkpoint(tmp_path, allow_pickle=False)  # safetensors present: loaded from those


def test_pickle_refusal_reaches_the_run_record(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04")
    toml = tmp_path / "mine.toml"
    toml.write_text(f'family = "salmonn"\n[options]\nmodel_path = "{model}"\n')
    out = bench("run", "-c", str(toml), "--limit", "1", "--warmup", "0", "--results", str(tmp_path / "r"))
    assert out.returncode == 1
    record = json.loads(run_record_path(out.stdout).read_text())
    assert record["status"] == "failed" and record["trust"] == {"trust_remote_code": False, "allow_pickle": False}
    assert "allow_pickle = true" in (run_record_path(out.stdout).parent / "worker.log").read_text()


def test_check_command_validates_without_a_model(tmp_path):
    from click.testing import CliRunner

    from bench import cli

    data = write_annotation(tmp_path / "d.json", [
        {"testset_id": "a", "path": str(SPEECH[0]), "task": "asr", "text": "x"},
        {"testset_id": "a", "path": str(SPEECH[1]), "task": "asr", "text": "x"},
        {"testset_id": "b", "path": "gone.wav", "task": "asr"},
        {"testset_id": "c", "path": str(SPEECH[2]), "task": "audiocaption_v2", "text": "y"},
    ])
    out = CliRunner().invoke(cli, ["check", "--data", str(data)])
    assert out.exit_code == 1
    assert "1 valid samples (1 aac), 3 problem(s)" in out.output
    assert out.output.count("duplicate testset_id") == 2 and "'b'" in out.output and "not found" in out.output
    ok = write_annotation(tmp_path / "ok.json", [{"testset_id": "a", "path": str(SPEECH[0]), "task": "asr"}])
    assert CliRunner().invoke(cli, ["check", "--data", str(ok)]).exit_code == 0
