"""What a run is asked to do (`bench.py run`'s options), checked in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.suites import Suite


class RunError(Exception):
    """A user-facing problem that stops a run before the model loads."""


@dataclass
class RunOptions:
    candidate: str
    data: Path | None = None
    suites: list[str] | None = None
    limit: int | None = None
    device: str = "auto"
    threads: int = 1
    warmup: int = 3
    results: Path = Path("results")
    audio_root: Path | None = None
    data_format: str | None = None  # json | librispeech | clotho | audiocaps | hf; None: detected
    audio_dir: Path | None = None  # audio folder of a Clotho / AudioCaps CSV
    aac_cache: Path | None = None  # aac-metrics cache folder holding the SPICE jars
    skip_invalid: bool = False
    timeout_s: float | None = None
    progress: bool = True
    protocol: str = "default"  # measurement protocol: default | nota2025 (harness/measure/nota2025.py)
    sample_timeout_s: float | None = None
    repeat: int = 1  # timed passes in fresh children; latency and memory are their medians
    batch_size: int = 1  # > 1: batched, untimed quality pass, then batch-1 timing (harness/measure/quality_pass.py)
    efficiency_samples: int = 50  # with batch_size > 1: samples timed at batch 1, per suite
    prompts: str = "suite"  # suite: the suites' (competition) prompts | model: each model's own (harness/data/prompts.py)
    long_audio: str | None = None  # chunk | truncate | fail; None: each suite's default (harness/data/long_audio.py)
    sweep_cell: str | None = None  # the sweep cell this run measures (harness/sweep/spec.py); None outside sweeps

    def long_audio_for(self, suite: Suite) -> str:
        return self.long_audio or suite.long_audio


PROTOCOLS = ("default", "nota2025")


def check_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown measurement protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return name
