"""`bench.py doctor`: this machine's measurement floors and what is installed.

The floors say how small a difference the harness can see here: the `null` candidate (answers
"" at once, allocates nothing) gives the memory the harness itself adds above the baseline and
its overhead per request (TTFT); the clock's resolution bounds any single timing; the copy
bandwidth bounds TPOT (the roofline). Optional backends are tried in a subprocess each, so a
broken one (e.g. a CUDA-only build) is reported, not fatal.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# import name -> what it enables
BACKENDS = {
    "torch": "every model family",
    "transformers": "salmonn, whisper, hf-audiolm families",
    "bitsandbytes": "nf4 / int8 recipes",
    "torchao": "torchao-int8 recipe",
    "optimum.quanto": "quanto weight-bytes tests",
    "faster_whisper": "faster-whisper family",
    "pocketsphinx": "pocketsphinx family",
    "datasets": "Hugging Face data (--format hf)",
    "ray": "sweep --executor ray",
    "fastapi": "bench.py serve",
    "httpx": "openai family, bench.py load",
}


@dataclass
class Report:
    null_peak_memory_mb: float | None = None
    null_ttft_ms: dict[str, float | None] = field(default_factory=dict)
    null_run: str | None = None
    clock_resolution_ns: float | None = None
    clock_min_step_ns: float | None = None
    copy_bandwidth_gbps: float | None = None
    threads: int = 1
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clock_floor(samples: int = 200_000) -> tuple[float, float]:
    """(perf_counter's stated resolution, smallest nonzero step seen), in nanoseconds."""
    stated = time.get_clock_info("perf_counter").resolution * 1e9
    best = float("inf")
    last = time.perf_counter_ns()
    for _ in range(samples):
        now = time.perf_counter_ns()
        if now != last:
            best = min(best, now - last)
            last = now
    return stated, best


def null_floor(threads: int, results: Path, limit: int | None) -> tuple[float | None, dict, str]:
    """Runs the `null` candidate on the demo suites in a measured child, like any candidate."""
    from harness.run.execute import execute
    from harness.run.run_options import RunOptions

    options = RunOptions(candidate="null", results=results, threads=threads, limit=limit, progress=False)
    run_dir, record = execute(options)
    eff = record.efficiency
    ttft = {k: eff["ttft_ms"][k] for k in ("p50", "p90")}
    return eff.get("peak_memory_mb"), ttft, str(run_dir)


_PROBE = """
import importlib, json, sys
name = sys.argv[1]
try:
    module = importlib.import_module(name)
    print(json.dumps({"ok": True, "version": getattr(module, "__version__", None)}))
except Exception as err:
    print(json.dumps({"ok": False, "error": f"{type(err).__name__}: {err}"[:300]}))
"""


def _probe(name: str, timeout_s: float) -> dict[str, Any]:
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, name], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"import took over {timeout_s:g} s"}
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return json.loads(last) if last else {"ok": False, "error": f"exit {proc.returncode}: {proc.stderr[-200:]}"}


def probe_backends(timeout_s: float = 120) -> dict[str, dict[str, Any]]:
    """Each import in its own interpreter (a crashing import cannot take the others down), 4 at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda name: _probe(name, timeout_s), BACKENDS)
        return {name: {**result, "for": BACKENDS[name]} for name, result in zip(BACKENDS, results, strict=True)}


def diagnose(threads: int = 1, results: Path | None = None, limit: int | None = 10) -> Report:
    from harness.measure.roofline import measure_bandwidth_gbps

    report = Report(threads=threads)
    with tempfile.TemporaryDirectory(prefix="lalm-doctor-") as tmp:
        report.null_peak_memory_mb, report.null_ttft_ms, report.null_run = null_floor(threads, results or Path(tmp), limit)
        if results is None:
            report.null_run = None  # the temp folder is gone
    report.clock_resolution_ns, report.clock_min_step_ns = clock_floor()
    import torch

    torch.set_num_threads(threads)
    report.copy_bandwidth_gbps = measure_bandwidth_gbps("cpu")
    report.backends = probe_backends()
    return report


def format_report(report: Report) -> str:
    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    ttft = report.null_ttft_ms
    lines = [
        f"memory floor (null candidate, peak above baseline): {fmt(report.null_peak_memory_mb, '.2f')} MB",
        f"harness overhead per request (null TTFT): p50 {fmt(ttft.get('p50'), '.4f')} ms, p90 {fmt(ttft.get('p90'), '.4f')} ms",
        f"clock: perf_counter resolution {fmt(report.clock_resolution_ns, '.0f')} ns, smallest step seen "
        f"{fmt(report.clock_min_step_ns, '.0f')} ns",
        f"copy bandwidth ({report.threads} thread{'s' if report.threads != 1 else ''}): "
        f"{fmt(report.copy_bandwidth_gbps, '.1f')} GB/s",
        "optional backends:",
    ]
    for name, info in report.backends.items():
        state = f"ok {info.get('version') or ''}".strip() if info["ok"] else f"missing ({info['error']})"
        lines.append(f"  {name:<15} {state:<40} {info['for']}")
    if report.null_run:
        lines.append(f"null run record: {report.null_run}")
    return "\n".join(lines)
