"""`bench.py export` of a `salmonn-original` candidate: its recipe applied once, written back in the
original layout, so the export is again a folder the organisers' YAML describes:

    whisper/   the source Whisper folder, copied (a recipe on speech_encoder cannot be exported)
    beats.pt   the BEATs file, copied
    llama/     the LLM as it is after the recipe (transformers `save_pretrained`: plain, pruned, or
               bitsandbytes NF4 / LLM.int8() packed), with the tokenizer holding [PAD]; with
               `lora-merge:llm` the LoRA is in these weights
    ckpt.pth   {"model": ...} the trained tensors (LayerNorms, Q-Former, query tokens, projector,
               and the LoRA A/B when it is kept apart)
    salmonn_eval_config.yaml   model: paths relative to the folder, `lora` as exported; generate:
    lalm_export.json           the manifest (format "salmonn-original")

The candidate file `bench.py export` writes next to them names the folder as `model_path`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

FORMAT = "salmonn-original"
EXPORT_FILES = {"llama_path": "llama", "whisper_path": "whisper", "beats_path": "beats.pt", "ckpt": "ckpt.pth"}
TRAINED = ("ln_speech", "ln_audio", "speech_Qformer", "speech_query_tokens", "speech_llama_proj")


class SalmonnExportError(ValueError):
    """What this export cannot write; the message says what to do."""


def export_original(candidate, out_dir: Path, provenance: dict[str, Any]) -> dict[str, Any]:
    import torch
    import yaml

    bad = [s.text for s in candidate.steps if s.part not in (None, "llm") or s.op in ("compile", "int8-dynamic",
                                                                                   "torchao-int8", "embed-int8")]
    if bad:
        raise SalmonnExportError(f"{candidate.label()}: {', '.join(bad)} cannot be exported in the original layout "
                                 "(only the llm's dtype, nf4/int8, prune and lora-merge steps can); run the recipe "
                                 "at load instead")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = candidate.model
    lora_apart = candidate.lora_on() and not candidate.merge_lora
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()
             if k.startswith(TRAINED) or (lora_apart and "lora_" in k)}
    torch.save({"model": state}, out_dir / "ckpt.pth")
    llm = model.llama_model
    if lora_apart:
        llm = llm.unload()  # the LoRA leaves the LLM (its tensors are in ckpt.pth) and is added again at load
        model.llama_model = llm
    llm.save_pretrained(out_dir / "llama")
    candidate.processor.save_pretrained(out_dir / "llama")
    shutil.copytree(candidate.path_of("whisper_path"), out_dir / "whisper")
    if model.beats is not None:
        shutil.copyfile(candidate.path_of("beats_path"), out_dir / "beats.pt")
    o = candidate.options
    config = {"model": {"llama_path": "llama", "whisper_path": "whisper",
                        "beats_path": "beats.pt" if model.beats is not None else "", "ckpt": "ckpt.pth",
                        "num_speech_query_token": o.num_speech_query_token, "second_per_window": o.second_per_window,
                        "second_stride": o.second_stride, "lora": lora_apart, "lora_rank": o.lora_rank,
                        "lora_alpha": o.lora_alpha, "prompt_template": o.prompt_template, "end_sym": candidate.end_sym()},
              "generate": candidate.generate_config() | {"end_sym": candidate.end_sym()}}
    (out_dir / "salmonn_eval_config.yaml").write_text(
        "# Written by `bench.py export` (candidates/families/salmonn_export.py)\n" + yaml.safe_dump(config, sort_keys=False),
        encoding="utf-8")
    manifest = {"format": FORMAT, "architecture": "SALMONN (audiolm-trainer)", "dtype": str(candidate.dtype).removeprefix("torch."),
                "baked_recipe": [s.text for s in candidate.steps if s.op not in ("compile",)],
                "runtime_recipe": [], "recipe_applied": candidate.applied, "lora": "kept apart" if lora_apart else
                ("merged" if candidate.merge_lora else "none"), "provenance": provenance,
                "format_version": 1}
    (out_dir / "lalm_export.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return manifest
