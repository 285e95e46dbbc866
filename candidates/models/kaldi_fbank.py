"""Kaldi log-mel filterbank features, as `torchaudio.compliance.kaldi.fbank` computes them.

BEATs was trained on these features (128 bins, 16 kHz, 25 ms frames every 10 ms). torchaudio
cannot be installed beside this project's torch, so the algorithm is written here from
torchaudio's documentation and its defaults: no dither, DC offset removed per frame,
pre-emphasis 0.97 (the first sample of a frame repeats itself), Povey window (a Hann window to
the power 0.85), frames padded to a power of two (512), power spectrum, triangular mel banks
from 20 Hz to Nyquist on Kaldi's mel scale (1127 ln(1 + f/700)), then the log of each band
floored at FLT_EPSILON.

At 128 bins and 512-point frames one band holds no FFT bin: Kaldi itself refuses that
("num_mel_bins too large"), torchaudio does not, and the band comes out as log(FLT_EPSILON)
in every frame. This module does what torchaudio does (tests/test_salmonn_original.py checks
both, and checks the other bins against kaldi-native-fbank at 80 bins).
"""

from __future__ import annotations

import math

import torch

FLT_EPSILON = torch.finfo(torch.float32).eps
PREEMPHASIS = 0.97
LOW_FREQ = 20.0


def mel_scale(freq):
    return 1127.0 * torch.log(1.0 + freq / 700.0)


def mel_banks(num_bins: int, padded_window: int, sample_frequency: float) -> torch.Tensor:
    """(num_bins, padded_window // 2) triangular filters on the mel scale, in float32."""
    num_fft_bins = padded_window // 2
    mel_low = 1127.0 * math.log(1.0 + LOW_FREQ / 700.0)
    mel_high = 1127.0 * math.log(1.0 + (0.5 * sample_frequency) / 700.0)
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins, dtype=torch.float32).unsqueeze(1)
    left, center, right = mel_low + index * delta, mel_low + (index + 1.0) * delta, mel_low + (index + 2.0) * delta
    mel = mel_scale((sample_frequency / padded_window) * torch.arange(num_fft_bins, dtype=torch.float32)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    return torch.clamp(torch.minimum(up, down), min=0.0)


def fbank(waveform: torch.Tensor, num_mel_bins: int = 128, sample_frequency: float = 16000.0,
          frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0) -> torch.Tensor:
    """(frames, num_mel_bins) log-mel energies of a 1-D waveform (in its own dtype, as torchaudio).

    Frames are "snipped" (Kaldi's snip_edges): only whole 25 ms frames, 1 + (n - 400) // 160.
    """
    if waveform.dim() != 1:
        raise ValueError(f"fbank takes a 1-D waveform, got shape {tuple(waveform.shape)}")
    dtype = waveform.dtype
    shift = int(sample_frequency * frame_shift_ms * 0.001)
    size = int(sample_frequency * frame_length_ms * 0.001)
    padded = 1 << (size - 1).bit_length()
    if waveform.numel() < size:
        return torch.empty((0, num_mel_bins), dtype=dtype)
    frames = waveform.unfold(0, size, shift)  # (m, size): snip_edges
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - PREEMPHASIS * previous
    window = torch.hann_window(size, periodic=False, dtype=dtype).pow(0.85)
    frames = torch.nn.functional.pad(frames * window, (0, padded - size))
    power = torch.fft.rfft(frames).abs().pow(2.0)  # (m, padded // 2 + 1)
    banks = torch.nn.functional.pad(mel_banks(num_mel_bins, padded, sample_frequency).to(dtype), (0, 1))
    energies = power @ banks.T
    return torch.clamp(energies, min=torch.tensor(FLT_EPSILON, dtype=dtype)).log()
