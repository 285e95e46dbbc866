"""Family `openai`: a model behind an OpenAI-compatible chat-completions API (vLLM, SGLang,
llama.cpp's server, `bench.py serve`, a hosted API), timed from the client.

Each request is streamed (official `openai` client, `pip install lalm-bench[openai]`), greedy
(temperature 0), with `max_tokens` from the suite and `stream_options.include_usage`. The
harness's clock runs here, on the client:
- TTFT ends at the first chunk that carries a delta (content, even empty, or the role): servers
  send it when the first token exists (vLLM's role chunk comes with the first token, as
  `vllm bench serve` assumes; `bench.py serve` sends one chunk per token, with its text). Each
  chunk's text goes on to a callback that wants it (`on_token(1, text)`, harness/streaming.py). Encoding the audio and the HTTP round trip are inside it;
- the token count is the server's `usage.completion_tokens`, never the number of chunks (one
  chunk may hold several tokens), so TPOT = (t_last_chunk - t_first_chunk) / (completion_tokens - 1);
- the gaps between those chunks are kept per request as `info.itl_chunk_ms` (chunk-level, not
  per token); an answer whose chunks mostly arrived together is flagged `info.stream_buffered`
  (harness/measure/timing.py), and its TPOT is then reported as unavailable, never as the
  near-zero gap.
`load` checks that the server uses the audio: a text-only probe and the same text with 1 s of
audio must differ in `usage.prompt_tokens` (or the server must refuse a request without audio),
else the run fails with "the server ignored the audio". HTTP errors, timeouts and broken
streams fail the one sample with the status and message. Server memory is seen only with
`server_pid` (its process tree's peak, sampled during the run); otherwise it is null with the
reason. `prefill`/`decode_step` cannot be reached through the API: nota2025 is unsupported.

A clip sent a second time in one run (the warm-up clip on its timed turn) goes out with +-1 LSB
of dither: servers cache audio preprocessing and prompt prefixes by content, and a cached
repeat would be timed several times faster than a first request.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from harness.candidate import Candidate
from harness.measure.timing import stream_buffered
from harness.serve.client import ProcessTreeMemory, distinct_copy, encode_audio
from harness.spec import CandidateSpec
from harness.streaming import reporter
from harness.types import SAMPLE_RATE, Generation, Request, TokenCallback

PROBE_TEXT = "What do you hear?"
PROBE_AUDIO_S = 1.0
PROBE_SEED = 20251111
# What `bench.py serve` reports about each request in its `lalm_bench` block.
SERVER_TIMING_KEYS = ("server_ttft_ms", "server_tpot_ms", "server_e2e_ms", "parse_ms", "queue_ms")


class ServedModelError(RuntimeError):
    """A served request failed: HTTP status, timeout, broken stream, or a server that ignores audio."""


@dataclass(frozen=True)
class OpenAIOptions:
    base_url: str = "http://127.0.0.1:8000/v1"  # the API root, up to and including /v1
    model: str | None = None  # the served model's name; None: the only one /v1/models lists
    api_key_env: str | None = None  # NAME of the environment variable holding the key (never the key)
    audio_encoding: Literal["input_audio", "audio_url"] = "input_audio"  # SGLang: audio_url (a data: URI)
    audio_format: Literal["wav", "flac"] = "wav"
    extra_body: dict[str, Any] = field(default_factory=dict)  # extra request fields; they override ours
    server_pid: int | None = None  # the server's pid on this machine: its memory is sampled
    timeout_s: float = 120.0  # longest wait for the server's next bytes (connect, first token, each chunk)
    system_prompt: str | None = None
    check_audio: bool = True  # the load-time probe that the server does not drop the audio
    send_task: bool = False  # add the suite's task as a top-level "task" field (`bench.py serve` reads it)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1), got {self.base_url!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.api_key_env is not None and not self.api_key_env.isidentifier():
            raise ValueError(f"api_key_env names an environment variable (e.g. \"VLLM_API_KEY\"), got {self.api_key_env!r}")


class OpenAICandidate(Candidate):
    """A model served behind an OpenAI-compatible `/v1/chat/completions` endpoint."""

    tasks = frozenset({"asr", "aac"})  # a candidate file's `tasks = [...]` claims others
    Options = OpenAIOptions

    def __init__(self, spec: CandidateSpec | None = None):
        super().__init__(spec)
        self.model: str | None = self.options.model
        self._client = None
        self._memory: ProcessTreeMemory | None = None
        self._probe: dict[str, Any] = {"checked": False}
        self._sent: dict[str, int] = {}  # audio digest -> times sent (repeats go out dithered)
        self._dithered: list[str] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ contract

    def served_by(self) -> str:
        return f"{self.model or '(the only served model)'} at {self.options.base_url}"

    def load(self, device: str) -> None:
        try:
            import openai
        except ImportError:
            raise ServedModelError("family 'openai' needs the openai client: pip install 'lalm-bench[openai]'") from None
        if self.options.server_pid is not None:
            self._memory = _tree_memory(self.options.server_pid)
            self._memory.start()
        self._client = openai.OpenAI(
            base_url=self.options.base_url, api_key=self._api_key(), max_retries=0, timeout=self.options.timeout_s
        )
        self.model = self._resolve_model()
        if self.options.check_audio:
            self._probe = self._check_audio()

    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        audio, dithered = self._fresh_audio(request)
        body = self._body(request.prompt, audio, request.max_new_tokens, request.task)
        times: list[float] = []
        parts: list[str] = []
        report = reporter(on_token)
        usage = finish = server = None
        try:
            stream = self._client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
            with stream:
                for chunk in stream:
                    usage = chunk.usage or usage
                    server = (chunk.model_extra or {}).get("lalm_bench") or server  # bench.py serve's own timings
                    for choice in chunk.choices:
                        delta = choice.delta
                        text = delta.content or _reasoning(delta) or ""
                        # A delta (role or content, even empty) is sent when a token exists: vLLM's
                        # role chunk comes with the first token, `bench.py serve` sends one empty
                        # chunk per token. A chunk, not a token: the count comes from usage.
                        if text or delta.content is not None or delta.role is not None:
                            report(1, text)
                            times.append(time.perf_counter())
                        if text:
                            parts.append(text)
                        finish = choice.finish_reason or finish
        except Exception as err:
            raise self._explain(err, len(times)) from err
        if finish is None:
            raise ServedModelError(
                f"the stream from {self.options.base_url} ended before the answer finished "
                f"(no finish_reason) after {len(times)} streamed chunk(s)")
        if usage is None:
            raise ServedModelError(
                f"{self.options.base_url} sent no usage chunk (stream_options.include_usage): the token count is "
                "unknown, and chunks are never counted as tokens; use a server that reports usage")
        info = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "chunks": len(times),
            "itl_chunk_ms": [round((b - a) * 1000.0, 3) for a, b in zip(times[:-1], times[1:], strict=True)],
            "finish_reason": finish,
        }
        if stream_buffered(info["itl_chunk_ms"], usage.completion_tokens):
            info["stream_buffered"] = True  # the run reports its TPOT as unavailable, with the reason
        if dithered:
            info["audio_dithered"] = True
        if isinstance(server, dict):  # the server's side of the same request: the HTTP overhead is the difference
            info["server_timing"] = {k: server[k] for k in SERVER_TIMING_KEYS if k in server}
        return Generation(text="".join(parts), n_tokens=usage.completion_tokens, info=info)

    def external_memory(self) -> dict[str, Any]:
        if self._memory is None:
            return {
                "peak_mb": None,
                "kind": "server_not_measured",
                "reason": "no server_pid in the candidate's [options]: a server's memory cannot be seen from the "
                          "client; set server_pid to the server's pid on this machine to sample its process tree",
            }
        self._memory.sample()
        return self._memory.report()

    def run_info(self) -> dict[str, Any]:
        import openai

        return {
            "served_by": self.served_by(),
            "base_url": self.options.base_url,
            "model": self.model,
            "audio_encoding": self.options.audio_encoding,
            "audio_format": self.options.audio_format,
            "extra_body": dict(self.options.extra_body),
            "api_key_env": self.options.api_key_env,
            "audio_probe": self._probe,
            "dithered_repeats": list(self._dithered),
            "client": f"openai {openai.__version__}",
            "timing": "client-side: TTFT includes audio encoding and HTTP; tokens from usage.completion_tokens",
        }

    def close(self) -> None:
        if self._memory is not None:
            self._memory.stop()
        if self._client is not None:
            self._client.close()

    # ------------------------------------------------------------------ requests

    def _api_key(self) -> str:
        name = self.options.api_key_env
        if name is None:
            return "EMPTY"  # never the caller's OPENAI_API_KEY: this may be anyone's server
        key = os.environ.get(name)
        if not key:
            raise ServedModelError(f"api_key_env = {name!r}, but the environment variable {name} is not set; export it")
        return key

    def _resolve_model(self) -> str:
        import openai

        try:
            served = [m.id for m in self._client.models.list()]
        except openai.NotFoundError:
            served = []  # a server without /v1/models: the configured name must do
        except Exception as err:
            raise self._explain(err, 0, what="listing the models") from err
        if self.model is None:
            if len(served) != 1:
                listed = ", ".join(served) or "none"
                raise ServedModelError(f"{self.options.base_url} serves {listed}: name one with model = \"...\" in [options]")
            return served[0]
        if served and self.model not in served:
            raise ServedModelError(f"{self.options.base_url} does not serve {self.model!r}; it serves: {', '.join(served)}")
        return self.model

    def _messages(self, prompt: str, audio: np.ndarray | None) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if audio is not None:
            content.append(self._audio_part(audio))
        content.append({"type": "text", "text": prompt})
        messages = [{"role": "user", "content": content}]
        if self.options.system_prompt:
            messages.insert(0, {"role": "system", "content": self.options.system_prompt})
        return messages

    def _audio_part(self, audio: np.ndarray) -> dict[str, Any]:
        fmt = self.options.audio_format
        data = base64.b64encode(encode_audio(audio, fmt)).decode("ascii")
        if self.options.audio_encoding == "audio_url":
            return {"type": "audio_url", "audio_url": {"url": f"data:audio/{fmt};base64,{data}"}}
        return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}

    def _body(self, prompt: str, audio: np.ndarray | None, max_tokens: int, task: str | None = None) -> dict[str, Any]:
        extra = dict(self.options.extra_body)
        if self.options.send_task and task:
            extra.setdefault("task", task)
        return {
            "model": self.model,
            "messages": self._messages(prompt, audio),
            "temperature": 0.0,
            "max_tokens": max_tokens,
            "extra_body": extra or None,
        }

    def _fresh_audio(self, request: Request) -> tuple[np.ndarray, bool]:
        """The request's audio, dithered when this run already sent the same clip (see module doc)."""
        digest = hashlib.blake2b(np.ascontiguousarray(request.audio).tobytes(), digest_size=16).hexdigest()
        with self._lock:
            times_sent = self._sent.get(digest, 0)
            self._sent[digest] = times_sent + 1
            if times_sent and request.sample_id not in self._dithered:
                self._dithered.append(request.sample_id)
        if not times_sent:
            return request.audio, False
        return distinct_copy(request.audio, seed=times_sent), True

    def _check_audio(self) -> dict[str, Any]:
        """Text alone, then the same text with 1 s of noise: prompt_tokens must grow."""
        import openai

        noise = np.random.default_rng(PROBE_SEED).uniform(-0.1, 0.1, int(PROBE_AUDIO_S * SAMPLE_RATE)).astype(np.float32)
        probe: dict[str, Any] = {"checked": True, "text": PROBE_TEXT, "audio_s": PROBE_AUDIO_S}
        try:
            text_only = self._client.chat.completions.create(**self._body(PROBE_TEXT, None, 1))
            probe["text_only_prompt_tokens"] = text_only.usage.prompt_tokens if text_only.usage else None
        except openai.APIStatusError as err:
            if not 400 <= err.status_code < 500:
                raise self._explain(err, 0, what="the text-only probe") from err
            # A server that refuses a request without audio cannot be answering from the text alone.
            probe.update(text_only_prompt_tokens=None, verdict=f"audio required: text-only request refused (HTTP {err.status_code})")
            return probe
        except Exception as err:
            raise self._explain(err, 0, what="the text-only probe") from err
        try:
            with_audio = self._client.chat.completions.create(**self._body(PROBE_TEXT, noise, 1))
        except Exception as err:
            raise self._explain(err, 0, what=f"the audio probe ({self.options.audio_encoding}, {self.options.audio_format})") from err
        probe["with_audio_prompt_tokens"] = with_audio.usage.prompt_tokens if with_audio.usage else None
        before, after = probe["text_only_prompt_tokens"], probe["with_audio_prompt_tokens"]
        if before is None or after is None:
            probe["verdict"] = "unchecked: the server reports no usage.prompt_tokens"
        elif after <= before:
            raise ServedModelError(
                f"the server ignored the audio: usage.prompt_tokens is {after} with {PROBE_AUDIO_S:g} s of audio and "
                f"{before} without (text-only probe), so it answers from the text alone. Check that {self.model!r} takes "
                f"audio and that audio_encoding = {self.options.audio_encoding!r} suits the server "
                "(SGLang needs \"audio_url\"); set check_audio = false only for a server whose usage does not count audio")
        else:
            probe["verdict"] = f"audio used: +{after - before} prompt tokens for {PROBE_AUDIO_S:g} s"
        return probe

    def _explain(self, err: Exception, chunks: int, what: str = "the request") -> Exception:
        """A one-line reason with the HTTP status, the timeout, or where the stream broke."""
        import openai

        url = self.options.base_url
        if isinstance(err, ServedModelError):
            return err
        if isinstance(err, openai.APIStatusError):
            return ServedModelError(f"HTTP {err.status_code} from {url} for {what}: {_message(err)}")
        if isinstance(err, openai.APITimeoutError):
            return ServedModelError(
                f"{what}: no bytes from {url} within timeout_s = {self.options.timeout_s:g} s"
                + (f" (after {chunks} streamed chunk(s))" if chunks else ""))
        if isinstance(err, openai.APIConnectionError):
            cause = err.__cause__ or err
            if chunks:
                return ServedModelError(f"the stream from {url} broke after {chunks} streamed chunk(s): {type(cause).__name__}: {cause}")
            return ServedModelError(f"{what}: cannot reach {url} ({type(cause).__name__}: {cause}); is the server running?")
        return ServedModelError(f"{what} to {url} failed: {type(err).__name__}: {err}")


def _reasoning(delta: Any) -> str | None:
    """Reasoning text some servers stream in a field of its own (vLLM, SGLang): generated tokens too."""
    extra = getattr(delta, "model_extra", None) or {}
    return extra.get("reasoning_content") or extra.get("reasoning")


def _message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)
    return str(getattr(err, "message", err))


def _tree_memory(pid: int) -> ProcessTreeMemory:
    import psutil

    try:
        return ProcessTreeMemory(pid)
    except psutil.Error as err:
        raise ServedModelError(
            f"server_pid = {pid}: {err}; give the pid of the server's main process on this machine, or leave "
            "server_pid out (the server's memory is then null, with that reason)") from None
