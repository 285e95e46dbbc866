"""Starting a `bench.py serve` process from Python (tests, scripts), and always stopping it.

The server runs in its own process group with a free port (`--port 0`, loopback unless the
arguments say otherwise); the ready line it prints gives the URL. When the block ends the whole
group gets SIGTERM (SIGKILL after 15 s), so a prepare child or a hung model never outlives it.
Needs no FastAPI: it only starts and reads a process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r" at (http://\S+)/v1 ")


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen
    output: list[str] = field(default_factory=list)  # the server's stdout and stderr lines so far
    returncode: int | None = None  # set once stopped

    @property
    def v1(self) -> str:
        return self.url + "/v1"


def _drain(proc: subprocess.Popen, output: list[str], ready: threading.Event, found: list[str]) -> None:
    """Reads the server's output to the end (a full pipe would block the server)."""
    for line in proc.stdout:
        output.append(line.rstrip("\n"))
        match = READY.search(line)
        if match and not found:
            found.append(match.group(1))
            ready.set()
    ready.set()  # the process ended: stop waiting


def stop(proc: subprocess.Popen, grace_s: float = 15) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait(grace_s)


@contextmanager
def served(*args: str, env: dict[str, str] | None = None, ready_timeout_s: float = 180) -> Iterator[Served]:
    """`bench.py serve --port 0 ARGS` until the block ends; raises RuntimeError with the server's
    output when it is not ready within `ready_timeout_s`."""
    # From a checkout, its own bench.py; from an installed package, the installed module.
    bench = [str(REPO / "bench.py")] if (REPO / "bench.py").is_file() else ["-m", "bench"]
    proc = subprocess.Popen(
        [sys.executable, *bench, "serve", "--port", "0", *args],
        cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )
    output: list[str] = []
    found: list[str] = []
    ready = threading.Event()
    reader = threading.Thread(target=_drain, args=(proc, output, ready, found), daemon=True)
    reader.start()
    server = Served("", proc, output)
    try:
        ready.wait(ready_timeout_s)
        if not found:
            raise RuntimeError(f"server not ready after {ready_timeout_s} s (exit status {proc.poll()}):\n"
                                 + "\n".join(output))
        server.url = found[0]
        yield server
    finally:
        server.returncode = stop(proc)
        reader.join(5)
