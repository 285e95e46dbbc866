r"""Runs the organisers' own SALMONN code on the tiny original-format model and saves what it
computes, as the reference data of tests/test_salmonn_original.py.

    python scripts/salmonn_reference_golden.py \
        --reference /path/to/audiolm-trainer \         # a checkout of nota-github/audiolm-trainer
        --python /path/to/refvenv/bin/python \         # the reference's own venv (below)
        --torchaudio-wheel /path/to/torchaudio-*.whl   # for torchaudio's kaldi.py only (below)

The reference runs in its own venv, never in this repo's:

    python3.11 -m venv refvenv
    refvenv/bin/pip install torch==2.13.0 transformers==4.47.1 peft==0.3.0 librosa==0.10.2.post1 soundfile
    refvenv/bin/pip download torchaudio --no-deps -d .   # the wheel is opened, never installed

torchaudio cannot be installed beside torch 2.13 (its binary is built for another torch), but
BEATs imports only `torchaudio.compliance.kaldi`, which is pure Python: the script puts that one
file from the wheel on the reference's path under an empty `torchaudio` package. bert-base-uncased's
config.json (the Q-Former's shape) is written into an offline Hugging Face cache made here.

What is saved (tests/data/salmonn_original/): for each clip, the organisers' loading of it, the
speech embeddings (after the projector), the first-step logits, greedy tokens and beam-4 tokens
(the evaluator's `generate` call with the tiny YAML's `generate:` section), plus torchaudio's
128-bin fbank of one clip; and a checksum of the tiny checkpoint the data belongs to.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "salmonn_original"
DEMO = REPO / "harness" / "data" / "demo_data"
CLIPS = {"asr0001": (DEMO / "speech" / "asr0001.flac", "asr"), "aac0001": (DEMO / "sounds" / "aac0001.flac", "aac"),
         "stereo_22k": (OUT / "stereo_22k.flac", "asr")}
BERT_BASE_CONFIG = {  # bert-base-uncased's config.json
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0", "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522}
PROMPTS = {"asr": "<Speech><SpeechHere></Speech> Recognize the speech and give me the transcription.",
           "aac": "<Speech><SpeechHere></Speech> Please describe the audio."}


def checkpoint_digest(folder: Path) -> str:
    """sha256 over the tiny model's weight files: the reference data belongs to these weights."""
    digest = hashlib.sha256()
    files = sorted([folder / "ckpt.pth", folder / "beats.pt", *folder.glob("llama/*.safetensors"),
                    *folder.glob("whisper/*.safetensors")])
    for file in files:
        digest.update(file.name.encode())
        if file.suffix == ".safetensors":
            digest.update(file.read_bytes())
        else:  # torch.save files carry their own pickling details: hash the tensors
            import torch

            data = torch.load(file, map_location="cpu", weights_only=True)
            state = data["model"]
            for key in sorted(state):
                digest.update(key.encode())
                digest.update(state[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


def make_stereo_clip(path: Path) -> None:
    """0.8 s, 22.05 kHz, two different channels: the organisers' first-channel, pad-to-1-s and
    soxr_hq paths all run on it."""
    import numpy as np
    import soundfile as sf
    from scipy.signal import resample_poly

    audio, rate = sf.read(DEMO / "speech" / "asr0002.flac")
    left = resample_poly(audio[: int(0.8 * rate)], 441, 320)
    right = left[::-1] * 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([left, right], axis=1), 22050, subtype="PCM_16")


def outer(args) -> None:
    from candidates.checkpoints.salmonn_original_tiny import ensure_tiny

    tiny = ensure_tiny()
    if not CLIPS["stereo_22k"][0].is_file():
        make_stereo_clip(CLIPS["stereo_22k"][0])
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        shim = tmp_path / "shim" / "torchaudio" / "compliance"
        shim.mkdir(parents=True)
        (shim.parent / "__init__.py").write_text("")
        (shim / "__init__.py").write_text("")
        with zipfile.ZipFile(args.torchaudio_wheel) as wheel:
            (shim / "kaldi.py").write_bytes(wheel.read("torchaudio/compliance/kaldi.py"))
        snapshot = tmp_path / "hf" / "hub" / "models--bert-base-uncased" / "snapshots" / ("0" * 40)
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text(json.dumps(BERT_BASE_CONFIG))
        (snapshot.parents[1] / "refs").mkdir()
        (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
        job = {"tiny": str(tiny), "clips": {k: [str(p), t] for k, (p, t) in CLIPS.items()}, "prompts": PROMPTS,
               "reference": str(Path(args.reference).resolve()), "shim": str(tmp_path / "shim"),
               "out": str(tmp_path / "golden.npz")}
        (tmp_path / "job.json").write_text(json.dumps(job))
        env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "PYTHONPATH": ""}
        subprocess.run([args.python, __file__, "--inner", str(tmp_path / "job.json")], check=True, env=env,
                       cwd=tmp_path)
        OUT.mkdir(parents=True, exist_ok=True)
        import numpy as np

        data = dict(np.load(tmp_path / "golden.npz"))
        data["checkpoint_sha256"] = np.array(checkpoint_digest(tiny))
        np.savez_compressed(OUT / "reference.npz", **data)
    print(f"wrote {OUT / 'reference.npz'}")


def inner(job_file: str) -> None:
    """Runs in the reference's venv: imports nothing of this repository."""
    import librosa
    import numpy as np
    import soundfile as sf
    import torch
    import yaml

    job = json.loads(Path(job_file).read_text())
    sys.path.insert(0, job["shim"])
    sys.path.insert(0, job["reference"])
    from models.salmonn import SALMONN
    from transformers import WhisperFeatureExtractor

    tiny = Path(job["tiny"])
    config = yaml.safe_load((tiny / "salmonn_eval_config.yaml").read_text())
    model_cfg = dict(config["model"])
    for key in ("llama_path", "whisper_path", "beats_path", "ckpt"):
        model_cfg[key] = str(tiny / model_cfg[key])
    model = SALMONN.from_config(model_cfg).float().eval()  # float32 on the CPU (no autocast there)
    generate_cfg = config["generate"]
    features = WhisperFeatureExtractor.from_pretrained(model_cfg["whisper_path"])
    llm, tok = model.llama_model, model.llama_tokenizer
    out: dict[str, object] = {}
    for name, (path, task) in job["clips"].items():
        audio, sr = sf.read(path)  # the organisers' SALMONNTestDataset.__getitem__
        if len(audio.shape) == 2:
            audio = audio[:, 0]
        if len(audio) < sr:
            audio = np.concatenate((audio, np.zeros(sr - len(audio), dtype=float)), axis=0)
        if sr != 16000:
            audio = librosa.resample(audio, orig_sr=sr, target_sr=16000)
            sr = 16000
        audio = audio[: sr * 30]
        spectrogram = features(audio, sampling_rate=sr, return_tensors="pt")["input_features"]
        raw_wav = torch.from_numpy(audio).unsqueeze(0)
        padding_mask = torch.zeros(raw_wav.shape, dtype=torch.bool)
        with torch.no_grad():
            speech, atts = model.encode_speech(spectrogram, raw_wav=raw_wav, audio_padding_mask=padding_mask)
            prompt = [model_cfg["prompt_template"].format(job["prompts"][task])]
            wrapped, watts = model.prompt_wrap(speech, atts, prompt, multi_prompt=True)
            bos = torch.ones([1, 1], dtype=torch.int32) * tok.bos_token_id
            embeds = torch.cat([llm.model.model.embed_tokens(bos), wrapped], dim=1)
            attns = torch.cat([watts[:, :1], watts], dim=1)
            logits = llm.model(inputs_embeds=embeds, attention_mask=attns).logits[0, -1]
            common = {"inputs_embeds": embeds, "attention_mask": attns, "pad_token_id": llm.config.eos_token_id[0],
                      "max_new_tokens": generate_cfg["max_new_tokens"], "min_length": generate_cfg["min_length"],
                      "temperature": generate_cfg["temperature"], "top_p": generate_cfg["top_p"],
                      "repetition_penalty": generate_cfg["repetition_penalty"],
                      "length_penalty": generate_cfg["length_penalty"], "do_sample": False}
            greedy = llm.model.generate(num_beams=1, **common)[0]
            beam = llm.model.generate(num_beams=generate_cfg["num_beams"], **common)[0]
        text = tok.batch_decode(beam[None])[0].split(generate_cfg["end_sym"])[0].lower()
        out[f"{name}.audio"] = audio.astype(np.float64)
        out[f"{name}.speech_embeds"] = speech[0].numpy()
        out[f"{name}.logits"] = logits.numpy()
        out[f"{name}.greedy"] = greedy.numpy()
        out[f"{name}.beam"] = beam.numpy()
        out[f"{name}.beam_text"] = np.array(text)
        print(name, task, "greedy", greedy.tolist(), "beam", beam.tolist())
    import torchaudio.compliance.kaldi as kaldi

    wav = torch.from_numpy(out["asr0001.audio"]).unsqueeze(0) * 2 ** 15
    out["fbank128.asr0001"] = kaldi.fbank(wav, num_mel_bins=128, sample_frequency=16000, frame_length=25,
                                          frame_shift=10).numpy()
    out["versions"] = np.array(json.dumps({"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                                           "peft": __import__("peft").__version__, "librosa": librosa.__version__}))
    np.savez_compressed(job["out"], **out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help="a checkout of nota-github/audiolm-trainer")
    parser.add_argument("--python", help="the python of the reference's own venv")
    parser.add_argument("--torchaudio-wheel", help="a torchaudio wheel (only compliance/kaldi.py is read from it)")
    args = parser.parse_args()
    if args.inner:
        inner(args.inner)
        return
    missing = [f"--{k.replace('_', '-')}" for k in ("reference", "python", "torchaudio_wheel") if not getattr(args, k)]
    if missing:
        parser.error(f"missing {', '.join(missing)}")
    if not (Path(args.reference) / "models" / "salmonn.py").is_file():
        parser.error(f"{args.reference}: no models/salmonn.py (pass a checkout of nota-github/audiolm-trainer)")
    sys.path.insert(0, str(REPO))
    outer(args)


if __name__ == "__main__":
    main()
