"""Sweeps: a matrix of ordinary runs described by one TOML file.

    candidates x recipe variants x datasets x measurement protocols x thread counts

Each cell of the matrix is one ordinary run in the results folder (`bench.py run` with those
settings), tagged with a stable *cell key* (`sweep_cell` in job.json and run.json): a hash of the
candidate spec, the dataset and the run options. Running a sweep again looks the keys up in the
results folder: a cell whose run finished (`status: ok`) is skipped, one whose run was
interrupted (no run.json, or `partial`) is resumed from its predictions, one that failed is run
afresh. Where a cell runs is the executor's business (harness/sweep/executors): the cells, their keys
and the results folder look the same whichever ran them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data import DATA_FORMATS
from harness.options import OptionsError, parse_options, unknown_keys_message
from harness.registry import RegistryError, build, resolve
from harness.run.run_options import PATH_FIELDS, PROTOCOLS, RunOptions, option_problems
from harness.spec import CandidateSpec, read_toml

SWEEP_KEYS = ("name", "candidates", "recipes", "recipe_mode", "variants", "datasets", "protocols", "threads", "options")
VARIANT_KEYS = ("base", "recipes", "mode")
DATASET_KEYS = ("path", "format", "audio_dir", "audio_root")
RECIPE_MODES = ("append", "replace")
# RunOptions fields a sweep sets per cell (the matrix axes) or itself; every other field is a
# run option the `[options]` table may set for all cells.
NOT_OPTIONS = ("candidate", "data", "data_format", "audio_dir", "audio_root", "results", "protocol", "threads",
               "progress", "sweep_cell")


class SweepError(Exception):
    """A sweep file that cannot run as written; the message names the file and the key."""


@dataclass(frozen=True)
class Dataset:
    """One dataset axis entry; `path` None is the embedded demo data."""

    path: str | None = None
    format: str | None = None
    audio_dir: str | None = None
    audio_root: str | None = None

    @property
    def label(self) -> str:
        return "demo" if self.path is None else Path(self.path).name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Cell:
    """One run of the matrix. `options` holds the `[options]` run options (JSON-shaped)."""

    spec: CandidateSpec
    dataset: Dataset
    protocol: str
    threads: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable across sweeps and machines: what is run, on what, how (not where, not which file)."""
        identity = {
            "candidate": {k: v for k, v in self.spec.to_dict().items() if k not in ("description", "source")},
            "data": self.dataset.to_dict(),
            "protocol": self.protocol,
            "threads": self.threads,
            "options": self.options,
        }
        text = json.dumps(identity, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @property
    def label(self) -> str:
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"{self.spec.name} · {self.dataset.label} · {self.protocol} · {threads}"

    def run_options(self, results: Path, progress: bool = True) -> RunOptions:
        path_fields = PATH_FIELDS
        options = {k: Path(v) if k in path_fields and v is not None else v for k, v in self.options.items()}
        d = self.dataset
        return RunOptions(
            candidate=self.spec.name,
            data=Path(d.path) if d.path else None,
            data_format=d.format,
            audio_dir=Path(d.audio_dir) if d.audio_dir else None,
            audio_root=Path(d.audio_root) if d.audio_root else None,
            protocol=self.protocol,
            threads=self.threads,
            results=Path(results),
            progress=progress,
            sweep_cell=self.key,
            **options,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "dataset": self.dataset.to_dict(), "protocol": self.protocol,
                "threads": self.threads, "options": self.options}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        return cls(CandidateSpec(**data["spec"]), Dataset(**data["dataset"]), data["protocol"], data["threads"],
                   dict(data["options"]))


@dataclass
class Sweep:
    name: str
    path: Path
    cells: list[Cell]


def _option_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(RunOptions) if f.name not in NOT_OPTIONS]


def _options_class() -> type:
    """A dataclass of the run options a sweep may set, made from RunOptions so new run options
    (added to `bench.py run`) are accepted here without a second list to keep in step."""
    hints = typing.get_type_hints(RunOptions)
    fields = []
    for f in _option_fields():
        default = f.default if f.default is not dataclasses.MISSING else None
        fields.append((f.name, hints[f.name], field(default=default)))
    return dataclasses.make_dataclass("SweepRunOptions", fields)


# --- reading a sweep file -------------------------------------------------------------------


def load_sweep(path: Path, check_candidates: bool = True) -> Sweep:
    """Reads and checks the whole file: every problem is reported at once, before anything runs.

    `check_candidates` builds each candidate (cheap: no weights) so that a recipe step that does
    not parse, or a family's option typo, fails here rather than in the middle of the sweep.
    """
    path = Path(path)
    doc = read_toml(path, SweepError, "sweep file")
    base_dir = path.resolve().parent
    problems: list[str] = []
    unknown = sorted(set(doc) - set(SWEEP_KEYS))
    if unknown:
        problems.append(unknown_keys_message("", "top-level key(s)", unknown, list(SWEEP_KEYS)).lstrip(": "))

    specs = _candidate_specs(doc, base_dir, problems)
    datasets = [_dataset(entry, i, base_dir, problems) for i, entry in enumerate(_list(doc, "datasets", ["demo"], problems))]
    protocols = _list(doc, "protocols", ["default"], problems)
    for protocol in protocols:
        if protocol not in PROTOCOLS:
            problems.append(f"protocols: unknown measurement protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    threads = _list(doc, "threads", [1], problems)
    for n in threads:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            problems.append(f"threads: {n!r} is not a positive whole number")
    options = _run_options(doc.get("options", {}), base_dir, problems)
    if check_candidates:
        for spec in specs:
            try:
                build(spec)
            except (RegistryError, ValueError, ImportError) as err:
                problems.append(f"candidate {spec.name!r}: {err}")
    if problems:
        raise SweepError(f"{path}: " + "\n  ".join(["problem(s):", *problems]))

    cells, seen = [], {}
    for spec in specs:
        for dataset in datasets:
            for protocol in protocols:
                for n in threads:
                    cell = Cell(spec, dataset, protocol, n, options)
                    if cell.key not in seen:  # the same variant listed twice runs once
                        seen[cell.key] = cell
                        cells.append(cell)
    if not cells:
        raise SweepError(f"{path}: the matrix is empty; list at least one candidate in `candidates` or [[variants]]")
    return Sweep(name=str(doc.get("name", path.stem)), path=path, cells=cells)


def _list(doc: dict, key: str, default: list, problems: list[str]) -> list:
    value = doc.get(key, default)
    if not isinstance(value, list) or not value:
        problems.append(f"`{key}` must be a non-empty list, got {value!r}")
        return []
    return value


def _resolve_candidate(name: str, base_dir: Path) -> CandidateSpec:
    if name.endswith((".toml", ".yaml", ".yml")) and not Path(name).is_absolute():
        name = str(base_dir / name)  # candidate files (and SALMONN eval YAMLs) are relative to the sweep file
    return resolve(name)


def _candidate_specs(doc: dict, base_dir: Path, problems: list[str]) -> list[CandidateSpec]:
    """`candidates` x top-level `recipes`, then each [[variants]] table's base x its recipes."""
    groups: list[tuple[str, list, list, str]] = []  # (where, bases, recipes, mode)
    if "candidates" in doc:
        recipes = doc.get("recipes", [""])
        groups.append(("candidates", _list(doc, "candidates", [], problems), recipes, doc.get("recipe_mode", "append")))
    elif "recipes" in doc or "recipe_mode" in doc:
        problems.append("`recipes` and `recipe_mode` vary the `candidates`; add `candidates = [...]`")
    variants = doc.get("variants", [])
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        problems.append("`variants` must be tables: [[variants]] with base = \"NAME\" and recipes = [...]")
        variants = []
    for i, table in enumerate(variants):
        where = f"variants[{i}]"
        unknown = sorted(set(table) - set(VARIANT_KEYS))
        if unknown:
            problems.append(unknown_keys_message(where, "key(s)", unknown, list(VARIANT_KEYS)))
        if not isinstance(table.get("base"), str):
            problems.append(f"{where}: needs base = \"CANDIDATE\" (a registered name or a candidate .toml file)")
            continue
        groups.append((where, [table["base"]], table.get("recipes", [""]), table.get("mode", "append")))
    if not groups:
        problems.append("no candidates: add `candidates = [\"NAME\", ...]` or a [[variants]] table")

    specs: list[CandidateSpec] = []
    by_name: dict[str, CandidateSpec] = {}
    for where, bases, recipes, mode in groups:
        if mode not in RECIPE_MODES:
            problems.append(f"{where}: mode {mode!r} must be one of {', '.join(RECIPE_MODES)}")
            continue
        steps_list = _recipe_variants(recipes, where, problems)
        for base_name in bases:
            if not isinstance(base_name, str):
                problems.append(f"{where}: candidate {base_name!r} is not a name or a path")
                continue
            try:
                base = _resolve_candidate(base_name, base_dir)
            except RegistryError as err:
                problems.append(f"{where}: {err}")
                continue
            for steps in steps_list:
                spec = derive(base, steps, mode)
                other = by_name.get(spec.name)
                if other is not None and other.to_dict() != spec.to_dict():
                    problems.append(f"{where}: two different candidates would both be named {spec.name!r}")
                    continue
                if other is None:
                    by_name[spec.name] = spec
                    specs.append(spec)
    return specs


def _recipe_variants(recipes: Any, where: str, problems: list[str]) -> list[list[str]]:
    """Each entry: "" (as is), "step" or "step+step", or a list of steps."""
    if not isinstance(recipes, list) or not recipes:
        problems.append(f"{where}: `recipes` must be a non-empty list, e.g. [\"\", \"nf4:llm\"]")
        return []
    variants = []
    for entry in recipes:
        if isinstance(entry, str):
            variants.append([s.strip() for s in entry.split("+") if s.strip()])
        elif isinstance(entry, list) and all(isinstance(s, str) for s in entry):
            variants.append(list(entry))
        else:
            problems.append(f"{where}: recipe {entry!r} must be a string (\"nf4:llm\", \"bf16+nf4:llm\") or a list of steps")
    return variants


def derive(base: CandidateSpec, steps: list[str], mode: str = "append") -> CandidateSpec:
    """The base candidate with a recipe variant, under a readable generated name.

    append (default): recipe = base recipe + steps, named `BASE+STEP+STEP` (`baseline+nf4:llm`);
    no steps is the base itself, unchanged. replace: recipe = steps, named `BASE[STEP+STEP]`
    (`int8[nf4:llm]`; `int8[]` is the base with no recipe at all).
    """
    if mode == "append":
        if not steps:
            return base
        name, recipe = f"{base.name}+{'+'.join(steps)}", [*base.recipe, *steps]
    else:
        name, recipe = f"{base.name}[{'+'.join(steps)}]", list(steps)
    return dataclasses.replace(
        base,
        name=name,
        recipe=recipe,
        description=f"{base.description} [sweep variant of {base.name}: recipe {recipe}]".strip(),
        source=f"sweep:{mode} {steps} to {base.name} ({base.source})",
        options=dict(base.options),
        tasks=list(base.tasks),
    )


def _dataset(entry: Any, i: int, base_dir: Path, problems: list[str]) -> Dataset:
    where = f"datasets[{i}]"
    if entry == "demo":
        return Dataset()
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict):
        problems.append(f"{where}: {entry!r} must be \"demo\", a path, or a table with path = \"...\"")
        return Dataset()
    unknown = sorted(set(entry) - set(DATASET_KEYS))
    if unknown:
        problems.append(unknown_keys_message(where, "key(s)", unknown, list(DATASET_KEYS)))
    if not isinstance(entry.get("path"), str):
        problems.append(f"{where}: needs path = \"...\" (an annotation JSON, LibriSpeech folder, CSV or HF dataset)")
        return Dataset()
    if entry.get("format") not in (None, *DATA_FORMATS):
        problems.append(f"{where}: format {entry['format']!r} must be one of {', '.join(DATA_FORMATS)}")

    def absolute(key: str) -> str | None:
        value = entry.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            problems.append(f"{where}: {key} must be a path (string), got {value!r}")
            return None
        return str((base_dir / value).resolve())  # relative to the sweep file, as candidate files are

    path = absolute("path")
    if path is not None and not Path(path).exists():
        problems.append(f"{where}: {path} does not exist")
    return Dataset(path, entry.get("format"), absolute("audio_dir"), absolute("audio_root"))


def _run_options(raw: Any, base_dir: Path, problems: list[str]) -> dict[str, Any]:
    """The `[options]` table, checked against the run options; JSON-shaped (paths as strings)."""
    if not isinstance(raw, dict):
        problems.append(f"[options] must be a table, got {raw!r}")
        return {}
    moved = {"data": "datasets", "data_format": "datasets (format = ...)", "audio_dir": "datasets (audio_dir = ...)",
             "audio_root": "datasets (audio_root = ...)", "protocol": "protocols", "threads": "threads",
             "candidate": "candidates"}
    for key in sorted(set(raw) & set(moved)):
        problems.append(f"[options]: `{key}` is a matrix axis in a sweep; set it under top-level `{moved[key]}`")
    raw = {k: v for k, v in raw.items() if k not in moved}
    try:
        parsed = parse_options(_options_class(), raw, "[options]")
    except OptionsError as err:
        problems.append(str(err))
        return {}
    from harness.suites import SUITES

    for name in parsed.suites or []:
        if name not in SUITES:
            problems.append(f"[options]: unknown suite {name!r}; known: {', '.join(SUITES)}")
    path_fields = PATH_FIELDS
    options = {}
    for key in raw:  # only what the file sets: a default is not part of the cell key
        value = getattr(parsed, key)
        if key in path_fields and value is not None:
            value = str((base_dir / value).resolve())
        options[key] = value
    # The run's own checks (RunOptions), on what the file sets (paths resolved against the sweep
    # file's folder); protocol and threads are axes, checked above.
    problems += [f"[options]: {problem}" for problem in option_problems(options)]
    return options
