"""Turn ranked rows into JSON-ready dicts and human tables (table, markdown) or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from leaderboard.ranking import CRITERIA, LeaderboardRow

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


def to_json(rows: list[LeaderboardRow]) -> list[dict[str, Any]]:
    """Plain dicts (json.dumps-able); a missing value is None. Only spider names its metric."""
    out = []
    for row in rows:
        criteria: dict[str, dict[str, Any]] = {}
        for key, cv in row.criteria.items():
            entry: dict[str, Any] = {"value": cv.value, "rank": cv.rank}
            if key == "spider":
                entry["metric"] = cv.metric
            criteria[key] = entry
        out.append(
            {
                "candidate": row.candidate,
                "run_id": row.run_id,
                "rank": row.rank,
                "score": row.score,
                "criteria": criteria,
            }
        )
    return out


def to_table(rows: list[LeaderboardRow], fmt: str = "table") -> str:
    """Render rows as "table" (terminal), "markdown" or "csv".

    table/markdown cells read "value (criterion rank)" and a line under the table states the
    scoring rule. CSV is for machines: raw values and ranks in separate columns, no footer.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return _to_csv(rows)
    if not rows:
        return "No runs to rank."

    from tabulate import tabulate  # lazy: keeps `import leaderboard` fast

    keys = list(rows[0].criteria)
    headers = ["Rank", "Candidate", "Score"] + [_header(rows[0], k) for k in keys]
    body = [
        [row.rank, row.candidate, _fmt_score(row.score)] + [_cell(row, k) for k in keys]
        for row in rows
    ]
    # Cells are preformatted strings: keep them as written, numbers right-aligned.
    align = ["right", "left"] + ["right"] * (len(headers) - 2)
    table = tabulate(
        body, headers=headers, tablefmt=_TABLEFMT[fmt], disable_numparse=True, colalign=align
    )
    # Markdown needs a blank line between lines, or they merge into one paragraph.
    sep = "\n\n" if fmt == "markdown" else "\n"
    legend = "Cells: value (rank on that criterion); n/a ranks last."
    return f"{table}\n\n{score_rule(rows[0])}{sep}{legend}"


def score_rule(row: LeaderboardRow) -> str:
    """E.g. "Score = 1xWER(↓) + 1xCIDEr-D(↑, SPICE unavailable) + ...; lower score is better"."""
    terms, unscored = [], []
    for key, cv in row.criteria.items():
        name = _SHORT_NAME.get(cv.metric, cv.metric)
        note = ", SPICE unavailable" if key == "spider" and cv.metric != "spider" else ""
        if cv.weight:
            terms.append(f"{_fmt_score(cv.weight)}x{name}({_ARROW[CRITERIA[key].direction]}{note})")
        else:
            unscored.append(name)
    rule = f"Score = {' + '.join(terms)}; lower score is better"
    return rule + (f" (shown, not scored: {', '.join(unscored)})" if unscored else "")


def _to_csv(rows: list[LeaderboardRow]) -> str:
    keys = list(rows[0].criteria) if rows else list(CRITERIA)
    # Column names use the metric actually ranked, so a CIDEr-D fallback cannot be misread.
    metrics = [rows[0].criteria[k].metric if rows else k for k in keys]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["rank", "candidate", "run_id", "score"]
        + [col for m in metrics for col in (m, f"{m}_rank")]
    )
    for row in rows:
        cells: list[Any] = [row.rank, row.candidate, row.run_id, _fmt_score(row.score)]
        for k in keys:
            cv = row.criteria[k]
            cells += ["" if cv.value is None else repr(cv.value), cv.rank]
        writer.writerow(cells)
    return buf.getvalue()


def _header(row: LeaderboardRow, key: str) -> str:
    if key == "spider" and row.criteria[key].metric != "spider":
        return "CIDEr-D (SPIDEr n/a)"
    return CRITERIA[key].label


def _cell(row: LeaderboardRow, key: str) -> str:
    cv = row.criteria[key]
    if cv.value is None:
        return f"n/a ({cv.rank})"
    fmt = _NUMBER_FORMAT.get(cv.metric, "{:.4g}".format)
    return f"{fmt(cv.value)} ({cv.rank})"


def _fmt_score(value: float) -> str:
    # Integer weights give integer scores: print "17", not "17.0"; otherwise up to 6 digits.
    return f"{value:g}"
