"""Every data loader on small fixture folders with real audio files."""

from __future__ import annotations

import csv
import json
import shutil
import sys

import numpy as np
import pytest
import soundfile as sf

from harness.data.annotation import load_annotation_json
from harness.data.audio import load_audio
from harness.data.errors import DataError
from harness.data.loaders import detect_format, load_data
from harness.suites import DEMO_DATA

CLIPS = {  # file name -> (rate, channels, seconds, five captions)
    "clip_a.wav": (16000, 1, 0.5, ["a dog barks", "a dog is barking loudly", "barking of a dog",
                                   "a small dog barks twice", "dog barking"]),
    "clip_b.wav": (44100, 2, 0.8, ["wind blows hard", "strong wind blowing", "a gust of wind",
                                   "the wind howls", "wind noise outside"]),
    "clip_c.wav": (22050, 1, 1.1, ["a car passes by", "a vehicle drives past", "traffic noise from a car",
                                   "an engine passes quickly", "a car goes by on a road"]),
}


def write_clip(path, rate, channels, seconds, freq=440.0):
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)
    return path


@pytest.fixture
def clips(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i, (name, (rate, ch, sec, _)) in enumerate(CLIPS.items()):
        write_clip(audio / name, rate, ch, sec, freq=300.0 + 100 * i)
    return audio


def write_clotho(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
        w.writerows(rows)
    return path


def test_each_loader_yields_the_same_samples_for_the_same_audio(tmp_path, clips):
    datasets = pytest.importorskip("datasets")
    # annotation JSON
    entries = [{"testset_id": n, "path": f"audio/{n}", "task": "audiocaption_v2", "text": c[3][0], "references": c[3]}
               for n, c in CLIPS.items()]
    (tmp_path / "a.json").write_text(json.dumps({"annotation": entries}))
    # Clotho: CSV in its own folder, audio through --audio-dir
    (tmp_path / "clotho").mkdir()
    clotho = write_clotho(tmp_path / "clotho" / "clotho_captions_evaluation.csv", [[n, *c[3]] for n, c in CLIPS.items()])
    # AudioCaps: 5 rows per clip, audio named by youtube_id
    (tmp_path / "ac").mkdir()
    with open(tmp_path / "ac" / "test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        for k, (name, c) in enumerate(CLIPS.items()):
            shutil.copy(clips / name, tmp_path / "ac" / name)
            for j, cap in enumerate(c[3]):
                w.writerow([100 * k + j, name.removesuffix(".wav"), 30, cap])
    # Hugging Face: built from a copy of the audio that is deleted afterwards (bytes are stored)
    src = tmp_path / "hfsrc"
    shutil.copytree(clips, src)
    ds = datasets.Dataset.from_dict({
        "file_name": list(CLIPS), "audio": [str(src / n) for n in CLIPS], "captions": [c[3] for c in CLIPS.values()],
    }).cast_column("audio", datasets.Audio())
    ds.save_to_disk(str(tmp_path / "hfdisk"))
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "hfdict"))
    (tmp_path / "pq").mkdir()
    # to_parquet keeps paths as they are; the saved copy holds the bytes, as hub parquet files do
    datasets.load_from_disk(str(tmp_path / "hfdisk")).to_parquet(str(tmp_path / "pq" / "test-00000.parquet"))
    shutil.rmtree(src)

    loaded = {
        "json": load_data(tmp_path / "a.json"),
        "clotho": load_data(clotho, audio_dir=clips),
        "audiocaps": load_data(tmp_path / "ac" / "test.csv"),
        "hf-disk": load_data(tmp_path / "hfdisk"),
        "hf-dict": load_data(tmp_path / "hfdict"),
        "parquet-file": load_data(tmp_path / "pq" / "test-00000.parquet"),
        "parquet-dir": load_data(tmp_path / "pq", fmt="hf"),
    }
    expected_audio = {n: load_audio(str(clips / n)) for n in CLIPS}
    for fmt, (samples, problems) in loaded.items():
        assert not problems, (fmt, problems)
        assert [s.task for s in samples] == ["aac"] * 3, fmt
        assert [s.references for s in samples] == [c[3] for c in CLIPS.values()], fmt
        ids = [s.sample_id for s in samples]
        assert ids == ([n.removesuffix(".wav") for n in CLIPS] if fmt == "audiocaps" else list(CLIPS)), fmt
        for sample, name in zip(samples, CLIPS, strict=True):
            audio, rate = load_audio(sample.audio_path)
            assert rate == expected_audio[name][1] == CLIPS[name][0]
            np.testing.assert_array_equal(audio, expected_audio[name][0])
            assert audio.dtype == np.float32 and abs(len(audio) - 16000 * CLIPS[name][2]) <= 1
    assert loaded["hf-disk"][0][0].audio_path.startswith("hf-disk:")
    assert loaded["parquet-file"][0][0].audio_path.startswith("parquet:")
    assert detect_format(tmp_path / "hfdict") == "hf" and detect_format(tmp_path / "pq") == "hf"
    assert detect_format(clotho) == "clotho" and detect_format(tmp_path / "ac" / "test.csv") == "audiocaps"


def test_librispeech_folder(tmp_path):
    chapter = tmp_path / "test-clean" / "19" / "198"
    chapter.mkdir(parents=True)
    demo, _ = load_annotation_json(DEMO_DATA / "asr.json")
    lines = []
    for k, sample in enumerate(demo[:3]):
        utt = f"19-198-{k:04d}"
        shutil.copy(sample.audio_path, chapter / f"{utt}.flac")
        lines.append(f"{utt} {sample.references[0].upper()}")
    lines.append("19-198-0009 AUDIO THAT IS NOT THERE")
    lines.append("19-198-0010")
    (chapter / "19-198.trans.txt").write_text("\n".join(lines) + "\n")
    assert detect_format(tmp_path) == "librispeech"
    samples, problems = load_data(tmp_path)
    assert [s.sample_id for s in samples] == ["19-198-0000", "19-198-0001", "19-198-0002"]
    assert samples[0].task == "asr" and samples[0].references == [demo[0].references[0].upper()]
    assert samples[0].source.endswith("19-198.trans.txt:1")
    np.testing.assert_array_equal(load_audio(samples[1].audio_path)[0], load_audio(demo[1].audio_path)[0])
    text = "\n".join(map(str, problems))
    assert "19-198.trans.txt:4" in text and "audio file not found" in text
    assert "19-198.trans.txt:5" in text and "expected 'UTTERANCE-ID TRANSCRIPT'" in text


def test_csv_problems_name_the_row(tmp_path, clips):
    clotho = write_clotho(tmp_path / "captions.csv", [
        ["clip_a.wav", "a", "b", "c", "d", "e"],
        ["missing.wav", "a", "b", "c", "d", "e"],
        ["clip_b.wav", "a", "", "c", "d", "e"],
        ["clip_a.wav", "a", "b", "c", "d", "e"],
    ])
    samples, problems = load_data(clotho, audio_dir=clips)
    assert [s.sample_id for s in samples] == ["clip_a.wav"]
    text = "\n".join(map(str, problems))
    assert "row 3 (missing.wav): audio file not found" in text
    assert "row 4 (clip_b.wav): empty caption_2" in text
    assert "row 5 (clip_a.wav): duplicate file_name (first at row 2)" in text
    # Clotho's own layout: audio in <csv folder>/<split>/
    (tmp_path / "evaluation").mkdir()
    shutil.copy(clips / "clip_c.wav", tmp_path / "evaluation" / "clip_c.wav")
    own = write_clotho(tmp_path / "clotho_captions_evaluation.csv", [["clip_c.wav", "a", "b", "c", "d", "e"]])
    assert [s.sample_id for s in load_data(own)[0]] == ["clip_c.wav"]

    ac = tmp_path / "ac.csv"
    ac.write_text("audiocap_id,youtube_id,start_time,caption\n1,clip_a,0,a dog\n2,,0,nothing\n3,zzz,0,gone\n"
                  "4,clip_b,0,\n")
    samples, problems = load_data(ac, audio_dir=clips)
    assert [(s.sample_id, s.references) for s in samples] == [("clip_a", ["a dog"])]
    text = "\n".join(map(str, problems))
    assert "row 3: empty youtube_id" in text and "row 4 (zzz): audio file not found" in text
    assert "row 5 (clip_b): empty caption" in text
    bad = tmp_path / "bad.csv"
    bad.write_text("audiocap_id,youtube_id,start_time,caption\n")
    with pytest.raises(DataError, match="row 2: no data rows"):
        load_data(bad)
    with pytest.raises(DataError, match=r"row 1: CSV header lacks column\(s\) file_name, caption_1"):
        load_data(ac, fmt="clotho")
    bad.write_text("")
    with pytest.raises(DataError, match="row 1"):
        load_data(bad, fmt="audiocaps")


def test_audiocaps_finds_files_by_audiocap_id_or_Y_prefix(tmp_path, clips):
    shutil.copy(clips / "clip_a.wav", tmp_path / "Yyt_one.wav")
    shutil.copy(clips / "clip_b.wav", tmp_path / "202.wav")
    (tmp_path / "test.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n101,yt_one,0,first\n102,yt_one,0,second\n202,yt_two,10,third\n")
    samples, problems = load_data(tmp_path / "test.csv")
    assert not problems
    assert [(s.sample_id, s.references) for s in samples] == [("yt_one", ["first", "second"]), ("yt_two", ["third"])]
    assert samples[0].audio_path.endswith("Yyt_one.wav") and samples[1].audio_path.endswith("202.wav")


def test_hf_without_datasets_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "state.json").write_text("{}")
    (tmp_path / "dataset_info.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataError, match=r"pip install lalm-bench\[datasets\]"):
        load_data(tmp_path)


def test_hf_asr_columns_and_bad_references(tmp_path, clips):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({
        "id": ["u1", "u2", "u2"], "audio": [str(clips / "clip_a.wav")] * 3, "text": ["hello there", "hi", "hi"],
    }).cast_column("audio", datasets.Audio())
    ds.to_parquet(str(tmp_path / "asr.parquet"))
    samples, problems = load_data(tmp_path / "asr.parquet")
    assert [(s.sample_id, s.task, s.references) for s in samples] == [("u1", "asr", ["hello there"])]
    assert len(problems) == 2 and all("duplicate id" in str(p) for p in problems)
    from harness.data.errors import AudioError

    with pytest.raises(AudioError, match="row out of range"):
        load_audio(f"parquet:{tmp_path / 'asr.parquet'}::99")


def test_unknown_layouts_are_refused(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="neither Clotho"):
        detect_format(tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no LibriSpeech transcripts"):
        detect_format(tmp_path / "empty")


def test_format_override_must_fit_the_path(tmp_path):
    (tmp_path / "a.json").write_text('{"annotation": []}')
    with pytest.raises(DataError, match="needs a file"):
        load_data(tmp_path, fmt="clotho")
    with pytest.raises(DataError, match="needs the corpus folder"):
        load_data(tmp_path / "a.json", fmt="librispeech")
    with pytest.raises(ValueError, match="unknown data format"):
        load_data(tmp_path / "a.json", fmt="xml")
