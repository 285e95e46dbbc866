"""The served candidate on one thread: loaded once, then one request at a time.

A single worker thread runs every `load` and `generate`, so requests are serialized (a request
waits in the thread's queue while another runs) and each one is timed alone, with the harness's
own `TokenTimer`: TTFT from handing the decoded waveform to the candidate to its first token, as
in `bench.py run`. Each `on_token` call becomes an event on the request's asyncio queue, which
the HTTP side turns into an SSE chunk as soon as the event loop wakes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from harness.candidate import Candidate
from harness.timing import RequestTiming, TokenTimer
from harness.types import Generation, Request


class ClientGone(Exception):
    """Raised inside `on_token` when the client disconnected: it stops the generation early."""


@dataclass
class Tokens:
    count: int
    elapsed_s: float  # since the waveform was handed to the candidate


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
    """One request's events, produced on the model thread and read on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self.cancelled = threading.Event()
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


def _pin_threads(threads: int) -> None:
    """Runs first on the model thread: torch's intra-op pool gets the pinned thread count (the
    OMP_* variables were set before torch was imported, see `server.pin_threads`)."""
    import torch

    torch.set_num_threads(threads)


class ModelWorker:
    """Owns the candidate; every call into it runs on one thread."""

    def __init__(self, candidate: Candidate, threads: int):
        self.candidate = candidate
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model",
                                            initializer=_pin_threads, initargs=(threads,))
        self._sync = None
        self.device = ""
        self._pending = 0
        self._pending_lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Requests waiting for or using the model."""
        return self._pending

    def _count(self, delta: int) -> None:
        with self._pending_lock:
            self._pending += delta

    def load(self, device: str) -> float:
        """Loads the model on the model thread; returns the seconds it took."""
        return self._executor.submit(self._load, device).result()

    def _load(self, device: str) -> float:
        from harness import gpu

        self.device = gpu.resolve_device(device)
        self._sync = gpu.synchronizer(self.device)
        t0 = time.perf_counter()
        self.candidate.load(self.device)
        return time.perf_counter() - t0

    def submit(self, request: Request) -> Job:
        job = Job(asyncio.get_running_loop())
        self._count(+1)
        self._executor.submit(self._run, job, request)
        return job

    def _run(self, job: Job, request: Request) -> None:
        try:
            if not job.cancelled.is_set():
                self._generate(job, request)
        finally:
            self._count(-1)

    def _generate(self, job: Job, request: Request) -> None:
        queue_s = time.perf_counter() - job.submitted
        timer = TokenTimer(sync=self._sync)

        def on_token(count: int = 1) -> None:
            if job.cancelled.is_set():
                raise ClientGone("the client disconnected")
            timer.on_token(count)
            job.push(Tokens(count, timer.last_time - timer.start_time))

        try:
            timer.start()
            generation = self.candidate.generate(request, on_token)
            timing = timer.finish(generation.n_tokens)
        except Exception as err:  # this request fails; the server goes on
            job.push(Failed(err))
            return
        job.push(Finished(generation, timing, queue_s))

    def close(self) -> None:
        """Drops queued requests, waits for the running one, then releases the candidate."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.candidate.close()
