"""Annotation JSON validation and audio decoding on real files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from harness.data.annotation import load_annotation_json
from harness.data.audio import load_audio
from harness.data.errors import AudioError, DataError
from harness.suites import DEMO_DATA


def write_json(path, entries):
    path.write_text(json.dumps({"annotation": entries}))
    return path


def tone(path, rate=16000, seconds=0.5, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)
    return path


def test_demo_data_is_valid_and_complete():
    asr, asr_problems = load_annotation_json(DEMO_DATA / "asr.json")
    aac, aac_problems = load_annotation_json(DEMO_DATA / "aac.json")
    assert not asr_problems and not aac_problems
    assert len(asr) >= 20 and all(s.task == "asr" and len(s.references) == 1 for s in asr)
    assert len(aac) >= 12 and all(s.task == "aac" and len(s.references) == 5 for s in aac)


def test_every_problem_is_reported_with_its_sample_id(tmp_path):
    tone(tmp_path / "ok.wav")
    path = write_json(tmp_path / "a.json", [
        {"testset_id": "test0001", "path": "ok.wav", "task": "asr", "text": "hello"},
        {"testset_id": "test0002", "path": "ok.wav", "task": "translate"},
        {"testset_id": "test0003", "task": "asr"},
        {"testset_id": "test0004", "path": "gone.wav", "task": "audiocaption_v2"},
        {"testset_id": "test0005", "path": "ok.wav", "task": "asr"},
        {"testset_id": "test0005", "path": "ok.wav", "task": "asr"},
    ])
    samples, problems = load_annotation_json(path)
    assert [s.sample_id for s in samples] == ["test0001"]
    text = "\n".join(str(p) for p in problems)
    assert "test0002" in text and "unknown task 'translate'" in text
    assert "test0003" in text and "missing field(s) path" in text
    assert "test0004" in text and "audio file not found" in text
    assert text.count("duplicate testset_id") == 2
    # the missing file belongs to the aac suite, so --skip-invalid can count it there
    assert {p.sample_id: p.suite for p in problems}["test0004"] == "aac"


def test_absolute_paths_and_audio_root(tmp_path):
    wav = tone(tmp_path / "x.wav")
    (tmp_path / "sub").mkdir()
    path = write_json(tmp_path / "sub" / "a.json", [
        {"testset_id": "abs", "path": str(wav), "task": "asr"},
        {"testset_id": "rel", "path": "x.wav", "task": "asr"},
    ])
    samples, problems = load_annotation_json(path, audio_root=tmp_path)
    assert not problems and [s.audio_path for s in samples] == [str(wav), str(wav)]


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON at line 1"),
    ('[{"testset_id": "a"}]', "top level must be an object"),
])
def test_unusable_files_raise_with_location(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_annotation_json(path)
    assert str(path) in str(info.value)


def test_audio_is_resampled_to_16k_mono(tmp_path):
    audio, rate = load_audio(str(tone(tmp_path / "s.flac", rate=44100, seconds=1.0, channels=2)))
    assert rate == 44100 and audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == 16000
    # the 440 Hz tone survives resampling
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 440) < 2


def test_unreadable_audio_gives_one_line_reason(tmp_path):
    fake = tmp_path / "fake.wav"
    fake.write_text("this is not audio")
    with pytest.raises(AudioError, match="cannot decode audio"):
        load_audio(str(fake))
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, 0.1], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(str(nan))
