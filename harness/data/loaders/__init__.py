"""Data loaders behind `bench.py run --data PATH [--format F]`.

Every loader returns `(samples, problems)`: the valid `harness.types.Sample`s (id, task = suite
name, audio reference, references, source location) and one `harness.data.Problem` per invalid
item, naming where it is (JSON line, CSV row, transcript line). A file or folder that cannot be
used at all raises `harness.data.DataError`.

| format        | what `--data` points at                                                      |
| ------------- | ---------------------------------------------------------------------------- |
| `json`        | SALMONN-style annotation JSON                                                |
| `librispeech` | a LibriSpeech folder: `SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt` + `.flac`  |
| `clotho`      | a Clotho v2 captions CSV (`file_name, caption_1..caption_5`)                 |
| `audiocaps`   | an AudioCaps CSV (`audiocap_id, youtube_id, start_time, caption`)            |
| `hf`          | a Hugging Face dataset folder (`save_to_disk`), or parquet file(s)/folder    |
| `mmau`        | an MMAU JSON list (`id, audio_id, question, choices, answer, task`): mcq     |
| `airbench`    | AIR-Bench `Foundation_meta.json` (mcq) or `Chat_meta.json` (qa)              |
"""

from __future__ import annotations

import csv
from pathlib import Path

from harness.data import DATA_FORMATS
from harness.data.annotation import load_annotation_json
from harness.data.errors import DataError, Problem
from harness.types import Sample

FORMATS = DATA_FORMATS


def detect_format(path: Path) -> str:
    """The format of `path`, from its name and (for CSV and folders) a look inside."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, ["file not found"])
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            from harness.data.loaders.questions import detect

            return detect(path) or "json"
        if suffix == ".parquet":
            return "hf"
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                header = {h.strip() for h in next(csv.reader(f), [])}
            if "file_name" in header and "caption_1" in header:
                return "clotho"
            if {"youtube_id", "caption"} <= header:
                return "audiocaps"
            raise DataError(path, [f"row 1: CSV header {sorted(header)} is neither Clotho "
                                   "(file_name, caption_1..caption_5) nor AudioCaps "
                                   "(audiocap_id, youtube_id, start_time, caption)"])
        raise DataError(path, [f"cannot tell the format of a {suffix or 'suffix-less'} file; "
                               f"pass --format ({'|'.join(FORMATS)})"])
    if any((path / name).is_file() for name in ("dataset_dict.json", "state.json", "dataset_info.json")):
        return "hf"
    if next(path.rglob("*.parquet"), None) is not None:
        return "hf"
    if next(path.rglob("*.trans.txt"), None) is not None:
        return "librispeech"
    raise DataError(path, ["folder holds no LibriSpeech transcripts (*/*/*.trans.txt), no Hugging Face "
                           "dataset (dataset_info.json / dataset_dict.json) and no parquet files"])


def load_data(
    path: Path,
    fmt: str | None = None,
    audio_root: Path | None = None,
    audio_dir: Path | None = None,
) -> tuple[list[Sample], list[Problem]]:
    """Reads `path` in format `fmt` (detected when None); everything is checked before any model runs."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}; known: {', '.join(FORMATS)}")
    if not path.exists():
        raise DataError(path, ["file not found"])
    if fmt in ("json", "clotho", "audiocaps", "mmau", "airbench") and not path.is_file():
        raise DataError(path, [f"--format {fmt} needs a file, not a folder"])
    if fmt == "librispeech" and not path.is_dir():
        raise DataError(path, ["--format librispeech needs the corpus folder, not a file"])
    if fmt == "json":
        return load_annotation_json(path, audio_root or audio_dir)
    if fmt in ("mmau", "airbench"):
        from harness.data.loaders.questions import load_airbench, load_mmau

        return (load_mmau if fmt == "mmau" else load_airbench)(path, audio_root or audio_dir)
    if fmt == "librispeech":
        from harness.data.loaders.librispeech import load_librispeech

        return load_librispeech(path)
    if fmt == "clotho":
        from harness.data.loaders.captions_csv import load_clotho

        return load_clotho(path, audio_dir or audio_root)
    if fmt == "audiocaps":
        from harness.data.loaders.captions_csv import load_audiocaps

        return load_audiocaps(path, audio_dir or audio_root)
    from harness.data.loaders.hf import load_hf

    return load_hf(path)
