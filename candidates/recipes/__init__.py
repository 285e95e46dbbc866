"""Lightweighting recipes, composable and declared in the candidate TOML:

    recipe = ["bf16", "nf4:llm", "prune:llm:drop=2"]

A family names its *parts* (e.g. llm -> "llm", encoder -> "audio_encoder") as module paths;
each step applies to one part. Steps that must happen while weights load (dtype, bitsandbytes)
become `from_pretrained` arguments; the others run on the loaded model, in order.

| step                         | what it does                                                    |
| ---------------------------- | --------------------------------------------------------------- |
| fp32 / bf16 / fp16           | load dtype (default: fp32 on CPU, bf16 on GPU)                  |
| nf4:PART / int8:PART         | bitsandbytes NF4 / LLM.int8() linears of PART (one such step)   |
|                              | (PART may be `all`: every part, e.g. `nf4:all`)                 |
| int8-dynamic:PART            | torch.ao dynamic int8 quantization of PART's linears (CPU)      |
| torchao-int8:PART            | torchao int8 weight-only quantization of PART's linears         |
| embed-int8:PART              | PART's token embedding in int8 rows + per-row scales; a tied   |
|                              | output projection (Whisper's proj_out) reads the same rows     |
|                              | (candidates/recipes/quant_embed.py). Runs before the other post-load   |
|                              | steps, so int8-dynamic:all cannot make a second copy of it.    |
| audio-ctx:encoder:pad_s=S    | Whisper only: encode the clip plus S s of silence instead of a   |
|                              | 30 s window (candidates/recipes/audio_ctx.py); a runtime step, like    |
|                              | compile, that an export keeps in its recipe                     |
| prune:PART:drop=N            | drop the N decoder layers just before the last one              |
| prune:PART:drop=auto:N       | drop the block of N consecutive layers whose input and output   |
|                              | hidden states are closest (angular distance) on calibration data|
| wanda:PART:sparsity=S        | Wanda: zero the lowest |W|*||X_j|| of each output row          |
| wanda:PART:nm=N:M            | ... or all but the N highest of every M consecutive weights     |
|                              | (candidates/recipes/wanda.py)                                   |
| ria:PART:sparsity=S / nm=N:M | RIA: relative importance * ||X_j||^0.5 (candidates/recipes/ria.py) |
| drop-attn:PART:n=K           | LLM-Drop: remove the K attention / MLP sublayers whose output   |
| drop-mlp:PART:n=K            | is most like their input (candidates/recipes/llm_drop.py)       |
| gptq:PART:bits=B,group=G     | GPTQ, weights stored packed (candidates/recipes/gptq.py)        |
| compile:PART                 | torch.compile PART's forward                                    |

wanda, ria, drop-attn/drop-mlp and gptq need activations: the harness hands the family
calibration requests (`needs_calibration` / `set_calibration`), and the step captures what the
part's layers see while the family answers them (candidates/recipes/calibration.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
CALIBRATED_OPS = {"wanda", "ria", "drop-attn", "drop-mlp", "gptq"}  # steps that need activations
PART_OPS = {"nf4", "int8", "int8-dynamic", "torchao-int8", "embed-int8", "prune", "compile"} | CALIBRATED_OPS
FAMILY_OPS = {"audio-ctx"}  # steps only some families implement; they name them in `parse(family_ops=...)`


class RecipeError(ValueError):
    """A recipe step that cannot be parsed or applied; the message names the step."""


@dataclass(frozen=True)
class Step:
    op: str
    part: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    text: str = ""


def parse(recipe: list[str], parts: dict[str, str], family_ops: frozenset[str] = frozenset()) -> list[Step]:
    steps = []
    for text in recipe:
        op, _, rest = text.partition(":")
        if op in DTYPES and not rest:
            steps.append(Step(op, text=text))
            continue
        if op in FAMILY_OPS and op not in family_ops:
            raise RecipeError(f"recipe step {text!r}: {op} is not supported by this family")
        if op not in PART_OPS | family_ops:
            known = sorted(DTYPES) + sorted(PART_OPS | family_ops)
            raise RecipeError(f"unknown recipe step {text!r}; known: {', '.join(known)}")
        part, _, arg_text = rest.partition(":")
        if op in ("embed-int8", "audio-ctx") and part == "all":
            raise RecipeError(f"recipe step {text!r}: name one part, e.g. {op}:{next(iter(parts))} ({', '.join(parts)})")
        if part not in parts and part != "all":
            raise RecipeError(
                f"recipe step {text!r}: unknown part {part!r}; this family has {', '.join(parts)} (or all)"
            )
        args = dict(a.split("=", 1) for a in arg_text.split(",") if "=" in a) if arg_text else {}
        steps.append(Step(op, part, args, text))
    for step in steps:  # arguments are checked now, before anything loads
        if step.op == "audio-ctx":
            audio_ctx_pad_s(step)
        elif step.op in CALIBRATED_OPS:
            check_calibrated_step(step)
    if sum(s.op in ("nf4", "int8") for s in steps) > 1:
        raise RecipeError("only one bitsandbytes step (nf4:... or int8:...) per candidate")
    if any(s.op == "int8-dynamic" for s in steps) and any(s.op in ("bf16", "fp16") for s in steps):
        raise RecipeError("int8-dynamic computes in fp32: it cannot be combined with bf16/fp16")
    return steps


def load_kwargs(steps: list[Step], parts: dict[str, str], device: str, keep: list[str] = ()) -> dict[str, Any]:
    """`from_pretrained` arguments for the load-time steps: dtype and bitsandbytes quantization.

    bitsandbytes' skip list matches module names by substring, so the other parts are skipped by
    their dotted paths (plus `keep`, e.g. the LM head), never by short names like "proj".
    """
    import torch

    dtype_step = next((s.op for s in steps if s.op in DTYPES), None)
    dtype = getattr(torch, DTYPES[dtype_step or ("bf16" if device.startswith("cuda") else "fp32")])
    kwargs: dict[str, Any] = {"dtype": dtype}
    bnb = next((s for s in steps if s.op in ("nf4", "int8")), None)
    if bnb is not None:
        from transformers import BitsAndBytesConfig

        others = [] if bnb.part == "all" else [path for name, path in parts.items() if name != bnb.part]
        skip = others + list(keep)
        if bnb.op == "nf4":
            config = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=skip
            )
        else:
            config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
        kwargs.update(quantization_config=config, device_map=device)
    return kwargs


def check_calibrated_step(step: Step) -> None:
    if step.op in ("wanda", "ria"):
        from candidates.recipes.sparsity import parse_target

        parse_target(step)
    elif step.op in ("drop-attn", "drop-mlp"):
        from candidates.recipes.llm_drop import parse_count

        parse_count(step)
    else:
        from candidates.recipes.gptq import parse_gptq

        parse_gptq(step)


def needs_calibration(steps: list[Step]) -> bool:
    return any(s.op in CALIBRATED_OPS or (s.op == "prune" and s.args.get("drop", "").startswith("auto:"))
               for s in steps)


def audio_ctx_pad_s(step: Step) -> float:
    try:
        pad = float(step.args.get("pad_s", ""))
    except ValueError:
        raise RecipeError(f"{step.text}: expected audio-ctx:encoder:pad_s=SECONDS (e.g. pad_s=2)") from None
    if not 0 <= pad <= 30:
        raise RecipeError(f"{step.text}: pad_s must be between 0 and 30 seconds")
    return pad


def audio_context(steps: list[Step]) -> float | None:
    """The seconds of silence an `audio-ctx` step keeps after the clip, or None (full window)."""
    step = next((s for s in steps if s.op == "audio-ctx"), None)
    return None if step is None else audio_ctx_pad_s(step)


# What each step imports while it runs; `preload_imports` loads them before the memory baseline.
STEP_IMPORTS = {
    "nf4": ("bitsandbytes", "transformers.integrations.bitsandbytes", "transformers.quantizers.quantizer_bnb_4bit"),
    "int8": ("bitsandbytes", "transformers.integrations.bitsandbytes", "transformers.quantizers.quantizer_bnb_8bit"),
    "int8-dynamic": ("torch.ao.quantization", "torch.ao.nn.quantized.dynamic"),
    "torchao-int8": ("torchao.quantization",),
    "compile": ("torch._dynamo", "torch._inductor"),
}


def preload_imports(steps: list[Step]) -> None:
    """Imports the libraries the steps use (a candidate's `preload` hook calls this), so that
    importing bitsandbytes or torch.ao does not count as the model's memory. A library that is
    missing is left for the step itself to report."""
    import importlib

    for module in dict.fromkeys(m for s in steps for m in STEP_IMPORTS.get(s.op, ())):
        try:
            importlib.import_module(module)
        except ImportError:
            pass


def bytes_by_part(model, parts: dict[str, str]) -> dict[str, int]:
    """Weight bytes of each named part, and of everything else under "other". A part nested in
    another (Phi-4-multimodal's audio encoder inside its LM) is counted once, in itself."""
    from harness.measure.memory import tensor_bytes

    sizes = {name: tensor_bytes(module_at(model, path)) for name, path in parts.items()}
    for name, path in parts.items():
        for inner, inner_path in parts.items():
            if inner != name and path and inner_path.startswith(path + "."):
                sizes[name] -= sizes[inner]
    sizes["other"] = tensor_bytes(model) - sum(sizes.values())
    return sizes


def module_at(model, path: str):
    """The submodule at a dotted path; "" is the model itself."""
    for name in filter(None, path.split(".")):
        model = getattr(model, name)
    return model


def apply(
    model,
    steps: list[Step],
    parts: dict[str, str],
    calibrate: Callable[[Any], list[Any]] | None = None,
) -> list[dict[str, Any]]:
    """Runs the post-load steps in order; returns what each did, for the run record."""
    done: list[dict[str, Any]] = []
    # Embedding steps first: a tied head must still be the embedding's Linear when they run, not
    # an int8-dynamic copy of it. audio-ctx last: it encodes a silent window with the final encoder.
    for step in sorted(steps, key=lambda s: (s.op != "embed-int8", s.op == "audio-ctx")):
        if step.op in DTYPES or step.op in ("nf4", "int8"):
            done.append({"step": step.text, "at": "load"})
            continue
        part = module_at(model, parts.get(step.part, ""))
        if step.op == "int8-dynamic":
            import torch

            torch.ao.quantization.quantize_dynamic(part, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
            done.append({"step": step.text})
        elif step.op == "torchao-int8":
            try:
                from torchao.quantization import Int8WeightOnlyConfig, quantize_
            except ImportError:
                raise RecipeError(f"{step.text}: torchao is not installed (pip install torchao)") from None
            quantize_(part, Int8WeightOnlyConfig())
            done.append({"step": step.text})
        elif step.op == "embed-int8":
            from candidates.recipes.quant_embed import quantize_embeddings

            done.append({"step": step.text, **quantize_embeddings(model, parts[step.part])})
        elif step.op == "audio-ctx":
            from candidates.recipes.audio_ctx import trim_encoder_context

            done.append({"step": step.text, **trim_encoder_context(part)})
        elif step.op == "prune":
            done.append({"step": step.text, **prune(part, step, calibrate)})
        elif step.op == "compile":
            done.append({"step": step.text, **compile_part(part)})
        elif step.op in CALIBRATED_OPS and step.part == "all":  # each part on its own, in order
            done.append({"step": step.text, "parts": {name: apply_calibrated(module_at(model, path), step, calibrate)
                                                      for name, path in parts.items()}})
        elif step.op in CALIBRATED_OPS:
            done.append({"step": step.text, **apply_calibrated(part, step, calibrate)})
    return done


def apply_calibrated(part, step: Step, calibrate: Callable[[Any], list[Any]] | None) -> dict[str, Any]:
    """The steps that score weights or sublayers on calibration activations, each in its module."""
    import importlib

    module = {"wanda": "wanda", "ria": "ria", "drop-attn": "llm_drop", "drop-mlp": "llm_drop", "gptq": "gptq"}[step.op]
    return importlib.import_module(f"candidates.recipes.{module}").apply(part, step, calibrate)


def compile_part(part) -> dict[str, Any]:
    """A generating model gets transformers' static KV cache, whose decode step `generate`
    compiles itself; any other module gets `torch.compile` on its forward."""
    import torch

    config = getattr(part, "generation_config", None)
    if config is not None and getattr(part, "_can_compile_fullgraph", False):
        config.cache_implementation = "static"
        return {"note": "static KV cache; generate compiles the decode step on first use (inside warm-up)"}
    part.forward = torch.compile(part.forward, dynamic=True)
    return {"note": "torch.compile(forward, dynamic=True); compiled on first call (inside warm-up)"}


def _replace(model, path: str, module) -> None:
    parent_path, _, name = path.rpartition(".")
    setattr(module_at(model, parent_path) if parent_path else model, name, module)


def decoder_layers(part):
    """The ModuleList of transformer blocks of a causal LM or decoder (`.layers` somewhere inside)."""
    import torch

    for name in ("model.layers", "layers", "model.decoder.layers", "decoder.layers"):
        try:
            layers = module_at(part, name)
        except AttributeError:
            continue
        if isinstance(layers, torch.nn.ModuleList):
            return layers, name
    raise RecipeError(f"prune: no decoder layer list found in {type(part).__name__}")


def prune(part, step: Step, calibrate: Callable[[Any], list[Any]] | None) -> dict[str, Any]:
    layers, path = decoder_layers(part)
    n_layers = len(layers)
    spec = step.args.get("drop", "")
    auto = spec.startswith("auto:")
    try:
        n_drop = int(spec.removeprefix("auto:"))
    except ValueError:
        raise RecipeError(f"{step.text}: expected drop=N or drop=auto:N") from None
    if not 0 < n_drop < n_layers - 1:
        raise RecipeError(f"{step.text}: can drop 1..{n_layers - 2} of {n_layers} layers")
    info: dict[str, Any] = {}
    if auto:
        if calibrate is None:
            raise RecipeError(f"{step.text}: this family gives no calibration inputs for drop=auto")
        hidden = calibrate(part)  # per sample: tuple of hidden states, h[l] = input of layer l
        start, distances = most_similar_block(hidden, n_drop)
        info["angular_distances"] = distances
    else:
        start = n_layers - 1 - n_drop  # the deep block just before the last layer
    dropped = list(range(start, start + n_drop))
    keep_layers(part, layers, path, [i for i in range(n_layers) if i not in dropped])
    return {"dropped_layers": dropped, "layers_before": n_layers, "layers_after": n_layers - n_drop, **info}


def most_similar_block(hidden_per_sample: list, n: int) -> tuple[int, list[float]]:
    """Start l of the n-layer block minimizing the mean angular distance between the last
    token's hidden state at the input of layer l and at the input of layer l+n (Gromov et al.,
    "The Unreasonable Ineffectiveness of the Deeper Layers"). Blocks that would include the last
    layer are not considered: its output is normalized and it is rarely redundant."""
    import torch

    n_layers = len(hidden_per_sample[0]) - 1
    distances = []
    for start in range(0, n_layers - n):
        d = []
        for hidden in hidden_per_sample:
            a, b = hidden[start][0, -1].float(), hidden[start + n][0, -1].float()
            cos = torch.nn.functional.cosine_similarity(a, b, dim=0).clamp(-1, 1)
            d.append(math.acos(float(cos)) / math.pi)
        distances.append(sum(d) / len(d))
    best = min(range(len(distances)), key=distances.__getitem__)
    return best, [round(x, 5) for x in distances]


def keep_layers(part, layers, path: str, keep: list[int]) -> None:
    import torch

    kept = torch.nn.ModuleList(layers[i] for i in keep)
    for new_index, layer in enumerate(kept):  # the KV cache is indexed by layer_idx
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    _replace(part, path, kept)
    config = getattr(part, "config", None)
    if config is not None:
        # Encoder-decoder configs (Whisper) count decoder layers apart; num_hidden_layers there
        # aliases the encoder's count, which must not change.
        setattr(config, "decoder_layers" if hasattr(config, "decoder_layers") else "num_hidden_layers", len(keep))
        layer_types = getattr(config, "layer_types", None)
        if layer_types:
            config.layer_types = [layer_types[i] for i in keep]


class RecipeHooks:
    """The candidate hooks of a family with `self.steps`: asks the harness for calibration
    requests when a recipe step needs activations (prune drop=auto, wanda, ria, drop-attn/-mlp,
    gptq), keeps them, and reports what
    the steps did (`self.applied`, filled by `apply`)."""

    steps: list[Step]
    calibration: list
    applied: list[dict[str, Any]]
    supports_recipes = True

    def needs_calibration(self) -> bool:
        return needs_calibration(self.steps)

    def set_calibration(self, requests: list) -> None:
        self.calibration = requests

    def recipe_applied(self) -> list[dict[str, Any]] | None:
        return self.applied
