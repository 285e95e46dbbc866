"""Adapters that turn an engine's token stream into the harness's `on_token` calls."""

from __future__ import annotations

from harness.types import TokenCallback


def transformers_streamer(on_token: TokenCallback):
    """A `BaseStreamer` for `model.generate(streamer=...)` that reports each new token.

    `generate` first puts the prompt ids (empty when only `inputs_embeds` are given), then
    each sampled token as soon as it exists; only the latter are tokens.
    """
    from transformers.generation.streamers import BaseStreamer

    class _TokenStreamer(BaseStreamer):
        def __init__(self) -> None:
            self._prompt_seen = False

        def put(self, value) -> None:
            if not self._prompt_seen:
                self._prompt_seen = True
                return
            on_token(int(value.numel()))

        def end(self) -> None:
            pass

    return _TokenStreamer()
