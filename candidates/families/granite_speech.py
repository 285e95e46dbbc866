"""Family `granite-speech`: IBM Granite Speech through transformers, adapted where it differs from
the common path of `hf-audiolm`.

- Its prompt is the tokenizer's chat template over plain-string turns with `<|audio|>` written
  where the audio goes (the model card's usage), not a processor chat template.
- Its LoRA adapter sits in the checkpoint folder itself (`adapter_config.json` beside
  `config.json`, `has_lora_adapter = true`, e.g. granite-speech-3.3-2b): transformers loads it
  with the model when peft is installed (extra `lora`), and Granite's `generate` enables it only
  when audio is present. Every request here carries audio, so it stays enabled, also in the
  prefill / decode_step pair that does not pass through `generate`; it is enabled through peft's
  layers, since transformers' `enable_adapters` needs a newer peft than the registry offers.
  A checkpoint that declares an adapter it cannot load is refused (never run without it). The
  tiny copy has none; `lora` puts another adapter on a checkpoint without its own.
- Its feature extractor computes a log-mel spectrogram with torchaudio. Where torchaudio cannot
  be installed (beside a CPU-only torch, here), `GraniteSpeechFeatures` computes the same
  spectrogram (torchaudio.transforms.MelSpectrogram's definition: periodic Hann window, centred
  reflect-padded frames, power 2, HTK mel filters without norm) with torch.stft; with torchaudio
  installed, the processor's own extractor is used.
Options: those of `hf-audiolm`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from candidates.families.hf_audiolm import HfAudioLMCandidate, HfAudioLMOptions, to_device
from candidates.models.audio_processors import granite_speech_processor
from harness.types import Request

PARTS = {"llm": "model.language_model", "encoder": "model.encoder", "adapter": "model.projector"}

@dataclass(frozen=True)
class GraniteSpeechOptions(HfAudioLMOptions):
    model_class: str = "GraniteSpeechForConditionalGeneration"
    tiny: str | None = "granite-speech"
    parts: dict[str, str] = field(default_factory=lambda: dict(PARTS))


class GraniteSpeechCandidate(HfAudioLMCandidate):
    """Granite Speech: `<|audio|>` inline in the user turn of the tokenizer's chat template."""

    tasks = frozenset({"asr"})
    Options = GraniteSpeechOptions
    family = "granite-speech"
    # The model card's transcription instruction (ibm-granite/granite-speech-3.3-2b).
    MODEL_PROMPTS = {"asr": "can you transcribe the speech into a written format?"}

    def load_processor(self, path: Path, common: dict[str, Any]) -> Any:
        from transformers.utils import is_torchaudio_available

        if is_torchaudio_available():
            return super().load_processor(path, common)
        return granite_speech_processor(path, **common)

    def audio_window_s(self) -> float | None:
        return self.options.audio_window_s  # the processor does not cut audio

    def after_load(self) -> None:
        from candidates.recipes import lora

        super().after_load()
        if lora.has_adapter(self.model):
            lora.set_enabled(self.model, True)  # audio is present in every request (see the module doc)
            self.model._hf_peft_config_loaded = False  # so generate does not call transformers' enable_adapters
        elif getattr(self.model.config, "has_lora_adapter", False):
            raise lora.AdapterError(
                f"{self.label()}: the checkpoint declares a LoRA adapter (has_lora_adapter = true) that was not loaded; "
                "Granite Speech runs audio through it, so without it this is not the released model. Install peft "
                "(pip install 'lalm-bench[lora]') and keep adapter_config.json + adapter_model.safetensors in model_path")

    def chat_text(self, prompt: str) -> str:
        if prompt not in self._chat_texts:
            audio = self.processor.audio_token
            user = f"{audio}{prompt}" if self.options.audio_first else f"{prompt}{audio}"
            turns = [{"role": "user", "content": user}]
            if self.options.system_prompt:
                turns.insert(0, {"role": "system", "content": self.options.system_prompt})
            self._chat_texts[prompt] = self.tokenizer.apply_chat_template(turns, add_generation_prompt=True,
                                                                          tokenize=False)
        return self._chat_texts[prompt]

    def model_inputs(self, requests: list[Request]) -> dict[str, Any]:
        import torch

        inputs = self.processor(text=[self.chat_text(r.prompt) for r in requests],
                                audio=[torch.from_numpy(r.audio) for r in requests], device=self.device,
                                return_tensors="pt", text_kwargs={"padding": True, "padding_side": "left"})
        inputs.pop("audio_embed_sizes", None)
        return to_device(inputs, self.device, self.dtype)
