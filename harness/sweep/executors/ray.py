"""The Ray executor: one Ray task per cell, anywhere in a Ray cluster.

Each task runs the same measured child the local executor runs (harness.run in the task's
fresh worker process, which spawns `python -m harness.measure.worker`), into a node-local temporary
results folder. Nothing assumes a shared filesystem: the task is a streaming generator that sends
the run folder back as it grows (job.json first, then each new complete line of
predictions.jsonl, then every file of the finished run), and the driver writes those into its own
results folder as they arrive (`ray.wait`). So when a worker is lost mid-cell the driver already
holds the partial run: it sends it to a new task, which continues it with `runner.resume` (once
per cell); and when the driver itself is lost, running the sweep again resumes it.

Resources: `num_cpus = threads`, plus `num_gpus = 1` when the cell's device is CUDA (or `auto` on
a cluster with GPUs): Ray hands the task a whole GPU through CUDA_VISIBLE_DEVICES. `device_kind`
NAME asks for one unit of the custom resource `device:NAME`, which the nodes of that hardware
declare (`ray start --resources '{"device:NAME": N}'`), so latency comes from the hardware named.

`ray` is imported only here and only when this executor is used (`pip install lalm-bench[ray]`).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.sweep.driver import Outcome, Progress, Work, outcome_from_record
from harness.sweep.spec import Cell, SweepError
from records import files
from records.job import JobFile
from records.run_record import RunRecord

RESOURCE_PREFIX = "device:"  # `--device-kind a100` asks for the custom resource "device:a100"
POLL_S = 0.5  # how often a task looks for new predictions to send


def device_resource(kind: str) -> str:
    return f"{RESOURCE_PREFIX}{kind}"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SweepError("--executor ray needs Ray: pip install 'lalm-bench[ray]'") from None
    return ray


# --- the task (runs on a node) --------------------------------------------------------------


def run_cell(cell: dict, run_id: str | None, partial: dict[str, bytes] | None, executor_info: dict):
    """Ray task body (a generator): runs one cell, or continues its partial run, and streams the
    run folder back. Events: started, job, predictions, done | error."""
    import ray

    from harness.data.errors import DataError
    from harness.registry import RegistryError
    from harness.run.execute import execute, resume
    from harness.run.run_options import RunError

    context = ray.get_runtime_context()
    node = {
        "node_id": context.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "hostname": platform.node(),
        "assigned_resources": context.get_assigned_resources(),
        "worker_pid": os.getpid(),
    }
    yield {"event": "started", "node": node}
    work_dir = Path(tempfile.mkdtemp(prefix="lalm-bench-cell-"))
    try:
        the_cell = Cell.from_dict(cell)
        executor = {**executor_info, **node}
        if partial:
            for name, data in partial.items():
                (work_dir / run_id / name).parent.mkdir(parents=True, exist_ok=True)
                (work_dir / run_id / name).write_bytes(data)

            def target():
                return resume(work_dir, run_id, progress=False, executor=executor)
        else:
            def target():
                return execute(the_cell.run_options(work_dir, progress=False), spec=the_cell.spec, executor=executor)

        result: dict[str, Any] = {}

        def work():
            try:
                result["run_dir"], _ = target()
            except (DataError, RegistryError, RunError, ValueError, OSError) as err:
                result["error"] = str(err)
            except BaseException as err:  # reported to the driver, never lost in a worker log
                result["error"] = f"{type(err).__name__}: {err}"

        # The run (and its measured child) goes on in a thread while this generator streams its files.
        thread = threading.Thread(target=work, name="lalm-bench-cell", daemon=True)
        stream = _RunStreamer(work_dir, skip_bytes=len(partial.get(files.PREDICTIONS_FILE, b"")) if partial else 0)
        thread.start()
        while thread.is_alive():
            thread.join(POLL_S)
            yield from stream.poll()
        yield from stream.poll()
        if "error" in result:
            yield {"event": "error", "message": result["error"]}
            return
        run_dir = Path(result["run_dir"])
        contents = {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
        yield {"event": "done", "run_id": run_dir.name, "files": contents}
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


class _RunStreamer:
    """Finds the run folder the runner creates and yields what is new in it."""

    def __init__(self, work_dir: Path, skip_bytes: int = 0):
        self.work_dir = work_dir
        self.run_dir: Path | None = None
        self.sent = skip_bytes  # bytes of predictions.jsonl the driver already holds

    def poll(self):
        if self.run_dir is None:
            runs = [p for p in self.work_dir.iterdir() if (p / files.JOB_FILE).is_file()]
            if not runs:
                return
            self.run_dir = runs[0]
            yield {"event": "job", "run_id": self.run_dir.name, "job": (self.run_dir / files.JOB_FILE).read_bytes()}
        path = self.run_dir / files.PREDICTIONS_FILE
        if not path.is_file():
            return
        data = path.read_bytes()
        if len(data) < self.sent:  # rewritten (a torn line repaired): send it whole
            self.sent = 0
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) > self.sent:
            yield {"event": "predictions", "run_id": self.run_dir.name, "offset": self.sent,
                   "data": complete[self.sent:]}
            self.sent = len(complete)


# --- the driver -----------------------------------------------------------------------------


@dataclass
class _Task:
    work: Work
    attempt: int
    submitted: float
    demand: dict[str, float]
    run_id: str | None = None
    node: dict | None = None
    earlier: list[dict] = field(default_factory=list)
    waiting_noted: bool = False


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, device_kind: str | None = None,
                 placement_timeout_s: float = 120.0, max_attempts: int = 2):
        self.address = address
        self.device_kind = device_kind
        self.placement_timeout_s = placement_timeout_s
        self.max_attempts = max_attempts  # a lost worker's cell is retried once

    def run(self, work: list[Work], results: Path, progress: Progress) -> None:
        if not work:
            return
        ray = _import_ray()
        self.ray = ray
        self.results, self.progress = Path(results), progress
        try:
            if self.address is None and "RAY_ADDRESS" not in os.environ:
                # No cluster named: a private one on this machine, started and stopped by ray.init.
                ray.init(include_dashboard=False, object_store_memory=256 * 1024 * 1024, log_to_driver=False,
                         logging_level="WARNING")
            else:
                ray.init(address=self.address, log_to_driver=False, logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = self.address or os.environ.get("RAY_ADDRESS") or "a private instance here"
            raise SweepError(f"cannot start or reach Ray ({where}): {err}") from None
        try:
            self.remote = ray.remote(max_retries=0, num_returns="streaming")(run_cell)
            self.has_gpus = ray.cluster_resources().get("GPU", 0) > 0
            self.pending: dict[Any, _Task] = {}
            for item in work:
                partial = self._partial(item.run_id) if item.action == "resume" else None
                if item.action == "resume":
                    progress.note(item.cell, f"resuming interrupted run {item.run_id}")
                self._submit(_Task(item, 1, 0.0, self._demand(item.cell), run_id=item.run_id), partial)
            while self.pending:
                ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=1.0)
                for gen in ready:
                    self._step(gen)
                self._check_placement()
        finally:
            ray.shutdown()

    def _demand(self, cell: Cell) -> dict[str, float]:
        device = str(cell.options.get("device", "auto"))
        demand = {"CPU": float(cell.threads)}
        if device.startswith("cuda") or (device == "auto" and self.has_gpus):
            demand["GPU"] = 1.0
        if self.device_kind:
            demand[device_resource(self.device_kind)] = 1.0
        return demand

    def _submit(self, task: _Task, partial: dict[str, bytes] | None) -> None:
        info = {"name": self.name, "device_kind": self.device_kind, "attempt": task.attempt,
                "earlier_attempts": task.earlier}
        custom = {k: v for k, v in task.demand.items() if k not in ("CPU", "GPU")}
        gen = self.remote.options(num_cpus=task.demand["CPU"], num_gpus=task.demand.get("GPU", 0),
                                  resources=custom or None).remote(task.work.cell.to_dict(), task.run_id, partial, info)
        task.submitted = time.monotonic()
        self.pending[gen] = task

    def _partial(self, run_id: str | None) -> dict[str, bytes] | None:
        """The driver's copy of an interrupted run, to be continued on a node."""
        run_dir = self.results / run_id if run_id else None
        if run_dir is None or not (run_dir / files.JOB_FILE).is_file():
            return None
        names = (files.JOB_FILE, files.PREDICTIONS_FILE, "worker.log")
        return {n: (run_dir / n).read_bytes() for n in names if (run_dir / n).is_file()}

    def _step(self, gen) -> None:
        ray = self.ray
        task = self.pending.pop(gen)
        try:
            event = ray.get(next(gen))
        except StopIteration:
            self._lost(task, "the task ended without sending its run")
            return
        except ray.exceptions.TaskCancelledError:
            return  # cancelled by _check_placement, which recorded why
        except ray.exceptions.RayTaskError as err:  # an exception in run_cell itself: a bug, not a lost worker
            self.progress.finished(Outcome(task.work.cell, "failed", task.run_id, f"Ray task failed: {err}"))
            return
        except ray.exceptions.RayError as err:  # worker or node lost
            self._lost(task, f"{type(err).__name__}: {str(err).splitlines()[0]}")
            return
        kind = event["event"]
        if kind == "started":
            task.node = event["node"]
            where = f"{event['node']['hostname']} (node {event['node']['node_id'][:8]}, {event['node']['node_ip']})"
            self.progress.started(task.work.cell, where)
        elif kind == "job":
            task.run_id = event["run_id"]
            self._write_job(task.run_id, event["job"])
        elif kind == "predictions":
            self._write_at(self.results / event["run_id"] / files.PREDICTIONS_FILE, event["offset"], event["data"])
        elif kind == "error":
            self.progress.finished(Outcome(task.work.cell, "failed", task.run_id, event["message"]))
            return
        elif kind == "done":
            run_dir = self.results / event["run_id"]
            run_dir.mkdir(parents=True, exist_ok=True)
            for name, data in event["files"].items():
                if name == files.JOB_FILE:
                    self._write_job(event["run_id"], data)
                elif name != files.RUN_FILE:
                    (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
                    (run_dir / name).write_bytes(data)
            # run.json last: its presence means the run is complete here.
            record = RunRecord.from_dict(json.loads(event["files"][files.RUN_FILE]), f"run.json of {event['run_id']} from the node")
            files.write_run_record(run_dir, record)
            self.progress.finished(outcome_from_record(task.work.cell, record))
            return
        self.pending[gen] = task

    def _write_job(self, run_id: str, data: bytes) -> None:
        """job.json as the driver's results folder needs it: `run_dir` here, not on the node."""
        run_dir = self.results / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        job = JobFile.from_dict(json.loads(data))
        job.run_dir = str(run_dir)
        job.options["results"] = str(self.results)
        files.write_job(run_dir / files.JOB_FILE, job)

    @staticmethod
    def _write_at(path: Path, offset: int, data: bytes) -> None:
        with open(path, "r+b" if path.is_file() else "wb") as handle:
            handle.seek(offset)
            handle.write(data)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())

    def _lost(self, task: _Task, why: str) -> None:
        cell = task.work.cell
        if task.attempt >= self.max_attempts:
            message = f"Ray worker lost on {task.attempt} attempts; last: {why}"
            if task.run_id:
                message += f" (partial run {task.run_id} kept: running the sweep again resumes it)"
            self.progress.finished(Outcome(cell, "failed", task.run_id, message))
            return
        partial = self._partial(task.run_id)
        kept = len(files.read_jsonl(self.results / task.run_id / files.PREDICTIONS_FILE)) if partial else 0
        self.progress.note(cell, f"worker lost ({why}); retrying once, from {kept} prediction(s) already received")
        earlier = [*task.earlier, {**(task.node or {}), "attempt": task.attempt, "outcome": why}]
        retry = _Task(task.work, task.attempt + 1, 0.0, task.demand, run_id=task.run_id if partial else None,
                      earlier=earlier)
        self._submit(retry, partial)

    def _check_placement(self) -> None:
        """A task not started after the placement timeout fails if no live node could ever take it
        (a missing custom resource, too many CPUs, no GPU); otherwise it is just queued."""
        now = time.monotonic()
        late = [(gen, t) for gen, t in self.pending.items()
                if t.node is None and now - t.submitted > self.placement_timeout_s]
        if not late:
            return
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        for gen, task in late:
            if any(all(n["Resources"].get(k, 0) >= v for k, v in task.demand.items()) for n in nodes):
                if not task.waiting_noted:
                    task.waiting_noted = True
                    self.progress.note(task.work.cell, f"waiting for a free node with {_fmt(task.demand)}")
                continue
            self.ray.cancel(gen)
            del self.pending[gen]
            missing = [k for k, v in task.demand.items() if not any(n["Resources"].get(k, 0) >= v for n in nodes)]
            what = (f"no node has resource {', '.join(repr(k) for k in missing)}" if missing
                    else f"no single node has all of {_fmt(task.demand)}")
            offered = "; ".join(f"{n['NodeManagerAddress']} {_fmt(_public(n['Resources']))}" for n in nodes) or "none"
            hint = ""
            if any(k.startswith(RESOURCE_PREFIX) for k in missing):
                hint = (f"; start a node of that kind with `ray start --address ADDR --resources "
                        f"'{{\"{device_resource(self.device_kind)}\": 1}}'` or drop --device-kind")
            self.progress.finished(Outcome(
                task.work.cell, "failed", task.run_id,
                f"could not be placed within {self.placement_timeout_s:g} s: {what} (the cell asks for "
                f"{_fmt(task.demand)}); live nodes: {offered}{hint}"))


def _public(resources: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in resources.items() if not k.startswith("node:") and k not in ("memory", "object_store_memory")}


def _fmt(resources: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(resources.items())) + "}"
