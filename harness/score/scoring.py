"""Turns prediction records into the metrics and efficiency blocks of run.json."""

from __future__ import annotations

from typing import Any

from harness.data.annotation import dataset_hash
from harness.data.text import normalize_transcript
from harness.measure.roofline import roofline
from harness.measure.timing import buffered_reason, latency_ms, summarize
from harness.score import bootstrap
from harness.score import tasks as question_suites
from harness.score.metrics import caption_metrics, caption_scores, wer_metrics, wer_of_normalized, wer_per_sample
from harness.score.nota2025 import nota_caption, nota_wer
from records.prediction import Prediction, as_prediction
from records.worker_summary import WorkerSummary

SCORERS = {
    "default": {"asr": wer_metrics, "aac": caption_metrics},
    "nota2025": {"asr": nota_wer, "aac": nota_caption},
}


def score_suite(plan, predictions: list[dict], protocol: str = "default",
                timed: list[dict] | None = None) -> dict[str, Any]:
    """Quality metrics of one suite, where every planned sample counts.

    A sample that failed, was skipped (--skip-invalid) or never ran is scored as an empty
    prediction in `metrics` (ASR: its reference words become deletions; captions: an empty
    caption; plugin suites: whatever their metric gives for ""), as a competition scorer treats
    a missing row; the nota2025 protocol follows the same rule, as its organiser did.
    `metrics_scored_only` keeps the samples with a prediction only, and `coverage` is
    predicted / planned. The block also names the suite's `primary_metric` and its direction,
    whether it is an `extra` suite (a plugin's, not asr/aac), the `dataset_hash` of the planned
    samples and bootstrap 95% intervals over all planned samples in `metrics_ci` (default
    protocol).

    The suite's `efficiency` comes from `timed` (the batch-1 timed requests of a batched run),
    else from the predictions themselves; records without timings never count.
    """
    suite = plan.suite
    name = suite.name
    predictions = [as_prediction(r) for r in predictions]
    by_id = {r.sample_id: r for r in predictions if r.task == name}
    records = [by_id[s.sample_id] for s in plan.samples if s.sample_id in by_id]
    ok = [r for r in records if r.error is None]
    failures = [{"sample_id": r.sample_id, "reason": r.error} for r in records if r.error]
    failures += [{"sample_id": p.sample_id, "reason": f"skipped: {p.reason}"} for p in plan.skipped]
    not_run = [s.sample_id for s in plan.samples if s.sample_id not in by_id]
    planned = len(plan.samples) + len(plan.skipped)
    block: dict[str, Any] = {
        "dataset": plan.dataset,
        "dataset_hash": dataset_hash(plan.samples),
        "primary_metric": suite.primary_metric,
        "higher_is_better": suite.higher_is_better,
        "extra": suite.extra,
        "n_samples": planned,
        "n_scored": len(ok),
        "n_failed": len(failures) + len(not_run),
        "n_predicted": len(records),
        "coverage": len(ok) / planned if planned else None,
        "failures": failures,
        "not_run": not_run,
        "notices": list(getattr(plan, "notices", [])),
        "metrics": {},
        "metrics_scored_only": {},
        "metrics_ci": {},
    }
    if suite.primary_range is not None:  # lets the leaderboard combine several extra suites
        block["primary_range"] = list(suite.primary_range)
    planned_ids = {s.sample_id for s in plan.samples}
    block["efficiency"] = _timings([
        r for r in (predictions if timed is None else timed)
        if r.task == name and r.sample_id in planned_ids and r.error is None and r.e2e_ms is not None
    ])
    if name in question_suites.SUITES:  # per-sample questions: harness/score/tasks.py
        judge = question_suites.judge_of(records)
        if judge is not None:
            block["judge"] = judge
        try:
            block["metrics"], block["metrics_scored_only"], block["metrics_ci"], notices = question_suites.score(plan, by_id)
            block["notices"] += notices
        except Exception as err:  # keep the record (and the predictions) even when a metric breaks
            block["notices"].append(f"scoring failed: {type(err).__name__}: {err}")
        return block
    rows = planned_rows(plan, by_id)
    unknown = sum(1 for refs, _ in rows[len(plan.samples):] if not refs)
    if unknown:
        block["notices"].append(
            f"{unknown} skipped sample(s) have no known reference: they lower the coverage but "
            "cannot be scored as empty predictions")
    full = [(refs, hyp or "") for refs, hyp in rows if refs]
    scored = [(refs, hyp) for refs, hyp in rows if refs and hyp is not None]
    if not full:
        block["notices"].append("no planned sample has a reference: nothing to score")
        return block
    if len(scored) < len(full):
        block["notices"].append(
            f"{len(full) - len(scored)} of {len(full)} samples with a reference have no prediction "
            "(failed, skipped or not run): `metrics` scores them as empty predictions, "
            "`metrics_scored_only` leaves them out")
    try:
        block["metrics"], block["metrics_ci"], notices = _metrics(plan, protocol, full)
        block["notices"] += notices
        if len(scored) == len(full):
            block["metrics_scored_only"] = dict(block["metrics"])
        elif scored:
            block["metrics_scored_only"], _, _ = _metrics(plan, protocol, scored, with_ci=False)
    except Exception as err:  # keep the record (and the predictions) even when a metric breaks
        block["notices"].append(f"scoring failed: {type(err).__name__}: {err}")
    return block


def planned_rows(plan, by_id: dict[str, Prediction]) -> list[tuple[list[str], str | None]]:
    """(references, prediction) for every planned sample, in plan order, skipped ones last;
    the prediction is None when the sample has none (it failed, was skipped or did not run)."""
    rows: list[tuple[list[str], str | None]] = []
    for sample in plan.samples:
        record = by_id.get(sample.sample_id)
        ok = record is not None and record.error is None
        rows.append((list(sample.references), (record.prediction or "") if ok else None))
    rows += [(list(getattr(p, "references", None) or []), None) for p in plan.skipped]
    return rows


def _metrics(plan, protocol: str, rows: list[tuple[list[str], str]], with_ci: bool = True) -> tuple[dict, dict, list[str]]:
    """(metrics, bootstrap intervals, notices) of (references, hypothesis) rows."""
    name = plan.suite.name
    refs = [r for r, _ in rows]
    hyps = [h for _, h in rows]
    if protocol == "default" and name == "asr":
        metrics, ci = _score_asr([r[0] for r in refs], hyps, with_ci)
        return metrics, ci, []
    if protocol == "default" and name == "aac":
        metrics, notices, per_sample = caption_scores(hyps, refs, getattr(plan, "aac_cache", None))
        return metrics, _mean_cis(per_sample) if with_ci else {}, notices
    if name in SCORERS.get(protocol, {}):
        scorer = SCORERS[protocol][name]
        if name == "asr":
            return scorer([r[0] for r in refs], hyps), {}, []
        metrics, notices = scorer(hyps, refs)
        return metrics, {}, list(notices)
    metrics, ci, notices = _score_plugin(plan.suite, hyps, refs)
    return metrics, ci if with_ci else {}, notices


def score_suites(plans, predictions: list[dict], protocol: str = "default",
                 timed: list[dict] | None = None) -> dict[str, dict[str, Any]]:
    """Every suite block of a run record, by suite name (`timed`: see score_suite)."""
    return {p.suite.name: score_suite(p, predictions, protocol, timed) for p in plans}


def run_coverage(suites: dict[str, dict[str, Any]]) -> float | None:
    """The run's coverage: the lowest of its suites' (each suite is ranked on its own metric)."""
    values = [b["coverage"] for b in suites.values() if b.get("coverage") is not None]
    return min(values) if values else None


def _score_asr(refs: list[str], hyps: list[str], with_ci: bool = True) -> tuple[dict, dict]:
    """Corpus WER and the bootstrap interval of corpus WER from per-sample edit counts."""
    refs = [normalize_transcript(r) for r in refs]
    hyps = [normalize_transcript(h) for h in hyps]
    metrics = wer_of_normalized(refs, hyps)
    if not with_ci:
        return metrics, {}
    errors, words = wer_per_sample(refs, hyps)
    ci = bootstrap.ratio_ci(errors, words)
    return metrics, ({"wer": ci} if ci else {})


def _mean_cis(per_sample: dict) -> dict:
    """Intervals of per-sample means. For CIDEr-D this is an approximation: its IDF weights come
    from the whole corpus, and are not recomputed per draw (the per-sample scores are computed
    once on the full set); the accepted practice for caption metrics."""
    if not per_sample:
        return {}
    n = len(next(iter(per_sample.values())))
    idx = bootstrap.draw_indices(n) if n >= 2 else None
    cis = {k: bootstrap.mean_ci(v, indices=idx) for k, v in per_sample.items() if len(v) == n}
    return {k: v for k, v in cis.items() if v is not None}


def _score_plugin(suite, hyps: list[str], refs: list[list[str]]) -> tuple[dict, dict, list[str]]:
    """A plugin suite's metric; a `per_sample` entry ({metric: [score per sample]}) gives intervals."""
    out = suite.metric(hyps, refs)
    metrics, notices = out if isinstance(out, tuple) else (out, [])
    metrics = dict(metrics)
    per_sample = metrics.pop("per_sample", None) or {}
    if suite.primary_metric not in metrics:
        notices = [*notices, f"metric function returned no {suite.primary_metric!r} (the primary metric)"]
    return metrics, _mean_cis(per_sample), list(notices)


def _timings(records: list[Prediction]) -> dict[str, Any]:
    ttft = summarize([r.ttft_ms for r in records])
    buffered = sum(1 for r in records if r.stream_buffered)
    # A server that buffers some answers buffers the short ones too (too short to be flagged): the
    # run's TPOT is then unavailable as a whole, never the near-zero gap between buffered chunks.
    tpot = summarize([] if buffered else [r.tpot_ms for r in records])
    e2e = summarize([r.e2e_ms for r in records])
    e2e_s = sum(r.e2e_ms for r in records) / 1000.0
    tokens = sum(r.n_tokens or 0 for r in records)
    # The audio the model heard: a truncated sample counts its window, not its whole length.
    audio_s = sum(min(r.audio_s or 0.0, r.truncated_to_s or float("inf")) for r in records)
    return {
        "n_requests": len(records),
        "ttft_ms": ttft,
        "tpot_ms": tpot,
        "e2e_ms": e2e,
        "latency_ms": latency_ms(ttft, tpot),
        "tpot_available": tpot["n"] > 0,
        **({"stream_buffered": {"samples": buffered, "of": len(records)},
            "tpot_unavailable_reason": buffered_reason(buffered, len(records))} if buffered else {}),
        "tokens_per_s": tokens / e2e_s if e2e_s else None,
        "rtfx": audio_s / e2e_s if e2e_s else None,
    }


def efficiency_block(predictions: list[Prediction], worker: WorkerSummary, device: str,
                     protocol: str = "default") -> dict[str, Any]:
    """Latency over every timed request of the run, and the memory the child reported.

    Ranked memory: on a GPU, torch's peak allocated bytes; on a CPU, the peak RSS above the
    child's post-import baseline; for a candidate that reports `external_memory()` (a served
    model), that memory, null with its reason when it cannot be seen. Under nota2025 the
    organiser's numbers are ranked instead.
    """
    ok = [r for r in predictions if r.error is None and r.e2e_ms is not None]
    block = _timings(ok)
    memory = worker.memory or {}
    weights = worker.weights_bytes
    if protocol == "nota2025":
        return _nota_block(worker.nota2025 or {}, block, memory, weights, worker.decoder_weights_bytes,
                           worker.bandwidth_gbps)
    gpu = device.startswith("cuda")
    block["peak_memory_mb"] = memory.get("max_allocated_mb") if gpu else memory.get("rss_peak_above_baseline_mb")
    block["peak_memory_kind"] = "cuda_max_allocated" if gpu else "cpu_rss_peak_above_baseline"
    block["memory"] = memory
    external = worker.external_memory
    if external is not None:  # a served model: its server's memory (or null with the reason)
        block["peak_memory_mb"] = external.get("peak_mb")
        block["peak_memory_kind"] = external.get("kind")
        block["external_memory"] = external
    block["weights_mb"] = weights / (1024 * 1024) if weights is not None else None
    by_part = worker.weights_bytes_by_part
    block["weights_mb_by_part"] = {k: v / (1024 * 1024) for k, v in by_part.items()} if by_part else None
    block["roofline"] = roofline(
        worker.decoder_weights_bytes, worker.bandwidth_gbps, block["tpot_ms"]["p50"]
    )
    if block.get("tpot_unavailable_reason") and block["latency_ms"] is not None:
        block["latency_note"] = block["tpot_unavailable_reason"]
    elif not block["tpot_available"] and block["latency_ms"] is not None:
        block["latency_note"] = "TPOT n/a (tokens arrive in one piece): latency = median TTFT, which covers the whole decode"
    return block


def _nota_block(nota: dict, per_sample: dict, memory: dict, weights: int | None,
                worker_decoder_bytes: int | None, bandwidth: float | None) -> dict[str, Any]:
    supported = nota.get("supported", False)
    return {
        "protocol": "nota2025",
        "supported": supported,
        "reason": nota.get("reason"),
        "ttft_ms": nota.get("ttft_ms", {"mean": None, "p50": None}),
        "tpot_ms": nota.get("tpot_ms", {"mean": None, "p50": None}),
        "latency_ms": nota.get("latency_ms"),
        "peak_memory_mb": nota.get("peak_memory_mb"),
        "peak_memory_kind": "nota2025: mean over iterations of the never-reset peak counter",
        "iterations": nota.get("iterations"),
        "memory": memory,
        "weights_mb": weights / (1024 * 1024) if weights is not None else None,
        "roofline": roofline(worker_decoder_bytes, bandwidth, nota.get("tpot_ms", {}).get("mean")),
        "per_sample_not_ranked": per_sample,
    }
