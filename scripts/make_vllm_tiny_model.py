"""Saves the tiny random Qwen2-Audio (candidates/checkpoints/qwen2_audio_tiny.py, fixed seed) in the layout
vLLM loads, with the transformers of the vLLM venv:

    VLLM_VENV/bin/python scripts/make_vllm_tiny_model.py OUT_DIR

transformers 5.19 saves the language model's weights as `language_model.model.model.*`; vLLM's
Qwen2-Audio loader wants `language_model.model.*` (and `language_model.lm_head.*`), so the keys
are renamed once after saving. Offline: nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RENAMES = (("language_model.model.model.", "language_model.model."),)


def vllm_key(key: str) -> str:
    for old, new in RENAMES:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def rename_keys(folder: Path) -> int:
    """Rewrites every safetensors file (and the index) of `folder` with vLLM's key names."""
    from safetensors.torch import load_file, save_file

    renamed = 0
    for path in sorted(folder.glob("*.safetensors")):
        tensors = load_file(path)
        fixed = {vllm_key(k): v for k, v in tensors.items()}
        renamed += sum(1 for k in tensors if vllm_key(k) != k)
        save_file(fixed, path, metadata={"format": "pt"})
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        doc = json.loads(index.read_text())
        doc["weight_map"] = {vllm_key(k): v for k, v in doc["weight_map"].items()}
        index.write_text(json.dumps(doc, indent=2))
    return renamed


def main(out: str) -> None:
    from candidates.checkpoints.qwen2_audio_tiny import build
    from harness.paths import build_once

    def build_for_vllm(folder: Path) -> None:
        build(folder)
        rename_keys(folder)

    path = build_once(Path(out), build_for_vllm)
    print(f"tiny Qwen2-Audio for vLLM: {path}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
