"""Adapters that turn an engine's token stream into the harness's `on_token` calls."""

from __future__ import annotations

from functools import lru_cache

from harness.types import TokenCallback


@lru_cache(maxsize=1)
def _streamer_class():
    """Built once, on first use, so that importing this module does not import transformers and
    no class is created inside a timed request."""
    from transformers.generation.streamers import BaseStreamer

    class TokenStreamer(BaseStreamer):
        """`generate` first puts the prompt ids (empty when only `inputs_embeds` are given), then
        each sampled token as soon as it exists; only the latter are tokens."""

        def __init__(self, on_token: TokenCallback) -> None:
            self._on_token = on_token
            self._prompt_seen = False

        def put(self, value) -> None:
            if not self._prompt_seen:
                self._prompt_seen = True
                return
            self._on_token(int(value.numel()))

        def end(self) -> None:
            pass

    return TokenStreamer


def transformers_streamer(on_token: TokenCallback):
    """A `BaseStreamer` for `model.generate(streamer=...)` that reports each new token."""
    return _streamer_class()(on_token)
