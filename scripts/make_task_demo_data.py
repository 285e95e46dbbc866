#!/usr/bin/env python3
"""Regenerate the demo data of the question suites (`mcq`, `qa`) in ``harness/data/demo_data``.

Writes ``mcq.json`` and ``qa.json`` (annotation files with per-sample questions) and their
clips in ``tasks/``: a handful of very short clips whose answers are known by construction,
because the demo runs them on every `bench.py demo`.

* beeps counted, which of two tones is higher: ``sox`` synthesis (sine tones and silence);
* a spoken number, a spoken word, a male or a female voice, short spoken facts: ``espeak-ng``
  (voices ``en-us`` and its built-in female variant ``en-us+f2``), resampled by ``sox``.

All audio is 16 kHz mono 16-bit FLAC. Requirements: ``apt-get install sox espeak-ng``.

Usage: ``python scripts/make_task_demo_data.py [--out harness/data/demo_data]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "harness" / "data" / "demo_data"
FLAC = ["-r", "16000", "-c", "1", "-b", "16"]
MALE, FEMALE = "en-us", "en-us+f2"


def beeps(out: Path, n: int, freq: int = 1000) -> None:
    """n beeps of 0.12 s, 0.15 s apart."""
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for i in range(n):
            beep, gap = Path(tmp) / f"b{i}.wav", Path(tmp) / f"g{i}.wav"
            subprocess.run(["sox", "-n", *FLAC, str(beep), "synth", "0.12", "sine", str(freq), "vol", "0.5"], check=True)
            subprocess.run(["sox", "-n", *FLAC, str(gap), "trim", "0", "0.15"], check=True)
            parts += [str(beep), str(gap)]
        subprocess.run(["sox", *parts, *FLAC, str(out)], check=True)


def two_tones(out: Path, first: int, second: int) -> None:
    """Two 0.4 s tones with 0.2 s of silence between them."""
    with tempfile.TemporaryDirectory() as tmp:
        a, gap, b = (Path(tmp) / f"{n}.wav" for n in ("a", "gap", "b"))
        subprocess.run(["sox", "-n", *FLAC, str(a), "synth", "0.4", "sine", str(first), "vol", "0.5"], check=True)
        subprocess.run(["sox", "-n", *FLAC, str(gap), "trim", "0", "0.2"], check=True)
        subprocess.run(["sox", "-n", *FLAC, str(b), "synth", "0.4", "sine", str(second), "vol", "0.5"], check=True)
        subprocess.run(["sox", str(a), str(gap), str(b), *FLAC, str(out)], check=True)


def speech(out: Path, text: str, voice: str = MALE) -> None:
    """espeak-ng at 150 words per minute, resampled to 16 kHz."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "tts.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
        subprocess.run(["sox", str(wav), *FLAC, str(out)], check=True)


# (id, how the clip is made, question, choices, answer, category)
MCQ = [
    ("mcq0001", lambda p: beeps(p, 3), "How many beeps do you hear?", ["one", "two", "three", "four"], "three", "sound"),
    ("mcq0002", lambda p: two_tones(p, 300, 1200), "Which of the two tones is higher in pitch?",
     ["the first tone", "the second tone"], "the second tone", "sound"),
    ("mcq0003", lambda p: speech(p, "seven"), "Which number is spoken?", ["three", "five", "seven", "nine"], "seven",
     "speech"),
    ("mcq0004", lambda p: speech(p, "banana"), "Which word is spoken?", ["apple", "orange", "banana", "grape"], "banana",
     "speech"),
    ("mcq0005", lambda p: speech(p, "Good morning.", FEMALE), "Is the speaker's voice male or female?",
     ["male", "female"], "female", "speech"),
]
# (id, how the clip is made, question, reference answer)
QA = [
    ("qa0001", lambda p: speech(p, "The meeting starts at nine tomorrow morning."), "When does the meeting start?",
     "At nine o'clock tomorrow morning."),
    ("qa0002", lambda p: beeps(p, 2, 1500), "Describe what you hear.", "Two short high-pitched beeps."),
    ("qa0003", lambda p: speech(p, "My favourite colour is green.", FEMALE), "What is the speaker's favourite colour?",
     "Green."),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    missing = [tool for tool in ("sox", "espeak-ng") if shutil.which(tool) is None]
    if missing:
        print(f"error: {', '.join(missing)} not found; apt-get install sox espeak-ng", file=sys.stderr)
        return 1
    clips = args.out / "tasks"
    clips.mkdir(parents=True, exist_ok=True)
    mcq, qa = [], []
    for sample_id, make, question, choices, answer, category in MCQ:
        make(clips / f"{sample_id}.flac")
        mcq.append({"testset_id": sample_id, "path": f"tasks/{sample_id}.flac", "task": "mcq", "question": question,
                    "choices": choices, "answer": answer, "category": category})
    for sample_id, make, question, answer in QA:
        make(clips / f"{sample_id}.flac")
        qa.append({"testset_id": sample_id, "path": f"tasks/{sample_id}.flac", "task": "qa", "question": question,
                   "answer": answer})
    for name, entries in (("mcq.json", mcq), ("qa.json", qa)):
        (args.out / name).write_text(json.dumps({"annotation": entries}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(mcq)} mcq and {len(qa)} qa samples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
