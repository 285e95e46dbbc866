"""Reads the organisers' `salmonn_eval_config.yaml` as a candidate of family `salmonn-original`.

`bench.py run -c salmonn_eval_config.yaml` (and check, serve, export, sweep) comes here through
harness/registry.py. The `model:` keys become the family's options, `generate:` its decoding.
Relative paths are resolved against the YAML's folder, then the working directory, and stored
absolute (the measured process may run elsewhere). A path that does not exist is an error naming
the key, the value and where it was looked for. Keys this family does not use (the `datasets:`
and `run:` sections, unknown `model:` or `generate:` keys) are listed in a warning and in the
spec's provenance (so in the run record), never silently dropped.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from candidates.families.salmonn_original import (
    GENERATE_KEYS,
    TRAINING_ONLY,
    OriginalOptions,
    resolve_path,
)
from harness.spec import CandidateSpec

FAMILY = "salmonn-original"
REQUIRED = ("llama_path", "whisper_path")
OPTIONAL_FILES = ("beats_path", "ckpt", "speech_llama_proj_model")
OURS = {"generate", "prompts", "config_dir", "source_config"}  # option fields the YAML's model: does not set


class SalmonnYamlError(ValueError):
    """The YAML cannot run; the message names the file and the key."""


def read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SalmonnYamlError(f"config file not found: {path}") from None
    except yaml.YAMLError as err:
        raise SalmonnYamlError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), dict):
        raise SalmonnYamlError(f"{path}: no `model:` section (a SALMONN eval config has `model:` and `generate:`)")
    return doc


def spec_from_yaml(path: str | Path, name: str | None = None) -> CandidateSpec:
    path = Path(path)
    doc = read_yaml(path)
    where = str(path)
    config_dir = str(path.resolve().parent)
    known = {f.name for f in dataclasses.fields(OriginalOptions)} - OURS
    model = dict(doc["model"])
    ignored = [f"model.{k}" for k in sorted(set(model) - known)]
    options: dict[str, Any] = {k: v for k, v in model.items() if k in known}
    for key in REQUIRED:
        if not options.get(key):
            raise SalmonnYamlError(f"{where}: model.{key} is not set (a local folder saved by transformers)")
    for key in (*REQUIRED, *OPTIONAL_FILES):
        if options.get(key):
            try:
                options[key] = str(resolve_path(str(options[key]), f"model.{key}", config_dir, where))
            except FileNotFoundError as err:
                raise SalmonnYamlError(str(err)) from None
    notes = []
    if options.get("test_prompt_path"):
        found = resolve_path(str(options["test_prompt_path"]), "model.test_prompt_path", config_dir, where,
                             must_exist=False)
        if found is not None and found.is_file():
            options["test_prompt_path"] = str(found)
        else:
            notes.append(f"model.test_prompt_path = {options['test_prompt_path']!r} not found: the organisers' "
                         "test prompts built into the family are used")
            options.pop("test_prompt_path")
    generate = doc.get("generate") or {}
    if not isinstance(generate, dict):
        raise SalmonnYamlError(f"{where}: `generate:` should be a mapping, got {type(generate).__name__}")
    ignored += [f"generate.{k}" for k in sorted(set(generate) - GENERATE_KEYS)]
    options["generate"] = {k: v for k, v in generate.items() if k in GENERATE_KEYS}
    ours = doc.get("lalm_bench") or {}  # our own optional section: name and recipe
    if not isinstance(ours, dict) or set(ours) - {"name", "recipe"}:
        raise SalmonnYamlError(f"{where}: `lalm_bench:` takes only `name` and `recipe` (e.g. recipe: [\"nf4:llm\"])")
    recipe = ours.get("recipe", [])
    recipe = [recipe] if isinstance(recipe, str) else list(recipe)
    ignored += [f"{section}:" for section in doc if section not in ("model", "generate", "lalm_bench")]
    options["config_dir"], options["source_config"] = config_dir, str(path.resolve())
    training = [f"model.{k}" for k in TRAINING_ONLY if k in model]
    try:
        OriginalOptions(**{k: v for k, v in options.items()})
    except (TypeError, ValueError) as err:
        raise SalmonnYamlError(f"{where}: {err}") from None
    if ignored:
        print(f"warning: {where}: ignored (not used by lalm-bench): {', '.join(ignored)}", file=sys.stderr)
    for note in notes:
        print(f"warning: {where}: {note}", file=sys.stderr)
    return CandidateSpec(
        name=name or ours.get("name") or path.stem,
        family=FAMILY,
        description=f"original SALMONN from {path.name}",
        tasks=["asr", "aac"],
        recipe=recipe,
        options=options,
        source=f"file:{path}",
        provenance={"config": str(path.resolve()), "ignored_keys": ignored, "training_only_keys": training,
                    "notes": notes},
    )
