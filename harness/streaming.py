"""Adapters that turn an engine's token stream into the harness's `on_token` calls.

`on_token(count)` says that `count` new tokens exist; `on_token(count, text)` also gives their
text, for callers that show it as it comes (`bench.py serve` sends it as delta content). The
text costs a decode per token, so an engine computes it only for a callback marked with
`text_callback` (`wants_text`); every other callback, the harness's timers and old one-argument
callbacks of plugins included, is called with the count alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from harness.types import TokenCallback


def text_callback(fn: TokenCallback) -> TokenCallback:
    """Marks `fn(count, text)` as wanting each token's text."""
    fn.wants_text = True
    return fn


def wants_text(on_token: TokenCallback) -> bool:
    return bool(getattr(on_token, "wants_text", False))


def reporter(on_token: TokenCallback) -> Callable[[int, str | None], None]:
    """`report(count, text)`: passes the text on only to a callback that wants it."""
    if wants_text(on_token):
        return on_token
    return lambda count=1, text=None: on_token(count)


class TextDeltas:
    """Each new token's text, from decoding all ids so far with the family's own `decode` (so the
    deltas join to the answer's text): a trailing incomplete UTF-8 character waits for its next
    bytes, and nothing is sent while a decode rewrote text already sent (the server sends what is
    left of the answer at the end)."""

    def __init__(self, decode: Callable[[Sequence[int]], str]):
        self._decode = decode
        self._ids: list[int] = []
        self.sent = ""

    def add(self, ids: Sequence[int]) -> str:
        self._ids.extend(ids)
        text = self._decode(self._ids).rstrip("\ufffd")
        if not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent):], text
        return delta


@lru_cache(maxsize=1)
def _streamer_class():
    """Built once, on first use, so that importing this module does not import transformers and
    no class is created inside a timed request."""
    from transformers.generation.streamers import BaseStreamer

    class TokenStreamer(BaseStreamer):
        """`generate` first puts the prompt ids (empty when only `inputs_embeds` are given), then
        each sampled token as soon as it exists; only the latter are tokens."""

        def __init__(self, on_token: TokenCallback, decode: Callable[[Sequence[int]], str] | None = None) -> None:
            self._on_token = on_token
            self._prompt_seen = False
            self._deltas = TextDeltas(decode) if decode is not None and wants_text(on_token) else None

        def put(self, value) -> None:
            if not self._prompt_seen:
                self._prompt_seen = True
                return
            if self._deltas is None:
                self._on_token(int(value.numel()))
            else:
                self._on_token(int(value.numel()), self._deltas.add(value.reshape(-1).tolist()))

        def end(self) -> None:
            pass

    return TokenStreamer


def transformers_streamer(on_token: TokenCallback, decode: Callable[[Sequence[int]], str] | None = None):
    """A `BaseStreamer` for `model.generate(streamer=...)` that reports each new token; with
    `decode` (ids -> the answer's text), also its text, to a callback that wants it."""
    return _streamer_class()(on_token, decode)
