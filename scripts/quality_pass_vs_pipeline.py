"""The batched quality pass against the library used directly, on the same clips: samples/s and
identical texts.

    python scripts/quality_pass_vs_pipeline.py --limit 24 --batch-size 8 --repeats 3

Each repeat runs, one after the other (the order turning each repeat):

- **harness**: `bench.py run -c whisper-tiny-hf --suite asr --batch-size 8` in its measured child
  (the quality pass's `samples_per_s` and `wall_s` from the run record: audio decoding, features,
  generate and the prediction lines, the model already loaded);
- **pipeline**: transformers' `pipeline("automatic-speech-recognition", batch_size=8)` on the same
  converted checkpoint, in a fresh process with the same thread count, fed the same clips in the
  harness's order (longest first), each decoded by the same `load_audio` inside the timed loop, with
  the same greedy budget (the asr suite's `max_new_tokens`); the model loaded before the clock.

It prints the medians, their ratio (harness / pipeline samples/s) and whether every text is the
same (both stripped). `--device cuda` times both on a GPU. `--profile FILE` writes a cProfile of
one pipeline pass.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CANDIDATE = "whisper-tiny-hf"


def harness_pass(args, results: Path) -> dict:
    cmd = [sys.executable, "bench.py", "run", "-c", CANDIDATE, "--suite", "asr", "--batch-size", str(args.batch_size),
           "--limit", str(args.limit), "--warmup", "0", "--efficiency-samples", "1", "--threads", str(args.threads),
           "--device", args.device, "--results", str(results)]
    if args.data:
        cmd += ["--data", str(args.data)]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    run_dir = max((p for p in results.iterdir() if (p / "run.json").is_file()), key=lambda p: p.stat().st_mtime)
    record = json.loads((run_dir / "run.json").read_text())
    block = record["efficiency"]["quality_pass"]
    texts = {}
    for line in (run_dir / "predictions.jsonl").read_text().splitlines():
        item = json.loads(line)
        texts[item["sample_id"]] = (item.get("prediction") or "").strip()
    return {"samples_per_s": block["samples_per_s"], "wall_s": block["wall_s"], "n": block["n_samples"],
            "audio_s": block["audio_s"], "texts": texts}


def pipeline_pass(args) -> dict:
    """In a fresh process: this script again with --pipeline-only."""
    cmd = [sys.executable, __file__, "--pipeline-only", "--limit", str(args.limit), "--batch-size", str(args.batch_size),
           "--threads", str(args.threads), "--device", args.device]
    if args.data:
        cmd += ["--data", str(args.data)]
    if args.profile:
        cmd += ["--profile", str(args.profile)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"pipeline pass failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _clips(args) -> list:
    """The asr samples the harness runs (same data, same --limit), longest first as its quality pass."""
    from harness.data.audio import audio_duration_s
    from harness.data.loaders import load_data
    from harness.suites import SUITES

    data = str(args.data) if args.data else str(SUITES["asr"].demo_file)
    samples = [s for s in load_data(Path(data))[0] if s.task == "asr"][: args.limit]
    return sorted(samples, key=lambda s: -(audio_duration_s(s.audio_path) or -1.0))


def run_pipeline_only(args) -> None:
    import torch
    from transformers import pipeline

    from candidates.checkpoints.whisper_convert import ensure_converted
    from harness.data.audio import load_audio
    from harness.suites import SUITES

    torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = torch.float32 if device == "cpu" else torch.bfloat16  # the harness's default per device
    asr = pipeline("automatic-speech-recognition", model=str(ensure_converted()), device=device, dtype=dtype)
    samples = _clips(args)
    budget = SUITES["asr"].max_new_tokens
    feed = ({"raw": load_audio(s.audio_path)[0], "sampling_rate": 16000} for s in samples)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    out = list(asr(feed, batch_size=args.batch_size,
                   generate_kwargs={"max_new_tokens": budget, "num_beams": 1, "do_sample": False}))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    texts = {s.sample_id: o["text"].strip() for s, o in zip(samples, out, strict=True)}
    audio_s = sum(len(load_audio(s.audio_path)[0]) / 16000 for s in samples)
    print(json.dumps({"samples_per_s": len(samples) / wall, "wall_s": wall, "n": len(samples), "audio_s": audio_s,
                      "texts": texts}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=24, help="asr clips (the demo's 30 by default data)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", type=Path, help="annotation JSON etc. (default: the embedded demo)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the pipeline pass here")
    parser.add_argument("--pipeline-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if args.pipeline_only:
        run_pipeline_only(args)
        return

    print(f"load average {os.getloadavg()}; {CANDIDATE}, {args.limit} clips, batch {args.batch_size}, "
          f"{args.threads} thread(s), {args.device}")
    found: dict[str, list[dict]] = {"harness": [], "pipeline": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            order = ["harness", "pipeline"] if i % 2 == 0 else ["pipeline", "harness"]
            for name in order:
                result = harness_pass(args, Path(tmp) / f"r{i}") if name == "harness" else pipeline_pass(args)
                found[name].append(result)
                print(f"  repeat {i + 1} {name:8}: {result['samples_per_s']:.3f} samples/s ({result['wall_s']:.2f} s)")
    med = {name: statistics.median(r["samples_per_s"] for r in results) for name, results in found.items()}
    rtfx = {name: statistics.median(r["audio_s"] / r["wall_s"] for r in results) for name, results in found.items()}
    h_texts, p_texts = found["harness"][0]["texts"], found["pipeline"][0]["texts"]
    differ = sorted(k for k in p_texts if h_texts.get(k) != p_texts[k])
    print(f"\n| | samples/s (median of {args.repeats}) | RTFx |\n|---|---|---|")
    for name in found:
        print(f"| {name} | {med[name]:.3f} | {rtfx[name]:.1f} |")
    print(f"\nharness / pipeline: {med['harness'] / med['pipeline']:.3f}")
    print(f"identical texts: {len(p_texts) - len(differ)} of {len(p_texts)}"
          + (f"; differ: {differ[:5]}" if differ else ""))
    for k in differ[:3]:
        print(f"  {k}: harness {h_texts.get(k)!r}\n  {' ' * len(k)}  pipeline {p_texts[k]!r}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
