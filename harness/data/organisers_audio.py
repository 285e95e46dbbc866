"""The NOTA 2025 organisers' audio loading (audiolm-evaluator `SALMONNTestDataset.__getitem__`),
for runs whose numbers must equal theirs sample for sample:

soundfile's float64 samples, the *first* channel of a multi-channel file (not a mix), silence
appended up to 1 s at the file's own rate, librosa's default resampler (`soxr_hq`, then the
length fixed to ceil(n * 16000 / rate)) when the rate is not 16 kHz, and at most 30 s kept.

librosa is not needed: its `soxr_hq` resampling is one call of the soxr package (which librosa
calls), and the length fix is written here. tests/test_salmonn_original.py checks the result
against librosa's through the reference data of scripts/salmonn_reference_golden.py.
"""

from __future__ import annotations

import math

import numpy as np

from harness.data.errors import AudioError
from harness.types import SAMPLE_RATE


def load_audio_organisers(path: str) -> tuple[np.ndarray, int]:
    """(float64 mono at 16 kHz, original rate), loaded as the organisers' evaluator loads it."""
    import soundfile as sf

    try:
        audio, rate = sf.read(path)  # float64
    except Exception as err:
        raise AudioError(f"cannot read audio {path}: {type(err).__name__}: {err}") from None
    if audio.ndim == 2:
        audio = audio[:, 0]
    if len(audio) < rate:
        audio = np.concatenate([audio, np.zeros(rate - len(audio), dtype=float)])
    if rate != SAMPLE_RATE:
        try:
            import soxr
        except ImportError:
            raise AudioError("the organisers' audio loading resamples with soxr: pip install soxr") from None
        n = math.ceil(len(audio) * SAMPLE_RATE / rate)
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="soxr_hq")
        audio = audio[:n] if len(audio) >= n else np.pad(audio, (0, n - len(audio)))
    return audio[: SAMPLE_RATE * 30], rate
