"""Zero floor on any audio: decoding 48-96 kHz stereo OGG and FLAC bills (almost) nothing to the
measured candidate, and the block-by-block decode gives the very numbers of the whole-clip one.

The clips are made here from the demo speech (soundfile + scipy): a few seconds each, resampled
to 48 and 96 kHz, in stereo, as Vorbis OGG and FLAC, beside a 16 kHz mono WAV.
"""

from __future__ import annotations

import io
import json
from math import gcd
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from harness.data.annotation import load_annotation_json
from harness.data.audio import _decode_blocks, load_audio, load_audio_bytes
from harness.data.resample import StreamingResampler
from harness.suites import SUITES
from tests.conftest import bench, run_record_path

FLOOR_MB = 2.0
CLIPS = [(48000, "OGG", "VORBIS"), (96000, "OGG", "VORBIS"), (48000, "FLAC", "PCM_24"),
         (96000, "FLAC", "PCM_16"), (16000, "WAV", "PCM_16")]


def make_clips(folder: Path, n_sentences: int = 1) -> Path:
    """The first demo sentences at each rate and format of CLIPS; returns their annotation JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    samples, _ = load_annotation_json(SUITES["asr"].demo_file)
    rows = []
    for sample in samples[:n_sentences]:
        speech, rate = sf.read(sample.audio_path, dtype="float32")
        assert rate == 16000
        for target, fmt, subtype in CLIPS:
            signal = resample_poly(speech, target // 16000, 1).astype(np.float32)
            if target != 16000:
                signal = np.stack([signal, 0.8 * signal], axis=1)  # stereo, channels not equal
            name = f"{sample.sample_id}_{target}.{fmt.lower()}"
            with sf.SoundFile(folder / name, "w", target, signal.ndim if signal.ndim == 1 else 2, subtype,
                              format=fmt) as out:
                for i in range(0, len(signal), 16384):  # in blocks: libsndfile's Vorbis writer
                    out.write(signal[i:i + 16384])
            rows.append({"testset_id": name.replace(".", "_"), "path": name, "task": "asr", "text": sample.references[0]})
    annotation = folder / "asr.json"
    annotation.write_text(json.dumps({"annotation": rows}))
    return annotation


def whole_clip(path: Path) -> np.ndarray:
    """The decode as it was before: the whole clip read, mixed, then resampled at once."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != 16000:
        g = gcd(rate, 16000)
        mono = resample_poly(mono, 16000 // g, rate // g).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


@pytest.mark.parametrize("rate", [8000, 22050, 24000, 44100, 48000, 96000])
def test_streaming_resampler_is_bit_identical_to_resample_poly(rate):
    rng = np.random.default_rng(rate)
    g = gcd(rate, 16000)
    for length in (1, 3, 8191, 8193, 40001):
        x = (rng.standard_normal(length) * 0.3).astype(np.float32)
        expected = resample_poly(x, 16000 // g, rate // g).astype(np.float32)
        for block in (8192, 1000, 1):
            if block == 1 and length > 8193:
                continue
            resampler = StreamingResampler(16000 // g, rate // g, length)
            for i in range(0, length, block):
                resampler.feed(x[i:i + block])
            got = resampler.result()
            assert got.shape == expected.shape and np.array_equal(got.view(np.uint32), expected.view(np.uint32)), \
                (rate, length, block)


def test_block_decode_gives_the_whole_clip_numbers(tmp_path):
    annotation = make_clips(tmp_path / "clips")
    for row in json.loads(annotation.read_text())["annotation"]:
        path = annotation.parent / row["path"]
        expected = whole_clip(path)
        for audio, rate in (load_audio(str(path)), load_audio_bytes(path.read_bytes(), row["path"]),
                            _decode_blocks(str(path), row["path"], trust_header=False)):
            assert rate == sf.info(path).samplerate
            assert audio.dtype == np.float32 and audio.flags.c_contiguous
            assert np.array_equal(audio.view(np.uint32), expected.view(np.uint32)), row["path"]


def test_decode_errors_keep_their_messages():
    from harness.data.errors import AudioError

    nan_wav = io.BytesIO()  # 48 kHz stereo float WAV, one NaN in its last block
    sf.write(nan_wav, np.concatenate([np.zeros((20000, 2)), [[0.0, np.nan]]]).astype(np.float32), 48000,
             format="WAV", subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav contains NaN or infinite samples"):
        load_audio_bytes(nan_wav.getvalue(), "nan.wav")
    empty = io.BytesIO()
    sf.write(empty, np.zeros((0, 2), dtype=np.float32), 48000, format="WAV", subtype="PCM_16")
    with pytest.raises(AudioError, match="empty.wav holds no samples"):
        load_audio_bytes(empty.getvalue(), "empty.wav")


@pytest.mark.slow
def test_null_candidate_floor_under_2_mb_on_hi_res_stereo_clips(tmp_path):
    """The real measured child on the null candidate: its peak above the baseline is the
    harness's own cost of a request, decoding included (it was 5.6-7.7 MB on these clips)."""
    annotation = make_clips(tmp_path / "clips")
    out = bench("run", "-c", "null", "--data", str(annotation), "--warmup", "0", "--results", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    assert record["status"] == "ok" and record["suites"]["asr"]["n_samples"] == len(CLIPS)
    predictions = [json.loads(line) for line in (run_record_path(out.stdout).parent / "predictions.jsonl")
                   .read_text().splitlines()]
    assert sorted(p["original_sample_rate"] for p in predictions) == sorted(rate for rate, _, _ in CLIPS)
    assert all(p["error"] is None for p in predictions)
    peak = record["efficiency"]["peak_memory_mb"]
    print(f"\nnull candidate peak above baseline on {len(CLIPS)} clips (16-96 kHz, OGG/FLAC/WAV): {peak:.2f} MB")
    assert 0 <= peak < FLOOR_MB
