"""LoRA adapters for transformers families (`lora = "PATH"` under a candidate's [options]).

An adapter is a folder written by peft's `save_pretrained` (`adapter_config.json` +
`adapter_model.safetensors`), or one `.safetensors` file with its `adapter_config.json` beside it.
It is put on the loaded model with transformers' `load_adapter` (its v5 key conversions included),
given as a config and a state dict so that any file name works, under one adapter name.

Unmerged (the default), the LoRA layers stay beside the base weights: attached after the
load-time recipe steps (dtype, bitsandbytes: QLoRA-style inference) and before the post-load ones.
Merged (`lora_merge = true`), `merged_checkpoint` folds the adapter into the base weights once,
in `prepare()` (unmeasured), and saves that checkpoint in the cache: every recipe step, a
quantization included, then applies to the merged weights, as a deployment that merges first would.

Enabling and disabling go through peft's layers directly: transformers' own `enable_adapters` /
`set_adapter` need peft >= 0.22, newer than the registry here offers (0.21.2).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_NAME = "lalm-lora"
MERGED_VERSION = 1  # bump when the merged folder's layout changes


class AdapterError(ValueError):
    """An adapter that cannot be found, read or put on this model; the message names it."""


@dataclass(frozen=True)
class Adapter:
    config_dir: Path  # the folder holding adapter_config.json
    weights: Path  # the .safetensors file
    given: str  # the path as the candidate file wrote it

    def describe(self) -> dict[str, Any]:
        config = json.loads((self.config_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        return {"adapter": self.given, "rank": config.get("r"), "alpha": config.get("lora_alpha"),
                "target_modules": config.get("target_modules"), "sha256": self.digest()[:16]}

    def digest(self) -> str:
        h = hashlib.sha256()
        for path in (self.config_dir / ADAPTER_CONFIG, self.weights):
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        return h.hexdigest()


def find(path: str | Path, who: str) -> Adapter:
    """The adapter at `path` (a folder or a .safetensors file), or an AdapterError naming it."""
    given = str(path)
    path = Path(path).expanduser()
    if path.is_dir():
        weights = path / ADAPTER_WEIGHTS
        if not weights.is_file():
            found = ", ".join(sorted(p.name for p in path.iterdir())) or "nothing"
            hint = " (pickle weights are refused: convert them to safetensors)" if (path / "adapter_model.bin").is_file() else ""
            raise AdapterError(f"{who}: lora = {given!r}: no {ADAPTER_WEIGHTS} in that folder{hint}; it holds {found}. "
                               "Give a folder written by peft's save_pretrained, or the adapter's .safetensors file")
        config_dir = path
    elif path.is_file():
        if path.suffix != ".safetensors":
            raise AdapterError(f"{who}: lora = {given!r} is not a .safetensors file; give the adapter's folder or its "
                               ".safetensors weights")
        weights, config_dir = path, path.parent
    else:
        raise AdapterError(f"{who}: lora = {given!r}: no such file or folder; set `lora` under [options] to a LoRA "
                           "adapter folder (adapter_config.json + adapter_model.safetensors) or its .safetensors file")
    if not (config_dir / ADAPTER_CONFIG).is_file():
        raise AdapterError(f"{who}: lora = {given!r}: no {ADAPTER_CONFIG} in {config_dir}; the adapter's rank, alpha and "
                           "target modules are read from it (peft's save_pretrained writes it)")
    return Adapter(config_dir, weights, given)


def _peft(who: str):
    try:
        import peft
    except ImportError:
        raise AdapterError(f"{who}: LoRA adapters need peft: pip install 'lalm-bench[lora]'") from None
    return peft


def attach(model, adapter: Adapter, who: str) -> dict[str, Any]:
    """Puts the adapter's LoRA layers on `model` (enabled); returns what the run record says of it."""
    peft = _peft(who)
    from safetensors.torch import load_file

    try:
        config = peft.PeftConfig.from_pretrained(str(adapter.config_dir), local_files_only=True)
        state = load_file(str(adapter.weights))
    except Exception as err:
        raise AdapterError(f"{who}: lora = {adapter.given!r} cannot be read: {type(err).__name__}: {err}") from None
    if not state:
        raise AdapterError(f"{who}: lora = {adapter.given!r}: {adapter.weights.name} holds no tensors")
    # load_adapter leaves the adapter's key mapping on the model, which a later save_pretrained (a merged
    # checkpoint, an export) would apply to the base weights' names: the model's own is put back.
    conversions = vars(model).get("_weight_conversions")
    try:
        info = model.load_adapter(peft_config=config, adapter_state_dict=state, adapter_name=ADAPTER_NAME)
    except Exception as err:  # peft: target modules not in this model, unsupported layer types...
        raise AdapterError(f"{who}: lora = {adapter.given!r} does not fit {type(model).__name__}: "
                           f"{type(err).__name__}: {err}") from None
    finally:
        model._weight_conversions = conversions
    problems = {"not in the adapter": sorted(info.missing_keys), "not in the model": sorted(info.unexpected_keys),
                "of another shape": sorted(info.mismatched_keys)}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        detail = "; ".join(f"{len(v)} tensor(s) {k}, e.g. {v[0]}" for k, v in problems.items())
        raise AdapterError(f"{who}: lora = {adapter.given!r} does not fit {type(model).__name__}: {detail}. "
                           "Was it trained on another model?")
    set_enabled(model, True)
    return {**adapter.describe(), "lora_layers": len(tuner_layers(model))}


def tuner_layers(model) -> list:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def has_adapter(model) -> bool:
    """Whether LoRA layers are on `model`; without peft imported there can be none, and it is not
    imported here (its imports would count in a measured load's memory)."""
    return "peft" in sys.modules and bool(tuner_layers(model))


def preload() -> None:
    """Imports what attaching an adapter imports, before the memory baseline (a family's preload)."""
    import importlib

    for module in ("peft", "transformers.integrations.peft", "peft.tuners.lora"):
        try:
            importlib.import_module(module)
        except ImportError:  # attach() reports a missing peft
            return


def set_enabled(model, enabled: bool) -> None:
    """Switches every LoRA layer on or off (what transformers' enable/disable_adapters do)."""
    for layer in tuner_layers(model):
        layer.enable_adapters(enabled)


def merge(model) -> int:
    """Folds each LoRA layer into its base weight and puts the base layer back in its place
    (peft's merge_and_unload, for adapters put on by transformers); returns how many."""
    layers = [(name, m) for name, m in model.named_modules() if m in tuner_layers(model)]
    for name, layer in layers:
        layer.merge(safe_merge=True)  # refuses a merge that would produce NaNs
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.get_base_layer())
    for attr in ("peft_config", "_hf_peft_config_loaded"):
        if attr in vars(model):
            delattr(model, attr)
    if hasattr(model.config, "has_lora_adapter"):
        model.config.has_lora_adapter = False  # Granite: the adapter is in the weights now
    return len(layers)


def merged_checkpoint(base: Path, adapter: Adapter, model_class, who: str, **common: Any) -> Path:
    """`base` with the adapter merged into its weights, built once into the cache and reused: the
    processor and tokenizer files of `base` are copied beside the merged weights."""
    from harness.paths import build_once, cache_dir

    key = json.dumps({"base": str(base.resolve()), "base_files": _stat(base), "adapter": adapter.digest(),
                      "class": model_class.__name__, "version": MERGED_VERSION}, sort_keys=True)
    out = cache_dir() / "merged" / f"{base.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def build(folder: Path) -> None:
        model = model_class.from_pretrained(base, dtype="auto", **{"local_files_only": True, **common})
        own = adapter.config_dir.resolve() == base.resolve()  # Granite: the checkpoint's own adapter
        if has_adapter(model) and not own:
            raise AdapterError(f"{who}: {base} ships its own adapter, which transformers loaded with it; merging "
                               f"lora = {adapter.given!r} on top of it is not supported")
        if not has_adapter(model):
            attach(model, adapter, who)
        n = merge(model)
        folder.mkdir(parents=True, exist_ok=True)
        for item in base.iterdir():  # processor, tokenizer, chat template...; never weights or adapters
            if item.is_file() and not _is_weights(item.name):
                shutil.copy2(item, folder / item.name)
        model.save_pretrained(folder)
        (folder / "lalm_merged.json").write_text(json.dumps({**adapter.describe(), "base": str(base), "merged_layers": n},
                                                           indent=2), encoding="utf-8")

    return build_once(out, build)


def merge_record(folder: Path) -> dict[str, Any] | None:
    path = folder / "lalm_merged.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _is_weights(name: str) -> bool:
    return (name.endswith((".safetensors", ".bin", ".pt", ".pth", ".ckpt")) or name.endswith(".index.json")
            or name in (ADAPTER_CONFIG, "config.json", "generation_config.json"))


def _stat(folder: Path) -> list:
    return sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in folder.iterdir() if p.is_file())
