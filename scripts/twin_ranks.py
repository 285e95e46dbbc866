"""Do two identical candidates get equal memory and latency ranks? A check of the noise-aware ranking.

Writes two candidate files with the same spec under different names (`twin-a`, `twin-b`, copies
of CANDIDATE's spec), runs them back to back on the demo suites (`bench.py run`), ranks them
with the default weight profile (`bench.py leaderboard --format json`), and repeats that N
times, each time in a fresh results folder. Prints each repetition's memory and latency values
and ranks, and how many repetitions gave the twins equal ranks on both.

    python scripts/twin_ranks.py -n 5 -c baseline --out /tmp/twins [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def write_twins(candidate: str, folder: Path) -> list[Path]:
    from harness.registry import resolve

    spec = resolve(candidate)
    paths = []
    for name in ("twin-a", "twin-b"):
        path = folder / f"{name}.toml"
        recipe = ", ".join(json.dumps(step) for step in spec.recipe)
        options = "".join(f"{key} = {json.dumps(value)}\n" for key, value in spec.options.items())
        path.write_text(f'name = "{name}"\nfamily = "{spec.family}"\nrecipe = [{recipe}]\n[options]\n{options}')
        paths.append(path)
    return paths


def bench(*args: str) -> str:
    out = subprocess.run([sys.executable, str(REPO / "bench.py"), *args], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--candidate", default="baseline")
    parser.add_argument("-n", type=int, default=5, help="repetitions")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="timed passes per run (bench.py run --repeat)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    twins = write_twins(args.candidate, args.out)
    equal = 0
    for rep in range(1, args.n + 1):
        results = args.out / f"rep{rep}"
        load = os.getloadavg()[0]
        for twin in twins:
            bench("run", "-c", str(twin), "--threads", str(args.threads), "--repeat", str(args.repeat),
                  "--results", str(results))
        rows = json.loads(bench("leaderboard", "--results", str(results), "--format", "json"))
        rows = rows if isinstance(rows, list) else rows.get("rows", rows)
        by_name = {row["candidate"]: row for row in _flatten(rows)}
        a, b = by_name["twin-a"], by_name["twin-b"]
        same = all(_rank(a, c) == _rank(b, c) for c in ("memory_mb", "latency_ms"))
        equal += same
        print(f"rep {rep} (load {load:.2f}): " + "; ".join(
            f"{c}: a {_value(a, c):.2f} (rank {_rank(a, c)}), b {_value(b, c):.2f} (rank {_rank(b, c)})"
            for c in ("memory_mb", "latency_ms")) + f" -> {'equal' if same else 'DIFFERENT'} ranks")
    print(f"{equal} of {args.n} repetitions gave the twins equal memory and latency ranks")
    return 0 if equal == args.n else 1


def _flatten(rows):
    """Leaderboard JSON is a list of rows, or of sections holding rows."""
    for row in rows:
        if "rows" in row:
            yield from row["rows"]
        else:
            yield row


def _criterion(row: dict, name: str) -> dict:
    return row["criteria"][name]


def _rank(row: dict, name: str):
    return _criterion(row, name)["rank"]


def _value(row: dict, name: str) -> float:
    return _criterion(row, name)["value"]


if __name__ == "__main__":
    sys.exit(main())
