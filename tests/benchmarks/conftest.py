"""Built-in candidates loaded once, in this process, with one pinned thread."""

from __future__ import annotations

import pytest

from harness.data.annotation import load_annotation_json
from harness.data.audio import load_audio
from harness.suites import SUITES
from harness.types import Request
from tests.conftest import loaded  # noqa: F401 (the benchmarks import it from here)


@pytest.fixture(scope="session", autouse=True)
def pinned_threads():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def demo_request():
    """The fixed request every benchmark uses: the first demo utterance with the ASR prompt."""
    samples, _ = load_annotation_json(SUITES["asr"].demo_file)
    audio, _ = load_audio(samples[0].audio_path)
    suite = SUITES["asr"]
    return Request(samples[0].sample_id, audio, "asr", suite.prompt, suite.max_new_tokens)

