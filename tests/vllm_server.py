"""Starts and always stops a real vLLM (CPU) OpenAI-compatible server for the served-model tests.

The vLLM venv comes from scripts/make_vllm_venv.sh: `$LALM_BENCH_VLLM_PYTHON`, else
`.vllm-venv/bin/python` in the repository. The server listens on 127.0.0.1 (a free port), in
its own process group, with its caches in a temp folder, and is stopped by its process group
on the way out, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PYTHON = REPO / ".vllm-venv" / "bin" / "python"
SERVED_NAME = "qwen2-audio-tiny"


def vllm_python() -> Path | None:
    """The vLLM venv's python, or None when none is configured (the tests then skip)."""
    configured = os.environ.get("LALM_BENCH_VLLM_PYTHON")
    path = Path(configured) if configured else DEFAULT_PYTHON
    return path if path.is_file() else None


def tiny_model(python: Path) -> Path:
    """The tiny Qwen2-Audio in vLLM's layout, beside the venv (built once with its transformers)."""
    folder = python.parent.parent / "models" / "qwen2-audio-tiny"
    if not (folder / "config.json").is_file():
        subprocess.run([str(python), str(REPO / "scripts" / "make_vllm_tiny_model.py"), str(folder)],
                       check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def vllm_server(python: Path, model: Path, workdir: Path, ready_timeout_s: float = 600.0) -> Iterator[tuple[str, int]]:
    """Yields (base_url, pid) of a ready server; raises with the log's tail when it does not get ready."""
    port = free_port()
    cache = workdir / "vllm-cache"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_CACHE_ROOT": str(cache),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    args = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",  # the `vllm` script wants a dist named vllm
        "--model", str(model), "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--enforce-eager", "--dtype", "float32", "--max-model-len", "2048", "--max-num-seqs", "8",
        "--limit-mm-per-prompt", json.dumps({"audio": 1}),
    ]
    log_path = workdir / "vllm.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True)
    try:
        _wait_ready(proc, port, ready_timeout_s, log_path)
        yield f"http://127.0.0.1:{port}/v1", proc.pid
    finally:
        stop(proc)


def _wait_ready(proc: subprocess.Popen, port: int, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM exited with status {proc.returncode} before it was ready:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"vLLM was not ready within {timeout_s:g} s:\n{_tail(log_path)}")


def stop(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM to the server's process group (its engine process included), SIGKILL after the grace."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):  # children that outlived the parent
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
