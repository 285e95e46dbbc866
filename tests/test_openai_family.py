"""Family `openai` against a scripted streaming server (tests/scripted_openai_server.py): timing
against known delays, the token count from usage, and every failure mode as a clear error."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from harness.data.audio import load_audio
from harness.measure.timing import TokenTimer
from harness.registry import RegistryError, build, spec_from_toml
from harness.spec import CandidateSpec
from harness.types import Request
from tests.conftest import REPO, bench, run_record_path
from tests.scripted_openai_server import expected_timing, recorded_requests, running

pytest.importorskip("openai", reason="family 'openai' needs the openai client: pip install 'lalm-bench[openai]'")

SPEECH = sorted((REPO / "harness" / "data" / "demo_data" / "speech").glob("*.flac"))
# Several tokens per chunk (15 tokens in 7 chunks): a chunk count would give the wrong TPOT.
TIMED = {
    "first_delay_s": 1.5,
    "gap_s": 0.1,
    "chunks": [["the", 1], [" cat sat", 3], [" on", 1], [" the mat", 3], [" and it", 2], [" slept", 2], [".", 3]],
}


def candidate(base_url: str, **options):
    return build(CandidateSpec(name="scripted", family="openai", options={"base_url": base_url, **options}))


def request(i: int, prompt: str = "Recognize the speech and give me the transcription.") -> Request:
    audio, _ = load_audio(str(SPEECH[i]))
    return Request(SPEECH[i].stem, audio, "asr", prompt, 64)


def timed(model, req: Request):
    timer = TokenTimer()
    timer.start()
    generation = model.generate(req, timer.on_token)
    return generation, timer.finish(generation.n_tokens)


def test_ttft_and_tpot_match_the_script_within_5_percent():
    ttft, tpot = expected_timing(TIMED)
    with running(TIMED) as (url, _):
        model = candidate(url)
        model.load("served")
        timed(model, request(3))  # warm-up, as the harness does: the first request pays for cold paths
        runs = [timed(model, request(i)) for i in range(3)]
        asked = recorded_requests(url)
        model.close()
    generation, _ = runs[0]
    assert generation.text == "the cat sat on the mat and it slept."
    assert generation.n_tokens == 15  # usage.completion_tokens, not the 7 chunks
    # The role chunk comes with the first content chunk (as vLLM sends them), then 6 gaps of 100 ms.
    assert generation.info["chunks"] == 8 and len(generation.info["itl_chunk_ms"]) == 7
    assert generation.info["itl_chunk_ms"][0] < 20.0
    assert statistics.median(gap for g, _ in runs for gap in g.info["itl_chunk_ms"][1:]) == pytest.approx(100.0, rel=0.05)
    measured_ttft = statistics.median(t.ttft_s for _, t in runs)
    measured_tpot = statistics.median(t.tpot_s for _, t in runs)
    assert measured_ttft == pytest.approx(ttft, rel=0.05)  # 1.5 s scripted; client + HTTP overhead is 10-70 ms
    assert measured_tpot == pytest.approx(tpot, rel=0.05)  # 0.6 s / 14 tokens
    streamed = [a for a in asked if a.get("stream")]
    assert len(streamed) == 4
    assert all(a["temperature"] == 0 and a["max_tokens"] == 64 for a in streamed)
    assert all(a["stream_options"] == {"include_usage": True} for a in streamed)
    # The load-time probe: text alone, then 1 s of audio; the server saw both.
    probes = [a for a in asked if not a.get("stream")]
    assert [p["audio_s"] for p in probes] == [0.0, 1.0]
    assert model.run_info()["audio_probe"]["verdict"].startswith("audio used: +25 prompt tokens")


def test_token_chunks_without_text_time_the_tokens_not_the_text():
    # bench.py serve's shape: an empty chunk per token as it is generated, the text at the end.
    script = {**TIMED, "first_delay_s": 1.0, "text_at_end": True}  # the text arrives at 1.6 s
    ttft, tpot = expected_timing(script)
    with running(script) as (url, _):
        model = candidate(url, check_audio=False)
        model.load("served")
        timed(model, request(3))
        generation, timing = timed(model, request(0))
        model.close()
    assert generation.text == "the cat sat on the mat and it slept." and generation.n_tokens == 15
    assert timing.ttft_s == pytest.approx(ttft, rel=0.1)
    # t_last is the text chunk right after the last token chunk: TPOT is still the script's.
    assert timing.tpot_s == pytest.approx(tpot, rel=0.1)


def test_audio_url_flac_encoding_and_repeats_are_sent_as_new_bytes():
    with running({"first_delay_s": 0.0, "gap_s": 0.0}) as (url, _):
        model = candidate(url, audio_encoding="audio_url", audio_format="flac", extra_body={"top_k": 1}, send_task=True)
        model.load("served")
        first, _ = timed(model, request(0))
        again, _ = timed(model, request(0))  # the warm-up clip on its timed turn
        asked = [a for a in recorded_requests(url) if a.get("stream")]
        model.close()
    assert asked[0]["top_k"] == 1 and asked[0]["task"] == "asr"
    duration = len(load_audio(str(SPEECH[0]))[0]) / 16000
    assert asked[0]["audio_s"] == pytest.approx(duration)
    # A repeated clip reaches the server as other bytes (servers cache audio by content) ...
    assert asked[0]["audio_sha256"] != asked[1]["audio_sha256"]
    assert again.info["audio_dithered"] is True and "audio_dithered" not in first.info
    assert model.run_info()["dithered_repeats"] == [SPEECH[0].stem]
    # ... of the same length, so the prompt is the same size.
    assert again.info["prompt_tokens"] == first.info["prompt_tokens"]


def test_memory_is_null_with_the_reason_without_server_pid_and_nota2025_is_unsupported():
    from harness.measure.nota2025 import measure_nota2025

    model = candidate("http://127.0.0.1:9/v1")
    memory = model.external_memory()
    assert memory["peak_mb"] is None and "server_pid" in memory["reason"]
    assert model.stepped_decoder() is None
    assert measure_nota2025(model, "x", None, lambda: 0.0)["supported"] is False


def test_unreachable_server_and_unknown_model_fail_load_clearly():
    from candidates.families.openai_family import ServedModelError

    with pytest.raises(ServedModelError, match=r"cannot reach http://127.0.0.1:9/v1 .*is the server running"):
        candidate("http://127.0.0.1:9/v1", timeout_s=5).load("served")
    with running({}) as (url, _):
        with pytest.raises(ServedModelError, match=r"does not serve 'other'; it serves: scripted"):
            candidate(url, model="other").load("served")
        with pytest.raises(ServedModelError, match=r"environment variable LALM_TEST_NO_SUCH_KEY is not set"):
            candidate(url, api_key_env="LALM_TEST_NO_SUCH_KEY").load("served")


def test_bad_options_name_the_file_and_the_key(tmp_path):
    path = tmp_path / "served.toml"
    path.write_text('family = "openai"\n[options]\nbase_url = "127.0.0.1:8000"\naudio_encodng = "audio_url"\n')
    with pytest.raises(RegistryError) as err:
        spec_from_toml(path)
    assert str(path) in str(err.value) and "'audio_encodng' (did you mean 'audio_encoding'?)" in str(err.value)
    path.write_text('family = "openai"\n[options]\nbase_url = "localhost:8000"\n')
    with pytest.raises(RegistryError, match="base_url must start with http"):
        spec_from_toml(path)


def _toml(tmp_path: Path, url: str, **options) -> Path:
    lines = ['name = "scripted"', 'family = "openai"', 'tasks = ["asr"]', "[options]", f'base_url = "{url}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    path = tmp_path / "scripted.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _torch_blocker(tmp_path: Path) -> dict[str, str]:
    """A PYTHONPATH on which `import torch` / `import transformers` fail: the client needs neither."""
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    for name in ("torch", "transformers"):
        (blocker / f"{name}.py").write_text(f"raise ImportError('{name} is blocked: a served candidate must not need it')\n")
    return {"PYTHONPATH": str(blocker)}


@pytest.mark.slow
def test_run_record_keeps_everything_when_samples_fail(tmp_path):
    # Streamed request 1 is the warm-up; samples 2 and 3 meet a 500 and a broken stream, 4 gets no usage.
    script = {"first_delay_s": 0.05, "gap_s": 0.01, "failures": {"3": "500", "4": "break", "5": "no_usage"}}
    with running(script) as (url, pid):
        path = _toml(tmp_path, url, server_pid=pid)
        out = bench("run", "-c", str(path), "--suite", "asr", "--limit", "5", "--warmup", "1",
                    "--results", str(tmp_path / "results"), env=_torch_blocker(tmp_path), timeout=300)
    assert "Traceback" not in out.stderr, out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    suite = record["suites"]["asr"]
    reasons = {f["sample_id"]: f["reason"] for f in suite["failures"]}
    assert len(reasons) == 3 and suite["n_scored"] == 2
    assert reasons[SPEECH[1].stem].startswith("ServedModelError: HTTP 500 from http://127.0.0.1:")
    assert "scripted internal error" in reasons[SPEECH[1].stem]
    assert "the stream from http://127.0.0.1:" in reasons[SPEECH[2].stem]
    assert "broke after 3 streamed chunk(s)" in reasons[SPEECH[2].stem]  # the role chunk and 2 more
    assert "sent no usage chunk" in reasons[SPEECH[3].stem]
    eff = record["efficiency"]
    assert eff["tpot_ms"]["n"] == 2 and eff["ttft_ms"]["p50"] > 50.0
    # Memory: the server's process tree, sampled during the run (a real process here).
    assert eff["peak_memory_kind"] == "server_rss_peak" and eff["peak_memory_mb"] > 5.0
    assert eff["external_memory"]["server_pid"] == pid
    assert record["environment"]["device"] == "served"
    assert record["environment"]["device_name"] == f"scripted at {url}"
    assert record["candidate_info"]["audio_probe"]["verdict"] == "audio used: +25 prompt tokens for 1 s"
    assert record["candidate_info"]["dithered_repeats"] == [SPEECH[0].stem]  # the warm-up clip's timed turn
    lines = [json.loads(x) for x in (run_record_path(out.stdout).parent / "predictions.jsonl").read_text().splitlines()]
    ok = [x for x in lines if x["error"] is None]
    assert all(x["n_tokens"] == 9 and len(x["info"]["itl_chunk_ms"]) == 6 for x in ok)


@pytest.mark.slow
def test_bench_serve_behind_the_openai_family_gives_the_in_process_transcripts(tmp_path, whisper_tiny_hf_run):
    pytest.importorskip("fastapi", reason="bench.py serve needs the 'serve' extra")
    from harness.serve.launch import served

    args = ("--suite", "asr", "--limit", "2", "--warmup", "1", "--results", str(tmp_path / "results"))
    local = whisper_tiny_hf_run  # the in-process run: the same demo clips, --limit 3 --warmup 1 (conftest)
    with served("-c", "whisper-tiny-hf") as server:
        path = _toml(tmp_path, server.v1, send_task=True, server_pid=server.proc.pid)
        remote = bench("run", "-c", str(path), *args, timeout=600)
    lines = {}
    for out in (local, remote):
        assert out.returncode == 0, out.stdout + out.stderr
        folder = run_record_path(out.stdout).parent
        lines[out is remote] = {x["sample_id"]: x for x in map(json.loads, (folder / "predictions.jsonl").read_text().splitlines())}
    remote_lines = lines[True]
    assert len(remote_lines) == 2 and set(remote_lines) <= set(lines[False])  # the local run's first 2 clips
    local_lines = {k: lines[False][k] for k in remote_lines}
    assert {k: v["prediction"] for k, v in remote_lines.items()} == {k: v["prediction"] for k, v in local_lines.items()}
    assert {k: v["n_tokens"] for k, v in remote_lines.items()} == {k: v["n_tokens"] for k, v in local_lines.items()}
    for line in remote_lines.values():  # one chunk per token: the client's TTFT/TPOT are the server's plus HTTP
        assert line["tpot_ms"] is not None and line["ttft_ms"] >= line["info"]["server_timing"]["server_ttft_ms"]
    record = json.loads(run_record_path(remote.stdout).read_text())
    assert record["candidate_info"]["audio_probe"]["verdict"].startswith("audio required")
    assert record["efficiency"]["peak_memory_kind"] == "server_rss_peak"


@pytest.mark.slow
def test_a_server_that_drops_the_audio_fails_the_run_and_keeps_the_record(tmp_path):
    with running({"ignore_audio": True}) as (url, _):
        out = bench("run", "-c", str(_toml(tmp_path, url)), "--limit", "2", "--results", str(tmp_path / "results"),
                    env=_torch_blocker(tmp_path), timeout=300)
    assert out.returncode == 1
    record = json.loads(run_record_path(out.stdout).read_text())
    assert record["status"] == "failed"
    assert record["error"].startswith("load failed: ServedModelError: the server ignored the audio: usage.prompt_tokens is 12")
    assert record["suites"]["asr"]["not_run"] == [SPEECH[0].stem, SPEECH[1].stem]
    assert record["candidate_spec"]["options"]["base_url"] == url
    assert "the server ignored the audio" in out.stdout


class FakeNvml:
    """Stands in for pynvml (no GPU can exist on this machine): one GPU listing `listed` processes."""

    def __init__(self, listed: dict[int, int | None]):
        self.listed = listed

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetMemoryInfo(self, handle):
        return type("Info", (), {"used": 5000 * 1024 * 1024})()

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [type("Proc", (), {"pid": pid, "usedGpuMemory": used})() for pid, used in self.listed.items()]


def test_server_memory_on_a_gpu_comes_from_nvml_or_is_null_with_the_reason(monkeypatch):
    import os
    import sys

    from harness.serve.client import ProcessTreeMemory

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml({os.getpid(): 3000 * 1024 * 1024, 1: 7 * 1024 * 1024}))
    tree = ProcessTreeMemory(os.getpid())  # this test process stands for the server
    tree.sample()
    report = tree.report()
    assert (report["kind"], report["peak_mb"]) == ("server_nvml_used", 3000.0)  # pid 1 is not in the tree
    assert report["nvml_device_used_peak_mb"] == 5000.0 and report["rss_peak_mb"] > 10
    # Inside a container NVML lists host pids: the server's GPU memory is unseen, not 0 or its RSS.
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml({999_999_999: 3000 * 1024 * 1024}))
    tree = ProcessTreeMemory(os.getpid())
    tree.sample()
    report = tree.report()
    assert (report["kind"], report["peak_mb"]) == ("server_gpu_memory_not_seen", None)
    assert "pid namespace" in report["reason"]
