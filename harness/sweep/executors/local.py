"""The local executor: cells one after another, each an ordinary run (one measured child at a
time, so no two measurements share the machine's cores)."""

from __future__ import annotations

import platform
from pathlib import Path

from harness.data.errors import DataError
from harness.registry import RegistryError
from harness.run.execute import execute, resume
from harness.run.run_options import RunError
from harness.sweep.driver import Outcome, Progress, Work, outcome_from_record


class LocalExecutor:
    name = "local"

    def run(self, work: list[Work], results: Path, progress: Progress) -> None:
        executor = {"name": self.name, "hostname": platform.node()}
        for item in work:
            progress.started(item.cell)
            try:
                if item.action == "resume":
                    progress.note(item.cell, f"resuming interrupted run {item.run_id}")
                    _, record = resume(results, item.run_id, executor=executor)
                else:
                    _, record = execute(item.cell.run_options(results), spec=item.cell.spec, executor=executor)
            except (DataError, RegistryError, RunError, ValueError, OSError) as err:  # this cell only
                progress.finished(Outcome(item.cell, "failed", error=str(err)))
            else:
                progress.finished(outcome_from_record(item.cell, record))
