"""`drop-attn:PART:n=K` / `drop-mlp:PART:n=K`: LLM-Drop (He et al., "What Matters in
Transformers? Not All Attention Is Needed", 2024).

Each attention (or MLP) sublayer maps its residual-stream input X to Y = X + F(norm(X)). On the
calibration data, the mean cosine similarity between X and Y over every token is its
redundancy; the K sublayers with the highest similarity are removed, in one shot.

Removed means removed: the sublayer's modules (norm, projections) are deleted, and the layer
runs a forward that skips them, with no zero-output placeholder or residual add left in the timed
path. The KV cache is indexed by attention layer: the kept self-attentions are renumbered
0..n-1, so the cache holds only their keys and values (as the authors' code does).

"Attention" is self-attention. In Whisper's decoder, cross-attention (the only way the audio
reaches the decoder) is never a candidate. Supported layouts: Whisper's decoder layer and the
Llama-style decoder layer (input_layernorm, self_attn, post_attention_layernorm, mlp: Llama,
Qwen2, SmolLM2, ...); anything else is refused with its class name.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from candidates.recipes import RecipeError, Step, decoder_layers

KINDS = {"drop-attn": "attn", "drop-mlp": "mlp"}


@dataclass(frozen=True)
class Layout:
    attn_norm: str  # the norm whose input is the attention sublayer's input
    attn_out: str  # the module whose output (first element) is the attention's contribution
    mlp_norm: str
    mlp_out: str
    removed: dict[str, tuple[str, ...]]  # kind -> the modules deleted with the sublayer
    forward: Callable


def _whisper_decoder_forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None,
                             encoder_attention_mask=None, cache=None, use_cache=True, **kwargs):
    """WhisperDecoderLayer.forward without its dropped sublayers (inference: no dropout)."""
    if "attn" not in self.lalm_dropped:
        out, _ = self.self_attn(self.self_attn_layer_norm(hidden_states), cache=cache,
                                attention_mask=attention_mask, **kwargs)
        hidden_states = hidden_states + out
    if encoder_hidden_states is not None:
        out, _ = self.encoder_attn(self.encoder_attn_layer_norm(hidden_states), key_value_states=encoder_hidden_states,
                                   attention_mask=encoder_attention_mask, cache=cache, **kwargs)
        hidden_states = hidden_states + out
    if "mlp" not in self.lalm_dropped:
        hidden_states = hidden_states + self.fc2(self.activation_fn(self.fc1(self.final_layer_norm(hidden_states))))
    return hidden_states


def _llama_forward(self, hidden_states, attention_mask=None, position_ids=None, cache=None, use_cache=False,
                   position_embeddings=None, **kwargs):
    """The Llama-style decoder layer's forward without its dropped sublayers."""
    if "attn" not in self.lalm_dropped:
        out, _ = self.self_attn(hidden_states=self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                position_ids=position_ids, cache=cache, use_cache=use_cache,
                                position_embeddings=position_embeddings, **kwargs)
        hidden_states = hidden_states + out
    if "mlp" not in self.lalm_dropped:
        hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
    return hidden_states


WHISPER_DECODER = Layout("self_attn_layer_norm", "self_attn", "final_layer_norm", "fc2",
                         {"attn": ("self_attn", "self_attn_layer_norm"), "mlp": ("fc1", "fc2", "final_layer_norm")},
                         _whisper_decoder_forward)
LLAMA_STYLE = Layout("input_layernorm", "self_attn", "post_attention_layernorm", "mlp",
                     {"attn": ("self_attn", "input_layernorm"), "mlp": ("mlp", "post_attention_layernorm")},
                     _llama_forward)


def layout_of(layer) -> Layout:
    if type(layer).__name__ == "WhisperDecoderLayer":
        return WHISPER_DECODER
    if all(hasattr(layer, n) for n in ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")):
        return LLAMA_STYLE
    raise RecipeError(f"drop-attn/drop-mlp: no known sublayer layout for {type(layer).__name__} (supported: "
                      "Whisper's decoder layer and Llama-style decoder layers)")


def parse_count(step: Step) -> int:
    try:
        n = int(step.args.get("n", ""))
    except ValueError:
        n = 0
    if n < 1 or set(step.args) != {"n"}:
        raise RecipeError(f"{step.text}: expected {step.op}:PART:n=K with K >= 1 sublayers to remove")
    return n


def similarities(part, layers, kind: str, calibrate: Callable[[Any], list[Any]] | None, step: Step):
    """Mean cosine similarity between each candidate sublayer's input and output over every
    calibration token, by layer index; and the number of calibration samples."""
    import torch

    if calibrate is None:
        raise RecipeError(f"{step.text}: this family gives no calibration inputs")
    sums: dict[int, list[float]] = {}
    handles = []
    for index, layer in enumerate(layers):
        if kind in getattr(layer, "lalm_dropped", ()):
            continue  # already removed by an earlier step
        layout = layout_of(layer)
        norm, out = (layout.attn_norm, layout.attn_out) if kind == "attn" else (layout.mlp_norm, layout.mlp_out)
        seen: dict[str, Any] = {}
        sums[index] = [0.0, 0]

        def keep_input(_m, args, seen=seen):
            seen["x"] = args[0].detach()

        def compare(_m, _args, output, seen=seen, index=index):
            delta = output[0] if isinstance(output, tuple) else output
            x = seen.pop("x").float()
            y = x + delta.detach().float()
            cos = torch.nn.functional.cosine_similarity(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]), dim=1)
            sums[index][0] += float(cos.sum())
            sums[index][1] += cos.numel()

        handles.append(getattr(layer, norm).register_forward_pre_hook(keep_input))
        handles.append(getattr(layer, out).register_forward_hook(compare))
    try:
        samples = len(calibrate(part))
    finally:
        for handle in handles:
            handle.remove()
    if samples == 0:
        raise RecipeError(f"{step.text}: no calibration requests came; this step needs activations")
    return {i: total / count for i, (total, count) in sums.items() if count}, samples


def drop_sublayers(layers, drops: dict[int, set[str]]) -> None:
    """Deletes the named sublayers (`drops`: layer index -> {"attn", "mlp"}), gives their layers
    the forward that skips them, and renumbers the kept self-attentions for the KV cache. Used by
    the step and by the export loader (on the empty skeleton, before the weights are assigned)."""
    for index, kinds in drops.items():
        layer = layers[index]
        layout = layout_of(layer)
        dropped = set(getattr(layer, "lalm_dropped", ())) | set(kinds)
        for kind in kinds:
            for name in layout.removed[kind]:
                if hasattr(layer, name):
                    delattr(layer, name)
        layer.lalm_dropped = frozenset(dropped)
        layer.forward = types.MethodType(layout.forward, layer)
    kept = [layer.self_attn for layer in layers if "attn" not in getattr(layer, "lalm_dropped", ())]
    for new_index, attention in enumerate(kept):
        attention.layer_idx = new_index


def dropped_sublayers(model) -> dict[str, list[str]]:
    """Module path of each layer with removed sublayers -> what was removed (for the export)."""
    return {name: sorted(m.lalm_dropped) for name, m in model.named_modules() if getattr(m, "lalm_dropped", None)}


def restore(model, dropped: dict[str, list[str]]) -> None:
    """Removes again, on a freshly built model, the sublayers an export lists."""
    by_list: dict[str, dict[int, set[str]]] = {}
    for path, kinds in dropped.items():
        parent, _, index = path.rpartition(".")
        by_list.setdefault(parent, {})[int(index)] = set(kinds)
    for parent, drops in by_list.items():
        drop_sublayers(model.get_submodule(parent), drops)


def apply(part, step: Step, calibrate: Callable[[Any], list[Any]] | None) -> dict[str, Any]:
    n = parse_count(step)
    kind = KINDS[step.op]
    layers, path = decoder_layers(part)
    sims, samples = similarities(part, layers, kind, calibrate, step)
    if kind == "attn" and n >= len(sims):
        raise RecipeError(f"{step.text}: {len(sims)} self-attention sublayers are left; at least one must stay")
    if n > len(sims):
        raise RecipeError(f"{step.text}: only {len(sims)} {kind} sublayers are left to remove")
    ranked = sorted(sims, key=lambda i: -sims[i])
    chosen = sorted(ranked[:n])
    drops = {i: {kind} for i in chosen}
    from harness.measure.memory import tensor_bytes

    before = tensor_bytes(part)
    drop_sublayers(layers, drops)
    return {"calibration_samples": samples, "removed": [f"{path}.{i}.{kind}" for i in chosen],
            "cosine_similarity": {str(i): round(v, 6) for i, v in sorted(sims.items())},
            "weights_removed_bytes": before - tensor_bytes(part),
            "note": "the sublayers are deleted and skipped (no placeholder in the timed path)"}
