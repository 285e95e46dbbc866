"""Finding candidates by name: built-in configs, entry points, and TOML files given by path.

A candidate config names a *family* (the code that loads and runs a kind of model) plus its
options and recipe. Families and candidates from other packages arrive through the entry-point
groups below; built-ins are listed here as import strings so nothing heavy loads until used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.candidate import Candidate
from harness.options import OptionsError, parse_options, unknown_keys_message
from harness.spec import CandidateSpec, read_toml

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

CANDIDATE_GROUP = "lalm_bench.candidates"
# The top-level keys of a candidate TOML file; any other key is an error (a typo must not run).
TOML_KEYS = ("name", "family", "description", "tasks", "recipe", "options", "provenance")
FAMILY_GROUP = "lalm_bench.families"
BUILTIN_CONFIG_DIR = Path(__file__).resolve().parent.parent / "candidates" / "configs"
BUILTIN_FAMILIES = {
    "salmonn": "candidates.families.salmonn:SalmonnCandidate",
    "faster-whisper": "candidates.families.faster_whisper_asr:FasterWhisperCandidate",
    "whisper": "candidates.families.whisper_hf:WhisperCandidate",
    "pocketsphinx": "candidates.families.pocketsphinx_asr:PocketSphinxCandidate",
    "hf-audiolm": "candidates.families.hf_audiolm:HfAudioLMCandidate",
    "voxtral": "candidates.families.voxtral:VoxtralCandidate",
    "qwen3-asr": "candidates.families.qwen3_asr:Qwen3AsrCandidate",
    "granite-speech": "candidates.families.granite_speech:GraniteSpeechCandidate",
    "null": "candidates.families.null:NullCandidate",
    "openai": "candidates.families.openai_family:OpenAICandidate",
    "salmonn-original": "candidates.families.salmonn_original:SalmonnOriginalCandidate",
}
# Config files that are not candidate TOMLs, by suffix: the organisers' SALMONN eval YAML.
CONFIG_READERS = {".yaml": "candidates.families.salmonn_yaml:spec_from_yaml",
                  ".yml": "candidates.families.salmonn_yaml:spec_from_yaml"}


class RegistryError(Exception):
    """A candidate cannot be found or its config is wrong; the message says what to do."""




def _load_object(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj




def spec_from_toml(path: Path, source: str | None = None, check_options: bool = True) -> CandidateSpec:
    """Reads a candidate file; `check_options=False` skips the family's option check, which imports
    the family module (seconds for transformers families), for callers that only need its name."""
    path = Path(path)
    doc = read_toml(path, RegistryError, "candidate file")
    problems = []  # every problem of the file at once: a typo must not hide the next one
    unknown = sorted(set(doc) - set(TOML_KEYS))
    if unknown:
        problems.append(unknown_keys_message("", "top-level key(s)", unknown, list(TOML_KEYS)).lstrip(": "))
    recipe = doc.get("recipe", [])
    recipe = [recipe] if isinstance(recipe, str) else recipe
    for key, ok in (
        ("recipe", isinstance(recipe, list) and all(isinstance(s, str) for s in recipe)),
        ("tasks", isinstance(doc.get("tasks", []), list)),
        ("options", isinstance(doc.get("options", {}), dict)),
        ("provenance", isinstance(doc.get("provenance", {}), dict)),
    ):
        if not ok:
            problems.append(f"`{key}` has the wrong shape ({doc[key]!r}); see docs/reference/candidate-files.md")
    if "family" not in doc:
        problems.append(f"missing `family = \"...\"` (one of: {', '.join(family_names())})")
    if problems[len(unknown) > 0:]:  # shape problems: the options cannot be checked yet
        raise RegistryError(f"{path}: " + "; ".join(problems))
    spec = CandidateSpec(
        name=doc.get("name", path.stem),
        family=doc["family"],
        description=doc.get("description", ""),
        tasks=list(doc.get("tasks", [])),
        recipe=list(recipe),
        options=dict(doc.get("options", {})),
        source=source or f"file:{path}",
        provenance=dict(doc.get("provenance", {})),
    )
    if check_options:
        problems += _option_problems(spec)
    if problems:
        raise RegistryError(f"{path}: " + "; ".join(problems))
    return spec


def _option_problems(spec: CandidateSpec) -> list[str]:
    """The family's option check, run while reading the file so all its typos are reported together."""
    try:
        factory = family_factory(spec.family)
    except RegistryError as err:
        return [str(err)]
    options_class = getattr(factory, "Options", None) if isinstance(factory, type) and issubclass(factory, Candidate) else None
    if options_class is None:
        return []  # a plugin factory function: its options are checked when it builds the candidate
    try:
        parse_options(options_class, spec.options, "[options]")
    except OptionsError as err:
        return [str(err)]
    return []


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=group))


def family_names() -> list[str]:
    return sorted(set(BUILTIN_FAMILIES) | {ep.name for ep in _entry_points(FAMILY_GROUP)})


def builtin_specs(check_options: bool = True) -> dict[str, CandidateSpec]:
    specs = {}
    for path in sorted(BUILTIN_CONFIG_DIR.glob("*.toml")):
        spec = spec_from_toml(path, source=f"builtin:{path.name}", check_options=check_options)
        specs[spec.name] = spec
    return specs


def _entry_point_spec(ep: metadata.EntryPoint) -> CandidateSpec:
    obj = ep.load()
    dist = ep.dist.name if ep.dist else "?"
    if isinstance(obj, CandidateSpec):
        obj.source = obj.source or f"entry-point:{dist}"
        return obj
    doc = (getattr(obj, "__doc__", "") or "").strip().splitlines()
    tasks = obj.tasks if isinstance(obj, type) and issubclass(obj, Candidate) else []
    return CandidateSpec(
        name=ep.name,
        family=None,
        description=doc[0] if doc else "",
        tasks=sorted(tasks),
        source=f"entry-point:{dist}",
        entry_point=ep.value,
    )


def shadowed_plugins() -> list[str]:
    """Plugins (candidates or families) that use a built-in name: they are not used, and say so."""
    builtin_candidates = {p.stem for p in BUILTIN_CONFIG_DIR.glob("*.toml")} | set(builtin_specs(check_options=False))
    lines = []
    for group, names, what in ((CANDIDATE_GROUP, builtin_candidates, "candidate"), (FAMILY_GROUP, BUILTIN_FAMILIES, "family")):
        for ep in _entry_points(group):
            if ep.name in names:
                dist = ep.dist.name if ep.dist else "?"
                lines.append(f"{what} {ep.name!r} from {dist} ({ep.value}) is not used: the built-in {what} of that name wins; "
                             "register it under another name")
    return lines


def all_specs(check_options: bool = True) -> dict[str, CandidateSpec]:
    """Built-ins first; an installed plugin never replaces a built-in name (`shadowed_plugins` says so)."""
    specs = builtin_specs(check_options)
    for ep in _entry_points(CANDIDATE_GROUP):
        if ep.name in specs:
            continue
        specs[ep.name] = _entry_point_spec(ep)
    return specs


def resolve(name_or_path: str) -> CandidateSpec:
    """A registered name, or a path to a candidate TOML file."""
    if name_or_path.endswith(".toml") or Path(name_or_path).suffix == ".toml":
        return spec_from_toml(Path(name_or_path))
    if Path(name_or_path).suffix in CONFIG_READERS:
        try:
            return _load_object(CONFIG_READERS[Path(name_or_path).suffix])(Path(name_or_path))
        except (ValueError, OSError) as err:
            raise RegistryError(str(err)) from None
    # Only the chosen candidate's family is imported to check its options: checking all of them
    # imported every family (Granite's processor alone is ~10 s) on each run and in each child.
    specs = all_specs(check_options=False)
    if name_or_path not in specs:
        raise RegistryError(
            f"unknown candidate {name_or_path!r}; known: {', '.join(sorted(specs))} "
            "(or pass a path to a candidate .toml file)"
        )
    spec = specs[name_or_path]
    if spec.source and spec.source.startswith("builtin:"):
        problems = _option_problems(spec)
        if problems:
            raise RegistryError(f"{BUILTIN_CONFIG_DIR / spec.source.removeprefix('builtin:')}: " + "; ".join(problems))
    return spec


def family_factory(name: str) -> Callable[[CandidateSpec], Any]:
    """Built-in families first, as for candidates: a plugin cannot replace one."""
    if name in BUILTIN_FAMILIES:
        return _load_object(BUILTIN_FAMILIES[name])
    for ep in _entry_points(FAMILY_GROUP):
        if ep.name == name:
            return ep.load()
    raise RegistryError(f"unknown candidate family {name!r}; known: {', '.join(family_names())}")


def build(spec: CandidateSpec) -> Candidate:
    """Instantiates the candidate (cheap: weights load later, in `load`); its options are checked here."""
    if spec.family is None:
        if not spec.entry_point:
            raise RegistryError(f"candidate {spec.name!r} names neither a family nor an entry point")
        factory = _load_object(spec.entry_point)
        candidate = factory()
        where = f"entry point {spec.name!r} ({spec.entry_point})"
    else:
        candidate = family_factory(spec.family)(spec)
        where = f"family {spec.family!r}"
    if not isinstance(candidate, Candidate):
        raise RegistryError(
            f"{where} built a {type(candidate).__name__}, which does not subclass harness.candidate.Candidate; "
            "subclass it (see docs/guides/writing-a-candidate.md)"
        )
    candidate.spec = spec
    candidate.name = spec.name
    return candidate
