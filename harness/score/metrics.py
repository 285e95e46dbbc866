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

from harness.data.text import normalize_transcript

SPICE_INSTALL_HINT = "aac-metrics-download (needs Java and network access to fetch the SPICE jars)"






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


def _cache_root(cache: Path | None) -> Path:
    """aac-metrics' cache_path (the folder holding `aac-metrics/`); `--aac-cache` may name either."""
    if cache is None:
        return Path(os.environ.get("AAC_METRICS_CACHE", Path.home() / ".cache"))
    cache = Path(cache).expanduser()
    return cache.parent if (cache / "spice").is_dir() and cache.name == "aac-metrics" else cache


def spice_status(cache: Path | None = None) -> tuple[Path | None, str]:
    """(cache root, "") when SPICE can run; (None, one-line reason naming the fix) when not."""
    root = _cache_root(cache)
    spice = root / "aac-metrics" / "spice"
    needed = [spice / "spice-1.0.jar", spice / "lib" / "stanford-corenlp-3.6.0.jar",
              spice / "lib" / "stanford-corenlp-3.6.0-models.jar"]
    missing = [str(p.relative_to(root)) for p in needed if not p.is_file()]
    if missing:
        return None, (f"SPICE and SPIDEr unavailable: {', '.join(missing)} not found in {root}; "
                      f"install with {SPICE_INSTALL_HINT}")
    if not shutil.which("java"):
        return None, "SPICE and SPIDEr unavailable: Java not found on PATH (SPICE is a Java program)"
    return root, ""


def _spice(cands: list[str], refs: list[list[str]], root: Path):
    """aac-metrics' SPICE, minus its Java version check.

    aac-metrics 0.5.4 (utils/checks.py) accepts Java 8 to 13 only, but the SPICE 1.0 jar runs on
    newer Java (17 here); that one check is patched out for this call, nothing else changes.
    """
    import importlib
    from unittest import mock

    module = importlib.import_module("aac_metrics.functional.spice")
    (root / "aac-metrics" / "spice" / "cache").mkdir(exist_ok=True)  # its install check wants it
    with mock.patch.object(module, "check_java_path", lambda _path: True):
        corpus, sents = module.spice(cands, refs, return_all_scores=True, cache_path=str(root),
                                     java_path=shutil.which("java"))
    return float(corpus["spice"]), sents["spice"].numpy()


@lru_cache(maxsize=1)
def aac_text_metrics():
    """aac-metrics' own `bleu`, `cider_d` and `rouge_l` functions, without its package __init__.

    `import aac_metrics` imports every metric it ships (BERTScore, FENSE, SBERT: transformers,
    sentence-transformers, torchmetrics), ~10 s on 2 cores; these three need only torch and
    numpy. Their modules are loaded under bare parent packages, then every `aac_metrics` module
    this loaded is taken out of sys.modules again, so a later `import aac_metrics` (SPICE) runs
    the real package exactly as if this had never happened.
    """
    import importlib
    import importlib.util
    import sys

    if "aac_metrics.functional" in sys.modules:  # the real package is already imported: use it
        from aac_metrics.functional import bleu, cider_d, rouge_l

        return bleu, cider_d, rouge_l
    before = set(sys.modules)
    try:
        for package in ("aac_metrics", "aac_metrics.functional"):
            sys.modules[package] = importlib.util.module_from_spec(importlib.util.find_spec(package))
        modules = [importlib.import_module(f"aac_metrics.functional.{name}") for name in ("bleu", "cider_d", "rouge_l")]
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "aac_metrics" and m not in before]:
            del sys.modules[name]
    return tuple(getattr(module, module.__name__.rsplit(".", 1)[1]) for module in modules)


def caption_scores(candidates: list[str], references: list[list[str]], aac_cache: Path | None = None):
    """(metrics, notices, per-sample scores). CIDEr-D, BLEU-4 and ROUGE-L always; SPICE and SPIDEr
    only when SPICE can really run (SPIDEr = (CIDEr-D + SPICE) / 2), else None, never estimated.

    All references of a clip are used. Per-sample arrays (`cider_d`, `spice`, `spider`) feed
    the bootstrap intervals.
    """
    import numpy as np

    bleu, cider_d, rouge_l = aac_text_metrics()
    cands = [normalize_caption(c) for c in candidates]
    refs = [[normalize_caption(r) for r in rs] for rs in references]
    metrics: dict[str, Any] = {"cider_d": None, "spice": None, "spider": None}
    per_sample: dict[str, Any] = {}
    notices: list[str] = []
    if len(cands) >= 2:
        corpus, sents = cider_d(cands, refs, return_all_scores=True)
        metrics["cider_d"] = float(corpus["cider_d"])
        per_sample["cider_d"] = sents["cider_d"].numpy()
    else:  # its IDF weights come from the whole corpus of references
        notices.append("CIDEr-D needs at least 2 scored clips; not computed")
    metrics["bleu_4"] = float(bleu(cands, refs, n=4)[0]["bleu_4"])
    metrics["rouge_l"] = float(rouge_l(cands, refs)[0]["rouge_l"])
    metrics["n_references"] = max((len(r) for r in refs), default=0)
    root, reason = spice_status(aac_cache)
    if root is None:
        notices.append(reason)
        return metrics, notices, per_sample
    try:
        metrics["spice"], per_sample["spice"] = _spice(cands, refs, root)
        if metrics["cider_d"] is not None:
            metrics["spider"] = (metrics["cider_d"] + metrics["spice"]) / 2
            per_sample["spider"] = (per_sample["cider_d"] + np.asarray(per_sample["spice"])) / 2
    except Exception as err:  # a Java or jar problem must not lose the other metrics
        notices.append(f"SPICE failed ({type(err).__name__}: {err}); SPIDEr not computed")
    return metrics, notices, per_sample


def caption_metrics(candidates: list[str], references: list[list[str]],
                    aac_cache: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """CIDEr-D, BLEU-4, ROUGE-L, SPICE, SPIDEr (see `caption_scores`); returns (metrics, notices)."""
    metrics, notices, _ = caption_scores(candidates, references, aac_cache)
    return metrics, notices


def wer_per_sample(refs: list[str], hyps: list[str]):
    """Per-sample (errors, reference words) of normalized texts, from one jiwer alignment.

    Sums give exactly `wer_of_normalized`'s corpus WER; empty references count their hypothesis
    words as insertions over 0 words.
    """
    import jiwer
    import numpy as np

    errors = np.zeros(len(refs), dtype=np.int64)
    words = np.zeros(len(refs), dtype=np.int64)
    kept = [i for i, r in enumerate(refs) if r.strip()]
    for i, h in enumerate(hyps):
        if not refs[i].strip():
            errors[i] = len(h.split())
    if kept:
        out = jiwer.process_words([refs[i] for i in kept], [hyps[i] for i in kept])
        for k, (i, chunks) in enumerate(zip(kept, out.alignments, strict=True)):
            words[i] = len(out.references[k])
            errors[i] = sum(
                (c.hyp_end_idx - c.hyp_start_idx) if c.type == "insert" else (c.ref_end_idx - c.ref_start_idx)
                for c in chunks if c.type != "equal"
            )
    return errors, words
