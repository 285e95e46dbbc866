"""Finding candidates by name: built-in configs, entry points, and TOML files given by path.

A candidate config names a *family* (the code that loads and runs a kind of model) plus its
options and recipe. Families and candidates from other packages arrive through the entry-point
groups below; built-ins are listed here as import strings so nothing heavy loads until used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CANDIDATE_GROUP = "lalm_bench.candidates"
FAMILY_GROUP = "lalm_bench.families"
BUILTIN_CONFIG_DIR = Path(__file__).resolve().parent.parent / "candidates" / "configs"
BUILTIN_FAMILIES = {
    "salmonn": "candidates.salmonn:SalmonnCandidate",
    "faster-whisper": "candidates.faster_whisper_asr:FasterWhisperCandidate",
    "whisper": "candidates.whisper_hf:WhisperCandidate",
    "pocketsphinx": "candidates.pocketsphinx_asr:PocketSphinxCandidate",
    "hf-audiolm": "candidates.hf_audiolm:HfAudioLMCandidate",
}


class RegistryError(Exception):
    """A candidate cannot be found or its config is wrong; the message says what to do."""


@dataclass
class CandidateSpec:
    """Everything needed to build a candidate in another process."""

    name: str
    family: str | None  # None for entry-point candidates that build themselves
    description: str = ""
    tasks: list[str] = field(default_factory=list)
    recipe: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # "builtin:<file>", "file:<path>" or "entry-point:<dist>"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load_object(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def spec_from_toml(path: Path, source: str | None = None) -> CandidateSpec:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"candidate file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise RegistryError(f"{path}: invalid TOML: {err}") from None
    if "family" not in doc:
        raise RegistryError(f"{path}: missing `family = \"...\"` (one of: {', '.join(family_names())})")
    recipe = doc.get("recipe", [])
    if isinstance(recipe, str):
        recipe = [recipe]
    return CandidateSpec(
        name=doc.get("name", path.stem),
        family=doc["family"],
        description=doc.get("description", ""),
        tasks=list(doc.get("tasks", [])),
        recipe=list(recipe),
        options=dict(doc.get("options", {})),
        source=source or f"file:{path}",
    )


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=group))


def family_names() -> list[str]:
    return sorted(set(BUILTIN_FAMILIES) | {ep.name for ep in _entry_points(FAMILY_GROUP)})


def builtin_specs() -> dict[str, CandidateSpec]:
    specs = {}
    for path in sorted(BUILTIN_CONFIG_DIR.glob("*.toml")):
        spec = spec_from_toml(path, source=f"builtin:{path.name}")
        specs[spec.name] = spec
    return specs


def _entry_point_spec(ep: metadata.EntryPoint) -> CandidateSpec:
    obj = ep.load()
    dist = ep.dist.name if ep.dist else "?"
    if isinstance(obj, CandidateSpec):
        obj.source = obj.source or f"entry-point:{dist}"
        return obj
    doc = (getattr(obj, "__doc__", "") or "").strip().splitlines()
    return CandidateSpec(
        name=ep.name,
        family=None,
        description=getattr(obj, "description", doc[0] if doc else ""),
        tasks=sorted(getattr(obj, "tasks", [])),
        options={"entry_point": ep.value},
        source=f"entry-point:{dist}",
    )


def all_specs() -> dict[str, CandidateSpec]:
    """Built-ins first; an installed plugin may not silently replace a built-in name."""
    specs = builtin_specs()
    for ep in _entry_points(CANDIDATE_GROUP):
        if ep.name in specs:
            continue
        specs[ep.name] = _entry_point_spec(ep)
    return specs


def resolve(name_or_path: str) -> CandidateSpec:
    """A registered name, or a path to a candidate TOML file."""
    if name_or_path.endswith(".toml") or Path(name_or_path).suffix == ".toml":
        return spec_from_toml(Path(name_or_path))
    specs = all_specs()
    if name_or_path not in specs:
        raise RegistryError(
            f"unknown candidate {name_or_path!r}; known: {', '.join(sorted(specs))} "
            "(or pass a path to a candidate .toml file)"
        )
    return specs[name_or_path]


def family_factory(name: str) -> Callable[[CandidateSpec], Any]:
    for ep in _entry_points(FAMILY_GROUP):
        if ep.name == name:
            return ep.load()
    if name in BUILTIN_FAMILIES:
        return _load_object(BUILTIN_FAMILIES[name])
    raise RegistryError(f"unknown candidate family {name!r}; known: {', '.join(family_names())}")


def build(spec: CandidateSpec):
    """Instantiates the candidate (cheap: weights load later, in `load`)."""
    if spec.family is None:
        factory = _load_object(spec.options["entry_point"])
        candidate = factory()
    else:
        candidate = family_factory(spec.family)(spec)
    candidate.name = spec.name
    return candidate
