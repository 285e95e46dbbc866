#!/usr/bin/env python3
"""Assemble the dense long real-speech recordings in ``harness/data/demo_data/long_speech``.

``long_speech.flac`` (scripts/make_long_speech.py) spaces its twelve utterances with long
silences, so a 30 s window holds about 40 words. Read speech is denser: a window of an audiobook
holds 70-90 words, which is where chunked transcription lost whole sentences (issue 20). This
script lays the same twelve human utterances (the pocketsphinx 5.1.1 sdist's test data: a
LibriVox reader, the speakers of the card names, "go forward ten meters" and "feels like these
days go on forever") out again with the short pauses of continuous speech:

- ``dense_a``: every utterance once in a shuffled order, then the LibriVox and card utterances
  again in another order; pauses of 0.2-0.6 s (about 86 s, several speakers).
- ``dense_b``: every utterance once in a third order, pauses of 0.6-2.5 s (about 60 s).

The orders and pauses come from fixed seeds, so the files are reproducible. Each recording gets
``NAME.ogg`` (16 kHz mono Ogg Vorbis, soundfile compression level 0.8, about 24 kbit/s: small enough for the repository),
``NAME.tsv`` (start, end, source, text of each utterance: the "separate utterances" samples are
cut from the recording by these times, see scripts/long_audio_wer.py) and ``NAME.json`` (one
annotation entry whose reference is every utterance in order).

Get the source data as for make_long_speech.py (``pip download --no-deps --no-binary
pocketsphinx pocketsphinx==5.1.1``; unpack; its ``test/data`` folder is SRC) and run
``python scripts/make_dense_speech.py SRC``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_long_speech import LAYOUT, RATE, read  # noqa: E402 (the same utterances and reader)

LIBRIVOX_AND_CARDS = [i for i, (_, name, _) in enumerate(LAYOUT) if name.startswith(("librivox", "cards"))]
# name -> (seed, [(indices of LAYOUT to place, shuffled), ...], (shortest, longest) pause in seconds)
RECORDINGS = {
    "dense_a": (1, [list(range(len(LAYOUT))), LIBRIVOX_AND_CARDS], (0.2, 0.6)),
    "dense_b": (2, [list(range(len(LAYOUT)))], (0.6, 2.5)),
}
LEAD_S = 0.3  # silence before the first utterance and after the last


def assemble(src: Path, seed: int, passes: list[list[int]], pause: tuple[float, float]):
    """The track and its rows (start_s, end_s, source, text)."""
    rng = np.random.default_rng(seed)
    order = [i for indices in passes for i in rng.permutation(indices)]
    pieces, rows, at = [np.zeros(int(LEAD_S * RATE), np.float32)], [], int(LEAD_S * RATE)
    for n, i in enumerate(order):
        _, name, text = LAYOUT[i]
        clip = read(src / name)
        rows.append((at / RATE, (at + len(clip)) / RATE, name, text))
        gap = LEAD_S if n == len(order) - 1 else float(rng.uniform(*pause))
        pieces += [clip, np.zeros(int(round(gap * RATE)), np.float32)]
        at += len(clip) + len(pieces[-1])
    return np.concatenate(pieces), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the test/data folder of the pocketsphinx 5.1.1 sdist")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "harness/data/demo_data/long_speech")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (seed, passes, pause) in RECORDINGS.items():
        track, rows = assemble(args.src, seed, passes, pause)
        sf.write(args.out / f"{name}.ogg", track, RATE, format="OGG", subtype="VORBIS", compression_level=0.8)
        (args.out / f"{name}.tsv").write_text(
            "start_s\tend_s\tsource\ttext\n" + "".join(f"{s:.3f}\t{e:.3f}\t{src}\t{t}\n" for s, e, src, t in rows))
        annotation = {"annotation": [{"testset_id": name, "path": f"{name}.ogg", "task": "asr",
                                      "text": " ".join(t for *_, t in rows)}]}
        (args.out / f"{name}.json").write_text(json.dumps(annotation, indent=1) + "\n")
        words = sum(len(t.split()) for *_, t in rows)
        print(f"wrote {args.out / name}.*: {len(track) / RATE:.1f} s, {len(rows)} utterances, {words} words")


if __name__ == "__main__":
    main()
