#!/usr/bin/env python3
"""WER of a candidate on the long real-speech recordings, per recording and per `--long-audio` mode.

For each recording of ``harness/data/demo_data/long_speech`` (``long_speech``, ``dense_a``,
``dense_b``; see the README there) this runs ``bench.py run`` on

- ``separate``: every utterance of the recording as a sample of its own (cut from the recording
  by the times in its TSV), scored as one corpus per recording;
- each mode given with ``--modes`` (default ``native chunk``), on the whole recording.

and prints one markdown table row per recording. ``--bench`` runs another checkout's bench.py
(e.g. the code before a change) on the same data; the scoring here is this checkout's.

    python scripts/long_audio_wer.py [-c whisper-tiny-hf] [--modes native chunk] [--bench PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from harness.score.metrics import wer_metrics  # noqa: E402

LONG = REPO / "harness" / "data" / "demo_data" / "long_speech"
# recording -> (audio file, utterance table)
RECORDINGS = {
    "long_speech": ("long_speech.flac", "segments.tsv"),
    "dense_a": ("dense_a.ogg", "dense_a.tsv"),
    "dense_b": ("dense_b.ogg", "dense_b.tsv"),
}


def utterances(name: str) -> list[dict]:
    with open(LONG / RECORDINGS[name][1], newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def reference(name: str) -> str:
    return " ".join(u["text"] for u in utterances(name))


def write_data(out: Path) -> tuple[Path, Path]:
    """The annotation files of the separate utterances and of the whole recordings."""
    separate, whole = [], []
    for name, (audio_file, _) in RECORDINGS.items():
        audio, rate = sf.read(LONG / audio_file, dtype="float32")
        for i, u in enumerate(utterances(name)):
            path = out / f"{name}-{i:02d}.flac"
            sf.write(path, audio[int(float(u["start_s"]) * rate): int(float(u["end_s"]) * rate)], rate)
            separate.append({"testset_id": f"{name}-{i:02d}", "path": str(path), "task": "asr", "text": u["text"]})
        whole.append({"testset_id": name, "path": str(LONG / audio_file), "task": "asr", "text": reference(name)})
    paths = out / "separate.json", out / "whole.json"
    for path, entries in zip(paths, (separate, whole), strict=True):
        path.write_text(json.dumps({"annotation": entries}))
    return paths


def run(bench: Path, candidate: str, data: Path, results: Path, mode: str | None) -> dict[str, str]:
    """Predictions by sample id of one `bench.py run`."""
    cmd = [sys.executable, str(bench), "run", "-c", candidate, "--data", str(data), "--warmup", "0",
           "--results", str(results), *(["--long-audio", mode] if mode else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=bench.parent)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    found = re.findall(r"(\S+run\.json)", out.stdout)
    if not found:
        raise SystemExit(f"no run.json named in the output of {' '.join(cmd)}:\n{out.stdout}")
    lines = (Path(found[-1]).parent / "predictions.jsonl").read_text().splitlines()
    return {r["sample_id"]: r for r in map(json.loads, lines)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--candidate", default="whisper-tiny-hf")
    parser.add_argument("--modes", nargs="+", default=["native", "chunk"])
    parser.add_argument("--bench", type=Path, default=REPO / "bench.py")
    parser.add_argument("--no-separate", action="store_true", help="skip the separate-utterance run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        separate_data, whole_data = write_data(tmp)
        columns = {}
        if not args.no_separate:
            predicted = run(args.bench, args.candidate, separate_data, tmp / "r", None)
            columns["separate"] = {
                name: wer_metrics([u["text"] for u in utterances(name)],
                                  [predicted[f"{name}-{i:02d}"]["prediction"] or "" for i in range(len(utterances(name)))])
                for name in RECORDINGS}
        for mode in args.modes:
            predicted = run(args.bench, args.candidate, whole_data, tmp / "r", mode)
            columns[mode] = {name: wer_metrics([reference(name)], [predicted[name]["prediction"] or ""]) for name in RECORDINGS}
            for name in RECORDINGS:
                windows = predicted[name].get("windows") or []
                print(f"# {mode} {name}: windows (start-end s, words/s) "
                      + ", ".join(f"{w['start_s']:.1f}-{w['end_s']:.1f} {w['words_per_s']:.2f}" for w in windows), file=sys.stderr)
    print("| recording | words | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for name in RECORDINGS:
        cells = " | ".join(f"{columns[c][name]['wer']:.3f}" for c in columns)
        print(f"| {name} | {len(reference(name).split())} | {cells} |")


if __name__ == "__main__":
    main()
