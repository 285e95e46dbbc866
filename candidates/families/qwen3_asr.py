"""Family `qwen3-asr`: Qwen3-ASR through transformers' `apply_transcription_request`.

Qwen3-ASR takes no instruction: its user turn is the audio alone, an optional system turn carries
context (hotwords, domain terms) and the assistant turn is opened with `language English<asr_text>`
so that it writes only the transcript. The request's prompt is therefore not given to the model
(the run record says so in `candidate_info`). ASR only.
Options: those of `hf-audiolm`, plus `language` (default "English"; "" lets the model detect it,
and it then writes `language X<asr_text>` before the text) and `context` (the system turn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from candidates.families.hf_audiolm import HfAudioLMCandidate, HfAudioLMOptions, to_device
from harness.types import SAMPLE_RATE, Request


@dataclass(frozen=True)
class Qwen3AsrOptions(HfAudioLMOptions):
    model_class: str = "Qwen3ASRForConditionalGeneration"
    tiny: str | None = "qwen3-asr"
    language: str = "English"
    context: str | None = None


class Qwen3AsrCandidate(HfAudioLMCandidate):
    """Qwen3-ASR: the authors' transcription request, whatever the suite's prompt."""

    tasks = frozenset({"asr"})
    Options = Qwen3AsrOptions
    family = "qwen3-asr"

    def audio_window_s(self) -> float | None:
        # The processor does not cut audio (truncation=False); the encoder windows it itself.
        return self.options.audio_window_s

    def model_inputs(self, requests: list[Request]) -> dict[str, Any]:
        inputs = self.processor.apply_transcription_request(
            audio=[r.audio for r in requests], language=self.options.language or None,
            prompt=self.options.context, processor_kwargs={"sampling_rate": SAMPLE_RATE},
        )
        return to_device(inputs, self.device, self.dtype)

    def run_info(self) -> dict[str, Any]:
        return {**super().run_info(), "prompt_note": "qwen3-asr takes no instruction: the suite's prompt is not given to the model "
                               f"(transcription request, language={self.options.language or 'auto'!r})"}
