"""Back-to-back spread of peak memory and latency: what the `competition` tolerances rest on.

Runs each candidate N times in a row (`bench.py run`, 1 thread, default settings), then prints
every run's ranked memory and latency and their relative spread, max/min - 1. A leaderboard
tolerance a little above that spread keeps noise from reordering candidates that are equal.

    python scripts/measure_spread.py -n 5 -c baseline -c "whisper-tiny-hf --suite asr"
    python scripts/measure_spread.py --only-report --results /tmp/spread   # runs already there

Each run's load average is printed beside it: on a shared machine, latency spread mostly
measures the other processes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from records import files  # noqa: E402


def run_once(args: list[str], results: Path) -> Path | None:
    before = os.getloadavg()[0]
    out = subprocess.run([sys.executable, str(REPO / "bench.py"), "run", *args, "--results", str(results)],
                         cwd=REPO, capture_output=True, text=True)
    record = next((line.removeprefix("run record: ").strip() for line in out.stdout.splitlines()
                   if line.startswith("run record: ")), None)
    if out.returncode != 0 or record is None:
        print(f"run {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}", file=sys.stderr)
        return None
    path = Path(record)
    # the 1-minute load average before and after, beside the run record (not in it)
    (path.parent / "spread.json").write_text(json.dumps({"load_average": [before, os.getloadavg()[0]]}))
    return path


def report(results: Path) -> None:
    by_candidate: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for path in sorted(results.glob("*/run.json")):
        record = files.read_run_record(path.parent)
        eff = record.efficiency or {}
        if record.status != "ok" or eff.get("peak_memory_mb") is None or eff.get("latency_ms") is None:
            continue
        extra = path.parent / "spread.json"
        load = json.loads(extra.read_text())["load_average"] if extra.is_file() else None
        note = f"load {load[0]:.1f} -> {load[1]:.1f}" if load else ""
        by_candidate[record.candidate].append((eff["peak_memory_mb"], eff["latency_ms"], note))
    for name, rows in by_candidate.items():
        print(f"{name}: {len(rows)} runs")
        for memory, latency, note in rows:
            print(f"  memory {memory:9.2f} MB   latency {latency:9.1f} ms   {note}")
        for label, values, unit in (("memory", [r[0] for r in rows], "MB"), ("latency", [r[1] for r in rows], "ms")):
            lo, hi = min(values), max(values)
            spread = hi / lo - 1 if lo > 0 else float("nan")
            print(f"  {label:<7} {lo:.2f}-{hi:.2f} {unit}: spread {spread:.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--candidate", action="append", default=[],
                        help='a candidate with optional run arguments, e.g. "whisper-tiny-hf --suite asr"')
    parser.add_argument("-n", type=int, default=5, help="runs per candidate (default 5)")
    parser.add_argument("--results", type=Path, default=Path("/tmp/spread"))
    parser.add_argument("--only-report", action="store_true", help="report the runs already in --results")
    args = parser.parse_args()
    if not args.only_report:
        for spec in args.candidate or ["baseline"]:
            name, *rest = shlex.split(spec)
            for _ in range(args.n):
                run_once(["-c", name, *rest], args.results)
    report(args.results)


if __name__ == "__main__":
    main()
