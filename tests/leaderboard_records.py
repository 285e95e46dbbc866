"""Synthetic run folders for the leaderboard's speed and output checks.

``build_records``: many uniform records (the speed checks: 1,000 runs of 100 candidates, 10,000
of 2,000). ``varied_records``: a few dozen records, seeded, that reach every branch of the
output (ties, missing values, a reference, SPIDEr beside its CIDEr-D fallback, nota2025,
repeats, intervals, coverage, load-phase peaks, extra suites, partial, failed and broken files),
so a change that should only be faster can be checked to print the same bytes.

Also a script: ``python -m tests.leaderboard_records DIR N CANDIDATES`` writes build_records.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from tests.test_leaderboard import make_run


def _write(root: Path, run: dict[str, Any] | str, folder: str) -> None:
    path = root / folder
    path.mkdir(parents=True)
    (path / "run.json").write_text(run if isinstance(run, str) else json.dumps(run), encoding="utf-8")


def build_records(root: Path, n: int = 1000, n_candidates: int = 100) -> Path:
    """n small run.json files: n_candidates candidates over two thread counts and an extra suite."""
    width = max(3, len(str(n_candidates - 1)))
    for i in range(n):
        cand = f"cand-{i % n_candidates:0{width}d}"
        run = make_run(cand, wer=0.1 + (i % 37) / 100, cider_d=0.2 + (i % 11) / 50, memory=100 + i % 53,
                       latency=10 + i % 29, run_id=f"20261125-{i:0{max(4, len(str(n - 1)))}d}-{cand}",
                       created_at=f"2026-11-25T{i % 24:02d}:{i % 60:02d}:00+00:00")
        run["environment"].update(device_name="Xeon", threads=1 + (i % 2))
        for suite in run["suites"].values():
            suite["dataset_hash"] = "0123456789abcdef"
            suite["metrics_ci"] = {"wer": [0.05, 0.3], "cider_d": [0.1, 0.4]}
        run["suites"]["ser"] = {"dataset": "emo", "primary_metric": "accuracy", "higher_is_better": True,
                                "extra": True, "metrics": {"accuracy": (i % 17) / 17}}
        _write(root, run, run["run_id"])
    return root


def _maybe(rng: random.Random, value: float, p_none: float = 0.1) -> float | None:
    return None if rng.random() < p_none else value


def varied_records(root: Path, seed: int = 23, n: int = 90) -> Path:
    """About n records in four comparable groups plus odd files; deterministic for a seed."""
    rng = random.Random(seed)
    stamps = ["2026-11-25T{h:02d}:{m:02d}:00+00:00", "2026-11-25T{h:02d}:{m:02d}:00Z",
              "2026-11-25T{h:02d}:{m:02d}:00+01:00", "2026-11-25T{h:02d}:{m:02d}:00", "not a time"]
    for i in range(n):
        cand = "baseline" if i % 15 == 0 else f"c{rng.randrange(30):02d}"
        group = i % 4  # 0: cpu 1 thread, 1: cpu 2 threads (SPIDEr), 2: nota2025, 3: cuda, prompts model
        run = make_run(
            cand,
            wer=_maybe(rng, round(rng.choice([0.1, 0.12, 0.2]) + rng.random() * 0.05, rng.choice([2, 6]))),
            spider=_maybe(rng, rng.random() * 0.4) if group == 1 else None,
            cider_d=_maybe(rng, rng.random()),
            memory=_maybe(rng, rng.choice([100.0, 101.5, 250.0]) + rng.randrange(3) * 0.7),
            latency=_maybe(rng, rng.uniform(10, 80)),
            aac=rng.random() > 0.15,
            status="partial" if rng.random() < 0.05 else "ok",
            created_at=stamps[rng.randrange(len(stamps))].format(h=rng.randrange(24), m=rng.randrange(60))
            if rng.random() > 0.05 else None,
            run_id=f"20261125-{rng.randrange(24):02d}{i:04d}-{cand}",
        )
        env = run["environment"]
        if group == 3:
            env.update(device="cuda:0", device_name="H200")
            run["settings"] = {"prompts": "model"}
        else:
            env.update(device_name="Xeon", threads=2 if group == 1 else 1)
        if group == 2:
            run["protocol"] = "nota2025"
        for name, suite in run["suites"].items():
            suite["dataset_hash"] = f"{name}-hash-{0 if rng.random() > 0.05 else 1}"
            if rng.random() < 0.6:
                suite["metrics_ci"] = {"wer": [0.05, 0.3], "cider_d": [0.1, 0.4], "spider": [0.1, 0.2]}
            if rng.random() < 0.5:
                suite["metrics_scored_only"] = {}
            if rng.random() < 0.1:
                suite["n_scored"] = suite["n_samples"] - 2
        if rng.random() < 0.1:
            run["coverage"] = rng.choice([0.5, 0.9, 1.0])
        if rng.random() < 0.3:
            lat = [rng.uniform(10, 80) for _ in range(5)]
            mem = [rng.uniform(100, 110) for _ in range(5)]
            run["efficiency"]["repeats"] = {
                "n": 5,
                "latency_ms": {"p50": sorted(lat)[2], "min": min(lat), "max": max(lat), "values": lat},
                "peak_memory_mb": {"p50": sorted(mem)[2], "min": min(mem), "max": max(mem), "values": mem},
            }
        if rng.random() < 0.1:
            run["efficiency"]["memory"] = {"peak_phase": "load"}
        if rng.random() < 0.3:
            run["suites"]["ser"] = {"dataset": "emo", "primary_metric": "accuracy", "higher_is_better": True,
                                    "extra": True, "metrics": {"accuracy": _maybe(rng, rng.random())}}
        if rng.random() < 0.1:
            run["suites"]["kws"] = {"dataset": "kw", "primary_metric": "eer", "higher_is_better": False,
                                    "metrics": {"eer": rng.random()}}
        if rng.random() < 0.05:
            run["status"] = "failed"
        _write(root, run, run["run_id"])
    _write(root, "{not json", "zz-broken")
    _write(root, {"run_id": "x", "candidate": "", "status": "ok"}, "zz-empty-candidate")
    _write(root, {**make_run("served"), "kind": "load", "run_id": "zz-load"}, "zz-load")
    (root / "zz-in-progress").mkdir()
    return root


if __name__ == "__main__":
    folder, count, cands = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    build_records(folder, count, cands)
    print(f"{count} run records of {cands} candidates under {folder}")
