"""Reading evaluation data: SALMONN-style annotation JSON and the audio it points at.

The other formats (LibriSpeech, Clotho, AudioCaps, Hugging Face datasets) live in
`harness.loaders`; every loader yields the same `Sample`.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np

from harness.suites import suite_for_task
from harness.types import SAMPLE_RATE, Sample


class DataError(Exception):
    """A data file is unusable; `problems` lists every issue found, each naming its sample."""

    def __init__(self, path: Path, problems: list):
        self.path = path
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{path}: {len(problems)} problem(s):\n  {shown}{more}")


class AudioError(Exception):
    """One sample's audio cannot be used; the message is the one-line reason."""


@dataclass
class Problem:
    """One invalid sample: where it is, why, and the suite it would have belonged to."""

    where: str
    reason: str
    sample_id: str | None = None
    suite: str | None = None
    # Its references where the file gives them: a skipped sample is scored as an empty prediction.
    references: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def _entry_lines(text: str) -> list[int] | None:
    """Line number of each element of the top-level "annotation" array, or None if not found.

    The json module keeps no positions, so the array is walked with `raw_decode`, which gives
    the offset where each element starts.
    """
    decoder = json.JSONDecoder()
    ws = re.compile(r"\s*")

    def skip(pos: int) -> int:
        return ws.match(text, pos).end()

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
            if key == "annotation" and text[pos] == "[":
                lines, pos = [], skip(pos + 1)
                while text[pos] != "]":
                    lines.append(text.count("\n", 0, pos) + 1)
                    _, pos = decoder.raw_decode(text, pos)
                    pos = skip(pos)
                    if text[pos] == ",":
                        pos = skip(pos + 1)
                return lines
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
    if not path.is_file():
        raise DataError(path, ["file not found"])
    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text)
    except UnicodeDecodeError as err:
        raise DataError(path, [f"not UTF-8 text: {err}"]) from None
    except json.JSONDecodeError as err:
        raise DataError(path, [f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"]) from None
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
        references = [str(r) for r in (refs or ([entry["text"]] if entry.get("text") else []))]
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
        samples.append(Sample(sample_id, suite.name, str(audio), references, source))
    return samples, problems


def load_audio(path: str) -> tuple[np.ndarray, int]:
    """Any libsndfile format -> (float32 mono at 16 kHz, original sample rate).

    `path` is a file path, or a reference into a Hugging Face dataset made by
    `harness.loaders.hf` (`hf-disk:DIR::SPLIT::ROW` or `parquet:FILE::ROW`), whose stored
    bytes are decoded with soundfile (no torchcodec needed). A WAV or FLAC file that holds fewer
    frames than its header declares is refused as truncated, never scored as a shorter clip.
    """
    source = path
    if path.startswith(("hf-disk:", "parquet:")):
        from harness.loaders.hf import read_audio_bytes

        try:
            source = io.BytesIO(read_audio_bytes(path))
        except AudioError:
            raise
        except Exception as err:
            raise AudioError(f"cannot read audio {path}: {type(err).__name__}: {err}") from None
    return _decode(source, path)


def load_audio_bytes(data: bytes, label: str) -> tuple[np.ndarray, int]:
    """The same for encoded audio held in memory (e.g. the base64 audio of an HTTP request);
    `label` names it in error messages."""
    return _decode(io.BytesIO(data), label)


def _decode(source, label: str) -> tuple[np.ndarray, int]:
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        handle = sf.SoundFile(source)
    except Exception as err:  # soundfile raises several types for unreadable files
        raise AudioError(f"cannot decode audio {label}: {err}") from None
    blocks, failure = [], None
    with handle:
        rate, declared = handle.samplerate, _declared_frames(source, handle)
        while True:  # block by block, so a file that breaks half-way tells how much it held
            try:
                block = handle.read(8192, dtype="float32", always_2d=True)
            except Exception as err:
                failure = err
                break
            if not len(block):
                break
            blocks.append(block)
    data = np.concatenate(blocks) if blocks else np.zeros((0, 1), dtype=np.float32)
    if declared is not None and data.shape[0] < declared:
        raise AudioError(f"audio file {label} is truncated: header declares {declared} frames, file holds {data.shape[0]}")
    if failure is not None:
        raise AudioError(f"cannot decode audio {label}: {failure}")
    if data.shape[0] == 0:
        raise AudioError(f"audio file {label} holds no samples")
    mono = data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise AudioError(f"audio file {label} contains NaN or infinite samples")
    if rate != SAMPLE_RATE:
        # scipy's polyphase resampler (Kaiser-windowed FIR), anti-aliased
        g = gcd(rate, SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def _declared_frames(source, handle) -> int | None:
    """Frames the file's header promises, where the format states it: FLAC's STREAMINFO (which
    libsndfile reports as is), WAV's data chunk size (libsndfile shortens it to what the file
    holds, so the header is read here). None when the header does not say."""
    if handle.format == "FLAC":
        return handle.frames or None
    if handle.format in ("WAV", "WAVEX"):
        return _wav_declared_frames(source)
    return None


def _wav_declared_frames(source) -> int | None:
    """Walks the RIFF chunks to the `data` chunk: its declared size / block align. None for
    streaming writers' placeholder sizes (0 or 0xFFFFFFFF) and for what is not plain RIFF."""
    import struct

    if isinstance(source, io.BytesIO):
        head = source.getvalue()[: 1 << 16]
    else:
        with open(source, "rb") as f:
            head = f.read(1 << 16)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, block_align = 12, None
    while pos + 8 <= len(head):
        chunk, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if chunk == b"fmt " and pos + 22 <= len(head):
            block_align = struct.unpack("<H", head[pos + 20:pos + 22])[0]
        if chunk == b"data":
            if not block_align or size in (0, 0xFFFFFFFF):
                return None
            return size // block_align
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return None


def prime_audio_decoding() -> None:
    """Decodes and resamples one short synthetic clip, so the imports (scipy.signal is ~70 MB)
    and first-use allocations of the audio path happen before a measurement baseline."""
    import soundfile as sf
    from scipy.signal import resample_poly  # noqa: F401 (imported for its side effect: loaded now)

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(11_025, dtype=np.float32), 22_050, format="WAV", subtype="PCM_16")
    buffer.seek(0)
    _decode(buffer, "<primer>")


def audio_duration_s(path: str) -> float | None:
    """A clip's duration from its header (nothing decoded), or None when it cannot be read (the
    sample then fails with its reason when it runs)."""
    import soundfile as sf

    try:
        source = path
        if path.startswith(("hf-disk:", "parquet:")):
            from harness.loaders.hf import read_audio_bytes

            source = io.BytesIO(read_audio_bytes(path))
        info = sf.info(source)
    except Exception:  # unreadable here means unreadable at run time too, where it is reported
        return None
    return info.frames / info.samplerate if info.samplerate and info.frames > 0 else None


def dataset_hash(samples: list[Sample]) -> str:
    """First 16 hex digits of sha256 over the sorted sample ids and their references.

    Two runs with the same hash were scored on the same items against the same references,
    whatever file format or audio paths they were read from.
    """
    import hashlib

    digest = hashlib.sha256()
    for sample in sorted(samples, key=lambda s: s.sample_id):
        digest.update(json.dumps([sample.sample_id, list(sample.references)], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]
