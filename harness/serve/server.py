"""Starting and stopping one server: `bench.py serve -c CANDIDATE`.

Order: refuse a non-loopback address unless allowed, read the API key, pin threads (before torch
is imported), build the candidate, run its `prepare` step in a child process (one-off work such
as converting weights must not stay in the server's memory), bind the socket (a taken port fails
before the long load), load the model in the model process (see `engine`), serve until SIGTERM/SIGINT (the ready
line is printed once connections are accepted), then let requests in flight finish (up to
`graceful_timeout_s`) and release the candidate. Imported only by `bench.py serve` (uvicorn is
the `serve` extra).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import uvicorn

from harness.serve.config import ServeConfig


class ServeError(Exception):
    """A setting that stops the server before it starts; the message says what to do."""


def check_host(config: ServeConfig) -> list[str]:
    """Raises ServeError for a non-loopback address without --allow-remote; returns warnings."""
    try:
        infos = socket.getaddrinfo(config.host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ServeError(f"--host {config.host!r} does not resolve: {err}") from None
    addresses = {info[4][0] for info in infos}
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if not remote:
        return []
    if not config.allow_remote:
        raise ServeError(f"--host {config.host} is reachable from other machines ({', '.join(remote)}); the server "
                         "binds loopback only unless you pass --allow-remote (then set --api-key-env too)")
    warning = f"warning: serving on {config.host}, reachable from other machines"
    return [warning + ("" if config.api_key_env else " by anyone: no --api-key-env is set")]


def read_api_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    key = os.environ.get(env_name, "")
    if not key:
        raise ServeError(f"--api-key-env {env_name}: that environment variable is unset or empty; export the key in it")
    return key


def check_local_audio(folder: Path | None) -> None:
    if folder is not None and not folder.is_dir():
        raise ServeError(f"--allow-local-audio {folder}: not a folder")


def pin_threads(threads: int) -> None:
    """The thread settings of `bench.py run`'s measured child, applied to this process before torch loads."""
    from harness.run.child import child_env

    os.environ.update(child_env(threads))


def run_prepare(spec) -> None:
    """The candidate's one-off `prepare` (e.g. weight conversion) in its own process, as `bench.py run` does."""
    from harness.run.child import REPO_ROOT, child_env

    with tempfile.TemporaryDirectory(prefix="lalm-serve-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"spec": spec.to_dict()}), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "harness.measure.worker", "--prepare", str(job)],
                              env=child_env(int(os.environ.get("OMP_NUM_THREADS", "1"))), cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise ServeError(f"the prepare step of candidate {spec.name!r} failed (exit status {proc.returncode}); see its output above")


def bind(host: str, port: int) -> socket.socket:
    family, kind, proto = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][:3]
    # proto must say TCP: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose
    # proto is IPPROTO_TCP, and with Nagle on, each SSE chunk after the first waits for the
    # client's delayed ACK (~40 ms on Linux), so tokens would arrive in bursts.
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror}; pick another --port (0: any free one)") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """Prints the ready line once the socket accepts connections (tests and scripts wait for it)."""

    def __init__(self, config: uvicorn.Config, ready_line: str):
        super().__init__(config)
        self.ready_line = ready_line

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(self.ready_line, flush=True)


class _StopRequested(Exception):
    """SIGTERM arrived: leave the serve loop through the normal cleanup."""


def _stop(signum, frame) -> None:
    raise _StopRequested()


def serve(config: ServeConfig) -> None:
    """Runs until SIGTERM or SIGINT; raises ServeError for settings that cannot work."""
    for warning in check_host(config):
        print(warning, file=sys.stderr, flush=True)
    api_key = read_api_key(config.api_key_env)
    check_local_audio(config.allow_local_audio)
    pin_threads(config.threads)
    # uvicorn restores these handlers and re-raises the signal after its graceful shutdown:
    # ours turn that into an exception, so the model is released and the process exits cleanly.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        _serve(config, api_key)
    except _StopRequested:
        pass


def _serve(config: ServeConfig, api_key: str | None) -> None:
    import scipy.signal  # noqa: F401 (audio decoding imports these lazily: not inside the first request)
    import soundfile  # noqa: F401

    from harness.candidate import overrides
    from harness.registry import build, resolve
    from harness.serve.app import build_app
    from harness.serve.engine import ModelLoadError, ModelWorker

    spec = resolve(config.candidate)
    candidate = build(spec)
    if overrides(candidate, "prepare"):
        run_prepare(spec)
    sock = bind(config.host, config.port)  # before the (long) load: a taken port fails at once
    url = url_of(sock)
    worker = ModelWorker(candidate, spec.to_dict())  # threads: pin_threads set OMP_* above
    try:
        try:
            load_s = worker.load(config.device)
        except ModelLoadError as err:
            raise ServeError(f"candidate {spec.name!r}: {err}") from None
        app = build_app(worker, config, api_key)
        uv_config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                   timeout_graceful_shutdown=config.graceful_timeout_s)
        ready = (f"serving {candidate.name!r} on {worker.device} (loaded in {load_s:.1f} s by model process "
                 f"{worker.model_pid}) at {url}/v1 "
                 f"(OpenAI-compatible; GET {url}/health, {url}/metrics); SIGTERM or Ctrl-C stops it")
        _Server(uv_config, ready).run(sockets=[sock])
    finally:
        worker.close()
        print("server stopped", file=sys.stderr, flush=True)
