"""Loaders of the public audio-question benchmarks: MMAU (`--format mmau`) and AIR-Bench (`--format airbench`).

MMAU: a JSON list of `{"id", "audio_id", "question", "choices", "answer", "task", "difficulty"}`,
with `audio_id` relative to the JSON's folder; every entry is suite `mcq`, and its `task` (sound,
music, speech) is the category accuracy is also reported by.

AIR-Bench: `Foundation/Foundation_meta.json` or `Chat/Chat_meta.json`, a JSON list of
`{"uniq_id", "path", "task_name", "dataset_name", "question", "answer_gt"}`, with the audio at
`<meta folder>/<task_name>_<dataset_name>/<path>` (Audio_Grounding's as .flac). Foundation entries
(`choice_a` ... `choice_d`) are suite `mcq`, categorised by `task_name`; Chat entries are open
questions, suite `qa`, judged against `answer_gt`.

Every entry is checked before any model loads; each problem names its index, JSON line and id.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from harness.data.annotation import array_lines, read_json_file
from harness.data.errors import DataError, Problem
from harness.data.questions import check_question
from harness.types import Sample

CHOICE_KEYS = ("choice_a", "choice_b", "choice_c", "choice_d")


def _read_list(path: Path) -> tuple[list, list[int | None]]:
    """The top-level JSON list and the line each element starts on."""
    entries, text = read_json_file(path)
    if not isinstance(entries, list):
        raise DataError(Path(path), ["top level must be a JSON list of entries"])
    lines = array_lines(text, len(text) - len(text.lstrip()))
    return entries, lines if lines is not None and len(lines) == len(entries) else [None] * len(entries)


def _where(index: int, line: int | None, sample_id) -> str:
    parts = [f"line {line}" if line else None, f"id {sample_id!r}" if sample_id else None]
    named = ", ".join(p for p in parts if p)
    return f"[{index}]" + (f" ({named})" if named else "")


def load_mmau(path: Path, audio_root: Path | None = None) -> tuple[list[Sample], list[Problem]]:
    entries, lines = _read_list(path)
    root = Path(audio_root) if audio_root else Path(path).parent
    ids = Counter(str(e.get("id")) for e in entries if isinstance(e, dict))
    samples, problems = [], []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(Problem(_where(index, lines[index], None), "not an object"))
            continue
        sample_id = entry.get("id")
        where = _where(index, lines[index], sample_id)
        missing = [k for k in ("id", "audio_id", "question", "choices", "answer") if entry.get(k) in (None, "", [])]
        if missing:
            problems.append(Problem(where, f"missing field(s) {', '.join(missing)}", _sid(sample_id), "mcq"))
            continue
        fields = {"question": entry["question"], "choices": entry["choices"], "answer": entry["answer"],
                  "category": entry.get("task") if isinstance(entry.get("task"), str) else None}
        sample, problem = _sample(where, str(sample_id), "mcq", fields, root / str(entry["audio_id"]),
                                  ids[str(sample_id)], f"{path}:{lines[index] or where}")
        (samples if sample else problems).append(sample or problem)
    return samples, problems


def load_airbench(path: Path, audio_root: Path | None = None) -> tuple[list[Sample], list[Problem]]:
    entries, lines = _read_list(path)
    root = Path(audio_root) if audio_root else Path(path).parent
    ids = Counter(str(e.get("uniq_id")) for e in entries if isinstance(e, dict))
    samples, problems = [], []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(Problem(_where(index, lines[index], None), "not an object"))
            continue
        sample_id = entry.get("uniq_id")
        where = _where(index, lines[index], sample_id)
        suite = "mcq" if any(k in entry for k in CHOICE_KEYS) else "qa"
        required = ("uniq_id", "path", "task_name", "dataset_name", "question", "answer_gt")
        missing = [k for k in required if entry.get(k) in (None, "")]
        if missing:
            problems.append(Problem(where, f"missing field(s) {', '.join(missing)}", _sid(sample_id), suite))
            continue
        fields = {"question": entry["question"], "answer": entry["answer_gt"], "category": str(entry["task_name"])}
        if suite == "mcq":  # empty trailing choices (C, D) are absent choices
            fields["choices"] = [entry[k] for k in CHOICE_KEYS if isinstance(entry.get(k), str) and entry[k].strip()]
        audio = str(entry["path"])
        if entry["task_name"] == "Audio_Grounding":  # stored as .flac, named .wav in the meta file
            audio = str(Path(audio).with_suffix(".flac"))
        folder = root / f"{entry['task_name']}_{entry['dataset_name']}"
        sample, problem = _sample(where, str(sample_id), suite, fields, folder / audio, ids[str(sample_id)],
                                  f"{path}:{lines[index] or where}")
        (samples if sample else problems).append(sample or problem)
    return samples, problems


def _sid(value) -> str | None:
    return str(value) if value not in (None, "") else None


def _sample(where: str, sample_id: str, suite: str, fields: dict, audio: Path, count: int,
            source: str) -> tuple[Sample | None, Problem | None]:
    asked, wrong = check_question(fields, suite)
    references = [asked["answer"]] if asked else []
    if wrong:
        return None, Problem(where, "; ".join(wrong), sample_id, suite)
    if count > 1:
        return None, Problem(where, f"duplicate id (appears {count} times)", sample_id, suite, references)
    if not audio.is_file():
        return None, Problem(where, f"audio file not found: {audio}", sample_id, suite, references)
    return Sample(sample_id, suite, str(audio), references, source, **asked), None


def detect(path: Path) -> str | None:
    """"mmau" or "airbench" for a JSON list in one of those formats, else None."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    if {"audio_id", "choices"} <= set(first):
        return "mmau"
    if {"task_name", "dataset_name"} <= set(first):
        return "airbench"
    return None
