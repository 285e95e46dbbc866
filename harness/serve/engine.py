"""The served candidate in its own process: loaded once, then one request at a time.

The model runs in a child process (the *model process*), as `bench.py run` runs it in a measured
child, so the HTTP side's per-token Python work (event loop, SSE chunks, JSON) never competes
with the model for the interpreter lock: on a quiet H200 that competition added ~0.9 ms to each
token of the tiny SALMONN-style baseline (TPOT 5.3 ms served against 4.4 ms in process) when the
model ran on a thread of the server. A dispatcher thread in the server hands the model process
one request at a time (requests are serialized, so each is timed alone, with the harness's own
`TokenTimer`: TTFT from handing the decoded waveform to the candidate to its first token, as in
`bench.py run`) and turns its messages into events on the request's asyncio queue, which the
HTTP side sends as SSE chunks as soon as the event loop wakes.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import pickle
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.candidate import Candidate
from harness.measure.timing import RequestTiming, TokenTimer
from harness.streaming import text_callback
from harness.types import Generation, Request


class ClientGone(Exception):
    """Raised inside `on_token` when the client disconnected: it stops the generation early."""


class ModelError(Exception):
    """An exception raised in the model process, carried over by its type name and message."""

    def __init__(self, type_name: str, message: str):
        super().__init__(message)
        self.type_name = type_name


class ModelLoadError(Exception):
    """The model process could not load the candidate (the message says why) or died loading it."""


@dataclass
class Tokens:
    count: int
    elapsed_s: float  # since the waveform was handed to the candidate
    text: str = ""  # their text, when the candidate gives it (harness/streaming.py)


@dataclass
class Finished:
    generation: Generation
    timing: RequestTiming
    queue_s: float  # how long the request waited for the model


@dataclass
class Failed:
    error: BaseException


Event = Tokens | Finished | Failed


class Job:
    """One request's events, produced by the dispatcher thread and read on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, job_id: int, on_cancel: Callable[[Job], None]):
        self._loop = loop
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self.id = job_id
        self.cancelled = threading.Event()
        self._on_cancel = on_cancel
        self.submitted = time.perf_counter()

    def push(self, event: Event) -> None:
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:  # the event loop has closed (server shutting down): nobody is listening
            pass

    async def next(self) -> Event:
        return await self._events.get()

    def cancel(self) -> None:
        """The client is gone: a queued request is skipped, a running one stops at its next token."""
        self.cancelled.set()
        self._on_cancel(self)


def model_main(conn, spec: dict[str, Any], device: str, stop_job) -> None:
    """The model process: builds and loads the candidate, then runs the requests it is sent.

    Messages to the server: ("loaded", device, seconds) or ("load_failed", type, message) once,
    then per request ("tokens", id, count, elapsed_s, text)..., then ("finished", id, generation, timing)
    or ("failed", id, type, message). `stop_job` holds the id of a request whose client left."""
    import signal

    from harness.measure import gpu
    from harness.measure.kernel_primer import prime_torch_kernels
    from harness.measure.worker import import_frameworks
    from harness.registry import build
    from harness.run.child import die_with_parent
    from harness.spec import CandidateSpec

    # Ctrl-C and SIGTERM reach the whole process group: the server finishes the request in flight
    # and then closes this process, which must not die under it. A killed server kills it at once.
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import_frameworks()  # as the measured child of `bench.py run`; OMP_* come from the server's environment
    try:
        candidate = build(CandidateSpec(**spec))
        device = gpu.resolve_device(device)
        sync = gpu.synchronizer(device)
        prime_torch_kernels()  # as the measured child of `bench.py run` does before its model
        t0 = time.perf_counter()
        candidate.load(device)
        load_s = time.perf_counter() - t0
    except Exception as err:
        conn.send(("load_failed", type(err).__name__, str(err)))
        return
    conn.send(("loaded", device, load_s))
    try:
        while (message := _receive(conn)) is not None:
            _, job_id, request = message
            _generate(conn, candidate, request, job_id, sync, stop_job)
    finally:
        candidate.close()


def _receive(conn):
    try:
        message = conn.recv()
    except (EOFError, OSError):  # the server is gone
        return None
    return None if message[0] == "close" else message


def _generate(conn, candidate: Candidate, request: Request, job_id: int, sync, stop_job) -> None:
    timer = TokenTimer(sync=sync)

    @text_callback  # the tokens' text goes out as delta content as it comes
    def on_token(count: int = 1, text: str | None = None) -> None:
        if stop_job.value == job_id:
            raise ClientGone("the client disconnected")
        timer.on_token(count)
        conn.send(("tokens", job_id, count, timer.last_time - timer.start_time, text or ""))

    try:
        timer.start()
        generation = candidate.generate(request, on_token)
        timing = timer.finish(generation.n_tokens)
    except Exception as err:  # this request fails; the model process goes on
        conn.send(("failed", job_id, type(err).__name__, str(err)))
        return
    try:
        conn.send(("finished", job_id, generation, timing))
    except (pickle.PicklingError, TypeError, AttributeError):  # Generation.info holds something unpicklable
        generation.info = {key: repr(value) for key, value in generation.info.items()}
        conn.send(("finished", job_id, generation, timing))


class ModelWorker:
    """Owns the model process; the dispatcher thread hands it one request at a time."""

    def __init__(self, candidate: Candidate, spec: dict[str, Any]):
        self.candidate = candidate  # built here for its name and tasks; loaded only in the model process
        self._spec = spec
        self._context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
        self._stop_job = self._context.Value("q", -1, lock=False)
        self._jobs: queue.SimpleQueue[tuple[Job, Request] | None] = queue.SimpleQueue()
        self._ids = itertools.count()
        self._running: int | None = None
        self._closing = False
        self._conn = None
        self._process = None
        self._dispatcher: threading.Thread | None = None
        self.device = ""
        self.dead: str | None = None  # why the model process is gone, once it is
        self._pending = 0
        self._pending_lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Requests waiting for or using the model."""
        return self._pending

    @property
    def model_pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _count(self, delta: int) -> None:
        with self._pending_lock:
            self._pending += delta

    def load(self, device: str) -> float:
        """Starts the model process and waits for its load; returns the seconds the load took."""
        ours, theirs = self._context.Pipe()
        self._process = self._context.Process(target=model_main, name="lalm-serve-model", daemon=True,
                                              args=(theirs, self._spec, device, self._stop_job))
        self._process.start()
        theirs.close()
        self._conn = ours
        try:
            message = ours.recv()
        except (EOFError, OSError):
            self._process.join(timeout=5)
            raise ModelLoadError(f"the model process exited while loading (exit code {self._process.exitcode}); "
                                 "its output is above") from None
        if message[0] != "loaded":
            raise ModelLoadError(f"loading the candidate failed: {message[1]}: {message[2]}")
        self.device, load_s = message[1], message[2]
        self._dispatcher = threading.Thread(target=self._dispatch, name="model-dispatch", daemon=True)
        self._dispatcher.start()
        return load_s

    def submit(self, request: Request) -> Job:
        job = Job(asyncio.get_running_loop(), next(self._ids), self._cancel)
        self._count(+1)
        self._jobs.put((job, request))
        return job

    def _cancel(self, job: Job) -> None:
        if self._running == job.id:
            self._stop_job.value = job.id

    def _dispatch(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, request = item
            try:
                if self._closing or job.cancelled.is_set():
                    continue
                if self.dead:
                    job.push(Failed(ModelError("ModelProcessGone", self.dead)))
                    continue
                self._run(job, request)
            finally:
                self._count(-1)

    def _run(self, job: Job, request: Request) -> None:
        queue_s = time.perf_counter() - job.submitted
        self._running = job.id
        if job.cancelled.is_set():  # the client left between the check above and now
            self._stop_job.value = job.id
        try:
            self._conn.send(("generate", job.id, request))
            while True:
                message = self._conn.recv()
                if message[0] == "tokens":
                    job.push(Tokens(message[2], message[3], message[4]))
                elif message[0] == "finished":
                    job.push(Finished(message[2], message[3], queue_s))
                    return
                else:
                    job.push(Failed(ModelError(message[2], message[3])))
                    return
        except (EOFError, OSError):  # BrokenPipeError included
            self._process.join(timeout=5)
            self.dead = (f"the model process exited (exit code {self._process.exitcode}) during a request; "
                         "restart the server (its log says why, e.g. out of memory)")
            job.push(Failed(ModelError("ModelProcessGone", self.dead)))
        finally:
            self._running = None

    def close(self, wait_s: float = 60) -> None:
        """Drops queued requests, waits up to `wait_s` for the running one, then stops the model
        process (killed if it does not stop: a hung generation must not keep the server alive)."""
        self._closing = True
        self._jobs.put(None)
        if self._dispatcher is not None:
            self._dispatcher.join(wait_s)
            if self._dispatcher.is_alive() and self._process is not None:
                self._process.kill()  # the dispatcher's recv then ends with EOFError
                self._dispatcher.join(10)
        if self._process is None:
            return
        try:
            self._conn.send(("close",))
        except OSError:  # BrokenPipeError included: the model process is already gone
            pass
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._conn.close()
