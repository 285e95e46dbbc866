"""A `/v1/chat/completions` request body -> `ChatRequest`, with every check and limit.

What the body may hold (anything else OpenAI clients send, e.g. `user` or `seed`, is ignored):
- `model`: the served candidate's name (`GET /v1/models`).
- `messages`: system/developer/user messages; their text parts, in order and joined by newlines,
  are the prompt (empty: the suite's prompt for the task). Exactly one audio part in all.
  Assistant or tool turns are refused: a candidate answers one prompt about one clip.
- `max_completion_tokens` or `max_tokens` -> `Request.max_new_tokens` (default: the suite's).
- `temperature` 0 or absent, `top_p` 1 or absent, `n` 1 or absent: decoding is greedy.
- `stream`, `stream_options.include_usage`.
- the task: a top-level `task` (the openai client's `extra_body={"task": "aac"}`), else
  `metadata.task`, else `asr`; a suite name or one of its annotation aliases (`audiocaption_v2`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.serve.audio import decode_audio_part
from harness.serve.errors import ApiError
from harness.suites import SUITES, Suite, suite_for_task
from harness.types import SAMPLE_RATE

AUDIO_PARTS = ("input_audio", "audio_url")
# usage.prompt_tokens is an estimate (candidates do not report their input length): ~4 bytes of
# UTF-8 per text token (OpenAI's rule of thumb) plus 25 tokens per audio second (Whisper-style
# encoders after pooling, Qwen2-Audio). It grows with the audio, which is what clients check.
AUDIO_TOKENS_PER_S = 25
TEXT_BYTES_PER_TOKEN = 4
PROMPT_TOKENS_NOTE = "estimate: ceil(prompt UTF-8 bytes / 4) + ceil(25 x audio seconds)"
PROMPT_ROLES = ("system", "developer", "user")


@dataclass(frozen=True)
class Limits:
    """What the parser needs to know about the server."""

    model: str  # the served name
    tasks: frozenset[str]  # what the candidate does
    max_body_bytes: int
    max_audio_s: float
    max_tokens_limit: int
    local_audio_root: Path | None = None


@dataclass
class ChatRequest:
    audio: np.ndarray
    prompt: str
    task: str
    max_new_tokens: int
    stream: bool
    include_usage: bool

    @property
    def audio_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def prompt_tokens(self) -> int:
        """The estimate reported as usage.prompt_tokens (PROMPT_TOKENS_NOTE)."""
        text = math.ceil(len(self.prompt.encode("utf-8")) / TEXT_BYTES_PER_TOKEN)
        return text + math.ceil(AUDIO_TOKENS_PER_S * self.audio_s)


def parse_chat(body: bytes, limits: Limits) -> ChatRequest:
    """Raises ApiError (4xx) naming the field at fault; decodes the audio last (the costly step)."""
    doc = _json_object(body)
    _check_model(doc, limits)
    suite = _suite(doc, limits)
    texts, audio_part = _content(doc.get("messages"))
    _check_greedy(doc)
    stream = _flag(doc, "stream")
    options = doc.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object", "invalid_request", "stream_options")
    audio = decode_audio_part(audio_part, limits.local_audio_root, limits.max_body_bytes, limits.max_audio_s)
    return ChatRequest(
        audio=audio,
        prompt="\n".join(t for t in texts if t) or suite.prompt,
        task=suite.name,
        max_new_tokens=_max_tokens(doc, suite, limits),
        stream=stream,
        include_usage=stream and _flag(options, "include_usage"),
    )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"the request body is not valid JSON: {err}", "invalid_json") from None
    if not isinstance(doc, dict):
        raise ApiError(400, f"the request body must be a JSON object, not {type(doc).__name__}", "invalid_json")
    return doc


def _check_model(doc: dict, limits: Limits) -> None:
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, f"`model` is required; this server serves {limits.model!r}", "invalid_request", "model")
    if model != limits.model:
        raise ApiError(404, f"model {model!r} is not served here; this server serves {limits.model!r} "
                       "(GET /v1/models)", "model_not_found", "model")


def _suite(doc: dict, limits: Limits) -> Suite:
    task = doc.get("task")
    metadata = doc.get("metadata")
    if task is None and isinstance(metadata, dict):
        task = metadata.get("task")
    task = "asr" if task is None else task
    suite = SUITES.get(task) if isinstance(task, str) else None
    suite = suite or (suite_for_task(task) if isinstance(task, str) else None)
    if suite is None or suite.name not in limits.tasks:
        raise ApiError(400, f"task {task!r} is not one {limits.model!r} does; it does: {', '.join(sorted(limits.tasks))} "
                       "(set `task` in the body or `metadata.task`)", "unsupported_task", "task")
    return suite


def _content(messages: Any) -> tuple[list[str], dict]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "`messages` must be a non-empty list", "invalid_request", "messages")
    texts: list[str] = []
    audio: list[dict] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object", "invalid_request", where)
        if message.get("role") not in PROMPT_ROLES:
            raise ApiError(400, f"{where}.role is {message.get('role')!r}; only {', '.join(PROMPT_ROLES)} messages "
                           "are taken (one prompt about one clip, no earlier turns)", "invalid_request", f"{where}.role")
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise ApiError(400, f"{where}.content must be a string or a list of parts", "invalid_request", f"{where}.content")
        for j, part in enumerate(parts):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise ApiError(400, f"{where}.content[{j}].text must be a string", "invalid_request",
                                   f"{where}.content[{j}].text")
                texts.append(part["text"])
            elif kind in AUDIO_PARTS:
                audio.append(part)
            else:
                raise ApiError(400, f"{where}.content[{j}] has type {kind!r}; parts must be text, input_audio or audio_url",
                               "unsupported_content", f"{where}.content[{j}]")
    if not audio:
        raise ApiError(400, "the request holds no audio: add an input_audio or audio_url part to a user message",
                       "missing_audio", "messages")
    if len(audio) > 1:
        raise ApiError(400, f"the request holds {len(audio)} audio parts; send exactly one", "too_many_audio", "messages")
    return texts, audio[0]


def _check_greedy(doc: dict) -> None:
    for key, greedy in (("temperature", 0), ("top_p", 1), ("n", 1)):
        value = doc.get(key)
        if value is not None and value != greedy:
            raise ApiError(400, f"{key}={value!r} is not supported: decoding is greedy (send {key}={greedy} or leave it out)",
                           "unsupported_parameter", key)


def _flag(doc: dict, key: str) -> bool:
    value = doc.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"`{key}` must be true or false", "invalid_request", key)
    return value


def _max_tokens(doc: dict, suite: Suite, limits: Limits) -> int:
    key = "max_completion_tokens" if doc.get("max_completion_tokens") is not None else "max_tokens"
    value = doc.get(key)
    if value is None:
        return min(suite.max_new_tokens, limits.max_tokens_limit)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limits.max_tokens_limit:
        raise ApiError(400, f"`{key}` must be an integer from 1 to {limits.max_tokens_limit} (--max-tokens-limit), "
                       f"got {value!r}", "invalid_request", key)
    return value
