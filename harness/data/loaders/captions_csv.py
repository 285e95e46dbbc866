"""Audio-captioning CSVs: Clotho v2 and AudioCaps.

Clotho v2 (`clotho_captions_<split>.csv`): one row per clip, `file_name, caption_1..caption_5`.
The sample id is `file_name`; the audio is `file_name` in the audio folder: `--audio-dir`, else
the CSV's folder, else `<CSV folder>/<split>/` (Clotho's own layout, e.g. `evaluation/`).

AudioCaps (`test.csv`): one row per caption, `audiocap_id, youtube_id, start_time, caption`,
several rows (5 in the test split) per clip. Rows are grouped by `youtube_id`, which is the sample
id; its captions, in file order, are the references. The audio file is looked up in the audio
folder (`--audio-dir`, else the CSV's folder) by name, first match wins:
`<youtube_id>.<ext>`, `Y<youtube_id>.<ext>` (AudioSet's naming), then `<audiocap_id>.<ext>` for
any of the clip's rows, with `<ext>` one of wav, flac, ogg, mp3.

Problems name the CSV row (its line number in the file; the header is row 1).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from harness.data.errors import DataError, Problem
from harness.types import Sample

AUDIO_EXTENSIONS = ("wav", "flac", "ogg", "mp3")


def _rows(path: Path, required: list[str]):
    """(row number, row dict) per data row; DataError when the header lacks a column."""
    f = open(path, newline="", encoding="utf-8-sig")
    reader = csv.DictReader(f)
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        f.close()
        raise DataError(path, ["row 1: empty file (no CSV header)"])
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        f.close()
        raise DataError(path, [f"row 1: CSV header lacks column(s) {', '.join(missing)} (has {', '.join(header)})"])

    def gen():
        with f:
            row_start = reader.line_num + 1
            for row in reader:
                if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    row_start = reader.line_num + 1
                    continue  # a blank line
                yield row_start, row
                row_start = reader.line_num + 1
            if row_start == 2:
                raise DataError(path, ["row 2: no data rows after the header"])

    return gen()


def load_clotho(path: Path, audio_dir: Path | None = None) -> tuple[list[Sample], list[Problem]]:
    path = Path(path)
    rows = _rows(path, ["file_name", "caption_1"])
    if audio_dir is not None:
        folders = [Path(audio_dir)]
    else:
        folders = [path.parent]
        split = re.match(r"clotho_captions_(\w+)\.csv$", path.name)
        if split:
            folders.append(path.parent / split.group(1))
    samples: list[Sample] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for rowno, row in rows:
        name = (row.get("file_name") or "").strip()
        where = f"{path}: row {rowno}" + (f" ({name})" if name else "")
        if not name:
            problems.append(Problem(where, "empty file_name", None, "aac"))
            continue
        if name in seen:
            problems.append(Problem(where, f"duplicate file_name (first at row {seen[name]})", name, "aac"))
            continue
        seen[name] = rowno
        captions = [(row.get(k) or "").strip() for k in sorted(
            (k for k in row if k and re.fullmatch(r"caption_\d+", k)), key=lambda k: int(k.split("_")[1]))]
        empty = [f"caption_{i}" for i, c in enumerate(captions, start=1) if not c]
        if empty:
            problems.append(Problem(where, f"empty {', '.join(empty)}", name, "aac"))
            continue
        audio = next((f / name for f in folders if (f / name).is_file()), None)
        if audio is None:
            problems.append(Problem(where, f"audio file not found: {name} in {', '.join(map(str, folders))}",
                                    name, "aac", captions))
            continue
        samples.append(Sample(name, "aac", str(audio), captions, f"{path}:row {rowno}"))
    return samples, problems


def load_audiocaps(path: Path, audio_dir: Path | None = None) -> tuple[list[Sample], list[Problem]]:
    path = Path(path)
    folder = Path(audio_dir) if audio_dir is not None else path.parent
    clips: dict[str, dict] = {}  # youtube_id -> first row, captions, audiocap ids
    problems: list[Problem] = []
    for rowno, row in _rows(path, ["audiocap_id", "youtube_id", "start_time", "caption"]):
        yid = (row.get("youtube_id") or "").strip()
        caption = (row.get("caption") or "").strip()
        where = f"{path}: row {rowno}" + (f" ({yid})" if yid else "")
        if not yid:
            problems.append(Problem(where, "empty youtube_id", None, "aac"))
            continue
        if not caption:
            problems.append(Problem(where, "empty caption", yid, "aac"))
            continue
        clip = clips.setdefault(yid, {"row": rowno, "captions": [], "ids": []})
        clip["captions"].append(caption)
        clip["ids"].append((row.get("audiocap_id") or "").strip())
    samples: list[Sample] = []
    for yid, clip in clips.items():
        names = [yid, f"Y{yid}", *[i for i in clip["ids"] if i]]
        audio = next((folder / f"{n}.{ext}" for n in names for ext in AUDIO_EXTENSIONS
                      if (folder / f"{n}.{ext}").is_file()), None)
        if audio is None:
            problems.append(Problem(f"{path}: row {clip['row']} ({yid})",
                                    f"audio file not found: {yid}.wav|flac|ogg|mp3 (or Y{yid}.* or "
                                    f"<audiocap_id>.*) in {folder}", yid, "aac", clip["captions"]))
            continue
        samples.append(Sample(yid, "aac", str(audio), clip["captions"], f"{path}:row {clip['row']}"))
    return samples, problems
