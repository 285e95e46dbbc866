"""Two runs side by side: every criterion with its ratio, and the samples where they differ most.

Per-sample scores need the harness's scorers (the one text normalizer of the project); the
caller passes them in, so this module still never imports the harness or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leaderboard.grouping import Group, datasets_of, device_kind
from leaderboard.ranking import CIDER_D_FALLBACK, LATENCY, MEMORY, SPIDER, WER, extra_criterion, finite_number, value_at
from leaderboard.results import RUN_FILE, latest_per_candidate
from leaderboard.stream_notes import tpot_unavailable_reason
from records.files import PREDICTIONS_FILE, read_run_record
from records.files import read_predictions as read_prediction_lines
from records.prediction import Prediction
from records.run_record import RunRecord, as_run_record
from records.schema import RecordError

# task -> (metric name, "min"/"max", scorer(predictions, references lists) -> per-sample scores)
Scorer = Callable[[list[str], list[list[str]]], list[float | None]]


@dataclass(frozen=True)
class SampleDiff:
    task: str
    sample_id: str
    metric: str
    score_a: float
    score_b: float
    prediction_a: str
    prediction_b: str
    reference: str

    @property
    def diff(self) -> float:
        return self.score_b - self.score_a


def resolve_run(ref: str, results_dir: str | Path) -> tuple[RunRecord, Path]:
    """A run by folder path, run.json path, run id, unique run-id prefix or candidate name."""
    path = Path(ref)
    candidates = [path if path.name == RUN_FILE else path / RUN_FILE, Path(results_dir) / ref / RUN_FILE]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        root = Path(results_dir)
        records = []
        if root.is_dir():
            for p in sorted(root.glob(f"*/{RUN_FILE}")):
                if p.parent.name.startswith(ref):
                    records.append(p)
            if not records:  # a candidate name: its newest run
                by_name = []
                for p in sorted(root.glob(f"*/{RUN_FILE}")):
                    try:
                        record = read_run_record(p.parent)
                    except RecordError:
                        continue
                    if record.candidate == ref and record.status != "failed" and not record.is_load_test:
                        by_name.append((record, p))  # a load test has no predictions to compare
                if by_name:
                    newest = latest_per_candidate([r for r, _ in by_name])[0]
                    records = [p for r, p in by_name if r is newest]
        if len(records) > 1:
            names = ", ".join(p.parent.name for p in records[:5])
            raise ValueError(f"{ref!r} matches several runs ({names}...); give the full run id")
        if not records:
            raise ValueError(f"no run {ref!r}: not a run folder, nor a run id or candidate in {results_dir}")
        found = records[0]
    return read_run_record(found.parent), found.parent  # RecordError (a ValueError) names the file


def _ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.2f}x" if a and b is not None and a > 0 else "n/a"


def _diff(a: float | None, b: float | None, scale: float = 1.0, unit: str = "", fmt: str = "+.4f") -> str:
    return f"{(b - a) * scale:{fmt}}{unit}" if a is not None and b is not None else "n/a"


def _fmt(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def criteria_table(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[list[str]]:
    """[label, A, B, B vs A] lines for every ranked criterion and the main timings."""
    spider = SPIDER if SPIDER.extract(a) is not None or SPIDER.extract(b) is not None else CIDER_D_FALLBACK
    label = "SPIDEr" if spider is SPIDER else "CIDEr-D"
    lines = [
        ["WER ↓", _fmt(WER.extract(a), ".3f"), _fmt(WER.extract(b), ".3f"), _diff(WER.extract(a), WER.extract(b), 100, " pt", "+.1f")],
        [f"{label} ↑", _fmt(spider.extract(a), ".4f"), _fmt(spider.extract(b), ".4f"), _diff(spider.extract(a), spider.extract(b))],
    ]
    extra = extra_criterion([a, b])
    if extra is not None:
        arrow = "↑" if extra.direction == "max" else "↓"
        lines.append([f"{extra.label} {arrow}", _fmt(extra.extract(a), ".4g"), _fmt(extra.extract(b), ".4g"),
                      _diff(extra.extract(a), extra.extract(b), fmt="+.4g")])
    for name, crit in (("Memory MB ↓", MEMORY), ("Latency ms ↓", LATENCY)):
        va, vb = crit.extract(a), crit.extract(b)
        lines.append([name, _fmt(va, ".1f"), _fmt(vb, ".1f"), _ratio(va, vb)])
    for name, keys, fmt in (
        ("TTFT p50 ms", ("efficiency", "ttft_ms", "p50"), ".1f"),
        ("TPOT p50 ms", ("efficiency", "tpot_ms", "p50"), ".2f"),
        ("Weights MB", ("efficiency", "weights_mb"), ".1f"),
        ("Tokens/s", ("efficiency", "tokens_per_s"), ".1f"),
        ("RTFx", ("efficiency", "rtfx"), ".1f"),
    ):
        va, vb = finite_number(value_at(a, keys)), finite_number(value_at(b, keys))
        if va is not None or vb is not None:
            lines.append([name, _fmt(va, fmt), _fmt(vb, fmt), _ratio(va, vb)])
    if tpot_unavailable_reason(a) or tpot_unavailable_reason(b):  # never the near-zero gap, and why
        lines.append(["TPOT", *("n/a: buffered stream" if tpot_unavailable_reason(r) else "" for r in (a, b)), ""])
    return lines


def comparability(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """How the two runs' measurement conditions differ (empty when they are comparable)."""
    a, b = as_run_record(a), as_run_record(b)
    ga = Group(device_kind(a), datasets_of(a), [a])
    gb = Group(device_kind(b), datasets_of(b), [b])
    if ga.kind == gb.kind and all(ga.datasets[s] == gb.datasets[s] for s in set(ga.datasets) & set(gb.datasets)):
        return []
    return gb.differences(ga)


def read_predictions(run_dir: Path) -> dict[tuple[str, str], Prediction]:
    """(task, sample id) -> the run's prediction line; the first of a resumed sample, as scored."""
    return {p.key: p for p in read_prediction_lines(run_dir / PREDICTIONS_FILE)}


def sample_diffs(
    dir_a: Path, dir_b: Path, scorers: Mapping[str, tuple[str, Scorer]], top: int = 10
) -> tuple[dict[str, list[SampleDiff]], list[str]]:
    """Per task, the ``top`` samples whose scores differ most between the runs; and notes."""
    pa, pb = read_predictions(dir_a), read_predictions(dir_b)
    notes: list[str] = []
    if not pa or not pb:
        missing = [str(d / PREDICTIONS_FILE) for d, p in ((dir_a, pa), (dir_b, pb)) if not p]
        return {}, [f"no per-sample comparison: no predictions in {', '.join(missing)}"]
    shared = sorted(set(pa) & set(pb))
    only = len(set(pa) ^ set(pb))
    if only:
        notes.append(f"{only} sample(s) appear in one run only; not compared")
    out: dict[str, list[SampleDiff]] = {}
    for task in sorted({t for t, _ in shared}):
        keys = [k for k in shared if k[0] == task]
        ok = [k for k in keys if pa[k].error is None and pb[k].error is None
              and pa[k].prediction is not None and pb[k].prediction is not None]
        failed = len(keys) - len(ok)
        if failed:
            notes.append(f"{task}: {failed} sample(s) failed in at least one run; not compared")
        if task not in scorers:
            notes.append(f"{task}: no per-sample scorer for this task; not compared")
            continue
        metric, scorer = scorers[task]
        refs = [pa[k].references or pb[k].references for k in ok]
        try:
            sa = scorer([pa[k].prediction for k in ok], refs)
            sb = scorer([pb[k].prediction for k in ok], refs)
        except Exception as err:  # a scorer that cannot run here must not hide the rest
            notes.append(f"{task}: per-sample {metric} unavailable ({type(err).__name__}: {err})")
            continue
        diffs = [
            SampleDiff(task, k[1], metric, x, y, pa[k].prediction, pb[k].prediction, (r or [""])[0])
            for k, x, y, r in zip(ok, sa, sb, refs, strict=True)
            if x is not None and y is not None
        ]
        diffs.sort(key=lambda d: (-abs(d.diff), d.sample_id))
        out[task] = [d for d in diffs[:top] if d.diff != 0] or []
        if not out[task]:
            notes.append(f"{task}: the {len(diffs)} compared samples score the same in both runs")
    return out, notes


def format_comparison(
    a: RunRecord, b: RunRecord, diffs: Mapping[str, list[SampleDiff]], notes: list[str]
) -> str:
    from tabulate import tabulate

    lines = [f"A: {a.candidate}  run {a.run_id}", f"B: {b.candidate}  run {b.run_id}", ""]
    differ = comparability(a, b)
    if differ:
        lines += ["WARNING: these runs were not measured under the same conditions: " + "; ".join(differ), ""]
    lines.append(tabulate(criteria_table(a, b), headers=["criterion", "A", "B", "B vs A"],
                          disable_numparse=True, colalign=("left", "right", "right", "right")))
    lines.append("B vs A: WER in percentage points, quality metrics as differences, costs as ratios B/A.")
    for task, items in diffs.items():
        if not items:
            continue
        metric = items[0].metric
        lines += ["", f"{task}: the {len(items)} samples where per-sample {metric} differs most (B - A)"]
        for d in items:
            lines.append(f"  {d.sample_id}  {metric} A {d.score_a:.3f}  B {d.score_b:.3f}  ({d.diff:+.3f})")
            lines.append(f"    ref: {_clip(d.reference)}")
            lines.append(f"    A:   {_clip(d.prediction_a)}")
            lines.append(f"    B:   {_clip(d.prediction_b)}")
    if notes:
        lines += [""] + [f"note: {n}" for n in notes]
    return "\n".join(lines)


def _clip(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
