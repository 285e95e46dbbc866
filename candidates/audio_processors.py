"""Audio-only variants of processors that also carry an image or video processor.

Phi-4-multimodal's, Qwen2.5-Omni's and Gemma 4's processors load an image (and video) processor that needs
torchvision, which cannot be installed beside a CPU-only torch. For audio in, text out, these
subclasses keep only the feature extractor and the tokenizer: transformers' own `__call__`,
audio-token expansion and chat template run unchanged (ProcessorMixin skips the modalities a
processor does not have). Name one in a candidate file: `processor_class = "candidates.audio_processors:..."`.
They load from any checkpoint folder of that model (the image/video files are simply not read).
"""

from __future__ import annotations

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
