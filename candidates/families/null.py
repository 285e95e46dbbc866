"""Family `null`: answers every request with an empty string and allocates nothing.

It calibrates the harness itself: its peak memory above the baseline is the harness's memory
floor (audio decoding, buffers, record keeping), its TTFT the harness's overhead per request.
`bench.py doctor` runs it. It emits one token (an end-of-sequence) so TTFT is measured.
"""

from __future__ import annotations

from harness.candidate import Candidate
from harness.types import Generation, Request, TokenCallback


class NullCandidate(Candidate):
    """Answers "" at once: measures the harness's own floors."""

    tasks = frozenset({"asr", "aac"})

    def load(self, device: str) -> None:
        self.device = device

    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        on_token()
        return Generation(text="", n_tokens=1)

    def imports_torch(self) -> bool:
        return False  # its child stays light: no torch or transformers import before the baseline

    def weight_bytes(self) -> int:
        return 0
