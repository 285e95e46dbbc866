"""Turn ranked rows into JSON-ready dicts and human tables (table, markdown) or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from leaderboard.ranking import LeaderboardRow

FORMATS = ("table", "markdown", "csv")
# tabulate styles: plain text for terminals, GitHub pipes for markdown reports.
_TABLEFMT = {"table": "simple", "markdown": "github"}

# Display precision per ranked metric (WER 0.123, CIDEr-D 0.0312, memory/latency 1 decimal).
_NUMBER_FORMAT: dict[str, Callable[[float], str]] = {
    "wer": "{:.3f}".format,
    "spider": "{:.4f}".format,
    "cider_d": "{:.4f}".format,
    "memory_mb": "{:.1f}".format,
    "latency_ms": "{:.1f}".format,
}
# Short names for the scoring rule printed under the table.
_SHORT_NAME = {
    "wer": "WER",
    "spider": "SPIDEr",
    "cider_d": "CIDEr-D",
    "memory_mb": "Memory",
    "latency_ms": "Latency",
}
_ARROW = {"min": "↓", "max": "↑"}
_DELTA_HEADER = {"wer": "ΔWER", "memory_mb": "Memory ×", "latency_ms": "Latency ×"}
COVERAGE_MARK = "*"
RANDOM_WEIGHTS_MARK = "(random weights)"


def _rank_json(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def to_json(rows: list[LeaderboardRow], ci: bool = False) -> list[dict[str, Any]]:
    """Plain dicts (json.dumps-able); a missing value is None.

    ``criteria.spider.metric`` names the metric ranked (spider or cider_d); the extra criterion
    names its suite and metric. ``reference`` and ``deltas`` appear when a reference candidate
    is among the rows; ``criteria.*.ci`` when ``ci`` is asked for.
    """
    out = []
    for row in rows:
        criteria: dict[str, dict[str, Any]] = {}
        for key, cv in row.criteria.items():
            entry: dict[str, Any] = {"value": cv.value, "rank": _rank_json(cv.rank)}
            if key == "spider":
                entry["metric"] = cv.metric
            if key == "extra" or key.startswith("extra."):
                entry.update(metric=cv.metric, suite=cv.suite, higher_is_better=cv.direction == "max")
            if ci:
                entry["ci"] = list(cv.ci) if cv.ci else None
                if key in ("memory_mb", "latency_ms"):
                    entry["repeats"] = cv.repeats.to_dict() if cv.repeats else None
            criteria[key] = entry
        item: dict[str, Any] = {
            "candidate": row.candidate,
            "run_id": row.run_id,
            "rank": row.rank,
            "score": row.score,
            "coverage": row.coverage,
            "criteria": criteria,
        }
        if row.random_weights:
            item["random_weights"] = True
        if row.reference is not None:
            item["reference"] = row.reference
            item["deltas"] = {k: {"value": d.value, "unit": d.unit} for k, d in row.deltas.items()}
        out.append(item)
    return out


def under_covered(row: LeaderboardRow) -> bool:
    """A run that has no prediction for some planned samples (they scored as empty)."""
    return row.coverage is not None and row.coverage < 1


def coverage_text(row: LeaderboardRow) -> str:
    return "n/a" if row.coverage is None else f"{row.coverage * 100:.1f}%"


def cells(rows: list[LeaderboardRow], ci: bool = False) -> tuple[list[str], list[list[str]]]:
    """(headers, body) of the human table, every cell a preformatted string. A Coverage column
    appears when a run is under 100%, and such rows are marked with COVERAGE_MARK."""
    keys = list(rows[0].criteria)
    show_coverage = any(under_covered(r) for r in rows)
    headers = ["Rank", "Candidate", "Score"] + [rows[0].criteria[k].label or k for k in keys]
    headers += ["Coverage"] if show_coverage else []
    ref = rows[0].reference
    if ref is not None:
        headers += [_delta_header(rows[0], k) for k in keys]
    body = []
    for row in rows:
        name = f"{row.candidate} (ref)" if row.candidate == ref else row.candidate
        name += f" {COVERAGE_MARK}" if under_covered(row) else ""
        name += f" {RANDOM_WEIGHTS_MARK}" if row.random_weights else ""
        line = [str(row.rank), name, fmt_score(row.score)] + [_cell(row, k, ci) for k in keys]
        line += [coverage_text(row)] if show_coverage else []
        if ref is not None:
            line += [delta_text(row, k) for k in keys]
        body.append(line)
    return headers, body


def to_table(rows: list[LeaderboardRow], fmt: str = "table", ci: bool = False) -> str:
    """Render rows as "table" (terminal), "markdown" or "csv".

    table/markdown cells read "value (criterion rank)" and lines under the table state the
    scoring rule. CSV is for machines: raw values and ranks in separate columns, no footer.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return _to_csv(rows)
    if not rows:
        return "No runs to rank."

    from tabulate import tabulate  # lazy: keeps `import leaderboard` fast

    headers, body = cells(rows, ci)
    # Cells are preformatted strings: keep them as written, numbers right-aligned.
    align = ["right", "left"] + ["right"] * (len(headers) - 2)
    table = tabulate(
        body, headers=headers, tablefmt=_TABLEFMT[fmt], disable_numparse=True, colalign=align
    )
    # Markdown needs a blank line between lines, or they merge into one paragraph.
    sep = "\n\n" if fmt == "markdown" else "\n"
    return f"{table}\n\n" + sep.join(footer_lines(rows, ci))


def footer_lines(rows: list[LeaderboardRow], ci: bool = False) -> list[str]:
    lines = [score_rule(rows[0])]
    ties = "ties share the mean rank (1.5, 1.5, 3)" if rows[0].ties == "average" else "ties share the lowest rank (1, 1, 3)"
    lines.append(f"Cells: value (rank on that criterion); {ties}; n/a ranks last.")
    if rows[0].tolerance_note:
        lines.append(f"Noise-aware ranks: {rows[0].tolerance_note} (weights {rows[0].profile}; "
                     "competition-exact ranks exact values).")
    if any(r.random_weights for r in rows):
        lines.append(f"{RANDOM_WEIGHTS_MARK}: a built-in tiny model with random weights; its quality numbers say nothing "
                     "about a trained model, its memory and latency are those of that tiny architecture.")
    if any(under_covered(r) for r in rows):
        line = (f"{COVERAGE_MARK} Coverage under 100%: planned samples without a prediction (failed, skipped or "
                "not run) are scored as empty predictions; --min-coverage 1 leaves such runs out.")
        if any(under_covered(r) and r.scored_only for r in rows):
            line += (" Records written before this rule scored only their predicted samples: "
                     "`bench.py rescore RUN_ID` applies it.")
        lines.append(line)
    if ci and any(cv.ci for row in rows for cv in row.criteria.values()):
        lines.append("[lo, hi]: the run's bootstrap interval, where the run has one.")
    if ci and any(cv.repeats for row in rows for cv in row.criteria.values()):
        lines.append("[min–max] (×N): the spread of the run's N repeated timed passes (run --repeat N); "
                     "the value is their median.")
    if rows[0].reference is not None:
        lines.append(
            f"Deltas relative to {rows[0].reference}: WER in percentage points, memory and latency as "
            "ratios (0.43x = 43% of the reference), captioning and extra metrics as differences."
        )
    return lines


def score_rule(row: LeaderboardRow) -> str:
    """E.g. "Score = 1xWER(↓) + 1xCIDEr-D(↑, SPICE unavailable) + ...; lower score is better"."""
    terms, unscored = [], []
    for key, cv in row.criteria.items():
        name = _name(key, cv)
        note = ", SPICE unavailable" if key == "spider" and cv.metric != "spider" else ""
        if cv.weight:
            terms.append(f"{fmt_score(cv.weight)}x{name}({_ARROW[cv.direction]}{note})")
        elif not key.startswith("extra."):  # an extra suite's own column counts through `extra`
            unscored.append(name)
    rule = f"Score = {' + '.join(terms) or '0'}; lower score is better"
    return rule + (f" (shown, not scored: {', '.join(unscored)})" if unscored else "")


def _name(key: str, cv: Any) -> str:
    if key == "extra" or key.startswith("extra."):
        return f"{cv.suite}:{cv.metric}"
    return _SHORT_NAME.get(cv.metric, cv.metric)


def _to_csv(rows: list[LeaderboardRow]) -> str:
    keys = list(rows[0].criteria) if rows else ["wer", "spider", "memory_mb", "latency_ms"]
    # Column names use the metric actually ranked, so a CIDEr-D fallback cannot be misread.
    names = [_csv_name(k, rows[0].criteria[k]) if rows else k for k in keys]
    with_ci = [k for k in keys if rows and any(r.criteria[k].ci for r in rows)]
    with_repeats = [k for k in keys if rows and any(r.criteria[k].repeats for r in rows)]
    show_coverage = any(under_covered(r) for r in rows)
    ref = rows[0].reference if rows else None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["rank", "candidate", "run_id", "score"] + [col for m in names for col in (m, f"{m}_rank")]
    header += [f"{names[keys.index(k)]}_ci_{end}" for k in with_ci for end in ("lo", "hi")]
    header += [f"{names[keys.index(k)]}_repeat_{end}" for k in with_repeats for end in ("min", "max", "n")]
    header += ["coverage"] if show_coverage else []
    if ref is not None:
        header += [f"{names[keys.index(k)]}_delta_{rows[0].deltas[k].unit}" for k in keys]
    writer.writerow(header)
    for row in rows:
        cells_: list[Any] = [row.rank, row.candidate, row.run_id, fmt_score(row.score)]
        for k in keys:
            cv = row.criteria[k]
            cells_ += ["" if cv.value is None else repr(cv.value), fmt_score(cv.rank)]
        for k in with_ci:
            ci = row.criteria[k].ci
            cells_ += [repr(ci[0]), repr(ci[1])] if ci else ["", ""]
        for k in with_repeats:
            rep = row.criteria[k].repeats
            cells_ += [repr(rep.min), repr(rep.max), rep.n] if rep else ["", "", ""]
        if show_coverage:
            cells_.append("" if row.coverage is None else repr(row.coverage))
        if ref is not None:
            cells_ += ["" if row.deltas[k].value is None else repr(round(row.deltas[k].value, 9)) for k in keys]
        writer.writerow(cells_)
    return buf.getvalue()


def _csv_name(key: str, cv: Any) -> str:
    return f"extra_{cv.suite}_{cv.metric}".replace("+", "_") if key == "extra" or key.startswith("extra.") else cv.metric


def value_text(cv: Any, value: float) -> str:
    if cv.suite is None and cv.metric in _NUMBER_FORMAT:
        return _NUMBER_FORMAT[cv.metric](value)
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def _cell(row: LeaderboardRow, key: str, ci: bool = False) -> str:
    return cell_text(row.criteria[key], ci)


def cell_text(cv: Any, ci: bool = False) -> str:
    """ "0.123 (2)", with " [lo, hi]" before the rank when asked and the run has an interval, or
    " [min–max] (×N)" for the spread of repeated timed passes (memory, latency)."""
    rank = fmt_score(cv.rank)
    if cv.value is None:
        return f"n/a ({rank})"
    text = value_text(cv, cv.value)
    if ci and cv.ci is not None:
        text += f" [{value_text(cv, cv.ci[0])}, {value_text(cv, cv.ci[1])}]"
    if ci and getattr(cv, "repeats", None) is not None:
        text += " " + repeats_text(cv)
    return f"{text} ({rank})"


def repeats_text(cv: Any) -> str:
    """E.g. "[225.1–240.3] (×5)"."""
    rep = cv.repeats
    return f"[{value_text(cv, rep.min)}–{value_text(cv, rep.max)}] (×{rep.n})"


def _delta_header(row: LeaderboardRow, key: str) -> str:
    cv = row.criteria[key]
    if key in _DELTA_HEADER:
        return _DELTA_HEADER[key]
    return f"Δ{_name(key, cv)}"


def delta_text(row: LeaderboardRow, key: str) -> str:
    if row.candidate == row.reference:
        return "ref"
    delta = row.deltas.get(key)
    if delta is None or delta.value is None:
        return "n/a"
    if delta.unit == "pt":
        return f"{delta.value:+.1f} pt"
    if delta.unit == "x":
        return f"{delta.value:.2f}x"
    cv = row.criteria[key]
    return f"{delta.value:+.4f}" if cv.suite is None else f"{delta.value:+.3f}"


def fmt_score(value: float) -> str:
    # Integer weights give integer scores: print "17", not "17.0"; otherwise up to 6 digits.
    return f"{value:g}"
