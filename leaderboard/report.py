"""A self-contained HTML report (tables, run environments, Pareto plots as inline PNG) plus the
same tables as markdown and CSV files."""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leaderboard.board import Section
from leaderboard.grouping import protocol_of
from leaderboard.plots import load_plot, pareto_plots
from leaderboard.ranking import LeaderboardRow
from leaderboard.render import (
    COVERAGE_MARK,
    cell_text,
    coverage_text,
    delta_text,
    fmt_score,
    footer_lines,
    repeats_text,
    to_table,
    under_covered,
    value_text,
)

_CSS = """
body { font-family: "DejaVu Sans", system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 24px auto; max-width: 1320px; padding: 0 20px; color: #1b1f24; line-height: 1.45; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { font-size: 20px; margin-top: 36px;
     border-bottom: 2px solid #d0d7de; padding-bottom: 4px; } h3 { font-size: 16px; margin-top: 26px; }
.note { color: #57606a; font-size: 13px; margin: 4px 0; }
.warn { background: #fff3cd; border: 1px solid #d4a900; padding: 8px 12px; border-radius: 4px; }
.wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 9px; border-bottom: 1px solid #d8dee4; text-align: right; white-space: nowrap; }
th { background: #f3f5f7; font-weight: 600; }
th.l, td.l { text-align: left; }
tr.ref td { background: #fff8e1; }
.sub { display: block; color: #57606a; font-size: 11px; font-weight: 400; }
td.l .sub { display: inline; margin-left: 4px; }
tr.top td { font-weight: 600; }
table.env th { text-align: left; font-size: 12px; }
table.env td { text-align: left; white-space: normal; font-size: 12px; min-width: 90px; max-width: 320px;
               overflow-wrap: break-word; vertical-align: top; }
figure { margin: 18px 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 13px; max-width: 1100px; }
code { font-size: 12px; }
"""
# Lets a headless browser check (through --dump-dom) that every image decoded and that nothing
# makes the page wider than the window.
_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images", imgs.length);
  document.body.setAttribute("data-images-ok", ok);
  document.body.setAttribute("data-page-fits",
    document.documentElement.scrollWidth <= window.innerWidth ? "yes" : "no");
});
"""
ENV_KEYS = [
    ("device", "device"), ("device_name", "device name"), ("threads", "threads"), ("cpu_count", "CPUs"),
    ("python", "python"), ("torch", "torch"), ("transformers", "transformers"),
    ("bitsandbytes", "bitsandbytes"), ("ctranslate2", "ctranslate2"), ("git_sha", "git sha"),
    ("platform", "platform"),
]


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def render_html(sections: list[Section], ci: bool = False, source: str = "", when: str | None = None,
                load_records: list[dict[str, Any]] | None = None) -> str:
    when = when or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    n_runs = sum(len(s.group.runs) for s in sections)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>lalm-bench leaderboard report</title>",
        f"<style>{_CSS}</style>",
        f"<script>{_SCRIPT}</script>",
        "</head><body>",
        "<h1>lalm-bench leaderboard</h1>",
        f'<p class="note">Generated {_e(when)} from <code>{_e(source)}</code>: {n_runs} run(s) in '
        f"{len(sections)} comparable group(s). Runs are ranked together only when they share the "
        "measurement protocol, the device kind (and CPU thread count) and the datasets.</p>",
    ]
    if not sections:
        parts.append("<p>No runs to rank.</p>")
    for section in sections:
        parts += _section_html(section, ci, len(sections))
    if load_records:
        parts += _load_html(load_records)
    parts.append("</body></html>")
    return "\n".join(parts)


def _section_html(section: Section, ci: bool, n_sections: int) -> list[str]:
    rows = section.rows
    title = f"Group {section.index}" if n_sections > 1 else "Leaderboard"
    out = [f'<section id="group-{section.index}">', f"<h2>{_e(title)}</h2>"]
    out += [f'<p class="warn">{_e(w)}</p>' for w in section.warnings]
    out += [f'<p class="note">{_e(line)}</p>' for line in section.header]
    if not rows:
        return out + ["<p>No runs to rank.</p>", "</section>"]
    out.append(_leaderboard_table(rows, ci))
    out += [f'<p class="note">{_e(line)}</p>' for line in footer_lines(rows, ci)]

    plots = pareto_plots(rows)
    if plots:
        out.append("<h3>Pareto plots</h3>")
    for plot in plots:
        data = base64.b64encode(plot.png).decode("ascii")
        alt = f"Pareto plot: quality against {plot.cost.split('_')[0]}"
        out.append(f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
                   f"<figcaption>{_e(plot.caption)}</figcaption></figure>")

    out.append("<h3>Environment of each run</h3>")
    out.append(_environment_table(section, rows))
    out.append("</section>")
    return out


def _load_html(records: list[dict[str, Any]]) -> list[str]:
    """Load tests (`bench.py load`), not ranked: throughput against TTFT, and each level's numbers."""
    out = ['<section id="load">', "<h2>Load tests</h2>",
           '<p class="note">Served candidates under concurrent requests (bench.py load); not ranked. '
           "ITL is the gap between streamed chunks (a chunk may hold several tokens).</p>"]
    plot = load_plot(records)
    if plot is not None:
        data = base64.b64encode(plot.png).decode("ascii")
        out.append(f'<figure><img alt="Throughput against TTFT" src="data:image/png;base64,{data}">'
                   f"<figcaption>{_e(plot.caption)}</figcaption></figure>")
    head = ["candidate", "run id", "concurrency", "ok / sent", "errors", "req/s", "out tok/s",
            "TTFT ms p50 / p90 / p99", "TPOT ms p50 / p90 / p99", "ITL ms p50 / p99"]
    rows = []
    for record in records:
        for lv in record.load["levels"]:
            rows.append([record.candidate, record.run_id, lv.get("concurrency"), f"{lv.get('ok')} / {lv.get('requests_sent')}",
                         lv.get("errors"), _num(lv.get("requests_per_s"), ".2f"), _num(lv.get("output_tokens_per_s"), ".1f"),
                         _pcts(lv.get("ttft_ms"), ("p50", "p90", "p99"), ".0f"), ("n/a: buffered stream" if lv.get("tpot_unavailable_reason") else _pcts(lv.get("tpot_ms"), ("p50", "p90", "p99"), ".1f")),
                         _pcts(lv.get("itl_chunk_ms"), ("p50", "p99"), ".1f")])
    out.append('<div class="wrap"><table class="load"><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head)
               + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
               + "</tbody></table></div>")
    return out + ["</section>"]


def _num(value: Any, spec: str) -> str:
    return "n/a" if not isinstance(value, (int, float)) else format(value, spec)


def _pcts(block: Any, keys: tuple[str, ...], spec: str) -> str:
    block = block if isinstance(block, dict) else {}
    return " / ".join(_num(block.get(k), spec) for k in keys)


TRANSPOSE_UP_TO = 8  # runs: one column per run (fields as rows) reads better than a very wide table


def _environment_table(section: Section, rows: list[LeaderboardRow]) -> str:
    """What each run was measured on; fields no run records are left out."""
    runs = [section.run_of(row) for row in rows]
    envs = [r.environment or {} for r in runs]
    fields: list[tuple[str, list[Any]]] = [
        ("run id", [r.run_id for r in runs]),
        ("created", [r.created_at for r in runs]),
        ("status", [r.status for r in runs]),
        ("protocol", [protocol_of(r) for r in runs]),
    ]
    for key, label in ENV_KEYS:
        values = [e.get(key) for e in envs]
        if key == "git_sha":
            values = [str(v)[:10] if v else v for v in values]
        if any(v not in (None, "") for v in values):
            fields.append((label, values))
    fields.append(("datasets", [_datasets(r) for r in runs]))
    names = [row.candidate for row in rows]
    if len(rows) <= TRANSPOSE_UP_TO:
        head = '<tr><th scope="col">field</th>' + "".join(f'<th scope="col">{_e(n)}</th>' for n in names) + "</tr>"
        body = ["<tr>" + f'<th scope="row">{_e(label)}</th>' + "".join(f"<td>{_e(v)}</td>" for v in values) + "</tr>"
                for label, values in fields]
    else:
        head = "<tr><th>candidate</th>" + "".join(f"<th>{_e(label)}</th>" for label, _ in fields) + "</tr>"
        body = ["<tr>" + f"<td>{_e(n)}</td>" + "".join(f"<td>{_e(values[i])}</td>" for _, values in fields) + "</tr>"
                for i, n in enumerate(names)]
    return '<div class="wrap"><table class="env"><thead>' + head + "</thead><tbody>" + "".join(body) + "</tbody></table></div>"


def _datasets(run: dict[str, Any]) -> str:
    return "; ".join(
        f"{name}: {b.get('dataset') or '?'} ({b.get('n_samples', '?')} samples"
        + (f", hash {str(b['dataset_hash'])[:12]}" if b.get("dataset_hash") else "") + ")"
        for name, b in sorted((run.suites or {}).items()) if isinstance(b, dict)
    )


def _leaderboard_table(rows: list[LeaderboardRow], ci: bool) -> str:
    """Rank, candidate, score, then one column per criterion: "value (rank)" with the interval
    and the delta to the reference on small second lines, so the table stays narrow."""
    keys = list(rows[0].criteria)
    ref = rows[0].reference
    show_coverage = any(under_covered(r) for r in rows)
    head = ['<th scope="col">Rank</th>', '<th class="l" scope="col">Candidate</th>', '<th scope="col">Score</th>']
    for k in keys:
        cv = rows[0].criteria[k]
        arrow = "↓" if cv.direction == "min" else "↑"
        head.append(f'<th scope="col">{_e(cv.label or k)} {arrow}</th>')
    if show_coverage:
        head.append('<th scope="col">Coverage</th>')
    out = ['<div class="wrap"><table class="leaderboard">', "<thead><tr>" + "".join(head) + "</tr></thead><tbody>"]
    for row in rows:
        cls = " ".join(c for c, on in (("ref", row.candidate == ref), ("top", row.rank == 1)) if on)
        name = _e(row.candidate) + (f" {COVERAGE_MARK}" if under_covered(row) else "")
        name += ' <span class="sub">reference</span>' if row.candidate == ref else ""
        tds = [f"<td>{row.rank}</td>", f'<td class="l">{name}</td>', f"<td>{_e(fmt_score(row.score))}</td>"]
        for k in keys:
            cv = row.criteria[k]
            text = _e(cell_text(cv, ci=False))
            if ci and cv.ci is not None:
                text += f'<span class="sub">[{_e(value_text(cv, cv.ci[0]))}, {_e(value_text(cv, cv.ci[1]))}]</span>'
            if ci and cv.repeats is not None:
                text += f'<span class="sub">{_e(repeats_text(cv))}</span>'
            if ref is not None and row.candidate != ref and row.deltas[k].value is not None:
                text += f'<span class="sub delta">{_e(delta_text(row, k))} vs {_e(ref)}</span>'
            tds.append(f"<td>{text}</td>")
        if show_coverage:
            tds.append(f"<td>{_e(coverage_text(row))}</td>")
        out.append(f'<tr class="{cls}">' + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def write_report(sections: list[Section], out_dir: str | Path, ci: bool = False, source: str = "",
                 load_records: list[dict[str, Any]] | None = None) -> list[Path]:
    """Write report.html, leaderboard.md and leaderboard.csv (one CSV per group when several);
    `load_records` (newest load test per candidate) add a "Load tests" section to the page."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    page = out / "report.html"
    page.write_text(render_html(sections, ci=ci, source=source, load_records=load_records), encoding="utf-8")
    written.append(page)

    md = ["# lalm-bench leaderboard", ""]
    for section in sections:
        if len(sections) > 1:
            md += [f"## Group {section.index}", ""]
        md += [f"> {w}" for w in section.warnings] + ([""] if section.warnings else [])
        md += [line + "\n" for line in section.header]
        md += [to_table(section.rows, "markdown", ci=ci), ""]
    if not sections:
        md.append("No runs to rank.")
    (out / "leaderboard.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    written.append(out / "leaderboard.md")

    for section in sections or [None]:
        name = "leaderboard.csv" if len(sections) <= 1 else f"leaderboard-group{section.index}.csv"
        (out / name).write_text(to_table(section.rows if section else [], "csv"), encoding="utf-8")
        written.append(out / name)
    return written
