"""Hugging Face datasets: a folder written by `save_to_disk`, or parquet files, with an Audio column.

The parent reads only the metadata columns; the audio stays where it is stored. Each sample's
audio reference is a string the measured child resolves with `read_audio_bytes`:
`hf-disk:<folder>::<split>::<row>` (split empty for a plain Dataset) or `parquet:<file>::<row>`.
The stored bytes are decoded with soundfile, so torchcodec is not needed.

Columns used (first present wins):
- audio: the column whose feature is `Audio` (else one named `audio`);
- id: `testset_id`, `id`, `sample_id`, `audio_id`, `utt_id`, `key`, `file_name`, `segment_id`
  (else `<split>-<row>`, or `<file stem>-<row>` for parquet);
- task: a `task` column (annotation task names, e.g. `asr`, `audiocaption_v2`), else `aac` when
  caption columns exist and `asr` when a transcript column exists;
- references: `captions` (a list) or `caption_1..caption_N` or `caption` for captioning;
  `text`, `transcription`, `transcript`, `sentence`, `normalized_text` for speech.

Needs the optional `datasets` extra: `pip install lalm-bench[datasets]`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

from harness.data.errors import AudioError, DataError, Problem
from harness.suites import suite_for_task
from harness.types import Sample

INSTALL_HINT = "pip install lalm-bench[datasets]"
ID_COLUMNS = ("testset_id", "id", "sample_id", "audio_id", "utt_id", "key", "file_name", "segment_id")
TEXT_COLUMNS = ("text", "transcription", "transcript", "sentence", "normalized_text")


def _need(module: str, path: Path):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(path, [f"reading Hugging Face datasets needs the optional `datasets` extra: "
                                       f"{INSTALL_HINT}"]) from None


def _audio_column(names: list[str], hf_features: dict | None) -> str | None:
    for name, feature in (hf_features or {}).items():
        if isinstance(feature, dict) and feature.get("_type") == "Audio":
            return name
    return "audio" if "audio" in names else None


def _references(row: dict) -> tuple[str | None, list[str]]:
    """(inferred task, references) from whatever reference columns the row has."""
    if isinstance(row.get("captions"), list):
        return "aac", [str(c) for c in row["captions"] if c]
    numbered = sorted((k for k in row if re.fullmatch(r"caption_\d+", k)), key=lambda k: int(k.split("_")[1]))
    if numbered:
        return "aac", [str(row[k]) for k in numbered if row[k]]
    if row.get("caption"):
        return "aac", [str(row["caption"])]
    for col in TEXT_COLUMNS:
        if col in row:
            return "asr", [str(row[col])] if row[col] else []
    return None, []


def _samples(rows: list[dict], refs: list[str], where: list[str], default_ids: list[str],
             source: Path) -> tuple[list[Sample], list[Problem]]:
    id_col = next((c for c in ID_COLUMNS if rows and c in rows[0]), None)
    ids = [str(r[id_col]) if id_col and r.get(id_col) not in (None, "") else d for r, d in zip(rows, default_ids,
                                                                                               strict=True)]
    if not rows:
        raise DataError(source, ["holds no rows"])
    counts = Counter(ids)
    samples, problems = [], []
    for row, ref, loc, sid in zip(rows, refs, where, ids, strict=True):
        inferred, references = _references(row)
        task = row.get("task") or inferred
        suite = suite_for_task(task) if task else None
        if counts[sid] > 1:
            problems.append(Problem(f"{loc} ({sid})", f"duplicate id (appears {counts[sid]} times)", sid,
                                    suite.name if suite else None))
        elif suite is None:
            what = f"unknown task {task!r}" if task else (
                f"no task column and no reference column (one of captions, caption_N, caption, "
                f"{', '.join(TEXT_COLUMNS)}); columns: {', '.join(row)}")
            problems.append(Problem(f"{loc} ({sid})", what, sid))
        else:
            samples.append(Sample(sid, suite.name, ref, references, loc))
    return samples, problems


def load_hf(path: Path) -> tuple[list[Sample], list[Problem]]:
    path = Path(path)
    if path.is_file() or not any((path / n).is_file() for n in ("dataset_dict.json", "state.json")):
        return _load_parquet(path)
    return _load_disk(path)


def _load_disk(path: Path) -> tuple[list[Sample], list[Problem]]:
    datasets = _need("datasets", path)
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as err:
        raise DataError(path, [f"cannot load with datasets.load_from_disk: {type(err).__name__}: {err}"]) from None
    splits = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"": loaded}
    rows, refs, where, defaults = [], [], [], []
    for split, ds in splits.items():
        features = ds.features.to_dict() if hasattr(ds.features, "to_dict") else {}
        audio = _audio_column(list(ds.column_names), features)
        if audio is None:
            raise DataError(path, [f"split {split or '(single)'}: no Audio column (columns: {', '.join(ds.column_names)})"])
        meta = ds.remove_columns([audio]).to_list()
        for i, row in enumerate(meta):
            rows.append(row)
            refs.append(f"hf-disk:{path.resolve()}::{split}::{i}")
            where.append(f"{path}:{split + ':' if split else ''}row {i}")
            defaults.append(f"{split + '-' if split else ''}{i:06d}")
    return _samples(rows, refs, where, defaults, path)


def _parquet_audio_column(schema) -> str | None:
    meta = schema.metadata or {}
    features = None
    if b"huggingface" in meta:
        try:
            features = json.loads(meta[b"huggingface"]).get("info", {}).get("features")
        except ValueError:
            features = None
    found = _audio_column(schema.names, features)
    if found is None:  # an Audio column without metadata: a struct of bytes and path
        import pyarrow as pa

        for field in schema:
            if pa.types.is_struct(field.type) and {"bytes", "path"} <= {f.name for f in field.type}:
                return field.name
    return found


def _load_parquet(path: Path) -> tuple[list[Sample], list[Problem]]:
    pq = _need("pyarrow.parquet", path)
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    if not files:
        raise DataError(path, ["no parquet files found"])
    rows, refs, where, defaults = [], [], [], []
    for file in files:
        try:
            pf = pq.ParquetFile(file)
        except Exception as err:
            raise DataError(file, [f"cannot read parquet: {type(err).__name__}: {err}"]) from None
        audio = _parquet_audio_column(pf.schema_arrow)
        if audio is None:
            raise DataError(file, [f"no Audio column (columns: {', '.join(pf.schema_arrow.names)})"])
        meta = pf.read(columns=[n for n in pf.schema_arrow.names if n != audio]).to_pylist()
        for i, row in enumerate(meta):
            rows.append(row)
            refs.append(f"parquet:{file.resolve()}::{i}")
            where.append(f"{file}:row {i}")
            defaults.append(f"{file.stem}-{i:06d}" if len(files) > 1 else f"{i:06d}")
    return _samples(rows, refs, where, defaults, path)


# --- the child side: one clip's bytes from a reference ---------------------------------------


@lru_cache(maxsize=4)
def _disk_split(folder: str, split: str):
    import datasets

    loaded = datasets.load_from_disk(folder)  # memory-mapped: nothing is read until asked
    ds = loaded[split] if split else loaded
    audio = _audio_column(list(ds.column_names), ds.features.to_dict())
    return ds.select_columns([audio]).with_format("arrow"), audio


@lru_cache(maxsize=4)
def _parquet_file(file: str):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(file)
    starts, total = [], 0
    for i in range(pf.metadata.num_row_groups):
        starts.append(total)
        total += pf.metadata.row_group(i).num_rows
    return pf, _parquet_audio_column(pf.schema_arrow), starts, total


@lru_cache(maxsize=1)  # only the current row group is held: memory stays one group's audio
def _row_group(file: str, index: int):
    pf, audio, _, _ = _parquet_file(file)
    return pf.read_row_group(index, columns=[audio]).column(0)


def read_audio_bytes(ref: str) -> bytes:
    """The encoded audio file stored for `ref` (`hf-disk:...` or `parquet:...`)."""
    kind, _, rest = ref.partition(":")
    parts = rest.split("::")
    try:
        row = int(parts[-1])
    except ValueError:
        raise AudioError(f"malformed audio reference {ref!r}") from None
    if kind == "hf-disk" and len(parts) == 3:
        ds, audio = _disk_split(parts[0], parts[1])
        if not 0 <= row < len(ds):
            raise AudioError(f"audio reference {ref!r}: row out of range (dataset has {len(ds)} rows)")
        value = ds[row].column(audio)[0].as_py()
        base = Path(parts[0])
    elif kind == "parquet" and len(parts) == 2:
        import bisect

        _, _, starts, total = _parquet_file(parts[0])
        if not 0 <= row < total:
            raise AudioError(f"audio reference {ref!r}: row out of range (file has {total} rows)")
        group = bisect.bisect_right(starts, row) - 1
        value = _row_group(parts[0], group)[row - starts[group]].as_py()
        base = Path(parts[0]).parent
    else:
        raise AudioError(f"malformed audio reference {ref!r}")
    if value and value.get("bytes"):
        return value["bytes"]
    if value and value.get("path"):  # stored as a path only: read the file itself
        file = Path(value["path"])
        file = file if file.is_absolute() else base / file
        if file.is_file():
            return file.read_bytes()
        raise AudioError(f"audio reference {ref!r}: no stored bytes and file {file} not found")
    raise AudioError(f"audio reference {ref!r}: the audio cell is empty")
