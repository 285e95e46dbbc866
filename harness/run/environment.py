"""What a run was measured on, so results can be compared and reproduced."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_sha() -> str | None:
    repo = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def describe(device: str, device_name: str, threads: int, gpu: dict | None = None) -> dict:
    """`gpu`: the measured GPU's name, UUID and PCI bus id (`harness.measure.gpu.identity`), None on a CPU."""
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "bitsandbytes": _version("bitsandbytes"),
        "ctranslate2": _version("ctranslate2"),
        "lalm_bench": _version("lalm-bench"),
        "device": device,
        "device_name": device_name,
        "gpu": gpu,
        "threads": threads,
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "git_sha": git_sha(),
        "executable": sys.executable,
    }
