"""`bench.py load`: a bounded load test of a served candidate at several concurrency levels.

For each level, `concurrency` client threads send `requests` streamed requests in all (fewer
when `duration_s` runs out: no request starts after it), each through the candidate's own
`generate`, timed exactly as `bench.py run` times one request (TokenTimer: TTFT to the first
streamed chunk, TPOT from the server's usage count). Every request's audio is a clip of the suite
plus +-1 LSB of dither seeded by (load-test salt, level, request), so no request, warm-up
included, reaches the server as bytes it has seen before (vLLM caches audio preprocessing and
prompt prefixes by content). The record (`kind: "load"`) holds per level: throughput (requests/s,
output tokens/s), TTFT/TPOT/ITL/end-to-end p50/p90/p99, and errors by reason; the leaderboard
does not rank it, `bench.py report` plots it.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.audio import load_audio
from harness.data.errors import AudioError
from harness.measure.timing import TokenTimer, buffered_reason
from harness.registry import build, resolve
from harness.run import environment, store
from harness.serve.client import distinct_copy
from harness.types import Request
from records import files
from records.run_record import LOAD_KIND, RunRecord

REQUESTS_FILE = "requests.jsonl"


class LoadError(Exception):
    """A load test that cannot start (not a served candidate, no audio); the message says why."""


@dataclass
class LoadOptions:
    candidate: str
    concurrency: list[int] = field(default_factory=lambda: [1, 4, 16])
    requests: int = 32  # per concurrency level
    duration_s: float | None = None  # per level: no request starts after this many seconds
    data: Path | None = None
    suite: str | None = None  # default: asr when the candidate does it
    warmup: int = 2
    results: Path = Path("results")

    def __post_init__(self) -> None:
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            raise ValueError(f"--concurrency takes positive integers, e.g. 1,4,16; got {self.concurrency}")
        if self.requests < 1:
            raise ValueError(f"--requests must be >= 1, got {self.requests}")


@dataclass
class Clip:
    sample_id: str
    audio: np.ndarray
    task: str
    prompt: str
    max_new_tokens: int


def execute(options: LoadOptions) -> tuple[Path, RunRecord]:
    spec = resolve(options.candidate)
    candidate = build(spec)
    served_by = candidate.served_by()
    if served_by is None:
        raise LoadError(
            f"candidate {spec.name!r} runs in-process; `load` tests a served model: serve it "
            f"(`bench.py serve -c {spec.name}` or vLLM) and point a candidate of family \"openai\" at it")
    clips = _clips(options, spec, candidate)
    run_id, run_dir = store.new_run_dir(Path(options.results), spec.name)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    salt = secrets.randbits(32)
    levels: list[dict[str, Any]] = []
    error = None
    info: dict[str, Any] = {}
    memory = None
    try:
        candidate.load("served")
        _warm_up(candidate, clips, options.warmup, salt)
        with open(run_dir / REQUESTS_FILE, "a", encoding="utf-8") as log:
            for index, concurrency in enumerate(options.concurrency, 1):
                levels.append(run_level(candidate, clips, concurrency, options.requests, options.duration_s,
                                        seed=(salt, index), log=log))
        memory = candidate.external_memory()
        info = candidate.run_info()
    except Exception as err:  # the record keeps the levels already measured
        error = f"{type(err).__name__}: {err}"
    finally:
        candidate.close()
    ok = sum(level["ok"] for level in levels)
    failed = sum(level["errors"] for level in levels)
    status = "failed" if not ok else ("partial" if error or failed else "ok")
    record = RunRecord(
        kind=LOAD_KIND,
        run_id=run_id,
        candidate=spec.name,
        candidate_spec=spec.to_dict(),
        protocol=LOAD_KIND,
        created_at=created,
        status=status,
        error=error or (None if ok else "every request failed; see load.levels[].error_reasons"),
        settings={
            "concurrency": list(options.concurrency),
            "requests": options.requests,
            "duration_s": options.duration_s,
            "warmup": options.warmup,
            "data": str(options.data) if options.data else "demo",
            "suite": clips[0].task,
        },
        environment=environment.describe("served", candidate.served_by() or served_by, threads=None),
        load={
            "served_by": candidate.served_by() or served_by,
            "audio": {
                "clips": len(clips),
                "distinct": "every request sends a clip plus +-1 LSB of seeded dither: no two requests, "
                            "warm-up included, send identical bytes",
            },
            "levels": levels,
            "server_memory": memory,
            "candidate_info": info,
            "itl_note": "ITL is the gap between streamed chunks; a chunk may hold several tokens",
        },
    )
    files.write_run_record(run_dir, record)
    return run_dir, record


def _clips(options: LoadOptions, spec, candidate) -> list[Clip]:
    from harness.run.plan import plan
    from harness.run.run_options import RunOptions

    tasks = frozenset(spec.tasks or candidate.tasks)
    suite = options.suite or ("asr" if "asr" in tasks else sorted(tasks)[0])
    run_options = RunOptions(candidate=spec.name, data=options.data, suites=[suite], progress=False)
    clips = []
    for suite_plan in plan(run_options, spec, tasks):
        for sample in suite_plan.samples:
            try:
                audio, _ = load_audio(sample.audio_path)
            except AudioError:
                continue
            clips.append(Clip(sample.sample_id, audio, suite_plan.suite.name, suite_plan.suite.prompt,
                              suite_plan.suite.max_new_tokens))
    if not clips:
        raise LoadError(f"no readable audio in suite {suite!r} of {options.data or 'the demo data'}")
    return clips


def _request(clip: Clip, seed: tuple[int, ...]) -> Request:
    return Request(clip.sample_id, distinct_copy(clip.audio, seed=list(seed)), clip.task, clip.prompt, clip.max_new_tokens)


def _warm_up(candidate, clips: list[Clip], n: int, salt: int) -> None:
    for i in range(n):
        candidate.generate(_request(clips[i % len(clips)], (salt, 0, i)), lambda count=1, text=None: None)


def run_level(candidate, clips: list[Clip], concurrency: int, n_requests: int, duration_s: float | None,
              seed: tuple[int, int], log=None) -> dict[str, Any]:
    """`n_requests` requests from `concurrency` threads; the level's summary."""
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(n_requests):
        todo.put(i)
    done: list[dict[str, Any]] = []
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + duration_s if duration_s else None

    def client() -> None:
        timer = TokenTimer()
        while deadline is None or time.perf_counter() < deadline:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            clip = clips[i % len(clips)]
            request = _request(clip, (*seed, i))
            entry = _one(candidate, request, timer)
            entry.update(concurrency=concurrency, request=i)
            with lock:
                done.append(entry)
                if log is not None:
                    files.append_jsonl(log, entry)

    threads = [threading.Thread(target=client, name=f"load-{k}", daemon=True) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summarize_level(done, concurrency, n_requests, time.perf_counter() - start)


def _one(candidate, request: Request, timer: TokenTimer) -> dict[str, Any]:
    entry: dict[str, Any] = {"sample_id": request.sample_id, "error": None}
    started = time.perf_counter()
    try:
        timer.start()
        generation = candidate.generate(request, timer.on_token)
        timing = timer.finish(generation.n_tokens)
    except Exception as err:  # one failed request is counted, the test goes on
        entry.update(error=f"{type(err).__name__}: {err}", e2e_ms=(time.perf_counter() - started) * 1000.0)
        return entry
    buffered = bool(generation.info.get("stream_buffered"))  # then the chunk gaps are not the model's TPOT
    entry.update(
        n_tokens=timing.n_tokens,
        ttft_ms=None if timing.ttft_s is None else timing.ttft_s * 1000.0,
        tpot_ms=None if timing.tpot_s is None or buffered else timing.tpot_s * 1000.0,
        stream_buffered=buffered,
        e2e_ms=timing.e2e_s * 1000.0,
        itl_chunk_ms=generation.info.get("itl_chunk_ms", []),
        prompt_tokens=generation.info.get("prompt_tokens"),
    )
    return entry


def percentiles(values: list[float | None]) -> dict[str, float | int | None]:
    present = np.asarray([v for v in values if v is not None], dtype=float)
    if not present.size:
        return {"p50": None, "p90": None, "p99": None, "mean": None, "n": 0}
    p50, p90, p99 = np.percentile(present, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(present.mean()), "n": int(present.size)}


def summarize_level(done: list[dict[str, Any]], concurrency: int, planned: int, wall_s: float) -> dict[str, Any]:
    ok = [d for d in done if d["error"] is None]
    tokens = sum(d["n_tokens"] or 0 for d in ok)
    buffered = sum(1 for d in ok if d.get("stream_buffered"))
    # As in `bench.py run` (harness/score/scoring.py): some answers buffered -> the level's TPOT is unavailable.
    unavailable = {"stream_buffered": {"requests": buffered, "of": len(ok)},
                   "tpot_unavailable_reason": buffered_reason(buffered, len(ok))} if buffered else {}
    return {
        "concurrency": concurrency,
        "requests_planned": planned,
        "requests_sent": len(done),
        "not_started_after_duration": planned - len(done),
        "ok": len(ok),
        "errors": len(done) - len(ok),
        "error_reasons": dict(Counter(d["error"] for d in done if d["error"] is not None)),
        "wall_s": wall_s,
        "requests_per_s": len(ok) / wall_s if wall_s > 0 else None,
        "output_tokens_per_s": tokens / wall_s if wall_s > 0 else None,
        "output_tokens": tokens,
        "ttft_ms": percentiles([d["ttft_ms"] for d in ok]),
        "tpot_ms": percentiles([] if buffered else [d["tpot_ms"] for d in ok]),
        **unavailable,
        "itl_chunk_ms": percentiles([gap for d in ok for gap in d["itl_chunk_ms"]]),
        "e2e_ms": percentiles([d["e2e_ms"] for d in ok]),
    }
