"""Running a sweep: which cells a results folder already holds, the progress lines and the
state file, and the driver that hands the rest to an executor (harness/sweep/executors)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.sweep.spec import Cell, Sweep, SweepError
from records import files
from records.run_record import RunRecord, as_run_record
from records.schema import RecordError

SWEEPS_DIR = "sweeps"  # results/sweeps/<name>.json: the state of each cell of a sweep


@dataclass
class Work:
    """What to do for one cell: `skip` (finished run), `resume` (an interrupted run) or `run`."""

    cell: Cell
    action: str
    run_id: str | None = None  # the run to skip or resume


@dataclass
class Outcome:
    cell: Cell
    state: str  # skipped | ok | partial | failed
    run_id: str | None = None
    error: str | None = None
    record: RunRecord | None = None


def existing_runs(results: Path) -> dict[str, list[tuple[str, str | None]]]:
    """cell key -> [(run_id, status or None while run.json is missing)], oldest first."""
    found: dict[str, list[tuple[str, str | None]]] = {}
    if not Path(results).is_dir():
        return found
    for run_dir in sorted(p for p in Path(results).iterdir() if (p / files.JOB_FILE).is_file()):
        try:
            key = files.read_job(run_dir / files.JOB_FILE).options.get("sweep_cell")
        except (RecordError, AttributeError):
            continue
        if not key:
            continue
        status = None
        if (run_dir / files.RUN_FILE).is_file():
            try:
                status = files.read_run_record(run_dir).status
            except RecordError:
                status = None
        found.setdefault(key, []).append((run_dir.name, status))
    return found


def plan_work(cells: list[Cell], results: Path) -> list[Work]:
    runs = existing_runs(results)
    work = []
    for cell in cells:
        history = runs.get(cell.key, [])
        done = [run_id for run_id, status in history if status == "ok"]
        if done:
            work.append(Work(cell, "skip", done[-1]))
        elif history and history[-1][1] in (None, "partial"):
            work.append(Work(cell, "resume", history[-1][0]))
        else:  # never run, or its last run failed outright: a fresh run
            work.append(Work(cell, "run"))
    return work


class Progress:
    """Cells done / total and the current cell, one line per event, plus results/sweeps/NAME.json."""

    def __init__(self, sweep: Sweep, work: list[Work], results: Path, executor: str,
                 echo: Callable[[str], None] = print):
        self.sweep, self.results, self.executor, self.echo = sweep, Path(results), executor, echo
        self.total = len(work)
        self.outcomes: dict[str, Outcome] = {}
        self.state_path = state_path(results, sweep.name)
        self._order = [w.cell for w in work]

    @property
    def done(self) -> int:
        return len(self.outcomes)

    def started(self, cell: Cell, where: str = "") -> None:
        self.echo(f"[{self.done}/{self.total}] running {cell.label}{f' on {where}' if where else ''}  (cell {cell.key})")

    def note(self, cell: Cell, message: str) -> None:
        self.echo(f"[{self.done}/{self.total}] {cell.label}: {message}")

    def finished(self, outcome: Outcome) -> None:
        self.outcomes[outcome.cell.key] = outcome
        what = {"skipped": "skipped (finished run exists)"}.get(outcome.state, outcome.state)
        run = f"  run {outcome.run_id}" if outcome.run_id else ""
        error = f"\n    error: {outcome.error}" if outcome.error else ""
        self.echo(f"[{self.done}/{self.total}] {what}: {outcome.cell.label}{run}{error}")
        self._write_state()

    def _write_state(self) -> None:
        cells = []
        for cell in self._order:
            o = self.outcomes.get(cell.key)
            cells.append({"cell": cell.key, "candidate": cell.spec.name, "recipe": cell.spec.recipe,
                          "dataset": cell.dataset.label, "protocol": cell.protocol, "threads": cell.threads,
                          "state": o.state if o else "pending", "run_id": o.run_id if o else None,
                          "error": o.error if o else None})
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        files.write_json_atomic(self.state_path, {
            "sweep": self.sweep.name, "file": str(self.sweep.path), "executor": self.executor,
            "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "done": self.done, "total": self.total, "cells": cells,
        })


def state_path(results: Path, name: str) -> Path:
    """results/sweeps/NAME.json: each cell's state (pending, ok, partial, failed, skipped), run id and error."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "sweep"
    return Path(results) / SWEEPS_DIR / f"{safe}.json"


def outcome_from_record(cell: Cell, record: RunRecord | dict[str, Any]) -> Outcome:
    record = as_run_record(record)
    return Outcome(cell, record.status, record.run_id, record.error, record)


def read_record(results: Path, run_id: str) -> RunRecord | None:
    try:
        return files.read_run_record(Path(results) / run_id)
    except RecordError:
        return None


def run_sweep(sweep: Sweep, results: Path, executor, echo: Callable[[str], None] = print) -> list[Outcome]:
    """Runs every cell not finished yet through `executor` (see harness/sweep/executors); returns the
    outcome of every cell, skipped ones included, in matrix order."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    with _lock(results):
        work = plan_work(sweep.cells, results)
        progress = Progress(sweep, work, results, executor.name, echo)
        echo(f"sweep {sweep.name!r}: {len(work)} cell(s), {sum(w.action == 'skip' for w in work)} finished already, "
             f"executor {executor.name}, results in {results}")
        for w in work:
            if w.action == "skip":
                progress.finished(Outcome(w.cell, "skipped", w.run_id, None, read_record(results, w.run_id)))
        executor.run([w for w in work if w.action != "skip"], results, progress)
        return [progress.outcomes.get(c.key, Outcome(c, "failed", error="the executor returned no outcome"))
                for c in sweep.cells]


class _lock:
    """One sweep driver per results folder at a time: two would resume the same interrupted run."""

    def __init__(self, results: Path):
        self.path = results / ".sweep.lock"

    def __enter__(self):
        import fcntl
        import os

        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "?"
            self.handle.close()
            raise SweepError(f"another sweep (pid {holder}) is writing into {self.path.parent}; "
                             "wait for it or use another --results folder") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc):
        self.handle.close()
        return False
