"""Family `pocketsphinx`: CMU PocketSphinx, the classic offline recognizer (HMM acoustic model +
n-gram language model + pronunciation dictionary), as a non-neural reference row. CPU only.

Options: `hmm` (acoustic model folder), `lm` (n-gram language model), `dict` (pronunciation
dictionary); by default the US English models shipped inside the `pocketsphinx` package;
`config`, a table of any other `pocketsphinx.Decoder` configuration parameters.
It decodes a whole utterance at once: `on_token` is called once at the end with the word count,
so TPOT is n/a and TTFT covers the whole decode.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.candidate import Candidate
from harness.spec import CandidateSpec
from harness.types import SAMPLE_RATE, Generation, Request, TokenCallback

MODEL_FILES = ("hmm", "lm", "dict")  # the configuration keys that name files it loads


@dataclass(frozen=True)
class PocketSphinxOptions:
    hmm: str | None = None  # acoustic model folder; default: the package's US English model
    lm: str | None = None  # n-gram language model
    dict: str | None = None  # pronunciation dictionary
    # any other pocketsphinx.Decoder parameter (`builtins.dict`: the field above is named `dict`)
    config: builtins.dict[str, Any] = field(default_factory=builtins.dict)

    def __post_init__(self):
        if "samprate" in self.config:
            raise ValueError("pocketsphinx: this candidate feeds 16 kHz audio; do not set samprate")


class PocketSphinxCandidate(Candidate):
    """PocketSphinx (CMU Sphinx), English ASR only; non-streaming."""

    tasks = frozenset({"asr"})
    Options = PocketSphinxOptions

    def __init__(self, spec: CandidateSpec):
        super().__init__(spec)
        self.decoder = None

    def load(self, device: str) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise ImportError("pocketsphinx: pip install pocketsphinx (or `pip install -e '.[sphinx]'`)") from None
        self.device = "cpu"  # PocketSphinx has no GPU path, whatever device was asked for
        files = {key: getattr(self.options, key) for key in MODEL_FILES if getattr(self.options, key)}
        self.decoder = Decoder(samprate=SAMPLE_RATE, **files, **self.options.config)

    def imports_torch(self) -> bool:
        return False  # CPU-only C decoder: its measured child skips importing torch and transformers

    def model_files(self) -> list[Path]:
        """The files the decoder was configured with (an acoustic model is a folder of files)."""
        files = []
        for key in MODEL_FILES:
            value = self.decoder.config[key]
            if not value:
                continue
            path = Path(value)
            files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        return files

    def weight_bytes(self) -> int:
        """Bytes of the model files it loads (acoustic model, language model, dictionary)."""
        return sum(p.stat().st_size for p in self.model_files())

    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        pcm = (np.clip(request.audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        decoder = self.decoder
        decoder.start_utt()
        decoder.process_raw(pcm, no_search=False, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        text = hypothesis.hypstr.strip() if hypothesis is not None else ""
        n_words = len(text.split())
        if n_words:
            on_token(n_words)  # all words exist only now: one callback, TPOT n/a
        return Generation(text=text, n_tokens=n_words)
