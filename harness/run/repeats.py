"""`run --repeat N`: the timed pass again in fresh children, and the spread of what it measured.

The first child of a run is repeat 1 (its predictions are the ones scored). Repeats 2..N run
the same job in fresh processes, each into `repeats/<k>/` of the run folder (its own job file,
predictions and worker report), so their timings and peaks are independent measurements. The
run's ranked latency and memory become the medians over the N runs; `efficiency.repeats` keeps
every value and the min-max spread, which the leaderboard's `--ci` shows.
"""

from __future__ import annotations

import shutil
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from records import files
from records.job import JobFile
from records.prediction import Prediction
from records.worker_summary import WorkerSummary

REPEATS_DIR = "repeats"


def repeat_dirs(run_dir: Path, n: int) -> list[Path]:
    return [run_dir / REPEATS_DIR / str(k) for k in range(2, n + 1)]


def write_repeat_job(run_dir: Path, job: JobFile, repeat_dir: Path) -> Path:
    """The run's job, pointed at the repeat's folder (resumable there like any run). A batched
    run's repeat gets the run's predictions, so it skips the untimed quality pass and only times."""
    repeat_dir.mkdir(parents=True, exist_ok=True)
    if job.batch_size > 1 and not (repeat_dir / files.PREDICTIONS_FILE).exists():
        shutil.copyfile(run_dir / files.PREDICTIONS_FILE, repeat_dir / files.PREDICTIONS_FILE)
    path = repeat_dir / files.JOB_FILE
    files.write_job(path, replace(job, run_dir=str(repeat_dir), repeat_of=job.run_id))
    return path


def read_repeat(repeat_dir: Path, batched: bool) -> tuple[list[Prediction], WorkerSummary | None]:
    """(the repeat's timed records, its worker report or None); a batched run times its chosen samples apart."""
    from harness.measure.quality_pass import timed_records

    timed = timed_records(repeat_dir) if batched else files.read_predictions(repeat_dir / files.PREDICTIONS_FILE)
    return timed, files.read_worker_summary(repeat_dir)


def _spread(values: list[float]) -> dict[str, Any]:
    return {"p50": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def summarize(first: dict[str, Any], others: list[dict[str, Any]], errors: list[str]) -> dict[str, Any]:
    """The efficiency block of repeat 1 with the medians over all complete repeats ranked."""
    blocks = [first, *others]
    latencies = [b["latency_ms"] for b in blocks if b.get("latency_ms") is not None]
    memories = [b["peak_memory_mb"] for b in blocks if b.get("peak_memory_mb") is not None]
    out = dict(first)
    repeats: dict[str, Any] = {"n": len(blocks), "errors": errors}
    if latencies:
        repeats["latency_ms"] = _spread(latencies)
        out["latency_ms"] = repeats["latency_ms"]["p50"]
    if memories:
        repeats["peak_memory_mb"] = _spread(memories)
        out["peak_memory_mb"] = repeats["peak_memory_mb"]["p50"]
    for key in ("ttft_ms", "tpot_ms"):  # shown, not ranked: the parts of the latency
        medians = [b[key]["p50"] for b in blocks if (b.get(key) or {}).get("p50") is not None]
        if medians:
            repeats[key] = _spread(medians)
    out["repeats"] = repeats
    return out
