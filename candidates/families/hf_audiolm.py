"""Family `hf-audiolm`: transformers audio LLMs driven through their processor and chat template.

Any model whose processor takes `processor(text=..., audio=...)` and whose chat template renders
an `{"type": "audio"}` item as its audio placeholder runs from a candidate TOML alone:

    family = "hf-audiolm"
    [options]
    model_path = "/models/audio-flamingo-3-hf"
    model_class = "AudioFlamingo3ForConditionalGeneration"
    parts = { llm = "model.language_model", encoder = "model.audio_tower", adapter = "model.multi_modal_projector" }
    audio_first = false                     # AF3 puts the instruction before the audio
    [options.prompts]
    asr = "Transcribe the input speech."

Options (besides `model_path`, `allow_pickle`, `trust_remote_code`, `prompts` of every transformers
family): `model_class`, `processor_class`, `tiny` (the built-in tiny copy used without
`model_path`), `parts`, `keep_full_precision`, `system_prompt`, `audio_first`, `audio_window_s`,
`batch_equal_lengths`, and `lora` / `lora_merge` (a LoRA adapter, candidates/recipes/lora.py;
Phi-4-multimodal gets its `speech-lora/` adapter without it, as its model card loads it).
Models whose processor differs have small adapters beside this file (voxtral.py, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from candidates.families.transformers_base import TransformersCandidate, TransformersOptions, resolve_class
from harness.types import SAMPLE_RATE, Request

# Model class -> the subfolder of its checkpoint holding the LoRA adapter its model card loads for
# audio: microsoft/Phi-4-multimodal-instruct, `model.load_adapter(path, adapter_name="speech",
# adapter_kwargs={"subfolder": "speech-lora"}); model.set_adapter("speech")`.
MODEL_ADAPTERS = {"Phi4MultimodalForCausalLM": "speech-lora"}
QWEN2_AUDIO_PARTS = {"llm": "model.language_model", "encoder": "model.audio_tower", "adapter": "model.multi_modal_projector"}


@dataclass(frozen=True)
class HfAudioLMOptions(TransformersOptions):
    model_class: str = "Qwen2AudioForConditionalGeneration"  # a transformers class name (or "module:attr")
    processor_class: str = "AutoProcessor"  # a processor class name (or "module:attr")
    tiny: str | None = "qwen2-audio"  # built-in tiny copy used without model_path (candidates/checkpoints/tiny_models.py)
    parts: dict[str, str] = field(default_factory=lambda: dict(QWEN2_AUDIO_PARTS))  # recipe part -> module path
    keep_full_precision: list[str] = field(default_factory=lambda: ["lm_head"])  # bitsandbytes leaves these
    system_prompt: str | None = None  # a system turn before the user's
    audio_first: bool = True  # the audio before the instruction in the user turn (False: after it)
    audio_window_s: float | None = None  # default: the processor's max_audio_len, else its feature extractor's chunk_length
    batch_equal_lengths: bool = False  # batch only clips of equal length (encoders that let padding leak)

    def __post_init__(self):
        super().__post_init__()
        if "llm" not in self.parts:
            raise ValueError(f"`parts` must name the `llm` module (got {sorted(self.parts)})")


class HfAudioLMCandidate(TransformersCandidate):
    """A transformers audio LLM (Qwen2-Audio by default) through its processor and chat template."""

    tasks = frozenset({"asr", "aac"})
    Options = HfAudioLMOptions
    family = "hf-audiolm"

    def __init__(self, spec):
        super().__init__(spec)
        self._chat_texts: dict[str, str] = {}

    def recipe_parts(self) -> dict[str, str]:
        return dict(self.options.parts)

    def keep_full_precision(self) -> list[str]:
        return list(self.options.keep_full_precision)

    def model_class_name(self) -> str:
        return self.options.model_class

    def default_is_random(self) -> bool:
        return bool(self.options.tiny)

    def default_checkpoint(self) -> Path:
        if not self.options.tiny:
            return super().default_checkpoint()
        from candidates.checkpoints.tiny_models import ensure_tiny

        return ensure_tiny(self.options.tiny)

    def load_processor(self, path: Path, common: dict[str, Any]) -> Any:
        return resolve_class(self.options.processor_class).from_pretrained(path, **common)

    def adapter(self):
        """`lora`, else the speech adapter a model ships in a subfolder of its checkpoint and its model
        card loads for audio (MODEL_ADAPTERS), when that folder is there."""
        subfolder = MODEL_ADAPTERS.get(self.options.model_class.rpartition(":")[2])
        if self.options.lora or subfolder is None:
            return super().adapter()
        folder = self.source_checkpoint() / subfolder
        if not (folder / "adapter_config.json").is_file():
            return None
        from candidates.recipes import lora

        return lora.find(folder, self.label())

    def after_load(self) -> None:
        self.tokenizer.padding_side = "left"  # batches of a decoder-only LLM are padded on the left

    def audio_window_s(self) -> float | None:
        if self.options.audio_window_s is not None:
            return float(self.options.audio_window_s)
        limit = getattr(self.processor, "max_audio_len", None)
        if limit is None:
            limit = getattr(getattr(self.processor, "feature_extractor", None), "chunk_length", None)
        return None if limit is None else float(limit)

    def batch_groups(self, requests: list[Request]) -> list[list[int]]:
        if not self.options.batch_equal_lengths:
            return super().batch_groups(requests)
        groups: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(len(request.audio), []).append(index)
        return list(groups.values())

    def conversation(self, prompt: str) -> list[dict[str, Any]]:
        content = [{"type": "audio", "audio": "clip"}, {"type": "text", "text": prompt}]
        if not self.options.audio_first:
            content.reverse()
        turns = [{"role": "user", "content": content}]
        if self.options.system_prompt:
            turns.insert(0, {"role": "system", "content": [{"type": "text", "text": self.options.system_prompt}]})
        return turns

    def chat_text(self, prompt: str) -> str:
        """The chat template rendered around one audio placeholder; cached since suites reuse one prompt
        (the processor still expands the placeholder to each clip's length)."""
        if prompt not in self._chat_texts:
            self._chat_texts[prompt] = self.processor.apply_chat_template(
                self.conversation(prompt), add_generation_prompt=True, tokenize=False
            )
        return self._chat_texts[prompt]

    def model_inputs(self, requests: list[Request]) -> dict[str, Any]:
        """Chat template + processor: features, audio placeholders expanded, token ids."""
        inputs = self.processor(
            text=[self.chat_text(r.prompt) for r in requests], audio=[r.audio for r in requests],
            sampling_rate=SAMPLE_RATE, return_tensors="pt", text_kwargs={"padding": True, "padding_side": "left"},
        )
        return to_device(inputs, self.device, self.dtype)


def to_device(inputs, device: str, dtype) -> dict[str, Any]:
    """Tensors onto the device; floating ones (features) in the model's dtype."""
    return {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) if hasattr(v, "to") else v
            for k, v in inputs.items()}
