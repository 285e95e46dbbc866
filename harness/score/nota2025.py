"""Scoring as the nota2025 protocol's organiser did: sacrebleu 13a WER, CIDEr-D against one reference."""

from __future__ import annotations

from typing import Any


def nota_wer(references: list[str], hypotheses: list[str]) -> dict[str, Any]:
    """WER as the organiser scored it: Whisper normalizer, then sacrebleu's 13a tokenizer."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    from harness.data.text import normalize_transcript
    from harness.score.metrics import wer_of_normalized

    tokenize = Tokenizer13a()
    return wer_of_normalized(
        [tokenize(normalize_transcript(r)) for r in references],
        [tokenize(normalize_transcript(h)) for h in hypotheses],
    )


def nota_caption(candidates: list[str], references: list[list[str]]) -> tuple[dict[str, Any], list[str]]:
    """The organiser's "SPIDEr": CIDEr-D against the first reference only."""
    from harness.score.metrics import caption_metrics

    metrics, notices = caption_metrics(candidates, [refs[:1] for refs in references])
    cider = metrics["cider_d"]
    result = {"cider_d": cider, "spider": cider, "spider_is_cider_d": True, "n_references": 1}
    return result, ["nota2025: 'spider' is CIDEr-D alone against one reference per clip (the organiser's method)"]
