"""Exported checkpoints: a model with its recipe applied once, saved so that it loads already
quantized (`bench.py export`, and the `pre_quantize` option of transformers families).

Two formats, both safetensors, both with a manifest `lalm_export.json` (ExportManifest):

- `transformers`: `save_pretrained` of the model as it is after the recipe: fp32/bf16, a pruned
  config (`prune:`), bitsandbytes NF4 / LLM.int8() (transformers serializes their packed weights
  and quantization config, and `from_pretrained` loads them packed).
- `lalm-quantized` (ours, for what transformers cannot serialize): torch.ao dynamic int8 linears,
  the int8 embeddings / heads of candidates/recipes/quant_embed.py, GPTQ's packed linears
  (candidates/recipes/gptq.py) and layers whose sublayers LLM-Drop removed (llm_drop.py).
    * `model.safetensors`: every tensor used as stored: plain parameters and buffers, and the
      int8 rows + fp32 scales of `Int8Embedding` / `Int8Linear` (`NAME.qweight`, `NAME.scale`);
    * `int8_dynamic.safetensors`: each dynamic linear's int8 weight (`NAME.weight_int8`), its
      quantization parameters (`NAME.weight_scale`, `NAME.weight_zero_point`, float64/int64,
      one value or one per output row) and `NAME.bias`. fbgemm repacks these at load, so they
      live in a file of their own whose mapping is dropped once packed;
    * the manifest's `modules` says which module is what: `{"kind": "int8-dynamic", "qscheme":
      "per_tensor_affine" | "per_channel_affine"}`, `{"kind": "embed-int8", "padding_idx": ...}`,
      `{"kind": "int8-tied-head", "tied_to": EMBEDDING}`, `{"kind": "int8-linear"}`,
      `{"kind": "gptq", "bits", "group", "in_features"}` (its `qweight`, `scales`, `qzeros`, `bias`
      are in model.safetensors), `{"kind": "dropped-sublayers", "removed": ["attn" | "mlp"]}` (a
      layer rebuilt without them before its tensors are assigned); `aliases` maps a tied plain
      tensor to the one stored.
  The loader builds the model skeleton with empty (meta) weights from `config.json`, puts the
  quantized modules in place from their stored tensors and assigns the rest, so the fp32 weights
  of a quantized module never exist in memory.

Steps that are not weights (`compile:`, `audio-ctx:`) are not baked in: the manifest lists them as
`runtime_recipe`, and an exported candidate applies them at load.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from candidates import recipes

MANIFEST_FILE = "lalm_export.json"
PLAIN_FILE = "model.safetensors"
REPACKED_FILE = "int8_dynamic.safetensors"
FORMAT_VERSION = 1
TRANSFORMERS, LALM = "transformers", "lalm-quantized"
RUNTIME_OPS = {"compile", "audio-ctx"}  # steps re-applied at every load, never baked into weights


class ExportError(ValueError):
    """A model that cannot be exported or an export that cannot be loaded; the message says why."""


@dataclass
class ExportManifest:
    format: str  # TRANSFORMERS | LALM
    architecture: str  # the transformers class, e.g. WhisperForConditionalGeneration
    dtype: str  # the floating dtype of the unquantized tensors, e.g. "float32"
    baked_recipe: list[str]  # steps whose effect is in the weights
    runtime_recipe: list[str]  # steps the exported candidate applies at load (compile)
    recipe_applied: list[dict[str, Any]] = field(default_factory=list)  # what the steps did at export
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)  # LALM: quantized module -> how
    aliases: dict[str, str] = field(default_factory=dict)  # LALM: tied tensor name -> stored name
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportManifest:
        return cls(**data)


def read_manifest(path: Path) -> ExportManifest | None:
    """The manifest of an exported folder, or None for an ordinary checkpoint."""
    file = Path(path) / MANIFEST_FILE
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        manifest = ExportManifest.from_dict(data)
    except (ValueError, TypeError) as err:
        raise ExportError(f"{file}: not a valid export manifest ({err}); export the candidate again") from None
    if manifest.format_version > FORMAT_VERSION or manifest.format not in (TRANSFORMERS, LALM):
        raise ExportError(f"{file}: export format {manifest.format!r} v{manifest.format_version} is newer than this "
                          f"lalm-bench reads (v{FORMAT_VERSION}); upgrade lalm-bench or export again")
    return manifest


# ---------------------------------------------------------------------------------- writing


def _dynamic_linear_class():
    import torch.ao.nn.quantized.dynamic as nnqd

    return nnqd.Linear


def _quantized_modules(model) -> dict[str, Any]:
    from candidates.recipes.quant_embed import Int8Embedding, Int8Linear, Int8TiedHead

    kinds = {Int8Embedding: "embed-int8", Int8TiedHead: "int8-tied-head", Int8Linear: "int8-linear"}
    dynamic = _dynamic_linear_class()
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, dynamic):
            found[name] = "int8-dynamic"
        elif type(module) in kinds:
            found[name] = kinds[type(module)]
        elif type(module).__name__ == "GPTQLinear":
            found[name] = "gptq"
        elif getattr(module, "lalm_dropped", None):
            found[name] = "dropped-sublayers"
    return found


def _uses_bitsandbytes(model) -> bool:
    return any(type(m).__module__.startswith("bitsandbytes") for m in model.modules())


def export_model(model, processor, out_dir: Path, steps: list[recipes.Step], applied: list[dict[str, Any]],
                 provenance: dict[str, Any]) -> ExportManifest:
    """Writes `model` (its recipe already applied) and its processor to `out_dir`."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    quantized = _quantized_modules(model)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    manifest = ExportManifest(
        format=LALM if quantized else TRANSFORMERS,
        architecture=type(model).__name__,
        dtype=str(dtype).removeprefix("torch."),
        baked_recipe=[s.text for s in steps if s.op not in RUNTIME_OPS],
        runtime_recipe=[s.text for s in steps if s.op in RUNTIME_OPS],
        recipe_applied=[a for a in applied if not any(a["step"] == s.text for s in steps if s.op in RUNTIME_OPS)],
        provenance=provenance,
    )
    if quantized and _uses_bitsandbytes(model):
        raise ExportError("a recipe mixing bitsandbytes (nf4:/int8:) with int8-dynamic or embed-int8 cannot be "
                          "exported: transformers serializes the first, lalm-bench the others, not both in one file")
    if manifest.format == TRANSFORMERS:
        _check_transformers_serializable(model)
        with _bnb_canonical_layout(model):
            model.save_pretrained(out_dir, safe_serialization=True)
    else:
        _save_lalm(model, quantized, out_dir, manifest)
    if processor is not None:
        processor.save_pretrained(out_dir)
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    return manifest


@contextmanager
def _bnb_canonical_layout(model):
    """On AVX512-BF16 CPUs bitsandbytes' `Linear4bit.forward` repacks the NF4 weight at the first
    forward (`functional._convert_weight_packed_for_cpu`: nibbles re-blocked, absmax made a
    transposed [K/blocksize, N] bf16 matrix). `Linear4bit._save_to_state_dict` undoes it with
    `_convert_weight_packed_for_cpu_inverse`, which restores the weight but leaves a non-nested
    absmax transposed, so the export got scrambled scales. Save the canonical layout, then repack."""
    packed = [m.weight for m in model.modules()
              if getattr(getattr(getattr(m, "weight", None), "quant_state", None), "packing_format_for_cpu", False)]
    if packed:
        from bitsandbytes.functional import _convert_weight_packed_for_cpu, _convert_weight_packed_for_cpu_inverse
    for weight in packed:
        nested = weight.quant_state.original_nested
        weight.data, state = _convert_weight_packed_for_cpu_inverse(weight.data, weight.quant_state)
        if not nested and state.absmax.dim() == 2:  # the inverse restores only a nested absmax
            state.absmax = state.absmax.T.reshape(-1).float()  # quantize_4bit's flat float32 absmax
    try:
        yield
    finally:
        for weight in packed:  # as the next forward would: the live model keeps its packed layout
            weight.data, weight.quant_state = _convert_weight_packed_for_cpu(weight.data, weight.quant_state)


def _check_transformers_serializable(model) -> None:
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    subclassed = [n for n, p in model.named_parameters() if is_traceable_wrapper_subclass(p)]
    if subclassed and getattr(model, "hf_quantizer", None) is None:
        raise ExportError(f"{subclassed[0]} (and {len(subclassed) - 1} more) hold torchao tensor subclasses applied "
                          "after loading, which save_pretrained cannot serialize; export this recipe as int8-dynamic "
                          "instead, or load with transformers' TorchAoConfig")


def _save_lalm(model, quantized: dict[str, str], out_dir: Path, manifest: ExportManifest) -> None:
    from safetensors.torch import save_file

    dynamic_tensors = {}
    for name, kind in quantized.items():
        module = model.get_submodule(name)
        info: dict[str, Any] = {"kind": kind}
        if kind == "int8-dynamic":
            info.update(_dynamic_linear_tensors(name, module, dynamic_tensors))
        elif kind == "embed-int8":
            info.update(dtype=str(module.dtype).removeprefix("torch."), padding_idx=module.padding_idx,
                        embed_scale=module.embed_scale)
        elif kind == "int8-tied-head":
            info["tied_to"] = next(n for n, m in model.named_modules() if m is module.tied_to)
        elif kind == "gptq":
            info.update(bits=module.bits, group=module.group, in_features=module.in_features)
        elif kind == "dropped-sublayers":
            info["removed"] = sorted(module.lalm_dropped)
        manifest.modules[name] = info
    plain = {}
    stored_by_ptr: dict[tuple[int, int], str] = {}
    dynamic_prefixes = tuple(n + "." for n, k in quantized.items() if k == "int8-dynamic")
    for key, tensor in model.state_dict().items():
        if key.startswith(dynamic_prefixes) or not hasattr(tensor, "data_ptr") or tensor.is_quantized:
            continue
        identity = (tensor.data_ptr(), tensor.numel())
        if identity in stored_by_ptr:  # a tied tensor (e.g. an fp32 embedding and its head): store once
            manifest.aliases[key] = stored_by_ptr[identity]
            continue
        stored_by_ptr[identity] = key
        plain[key] = tensor.detach().contiguous()
    save_file(plain, str(out_dir / PLAIN_FILE), metadata={"format": "pt"})
    if dynamic_tensors:
        save_file(dynamic_tensors, str(out_dir / REPACKED_FILE), metadata={"format": "pt"})
    model.config.save_pretrained(out_dir)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out_dir)


def _dynamic_linear_tensors(name: str, module, out: dict) -> dict[str, Any]:
    import torch

    weight, bias = module._packed_params._weight_bias()
    scheme = weight.qscheme()
    if scheme == torch.per_tensor_affine:
        scale = torch.tensor([weight.q_scale()], dtype=torch.float64)
        zero_point = torch.tensor([weight.q_zero_point()], dtype=torch.int64)
        info = {"qscheme": "per_tensor_affine"}
    elif scheme in (torch.per_channel_affine, torch.per_channel_symmetric):
        scale = weight.q_per_channel_scales().to(torch.float64)
        zero_point = weight.q_per_channel_zero_points().to(torch.int64)
        info = {"qscheme": "per_channel_affine", "axis": weight.q_per_channel_axis()}
    else:
        raise ExportError(f"{name}: quantization scheme {scheme} is not exportable")
    out[f"{name}.weight_int8"] = weight.int_repr().contiguous()
    out[f"{name}.weight_scale"] = scale
    out[f"{name}.weight_zero_point"] = zero_point
    if bias is not None:
        out[f"{name}.bias"] = bias.detach().contiguous()
    return {**info, "in_features": module.in_features, "out_features": module.out_features}


# ---------------------------------------------------------------------------------- loading


@dataclass
class Loaded:
    """A loaded model, the steps still to apply to it, and what was applied before (at export)."""

    model: Any
    dtype: Any  # torch dtype of the unquantized tensors (what inputs are cast to)
    steps: list[recipes.Step]
    applied: list[dict[str, Any]]


def load(model_class, path: Path, steps: list[recipes.Step], parts: dict[str, str], device: str,
         keep: list[str] = (), use_safetensors: bool = True, **common: Any) -> Loaded:
    """Loads an exported folder (its recipe already in the weights) or an ordinary checkpoint
    (the recipe's load-time steps as `from_pretrained` arguments). The post-load steps still to
    run are returned; the family runs them with `recipes.apply`, so calibration stays its own.
    `common`: further `from_pretrained` arguments (local_files_only, trust_remote_code)."""
    import torch

    manifest = read_manifest(path)
    if manifest is not None:
        baked = set(manifest.baked_recipe)
        steps = [s for s in steps if s.text not in baked]  # pre_quantize: the candidate's own recipe
        if any(s.op not in RUNTIME_OPS for s in steps):
            extra = ", ".join(s.text for s in steps if s.op not in RUNTIME_OPS)
            raise ExportError(f"{path} is an export (recipe {manifest.baked_recipe}); quantize or prune it again "
                              f"({extra}) by exporting from the source candidate, not on top of an export")
    kwargs = recipes.load_kwargs(steps, parts, device, keep=keep)
    applied = []
    if manifest is not None:
        kwargs["dtype"] = getattr(torch, manifest.dtype)
        applied = [{**a, "at": "export", "pre_quantized": True} for a in manifest.recipe_applied]
        applied.append({"step": "load exported checkpoint", "pre_quantized": True, "format": manifest.format,
                        "path": str(path), "source": manifest.provenance.get("source_candidate")})
    if manifest is not None and manifest.format == LALM:
        model = load_lalm(model_class, Path(path), manifest, device, common.get("trust_remote_code", False))
    else:
        common = {"local_files_only": True, **common}
        model = model_class.from_pretrained(path, use_safetensors=use_safetensors, **common, **kwargs)
        if "quantization_config" not in kwargs and not getattr(model, "is_quantized", False):
            model.to(device)
    model.eval()
    return Loaded(model, kwargs["dtype"], steps, applied)


def load_lalm(model_class, path: Path, manifest: ExportManifest, device: str, trust_remote_code: bool = False):
    """Skeleton with empty weights -> quantized modules from their stored tensors -> the rest."""
    import torch
    from accelerate import init_empty_weights
    from safetensors import safe_open
    from transformers import AutoConfig, GenerationConfig

    from candidates.recipes.quant_embed import Int8Embedding, Int8Linear, Int8TiedHead, _set_module

    if not device.startswith("cpu"):
        raise ExportError(f"{path}: lalm-quantized exports (int8-dynamic, embed-int8, gptq, drop-attn/-mlp) load on "
                          f"the CPU only (asked for {device})")
    config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    dtype = getattr(torch, manifest.dtype)
    with init_empty_weights(include_buffers=False):  # parameters on `meta`; computed buffers real
        model = model_class._from_config(config, dtype=dtype)
    with safe_open(str(path / PLAIN_FILE), framework="pt") as f:  # zero-copy (mapped) tensors
        plain = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    kinds = manifest.modules
    # Quantized modules' tensors are taken out first; the rest is assigned to the skeleton (whose
    # own modules at those paths stay empty until replaced below).
    int8_tensors = {key: plain.pop(key) for key in list(plain)
                    if key.rpartition(".")[0] in kinds and kinds[key.rpartition(".")[0]]["kind"] != "int8-dynamic"}
    dropped = {name: info["removed"] for name, info in kinds.items() if info["kind"] == "dropped-sublayers"}
    if dropped:  # LLM-Drop: the skeleton loses the removed sublayers before anything is assigned
        from candidates.recipes.llm_drop import restore

        restore(model, dropped)
    result = model.load_state_dict(plain, strict=False, assign=True)
    if result.unexpected_keys:
        raise ExportError(f"{path / PLAIN_FILE}: tensors the model does not have: {', '.join(result.unexpected_keys[:5])}")
    for name, info in kinds.items():
        if info["kind"] == "embed-int8":
            module = Int8Embedding(int8_tensors[f"{name}.qweight"], int8_tensors[f"{name}.scale"],
                                   getattr(torch, info["dtype"]), info.get("padding_idx"), info.get("embed_scale"))
            _set_module(model, name, module)
        elif info["kind"] == "int8-linear":
            _set_module(model, name, Int8Linear(int8_tensors[f"{name}.qweight"], int8_tensors[f"{name}.scale"],
                                                int8_tensors.get(f"{name}.bias")))
        elif info["kind"] == "gptq":
            from candidates.recipes.gptq import GPTQLinear

            _set_module(model, name, GPTQLinear(int8_tensors[f"{name}.qweight"], int8_tensors[f"{name}.scales"],
                                                int8_tensors[f"{name}.qzeros"], info["bits"], info["group"],
                                                info["in_features"], int8_tensors.get(f"{name}.bias")))
    for name, info in kinds.items():
        if info["kind"] == "int8-tied-head":
            tied_to = model.get_submodule(info["tied_to"])
            _set_module(model, name, Int8TiedHead(tied_to, int8_tensors.get(f"{name}.bias")))
    dynamic = [(n, i) for n, i in kinds.items() if i["kind"] == "int8-dynamic"]
    if dynamic:
        _load_dynamic_linears(model, path / REPACKED_FILE, dynamic)
    for alias, stored in manifest.aliases.items():
        _tie(model, alias, stored)
    empty = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if empty:
        raise ExportError(f"{path}: no stored tensor for {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}; "
                          "the export is incomplete, export the candidate again")
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(path, local_files_only=True)
    return model


def _load_dynamic_linears(model, file: Path, modules: list[tuple[str, dict]]) -> None:
    """Builds each torch.ao dynamic int8 linear from its stored int8 weight; fbgemm packs a copy,
    and the mapping of `file` is dropped once every weight is packed."""
    import torch
    from safetensors import safe_open

    from candidates.recipes.quant_embed import _set_module

    linear_class = _dynamic_linear_class()
    with safe_open(str(file), framework="pt") as f:
        names = set(f.keys())
        for name, info in modules:
            raw = f.get_tensor(f"{name}.weight_int8")
            scale, zero_point = f.get_tensor(f"{name}.weight_scale"), f.get_tensor(f"{name}.weight_zero_point")
            if info["qscheme"] == "per_tensor_affine":
                weight = torch._make_per_tensor_quantized_tensor(raw, float(scale[0]), int(zero_point[0]))
            else:
                weight = torch._make_per_channel_quantized_tensor(raw, scale, zero_point, info["axis"])
            bias = f.get_tensor(f"{name}.bias").clone() if f"{name}.bias" in names else None
            module = linear_class(info["in_features"], info["out_features"], bias_=bias is not None, dtype=torch.qint8)
            module.set_weight_bias(weight, bias)
            _set_module(model, name, module)
            del raw, weight


def _tie(model, alias: str, stored: str) -> None:
    owner_path, _, attr = alias.rpartition(".")
    owner = model.get_submodule(owner_path) if owner_path else model
    stored_owner_path, _, stored_attr = stored.rpartition(".")
    tensor = getattr(model.get_submodule(stored_owner_path) if stored_owner_path else model, stored_attr)
    setattr(owner, attr, tensor)



# ---------------------------------------------------------------------------------- cached exports


def cached_export_dir(spec) -> Path:
    """Where `pre_quantize` keeps a candidate's export: keyed by everything that shapes the weights."""
    import hashlib

    from harness.paths import cache_dir

    options = {k: v for k, v in sorted(spec.options.items()) if k != "pre_quantize"}
    key = json.dumps({"family": spec.family, "recipe": list(spec.recipe), "options": options,
                      "format_version": FORMAT_VERSION}, sort_keys=True)
    return cache_dir() / "exports" / f"{spec.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def ensure_exported(spec) -> Path:
    """The candidate's recipe applied once and exported into the cache (`pre_quantize = true`);
    `prepare()` calls it in its own, unmeasured process, so a measured load finds it there."""
    from dataclasses import replace

    from harness.commands.export import export_candidate

    path = cached_export_dir(spec)
    if (path / MANIFEST_FILE).is_file():
        return path
    source = replace(spec, options={k: v for k, v in spec.options.items() if k != "pre_quantize"})
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        export_candidate(source, path, name=spec.name)
    except OSError:
        if not (path / MANIFEST_FILE).is_file():  # not a concurrent export that finished first
            raise
    return path
