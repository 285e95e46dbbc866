"""What a run is asked to do (`bench.py run`'s options), checked in one place.

`RunOptions` checks itself when made, whoever makes it (the CLI, a sweep cell, a resumed job, the
API), and `option_problems` lists every problem at once for callers that report them together
(sweep files). The modes of --prompts and --long-audio are checked by the modules that own them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

from harness.data import DATA_FORMATS, long_audio, prompts
from harness.data.audio import AUDIO_LOADINGS
from harness.suites import Suite

PROTOCOLS = ("default", "nota2025")  # measurement protocols (docs/concepts/measurement.md)
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
# Smallest allowed value of each numeric option (click enforces the same for `bench.py run`).
MINIMUMS = {"threads": 1, "limit": 1, "warmup": 0, "repeat": 1, "batch_size": 1, "efficiency_samples": 1,
            "timeout_s": 0, "sample_timeout_s": 0}
PATH_FIELDS = ("data", "results", "audio_root", "audio_dir", "aac_cache", "judge")


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
    long_audio: str | None = None  # native | chunk | truncate | fail; None: each suite's default (harness/data/long_audio.py)
    audio_loading: str = "harness"  # harness | organisers (harness/data/audio.py AUDIO_LOADINGS)
    sweep_cell: str | None = None  # the sweep cell this run measures (harness/sweep/spec.py); None outside sweeps
    judge: Path | None = None  # judge file (TOML) of the qa suite's LLM judge (harness/score/judge.py)

    def __post_init__(self) -> None:
        for name in PATH_FIELDS:  # a resumed job and the API give strings
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, Path(value))
        problems = option_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise RunError("; ".join(problems))

    def long_audio_for(self, suite: Suite, native: bool = False, candidate: str = "") -> str:
        """`native`: the candidate has its own long-form algorithm (harness/data/long_audio.mode_for);
        raises RunError when `native` is asked of one that has none."""
        try:
            return long_audio.mode_for(self.long_audio, suite.long_audio, native, candidate or self.candidate)
        except ValueError as err:
            raise RunError(str(err)) from None


def option_problems(values: dict) -> list[str]:
    """Every problem of a set of run options (RunOptions' fields; absent ones are not checked)."""
    problems = []
    for name, minimum in MINIMUMS.items():
        value = values.get(name)
        if value is not None and not isinstance(value, bool) and isinstance(value, (int, float)) and value < minimum:
            problems.append(f"{name} = {value!r} must be at least {minimum}")
    protocol = values.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        problems.append(f"unknown measurement protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    elif (values.get("batch_size") or 1) > 1 and protocol not in (None, "default"):
        problems.append(f"--batch-size applies to the default protocol only; {protocol} times its own "
                        "requests (run it with --batch-size 1)")
    for name, check in (("prompts", prompts.check_mode), ("long_audio", long_audio.check_mode)):
        if values.get(name) is not None:
            try:
                check(values[name])
            except ValueError as err:
                problems.append(str(err))
    loading = values.get("audio_loading")
    if loading is not None and loading not in AUDIO_LOADINGS:
        problems.append(f"unknown --audio-loading {loading!r}; choose one of {', '.join(AUDIO_LOADINGS)}")
    elif loading == "organisers" and (values.get("batch_size") or 1) > 1:
        problems.append("--audio-loading organisers applies to batch-1 runs (run it with --batch-size 1)")
    data_format = values.get("data_format")
    if data_format is not None and data_format not in DATA_FORMATS:
        problems.append(f"unknown data format {data_format!r}; known: {', '.join(DATA_FORMATS)}")
    if values.get("judge") is not None:  # read now: a broken judge file stops the run before the model loads
        from harness.score.judge import JudgeError, load_judge

        try:
            load_judge(values["judge"])
        except JudgeError as err:
            problems.append(str(err))
    device = values.get("device")
    if device is not None and not DEVICE.fullmatch(str(device)):
        problems.append(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    return problems
