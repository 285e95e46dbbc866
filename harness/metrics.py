"""Quality metrics: WER for speech recognition, CIDEr-D / SPICE / SPIDEr for captioning.

One text normalizer for all ASR scoring (the Whisper English normalizer, as the open ASR
leaderboard uses), so every candidate is scored the same way.
"""

from __future__ import annotations

import os
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

SPICE_INSTALL_HINT = "aac-metrics-download (needs Java and network access to fetch the SPICE jars)"


@lru_cache(maxsize=1)
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize_transcript(text: str) -> str:
    return _normalizer()(text or "")


def wer_metrics(references: list[str], hypotheses: list[str]) -> dict[str, Any]:
    """Corpus-level WER and CER after normalization, with the edit counts behind them."""
    return wer_of_normalized(
        [normalize_transcript(r) for r in references], [normalize_transcript(h) for h in hypotheses]
    )


def wer_of_normalized(refs: list[str], hyps: list[str]) -> dict[str, Any]:
    import jiwer

    # jiwer cannot align an empty reference; such samples count their hypothesis words as insertions.
    kept = [(r, h) for r, h in zip(refs, hyps, strict=False) if r.strip()]
    extra_insertions = sum(len(h.split()) for r, h in zip(refs, hyps, strict=False) if not r.strip())
    if not kept:
        return {"wer": None, "cer": None, "n_ref_words": 0}
    words = jiwer.process_words([r for r, _ in kept], [h for _, h in kept])
    chars = jiwer.process_characters([r for r, _ in kept], [h for _, h in kept])
    n_ref = words.hits + words.substitutions + words.deletions
    errors = words.substitutions + words.deletions + words.insertions + extra_insertions
    return {
        "wer": errors / n_ref,
        "cer": chars.cer,
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions + extra_insertions,
        "hits": words.hits,
        "n_ref_words": n_ref,
    }


_PUNCT = re.compile(r"[^\w\s']")


def normalize_caption(text: str) -> str:
    """Lower-case, punctuation removed: a Java-free stand-in for the PTB tokenizer."""
    return " ".join(_PUNCT.sub(" ", (text or "").lower()).split())


def spice_jars(cache: Path | None = None) -> Path | None:
    """The aac-metrics cache folder when it holds SPICE and its CoreNLP jars and Java is found."""
    root = cache or Path(os.environ.get("AAC_METRICS_CACHE", Path.home() / ".cache"))
    spice = root / "aac-metrics" / "spice"
    needed = [spice / "spice-1.0.jar", spice / "lib" / "stanford-corenlp-3.6.0.jar",
              spice / "lib" / "stanford-corenlp-3.6.0-models.jar"]
    if shutil.which("java") and all(p.is_file() for p in needed):
        return root
    return None


def caption_metrics(candidates: list[str], references: list[list[str]]) -> tuple[dict[str, Any], list[str]]:
    """CIDEr-D, BLEU-4 and ROUGE-L always; SPICE and SPIDEr only when SPICE can really run.

    Returns (metrics, notices). SPICE/SPIDEr are None, never estimated, when unavailable.
    """
    from aac_metrics.functional import bleu, cider_d, rouge_l

    cands = [normalize_caption(c) for c in candidates]
    refs = [[normalize_caption(r) for r in rs] for rs in references]
    metrics: dict[str, Any] = {"cider_d": None, "spice": None, "spider": None}
    notices: list[str] = []
    if len(cands) >= 2:
        metrics["cider_d"] = float(cider_d(cands, refs)[0]["cider_d"])
    else:  # its IDF weights come from the whole corpus of references
        notices.append("CIDEr-D needs at least 2 scored clips; not computed")
    metrics["bleu_4"] = float(bleu(cands, refs, n=4)[0]["bleu_4"])
    metrics["rouge_l"] = float(rouge_l(cands, refs)[0]["rouge_l"])
    cache = spice_jars()
    if cache is None:
        notices.append(f"SPICE and SPIDEr unavailable: SPICE jars or Java not found; install with {SPICE_INSTALL_HINT}")
        return metrics, notices
    try:
        from aac_metrics.functional import spice

        metrics["spice"] = float(spice(cands, refs, cache_path=str(cache))[0]["spice"])
        if metrics["cider_d"] is not None:
            metrics["spider"] = (metrics["cider_d"] + metrics["spice"]) / 2
    except Exception as err:  # a Java or jar problem must not lose the other metrics
        notices.append(f"SPICE failed ({type(err).__name__}: {err}); SPIDEr not computed")
    return metrics, notices
