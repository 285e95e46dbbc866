"""The HTTP routes: `/v1/chat/completions` (SSE or JSON), `/v1/models`, `/health`, `/metrics`.

Streaming follows vLLM's shape: nothing is sent until the first token exists (so a request that
fails before it gets a plain HTTP error), then a first chunk with `role: assistant` and empty
content, one chunk per token event, the text, a chunk with `finish_reason`, the usage-only chunk
(`choices: []`, with `stream_options.include_usage`) and `data: [DONE]`.

Each token event is sent as its own chunk at the moment it is generated (chunk arrival times are
the token times), with the tokens' text as delta content when the candidate gives it
(`on_token(count, text)`, harness/streaming.py; the transformers families do), else empty. When
generation ends, whatever of `Generation.text` was not streamed yet (all of it for a candidate that
reports only counts) follows in one content chunk, so the deltas always join to the answer.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request as HttpRequest

from harness.serve.chat import PROMPT_TOKENS_NOTE, ChatRequest, Limits, parse_chat
from harness.serve.config import ServeConfig
from harness.serve.engine import Failed, Finished, Job, ModelWorker, Tokens
from harness.serve.errors import ApiError
from harness.serve.metrics import CONTENT_TYPE, ServeMetrics
from harness.types import Request

CHAT_PATH = "/v1/chat/completions"


def build_app(worker: ModelWorker, config: ServeConfig, api_key: str | None) -> FastAPI:
    candidate = worker.candidate
    name = candidate.name
    limits = Limits(model=name, tasks=frozenset(candidate.tasks), max_body_bytes=config.max_body_bytes,
                    max_audio_s=config.max_audio_s, max_tokens_limit=config.max_tokens_limit,
                    local_audio_root=config.allow_local_audio)
    metrics = ServeMetrics(name)
    metrics.in_flight.labels(name).set_function(lambda: worker.pending)
    created = int(time.time())
    app = FastAPI(title="lalm-bench serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def api_error(request: HttpRequest, err: ApiError) -> JSONResponse:
        if request.url.path == CHAT_PATH:
            metrics.failed(err.status, err.code)
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: HttpRequest, err: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        message = f"{request.method} {request.url.path}: {err.detail}"
        return JSONResponse(ApiError(err.status_code, message, code).body(), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: HttpRequest, err: Exception) -> Response:
        error = ApiError(500, f"internal error: {type(err).__name__}: {err}", "internal_error")
        if request.url.path == CHAT_PATH:
            metrics.failed(error.status, error.code)
        return _json(error.body(), status=500)

    def check_key(request: HttpRequest) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken does not tell how much of a guessed key was right
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "missing or wrong API key: send the header `Authorization: Bearer <key>`", "invalid_api_key")

    auth = [Depends(check_key)] if api_key else []

    @app.get("/health")
    async def health() -> Response:
        if worker.dead:  # 503: a load balancer or script stops sending requests here
            return _json({"status": "error", "model": name, "error": worker.dead}, status=503)
        return _json({"status": "ok", "model": name})

    @app.get("/v1/models", dependencies=auth)
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "lalm-bench",
                                            "tasks": sorted(candidate.tasks)}]}

    @app.get("/metrics", dependencies=auth)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.post(CHAT_PATH, dependencies=auth)
    async def chat_completions(request: HttpRequest) -> Response:
        received = time.perf_counter()
        body = await _read_body(request, limits.max_body_bytes)
        chat = await run_in_threadpool(parse_chat, body, limits)  # audio decoding off the event loop
        reply = _Reply(name, chat)
        job = worker.submit(Request(reply.id, chat.audio, chat.task, chat.prompt, chat.max_new_tokens))
        reply.parse_s = job.submitted - received
        try:
            first = await job.next()
            if isinstance(first, Failed):
                raise _generation_failed(first.error)
            if not chat.stream:
                return await _complete(job, first, reply, metrics)
        except BaseException:
            job.cancel()
            raise
        headers = {**reply.headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
        if isinstance(first, Tokens):
            headers["x-server-ttft-ms"] = f"{first.elapsed_s * 1000:.3f}"
        return StreamingResponse(_stream(job, first, reply, metrics), media_type="text/event-stream", headers=headers)

    return app


async def _read_body(request: HttpRequest, limit: int) -> bytes:
    too_big = ApiError(413, f"the request body is over this server's limit of {limit} bytes (--max-body-mb); "
                       "send shorter or compressed (flac/ogg) audio", "request_too_large")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_big
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise too_big
    return bytes(body)


def _generation_failed(error: BaseException) -> ApiError:
    kind = getattr(error, "type_name", type(error).__name__)  # ModelError: the model process's exception
    return ApiError(500, f"the candidate failed on this request: {kind}: {error}", "generation_failed")


class _Reply:
    """The OpenAI response objects of one request."""

    def __init__(self, model: str, chat: ChatRequest):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.model = model
        self.chat = chat
        self.created = int(time.time())
        self.prompt_tokens = chat.prompt_tokens()
        self.headers = {"x-lalm-prompt-tokens": "estimate"}
        self.parse_s = 0.0  # body read + JSON + audio decoding, before the request reached the model queue

    def finish_reason(self, finished: Finished) -> str:
        return "length" if finished.timing.n_tokens >= self.chat.max_new_tokens else "stop"

    def usage(self, finished: Finished) -> dict[str, int]:
        n = finished.timing.n_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": n, "total_tokens": self.prompt_tokens + n}

    def server_block(self, finished: Finished) -> dict[str, Any]:
        """The server's own measurements, beside OpenAI's fields (clients ignore unknown keys)."""
        timing = finished.timing

        def ms(seconds: float | None) -> float | None:
            return None if seconds is None else round(seconds * 1000, 3)

        return {"server_ttft_ms": ms(timing.ttft_s), "server_tpot_ms": ms(timing.tpot_s), "server_e2e_ms": ms(timing.e2e_s),
                "parse_ms": ms(self.parse_s), "queue_ms": ms(finished.queue_s), "task": self.chat.task, "audio_s": round(self.chat.audio_s, 3),
                "prompt_tokens": PROMPT_TOKENS_NOTE, "info": finished.generation.info}

    def completion(self, finished: Finished) -> dict[str, Any]:
        message = {"role": "assistant", "content": finished.generation.text}
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason(finished)}],
                "usage": self.usage(finished), "lalm_bench": self.server_block(finished)}

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                     "choices": [choice], **extra})

    def usage_chunk(self, finished: Finished) -> bytes:
        return _sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                     "choices": [], "usage": self.usage(finished)})


def _dumps(payload: dict[str, Any]) -> bytes:
    # default=str: a candidate's Generation.info may hold values JSON has no type for
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def _json(payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(payload), status_code=status, headers=headers, media_type="application/json")


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"


async def _complete(job: Job, event, reply: _Reply, metrics: ServeMetrics) -> Response:
    while isinstance(event, Tokens):
        event = await job.next()
    if isinstance(event, Failed):
        raise _generation_failed(event.error)
    metrics.completed(event.timing, event.queue_s, reply.prompt_tokens)
    block = reply.server_block(event)
    headers = {**reply.headers, "x-server-ttft-ms": str(block["server_ttft_ms"]), "x-server-tpot-ms": str(block["server_tpot_ms"])}
    return _json(reply.completion(event), headers=headers)


async def _stream(job: Job, event, reply: _Reply, metrics: ServeMetrics):
    role_sent = done = False
    streamed = ""  # the text sent so far
    try:
        while True:
            if isinstance(event, Failed):  # after the first token: the status is already 200
                done = True
                error = _generation_failed(event.error)
                metrics.failed(error.status, error.code)
                yield _sse(error.body())
                yield DONE
                return
            if not role_sent or isinstance(event, Tokens):
                text = event.text if isinstance(event, Tokens) else ""
                streamed += text
                yield reply.chunk({"role": "assistant", "content": text} if not role_sent else {"content": text})
                role_sent = True
            if isinstance(event, Finished):
                done = True
                metrics.completed(event.timing, event.queue_s, reply.prompt_tokens)
                answer, block = event.generation.text, reply.server_block(event)
                if answer.startswith(streamed):
                    if answer[len(streamed):]:
                        yield reply.chunk({"content": answer[len(streamed):]})
                else:  # cannot be taken back; the non-streamed answer and this flag tell
                    block["streamed_text_differs"] = True
                yield reply.chunk({}, reply.finish_reason(event), lalm_bench=block)
                if reply.chat.include_usage:
                    yield reply.usage_chunk(event)
                yield DONE
                return
            event = await job.next()
    finally:
        if not done:  # the client went away mid-stream: stop the model at its next token
            job.cancel()
            metrics.failed(499, "client_disconnected")
