"""A complete candidate family: options, load, streamed generate, weight bytes.

`ScriptedReply` answers every request with a fixed reply, one word per token, after a fixed
"prefill" delay and with a fixed gap between tokens. It stands in for a real model so that the
whole plugin contract can be read in one screen; a real family loads weights in `load` and
calls `on_token()` from its decoding loop (for transformers `generate`, pass
`streamer=harness.streaming.transformers_streamer(on_token)`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from harness.candidate import Candidate
from harness.spec import CandidateSpec
from harness.types import SAMPLE_RATE, Generation, Request, TokenCallback


@dataclass(frozen=True)
class ScriptedReplyOptions:
    """The `[options]` table of a candidate file naming this family; unknown keys are errors."""

    replies: dict[str, str] = field(default_factory=lambda: {"asr": "hello world", "aac": "a sound"})
    prefill_ms: float = 20.0  # before the first token, as an encoder + prefill would take
    gap_ms: float = 5.0  # between tokens, as a decode step would take

    def __post_init__(self):
        if self.prefill_ms < 0 or self.gap_ms < 0:
            raise ValueError("prefill_ms and gap_ms must be >= 0")


class ScriptedReply(Candidate):
    """Answers a fixed reply per task, streamed one word per token."""

    tasks = frozenset({"asr", "aac"})
    Options = ScriptedReplyOptions

    def load(self, device: str) -> None:
        # A real family reads its weights here (after the memory baseline: they count).
        self.device = device

    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        # request.audio: float32 mono at 16 kHz, decoded and resampled by the harness;
        # request.task / request.prompt / request.max_new_tokens come from the suite.
        seconds = len(request.audio) / SAMPLE_RATE
        words = self.options.replies.get(request.task, "").split()[: request.max_new_tokens]
        time.sleep(self.options.prefill_ms / 1000)
        for i, _ in enumerate(words):
            if i:
                time.sleep(self.options.gap_ms / 1000)
            on_token()  # one token exists now: the harness reads its clock here
        return Generation(text=" ".join(words), n_tokens=len(words), info={"audio_s": round(seconds, 3)})

    def weight_bytes(self) -> int:
        return 0  # a real family counts its tensors: harness.measure.memory.tensor_bytes(model)

    def imports_torch(self) -> bool:
        # No framework here, so the measured child need not import torch and transformers before
        # its memory baseline (seconds per run). A family that computes with torch leaves the
        # default (True).
        return False


# A candidate entry point may name a CandidateSpec: a family plus options, like a TOML file.
HELLO = CandidateSpec(
    name="scripted-hello",
    family="scripted-reply",
    description="Example plugin: answers 'hello world' / 'a sound', one word per token",
    options={"prefill_ms": 10.0, "gap_ms": 2.0},
)
