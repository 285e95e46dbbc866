"""Audio-only variants of processors that also carry an image or video processor.

Phi-4-multimodal's, Qwen2.5-Omni's and Gemma 4's processors load an image (and video) processor that needs
torchvision, which cannot be installed beside a CPU-only torch. For audio in, text out, these
subclasses keep only the feature extractor and the tokenizer: transformers' own `__call__`,
audio-token expansion and chat template run unchanged (ProcessorMixin skips the modalities a
processor does not have). Name one in a candidate file: `processor_class = "candidates.models.audio_processors:..."`.
They load from any checkpoint folder of that model (the image/video files are simply not read).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import Gemma4Processor, Phi4MultimodalProcessor, Qwen2_5OmniProcessor
from transformers.processing_utils import ProcessorMixin


class Phi4MultimodalAudioProcessor(Phi4MultimodalProcessor):
    """Phi4MultimodalProcessor without its image processor."""

    def __init__(self, audio_processor, tokenizer, chat_template=None, **kwargs):
        self.audio_token = tokenizer.audio_token
        self.audio_token_id = tokenizer.audio_token_id
        ProcessorMixin.__init__(self, audio_processor, tokenizer, chat_template=chat_template, **kwargs)


class Qwen2_5OmniAudioProcessor(Qwen2_5OmniProcessor):
    """Qwen2_5OmniProcessor without its image and video processors."""

    def __init__(self, feature_extractor=None, tokenizer=None, chat_template=None):
        ProcessorMixin.__init__(self, feature_extractor, tokenizer, chat_template=chat_template)
        for name in ("image_token", "audio_token", "video_token", "image_token_id", "audio_token_id", "video_token_id",
                     "vision_bos_token", "vision_eos_token", "audio_bos_token", "audio_eos_token"):
            setattr(self, name, getattr(self.tokenizer, name))


class Gemma4AudioProcessor(Gemma4Processor):
    """Gemma4Processor without its image and video processors."""

    def __init__(self, feature_extractor, tokenizer, chat_template=None, audio_seq_length: int = 750,
                 audio_ms_per_token: int = 40, **kwargs):
        self.audio_seq_length, self.audio_ms_per_token = audio_seq_length, audio_ms_per_token
        for name in ("audio_token", "audio_token_id", "boa_token", "eoa_token", "image_token", "boi_token", "eoi_token"):
            setattr(self, name, getattr(tokenizer, name, None))
        ProcessorMixin.__init__(self, feature_extractor, tokenizer, chat_template=chat_template, **kwargs)


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


def granite_speech_processor(path: Path | None = None, tokenizer=None, chat_template: str | None = None, **common):
    """A GraniteSpeechProcessor whose feature extractor needs no torchaudio."""
    from transformers import AutoTokenizer, GraniteSpeechProcessor

    features = _features_class()
    features = features.from_pretrained(path, **common) if path is not None else features()
    tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path, **common)
    return GraniteSpeechProcessor(audio_processor=features, tokenizer=tokenizer, chat_template=chat_template)
