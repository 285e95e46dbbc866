"""Is a served candidate measured like the same candidate in process?

Runs `bench.py run -c CANDIDATE --suite asr` in process, then serves the same candidate with
`bench.py serve` and runs an `openai` candidate pointed at it (with `server_pid`, so the
server's memory is measured), both with the same threads and repeats. Then measures the HTTP
overhead of that server directly (client-side TTFT/TPOT minus the server's own, see
scripts/serve_overhead.py) and prints: whether the transcripts are identical, both runs'
TTFT/TPOT (p50 of the repeats' medians) and whether the served numbers are within
`--tolerance` of the in-process ones plus the measured overhead.

    python scripts/served_vs_inprocess.py -c whisper-tiny-hf --repeat 3 --out /tmp/served-check
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from serve_overhead import measure  # noqa: E402

from harness.serve.launch import served  # noqa: E402
from records import files  # noqa: E402
from records.run_record import RunRecord  # noqa: E402


def bench_run(candidate: str, results: Path, threads: int, repeat: int, limit: int | None,
              device: str = "auto") -> dict:
    args = [sys.executable, str(REPO / "bench.py"), "run", "-c", candidate, "--suite", "asr",
            "--threads", str(threads), "--repeat", str(repeat), "--results", str(results)]
    if device != "auto":  # a served candidate has no device of its own: its server has
        args += ["--device", device]
    if limit:
        args += ["--limit", str(limit)]
    subprocess.run(args, check=True, cwd=REPO)
    run_dir = max(results.iterdir(), key=lambda p: p.stat().st_mtime)
    record = files.read_run_record(run_dir)
    predictions = {p.sample_id: p.prediction for p in files.read_predictions(run_dir / files.PREDICTIONS_FILE)}
    return {"record": record, "predictions": predictions}


def timing(record: RunRecord, key: str) -> float:
    """p50 over the repeats' medians when the run was repeated, else the run's median."""
    eff = record.efficiency
    repeats = eff.get("repeats") or {}
    values = (repeats.get(key) or {}).get("values")
    return statistics.median(values) if values else eff[key]["p50"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--candidate", default="whisper-tiny-hf")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (in process and the server)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, help="demo ASR samples (default: all)")
    parser.add_argument("--tolerance", type=float, default=0.10, help="relative, on top of the measured overhead")
    parser.add_argument("--out", type=Path, required=True, help="folder for both runs' results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    inproc = bench_run(args.candidate, args.out / "inprocess", args.threads, args.repeat, args.limit, args.device)
    speech = sorted((REPO / "harness" / "data" / "demo_data" / "speech").glob("*.flac"))
    with served("-c", args.candidate, "--threads", str(args.threads), "--device", args.device) as server:
        toml = args.out / "served.toml"
        toml.write_text(
            f'name = "{args.candidate}-served"\nfamily = "openai"\ntasks = ["asr"]\n[options]\n'
            f'base_url = "{server.url}/v1"\nmodel = "{args.candidate}"\nserver_pid = {server.proc.pid}\n'
            "send_task = true\n"
        )
        served_run = bench_run(str(toml), args.out / "served", args.threads, args.repeat, args.limit)
        overhead_rows = measure(server.url, args.candidate, speech[:10], speech[-1], warmup=3)
    overhead = {
        "ttft_ms": statistics.median(r["client_ttft_ms"] - r["server_ttft_ms"] for r in overhead_rows),
        "tpot_ms": statistics.median(r["client_tpot_ms"] - r["server_tpot_ms"] for r in overhead_rows
                                     if r["client_tpot_ms"] is not None and r["server_tpot_ms"] is not None),
    }

    same = inproc["predictions"] == served_run["predictions"]
    differing = [k for k in inproc["predictions"] if inproc["predictions"][k] != served_run["predictions"].get(k)]
    print(f"\n{args.candidate}, demo ASR, {len(inproc['predictions'])} samples, --device {args.device}, --threads {args.threads}, "
          f"--repeat {args.repeat}")
    print(f"transcripts identical: {same}" + ("" if same else f" (differ: {', '.join(differing)})"))
    ok = same
    for key in ("ttft_ms", "tpot_ms"):
        a, b = timing(inproc["record"], key), timing(served_run["record"], key)
        bound = a * (1 + args.tolerance) + max(overhead[key], 0.0)
        within = abs(b - a) <= a * args.tolerance + max(overhead[key], 0.0)
        ok &= within
        print(f"{key[:4].upper()}: in-process {a:.2f} ms, served {b:.2f} ms (ratio {b / a:.3f}); HTTP overhead "
              f"{overhead[key]:.2f} ms; bound {bound:.2f} ms: {'within' if within else 'OUTSIDE'}")
    inproc_eff, served_eff = inproc["record"].efficiency, served_run["record"].efficiency
    print(f"peak memory: in-process {inproc_eff.get('peak_memory_mb')} MB above baseline, "
          f"server process tree {served_eff.get('peak_memory_mb')} MB ({served_eff.get('peak_memory_kind')})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
