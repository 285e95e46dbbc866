"""SALMONN-style annotation JSON: samples with their audio paths and references, every problem reported at once."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from harness.data.errors import DataError, Problem
from harness.data.questions import check_question
from harness.suites import suite_for_task
from harness.types import Sample


def read_json_file(path: Path) -> tuple[object, str]:
    """The parsed document and its text; DataError names the file when it is missing, not UTF-8
    or not JSON (with the line and column)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, ["file not found"])
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text), text
    except UnicodeDecodeError as err:
        raise DataError(path, [f"not UTF-8 text: {err}"]) from None
    except json.JSONDecodeError as err:
        raise DataError(path, [f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"]) from None


_WS = re.compile(r"\s*")


def array_lines(text: str, pos: int) -> list[int] | None:
    """Line number of each element of the JSON array that starts at `pos` (its "["), or None.

    The json module keeps no positions, so the array is walked with `raw_decode`, which gives
    the offset where each element starts.
    """
    decoder = json.JSONDecoder()
    try:
        if text[pos] != "[":
            return None
        lines, pos = [], _WS.match(text, pos + 1).end()
        while text[pos] != "]":
            lines.append(text.count("\n", 0, pos) + 1)
            _, pos = decoder.raw_decode(text, pos)
            pos = _WS.match(text, pos).end()
            if text[pos] == ",":
                pos = _WS.match(text, pos + 1).end()
        return lines
    except (IndexError, ValueError):
        return None


def _entry_lines(text: str) -> list[int] | None:
    """Line number of each element of the top-level "annotation" array, or None if not found."""
    decoder = json.JSONDecoder()

    def skip(pos: int) -> int:
        return _WS.match(text, pos).end()

    try:
        pos = skip(0)
        if text[pos] != "{":
            return None
        pos = skip(pos + 1)
        while text[pos] != "}":
            key, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            if text[pos] != ":":
                return None
            pos = skip(pos + 1)
            if key == "annotation":
                return array_lines(text, pos)
            _, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            if text[pos] == ",":
                pos = skip(pos + 1)
    except (IndexError, ValueError):
        return None
    return None


def load_annotation_json(path: Path, audio_root: Path | None = None) -> tuple[list[Sample], list[Problem]]:
    """Reads and checks the whole file before anything runs.

    Returns the valid samples and one Problem per invalid entry, each naming the entry's index,
    its JSON line and its sample id; raises DataError when the file itself is unusable
    (missing, not JSON, wrong shape).
    """
    path = Path(path)
    doc, text = read_json_file(path)
    entries = doc.get("annotation") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise DataError(path, ['top level must be an object {"annotation": [ ... ]}'])
    lines = _entry_lines(text)
    if lines is None or len(lines) != len(entries):
        lines = [None] * len(entries)

    root = Path(audio_root) if audio_root else path.parent
    problems: list[Problem] = []
    samples: list[Sample] = []
    ids = Counter(e["testset_id"] for e in entries if isinstance(e, dict) and isinstance(e.get("testset_id"), str))
    for index, entry in enumerate(entries):
        line = f"line {lines[index]}" if lines[index] else None
        where = f"annotation[{index}]" + (f" ({line})" if line else "")
        if not isinstance(entry, dict):
            problems.append(Problem(where, "not an object"))
            continue
        sample_id = entry.get("testset_id")
        if sample_id:
            where = f"annotation[{index}] ({', '.join(x for x in (line, f'testset_id {sample_id!r}') if x)})"
        task = entry.get("task")
        suite = suite_for_task(task) if isinstance(task, str) and task else None
        suite_name = suite.name if suite else None
        missing = [k for k in ("testset_id", "path", "task") if not entry.get(k)]
        if missing:
            problems.append(Problem(where, f"missing field(s) {', '.join(missing)}", sample_id, suite_name))
            continue
        wrong = [k for k in ("testset_id", "path", "task") if not isinstance(entry[k], str)]
        if "text" in entry and entry["text"] is not None and not isinstance(entry["text"], str):
            wrong.append("text")
        refs = entry.get("references")
        if refs is not None and not (isinstance(refs, list) and all(isinstance(r, str) for r in refs)):
            wrong.append("references (must be a list of strings)")
        if wrong:
            problems.append(Problem(where, f"wrong type for field(s) {', '.join(wrong)}",
                                    str(sample_id), suite_name))
            continue
        asked, wrong_question = check_question(entry, suite_name)
        if wrong_question:
            problems.append(Problem(where, "; ".join(wrong_question), str(sample_id), suite_name))
            continue
        references = [str(r) for r in (refs or ([entry["text"]] if entry.get("text") else []))]
        if asked.get("answer") and not references:  # mcq: the right choice; qa: the reference answer
            references = [asked["answer"]]
        if ids[sample_id] > 1:
            problems.append(Problem(where, f"duplicate testset_id (appears {ids[sample_id]} times)", sample_id,
                                    suite_name, references))
            continue
        if suite is None:
            problems.append(Problem(where, f"unknown task {task!r}", sample_id))
            continue
        audio = Path(entry["path"])
        audio = audio if audio.is_absolute() else root / audio
        if not audio.is_file():
            problems.append(Problem(where, f"audio file not found: {audio}", sample_id, suite_name, references))
            continue
        source = f"{path}:{lines[index]}" if lines[index] else f"{path}:{where}"
        samples.append(Sample(sample_id, suite.name, str(audio), references, source, **asked))
    return samples, problems


def dataset_hash(samples: list[Sample]) -> str:
    """First 16 hex digits of sha256 over the sorted sample ids and their references.

    Two runs with the same hash were scored on the same items against the same references (and,
    for per-sample questions, the same questions and choices), whatever file format or audio paths
    they were read from.
    """
    import hashlib

    digest = hashlib.sha256()
    for sample in sorted(samples, key=lambda s: s.sample_id):
        item = [sample.sample_id, list(sample.references)]
        if getattr(sample, "question", None) is not None:  # the question is part of the item (suites mcq, qa)
            item += [sample.question, sample.choices]
        digest.update(json.dumps(item, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]
