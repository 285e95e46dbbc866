"""Family `granite-speech`: IBM Granite Speech through transformers, adapted where it differs from
the common path of `hf-audiolm`.

- Its prompt is the tokenizer's chat template over plain-string turns with `<|audio|>` written
  where the audio goes (the model card's usage), not a processor chat template.
- Its LoRA adapter is switched on by the model only when audio is present; checkpoints that ship
  one (`has_lora_adapter = true`, e.g. granite-speech-3.3-2b) need `peft` (extra `granite`). The
  tiny copy has none.
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

from candidates.hf_audiolm import HfAudioLMCandidate, HfAudioLMOptions, to_device
from harness.types import Request

PARTS = {"llm": "model.language_model", "encoder": "model.encoder", "adapter": "model.projector"}


def _features_class():
    """GraniteSpeechFeatureExtractor with its mel spectrogram computed by torch alone."""
    import torch
    from transformers import GraniteSpeechFeatureExtractor
    from transformers.audio_utils import mel_filter_bank
    from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
    from transformers.feature_extraction_utils import BatchFeature

    class MelSpectrogram(torch.nn.Module):
        def __init__(self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int):
            super().__init__()
            self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
            self.register_buffer("window", torch.hann_window(win_length))
            banks = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
                                    max_frequency=sample_rate / 2, sampling_rate=sample_rate, norm=None,
                                    mel_scale="htk")
            self.register_buffer("banks", torch.from_numpy(banks).float())  # (freq, mels)

        def forward(self, audio):
            spec = torch.stft(audio, self.n_fft, self.hop_length, self.win_length, self.window, center=True,
                              pad_mode="reflect", return_complex=True).abs().pow(2)
            return torch.matmul(spec.transpose(-1, -2), self.banks).transpose(-1, -2)  # (batch, mels, frames)

    class GraniteSpeechFeatures(GraniteSpeechFeatureExtractor):
        def __init__(self, sampling_rate: int = 16000, n_fft: int = 512, win_length: int = 400,
                     hop_length: int = 160, n_mels: int = 80, projector_window_size: int = 15,
                     projector_downsample_rate: int = 5, padding_value: float = 0.0, **kwargs):
            feature_size = kwargs.pop("feature_size", None) or n_mels
            kwargs.pop("melspec_kwargs", None)
            SequenceFeatureExtractor.__init__(self, feature_size=feature_size, sampling_rate=sampling_rate,
                                              padding_value=padding_value, **kwargs)
            self.melspec_kwargs = {"sample_rate": sampling_rate, "n_fft": n_fft, "win_length": win_length,
                                   "hop_length": hop_length, "n_mels": n_mels}
            self.mel_filters = MelSpectrogram(**self.melspec_kwargs)
            self.projector_window_size = projector_window_size
            self.projector_downsample_rate = projector_downsample_rate

        def __call__(self, audios, device: str | None = "cpu") -> BatchFeature:
            batched, lengths = self._get_audios_and_audio_lengths(audios)
            with torch.no_grad():
                mel = self.mel_filters.to(device)(batched.float().to(device))
                logmel = mel.transpose(-1, -2).clamp(min=1e-10).log10()
                logmel = torch.maximum(logmel, logmel.amax(dim=(-2, -1), keepdim=True) - 8.0) / 4 + 1
                logmel = logmel[:, : logmel.shape[1] // 2 * 2]  # an even number of frames, stacked in pairs
                features = logmel.reshape(logmel.shape[0], -1, 2 * logmel.shape[-1])
            sizes = self._get_num_audio_features(lengths)
            mask = torch.arange(max(sizes)).view(1, -1) < torch.tensor(sizes).view(-1, 1)
            return BatchFeature(data={"input_features": features, "audio_embed_sizes": sizes,
                                      "input_features_mask": mask})

        def to_dict(self) -> dict[str, Any]:
            out = super().to_dict()
            out["feature_extractor_type"] = "GraniteSpeechFeatureExtractor"  # an ordinary Granite checkpoint
            return out

    return GraniteSpeechFeatures


def audio_processor(path: Path | None = None, tokenizer=None, chat_template: str | None = None, **common):
    """A GraniteSpeechProcessor whose feature extractor needs no torchaudio."""
    from transformers import AutoTokenizer, GraniteSpeechProcessor

    features = _features_class()
    features = features.from_pretrained(path, **common) if path is not None else features()
    tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path, **common)
    return GraniteSpeechProcessor(audio_processor=features, tokenizer=tokenizer, chat_template=chat_template)


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
        return audio_processor(path, **common)

    def audio_window_s(self) -> float | None:
        return self.options.audio_window_s  # the processor does not cut audio

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
