"""The transcript normalizer shared by WER scoring and the long-audio merge: Whisper's English normalizer."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize_transcript(text: str) -> str:
    return _normalizer()(text or "")
