"""Family `voxtral`: Voxtral (Mini 3B, Small 24B) through transformers, adapted where its
processor differs from the common path of `hf-audiolm`.

Voxtral's processor rejects audio in `__call__`: audio goes through mistral-common's tokenizer,
either as a transcription request (`apply_transcription_request`: `[BEGIN_AUDIO][AUDIO]... [/INST]
lang:en[TRANSCRIBE]`, the authors' ASR mode, taken when an asr request carries the model's own
prompt, `run --prompts model`) or as a chat turn with the audio and an instruction
(`apply_chat_template`, any other prompt). Needs the `mistral-common` package (extra `voxtral`).
Options: those of `hf-audiolm`, plus `language` (the transcription language, default "en";
"" lets the model detect it) and `model_id` (the id mistral-common's request carries).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from candidates.families.hf_audiolm import HfAudioLMCandidate, HfAudioLMOptions, to_device
from harness.types import SAMPLE_RATE, Request


@dataclass(frozen=True)
class VoxtralOptions(HfAudioLMOptions):
    model_class: str = "VoxtralForConditionalGeneration"
    tiny: str | None = "voxtral"
    # Voxtral transcribes up to 30 minutes and understands up to 40 (model card of
    # mistralai/Voxtral-Mini-3B-2507); its processor cuts the audio into 30 s encoder windows itself.
    audio_window_s: float | None = 1800.0
    language: str = "en"  # "" : the model detects the language
    model_id: str = "mistralai/Voxtral-Mini-3B-2507"


class VoxtralCandidate(HfAudioLMCandidate):
    """Voxtral: transcription requests for its own ASR mode, chat turns for instructions."""

    Options = VoxtralOptions
    family = "voxtral"

    def model_prompt(self, task: str) -> str | None:
        if task == "asr" and "asr" not in self.options.prompts:
            # What the transcription request puts after the audio (mistral-common TranscriptionRequest).
            return f"lang:{self.options.language}[TRANSCRIBE]" if self.options.language else "[TRANSCRIBE]"
        return super().model_prompt(task)

    def _one(self, request: Request) -> dict[str, Any]:
        if request.task == "asr" and request.prompt == self.model_prompt("asr"):
            return self.processor.apply_transcription_request(
                audio=[request.audio], model_id=self.options.model_id, language=self.options.language or None,
                sampling_rate=SAMPLE_RATE, format=["wav"],
            )
        buffer = io.BytesIO()
        import soundfile

        soundfile.write(buffer, request.audio, SAMPLE_RATE, format="WAV", subtype="FLOAT")  # lossless
        clip = {"type": "audio", "base64": base64.b64encode(buffer.getvalue()).decode()}
        content = [clip, {"type": "text", "text": request.prompt}]
        if not self.options.audio_first:
            content.reverse()
        turns = [{"role": "user", "content": content}]
        if self.options.system_prompt:
            turns.insert(0, {"role": "system", "content": self.options.system_prompt})
        return self.processor.apply_chat_template(turns, tokenize=True, return_dict=True)

    def model_inputs(self, requests: list[Request]) -> dict[str, Any]:
        """Each request through its own path, then one batch: ids left-padded, the 30 s feature
        windows of all clips stacked in order (the model fills the [AUDIO] tokens in that order)."""
        import torch

        parts = [self._one(r) for r in requests]
        width = max(p["input_ids"].shape[1] for p in parts)
        ids = torch.full((len(parts), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(parts), width), dtype=torch.long)
        for row, p in enumerate(parts):
            n = p["input_ids"].shape[1]
            ids[row, width - n:] = p["input_ids"][0]
            mask[row, width - n:] = p["attention_mask"][0]
        features = torch.cat([p["input_features"] for p in parts])
        return to_device({"input_ids": ids, "attention_mask": mask, "input_features": features}, self.device, self.dtype)

    def chat_text(self, prompt: str) -> str:
        raise NotImplementedError("voxtral renders its prompts with mistral-common (see model_inputs)")
