"""A scripted OpenAI-compatible judge for the qa suite's tests (stdlib only; no model).

    python tests/scripted_judge_server.py '{"replies": [["blue", "Right colour. Score: 9"]], ...}'

prints `PORT <n>` once it listens on 127.0.0.1 (a free port), answers POST /v1/chat/completions
(not streamed) and serves until killed, or until `lifetime_s` (default 300) has passed, so a
test that dies cannot leave it behind for long. Its replies follow the script:

- `replies`: [[needle, reply], ...]: the first pair whose needle is in the request's user message
  gives the reply (so a reply is tied to the answer being graded, whatever the order of requests);
- `default`: the reply when no needle matches;
- `failures`: {"N": "500"}: the N-th request (1-based) gets an HTTP 500 (the client retries);
- `delay_s`: a pause before each reply.
GET /debug/requests returns every request's model and user message, in arrival order.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_SCRIPT = {"model": "scripted-judge", "replies": [], "default": "No score given.", "failures": {},
                  "delay_s": 0.0, "lifetime_s": 300}


class JudgeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: JudgeServer

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/debug/requests":
            with self.server.lock:
                self._json(200, list(self.server.requests))
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        script = self.server.script
        user = "\n".join(str(m.get("content")) for m in body.get("messages", []) if m.get("role") == "user")
        with self.server.lock:
            self.server.requests.append({"model": body.get("model"), "user": user,
                                         "authorization": self.headers.get("Authorization", "")})
            number = len(self.server.requests)
        time.sleep(float(script["delay_s"]))
        if script["failures"].get(str(number)) == "500":
            self._json(500, {"error": {"message": "scripted failure"}})
            return
        reply = next((r for needle, r in script["replies"] if needle in user), script["default"])
        self._json(200, {
            "id": f"chatcmpl-judge-{number}", "object": "chat.completion", "created": int(time.time()),
            "model": script["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(user.split()), "completion_tokens": len(reply.split()),
                      "total_tokens": len(user.split()) + len(reply.split())},
        })

    def _json(self, status: int, payload) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class JudgeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: dict):
        super().__init__(("127.0.0.1", 0), JudgeHandler)
        self.script = {**DEFAULT_SCRIPT, **script}
        self.requests: list[dict] = []
        self.lock = threading.Lock()


def main() -> None:
    server = JudgeServer(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
    threading.Timer(float(server.script["lifetime_s"]), server.shutdown).start()  # bounded, even if orphaned
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


def running(script: dict, start_timeout_s: float = 30.0):
    """Starts the judge in a child process; yields (base_url, pid); always stops it (by pid)."""
    from tests.scripted_openai_server import serve_script  # here: the child runs this file as a script

    return serve_script(__file__, script, "scripted judge", start_timeout_s)


def recorded_requests(base_url: str) -> list[dict]:
    from tests.scripted_openai_server import recorded_requests as asked

    return asked(base_url)


if __name__ == "__main__":
    main()
