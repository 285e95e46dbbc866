"""`bench.py export`: apply a candidate's recipe once and save a checkpoint that loads already
quantized, plus a candidate file that points at it.

It runs in the calling process: nothing is measured while exporting, so it needs no clean child
(the `pre_quantize` option runs it inside the unmeasured `prepare` child anyway). The model is
loaded on the CPU exactly as a measured run would load it (prepare, calibration, load), then the
family's `export` hook writes it. The folder appears only when complete: it is written under a
temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.candidate import Candidate, overrides
from harness.registry import build
from harness.spec import CandidateSpec

CANDIDATE_FILE = "candidate.toml"


class ExportFailed(Exception):
    """The candidate cannot be exported; the message says why and what to do."""


@dataclass
class ExportResult:
    out_dir: Path
    candidate_file: Path
    manifest: dict[str, Any]


def lalm_bench_version() -> str:
    try:
        return metadata.version("lalm-bench")
    except metadata.PackageNotFoundError:
        return "unknown"


def provenance_of(spec: CandidateSpec) -> dict[str, Any]:
    return {
        "source_candidate": spec.name,
        "source_family": spec.family,
        "source_recipe": list(spec.recipe),
        "source_options": dict(spec.options),
        "source": spec.source,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lalm_bench_version": lalm_bench_version(),
    }


def export_candidate(spec: CandidateSpec, out_dir: Path, name: str | None = None, data: Path | None = None) -> ExportResult:
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportFailed(f"{out_dir} exists and is not empty; pick a new folder or remove it")
    candidate = build(spec)
    if not overrides(candidate, "export"):
        raise ExportFailed(f"candidate {spec.name!r} (family {spec.family!r}) has no export hook; "
                           "the transformers families (whisper, salmonn) can be exported")
    if overrides(candidate, "prepare"):
        candidate.prepare()
    if candidate.needs_calibration():
        candidate.set_calibration(calibration_requests(candidate, data))
    candidate.preload()
    candidate.load("cpu")
    staging = out_dir.with_name(f"{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        manifest = candidate.export(staging, provenance_of(spec))
        toml_file = staging / CANDIDATE_FILE
        toml_file.write_text(candidate_toml(spec, name or f"{spec.name}-export", out_dir, manifest), encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        candidate.close()
    return ExportResult(out_dir, out_dir / CANDIDATE_FILE, manifest)


def calibration_requests(candidate: Candidate, data: Path | None) -> list:
    """A seeded sample of the readable clips of `data` (or of the demo data of the candidate's
    first task), as a measured run's calibration takes them from its first suite."""
    from harness.data.audio import load_audio
    from harness.data.calibration import pick_calibration
    from harness.data.loaders import load_data
    from harness.suites import SUITES
    from harness.types import Request

    task = sorted(candidate.tasks)[0]
    suite = SUITES[task]
    if data is None:
        if suite.demo_file is None:
            raise ExportFailed(f"this recipe needs calibration clips and suite {task!r} has no demo data; pass --data")
        data = suite.demo_file
    samples, _ = load_data(Path(data), None, None, None)
    picked = pick_calibration([s for s in samples if s.task == task], lambda s: load_audio(s.audio_path)[0])
    return [Request(s.sample_id, audio, task, suite.prompt, suite.max_new_tokens) for s, audio in picked]


def _toml_value(value: Any) -> str:
    """TOML for the plain values a candidate file holds (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def candidate_toml(spec: CandidateSpec, name: str, out_dir: Path, manifest: dict[str, Any]) -> str:
    options = {k: v for k, v in spec.options.items() if k not in ("model_path", "pre_quantize")}
    description = f"{spec.name} exported ({manifest.get('format')}): recipe {spec.recipe} baked in"
    lines = [
        f"# Written by `bench.py export`: {spec.name} with its recipe applied once; loads pre-quantized.",
        f"name = {_toml_value(name)}",
        f"family = {_toml_value(spec.family)}",
        f"description = {_toml_value(description)}",
        f"recipe = {_toml_value(manifest.get('runtime_recipe', []))}",
        "",
        "[options]",
        f"model_path = {_toml_value(str(out_dir))}",
        *(f"{k} = {_toml_value(v)}" for k, v in options.items()),
        "",
        "[provenance]",
        *(f"{k} = {_toml_value(v)}" for k, v in manifest.get("provenance", {}).items() if v is not None),
        f"export_format = {_toml_value(manifest.get('format'))}",
    ]
    return "\n".join(lines) + "\n"
