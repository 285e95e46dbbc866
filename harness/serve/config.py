"""Settings of one `bench.py serve` process (command-line options, checked once at start)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServeConfig:
    candidate: str  # registered name or path to a candidate .toml file
    host: str = "127.0.0.1"
    port: int = 8000  # 0: any free port (the ready line names it)
    device: str = "auto"
    threads: int = 1  # CPU threads of the model, pinned as `bench.py run` pins its measured child
    allow_remote: bool = False  # bind a non-loopback address
    api_key_env: str | None = None  # environment variable holding the API key; None: no key
    allow_local_audio: Path | None = None  # folder file:// audio URLs may read from; None: refused
    max_body_mb: float = 25.0
    max_audio_s: float = 600.0
    max_tokens_limit: int = 4096  # the largest max_tokens a request may ask for
    graceful_timeout_s: float = 10.0  # how long shutdown waits for requests in flight

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)
