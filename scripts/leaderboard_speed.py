"""Time `bench.py leaderboard` over many synthetic run records: median wall time and peak memory.

    python scripts/leaderboard_speed.py --runs 10000 --candidates 2000 --repeats 5
    python scripts/leaderboard_speed.py --runs 1000 --candidates 100 --results /tmp/lb1k
    python scripts/leaderboard_speed.py --against /tmp/main-checkout   # old and new, interleaved

Writes the records once (tests/leaderboard_records.py: the records of the speed tests), then runs
`bench.py leaderboard` in fresh processes, JSON and table output interleaved, and prints each
output's median and range of wall seconds and its largest peak RSS. Prints the load average
too: on a shared machine, times are only comparable at similar load, so `--against` times another
checkout's bench.py in the same loop (each round: this one, then that one) and prints the ratio
of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.leaderboard_records import build_records  # noqa: E402


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one child process. CPU time is less
    disturbed than wall time by other work on a shared machine."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux: kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, help="folder for the records (default: a temporary one); "
                        "records already there are used as they are")
    parser.add_argument("--against", type=Path, help="another checkout (e.g. main) to time in the same loop")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        results = args.results or Path(tmp) / "results"
        if not results.is_dir() or not any(results.iterdir()):
            build_records(results, args.runs, args.candidates)
        n = sum(1 for _ in results.glob("*/run.json"))
        print(f"{n} run records under {results}; load average {os.getloadavg()}")
        fmts = {"json": ["--format", "json"], "table": []}
        base = [sys.executable, "bench.py", "leaderboard", "--results", str(results)]
        trees = {"this": REPO} | ({"against": args.against.resolve()} if args.against else {})
        found: dict[tuple[str, str], list[tuple[float, float, float]]] = {(t, f): [] for t in trees for f in fmts}
        for tree in trees.values():
            timed(base, tree)  # warm the file cache
        for _ in range(args.repeats):
            for fmt, extra in fmts.items():
                for name, tree in trees.items():
                    found[name, fmt].append(timed(base + extra, tree))
        medians = {}
        for (name, fmt), values in found.items():
            walls, cpus = [v[0] for v in values], [v[1] for v in values]
            medians[name, fmt] = statistics.median(walls), statistics.median(cpus)
            print(f"{name:7} {fmt:5}: wall median {medians[name, fmt][0]:.2f} s (min {min(walls):.2f}, "
                  f"max {max(walls):.2f}), CPU median {medians[name, fmt][1]:.2f} s, n={len(walls)}, "
                  f"peak RSS {max(v[2] for v in values):.0f} MB")
        if args.against:
            for fmt in fmts:
                (w, c), (w0, c0) = medians["this", fmt], medians["against", fmt]
                print(f"{fmt}: this / against = {w / w0:.2f} (wall), {c / c0:.2f} (CPU)")
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
