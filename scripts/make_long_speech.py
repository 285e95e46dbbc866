#!/usr/bin/env python3
"""Assemble the long real-speech recording in ``harness/data/demo_data/long_speech``.

Long-audio handling (``run --long-audio``) must be tested on real human speech longer than
Whisper's 30 s window. The only real, transcribed speech available offline here is the test
data that ships inside the ``pocketsphinx`` source distribution on PyPI (BSD-style licence of
CMU Sphinx): five LibriVox utterances (public domain, "Sense and Sensibility", read by a human),
five spoken card names, "go forward ten meters", and "feels like these days go on forever".
This script lays those twelve utterances out on one 74 s track with silences between them:

- the 30 s and 60 s marks fall in silence, so the recording splits into three pieces whose
  references are exact (the test runs those pieces as their own samples);
- one utterance spans 28-30 s and one spans 56-58 s, which is where a 30 s window with 2 s of
  overlap joins the next one, so the transcript merge is exercised on real words.

Get the source data with ``pip download --no-deps --no-binary :all: pocketsphinx==5.1.1`` (the
sdist; unpack it; its ``test/data`` folder is SRC) and run
``python scripts/make_long_speech.py SRC [--out harness/data/demo_data/long_speech]``.
Output: ``long_speech.flac`` (16 kHz mono 16-bit), ``segments.tsv`` (start, end, source, text)
and ``long_speech.json`` (one annotation entry whose reference is every utterance in order).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16_000
DURATION_S = 74.0
LIBRIVOX = "librivox/sense_and_sensibility_01_austen_64kb-"
# (start second, file under SRC, reference text as the pocketsphinx test data gives it)
LAYOUT = [
    (0.5, LIBRIVOX + "0870.wav",
     "and mister john dashwood had then leisure to consider how much there might be prudently in his power to do for them"),
    (9.0, LIBRIVOX + "0880.wav", "he was not an ill disposed young man"),
    (13.5, "cards/001.wav", "ten of clubs"),
    (16.5, "goforward.raw", "go forward ten meters"),
    (27.3, "cards/002.wav", "four queen of clubs"),  # spans the first window join (28-30 s)
    (31.0, LIBRIVOX + "0890.wav", "unless to be rather cold hearted and rather selfish is to be ill disposed"),
    (38.5, "cards/004.wav", "five five"),
    (45.0, "forever/input_2_16k.wav", "feels like these days go on forever"),
    (51.0, "cards/003.wav", "seven of clubs"),
    (56.4, LIBRIVOX + "0930.wav", "he might even have been made amiable himself"),  # spans 56-58 s
    (61.0, LIBRIVOX + "0920.wav",
     "had he married a more a amiable woman he might have been made still more respectable than he was"),
    (69.0, "cards/005.wav", "eight of spades four of clubs seven of hearts"),
]


def read(path: Path) -> np.ndarray:
    if path.suffix == ".raw":  # pocketsphinx's raw files: 16 kHz, 16-bit little-endian, mono
        return np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
    audio, rate = sf.read(path, dtype="float32")
    if rate != RATE or audio.ndim != 1:
        raise SystemExit(f"{path}: expected 16 kHz mono, got {rate} Hz with shape {audio.shape}")
    return audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the test/data folder of the pocketsphinx 5.1.1 sdist")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "harness/data/demo_data/long_speech")
    args = parser.parse_args()
    track = np.zeros(int(DURATION_S * RATE), dtype=np.float32)
    rows = []
    for start, name, text in LAYOUT:
        clip = read(args.src / name)
        at = int(round(start * RATE))
        if at + len(clip) > len(track) or np.any(track[at : at + len(clip)]):
            raise SystemExit(f"{name} at {start} s overlaps another clip or the end")
        track[at : at + len(clip)] = clip
        rows.append(f"{start:.2f}\t{(at + len(clip)) / RATE:.2f}\t{name}\t{text}")
    args.out.mkdir(parents=True, exist_ok=True)
    sf.write(args.out / "long_speech.flac", track, RATE, subtype="PCM_16")
    (args.out / "segments.tsv").write_text("start_s\tend_s\tsource\ttext\n" + "\n".join(rows) + "\n")
    annotation = {"annotation": [{
        "testset_id": "long0001", "path": "long_speech.flac", "task": "asr",
        "text": " ".join(text for _, _, text in LAYOUT),
    }]}
    (args.out / "long_speech.json").write_text(json.dumps(annotation, indent=1) + "\n")
    print(f"wrote {args.out}: {DURATION_S:g} s, {len(LAYOUT)} utterances")


if __name__ == "__main__":
    main()
