"""Pareto plots (quality vs latency, quality vs memory) as PNG bytes, with non-overlapping labels.

matplotlib is imported lazily with the Agg backend: no display is needed and ``import
leaderboard`` stays fast.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from leaderboard.ranking import LeaderboardRow

COST_AXES = {
    "latency_ms": "Latency, ms (median TTFT + median TPOT)",
    "memory_mb": "Peak memory, MB",
}
_QUALITY_LABEL = {"wer": "WER", "spider": "SPIDEr", "cider_d": "CIDEr-D"}


@dataclass(frozen=True)
class Plot:
    cost: str  # "latency_ms" | "memory_mb"
    png: bytes
    caption: str


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and quality."""
    front = []
    for i, (x, q) in enumerate(points):
        dominated = False
        for j, (x2, q2) in enumerate(points):
            if j == i:
                continue
            better_q = q2 >= q if higher_is_better else q2 <= q
            strictly = x2 < x or (q2 > q if higher_is_better else q2 < q)
            if x2 <= x and better_q and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def pareto_plots(rows: list[LeaderboardRow]) -> list[Plot]:
    """One figure per cost axis, one panel per quality criterion that has values."""
    if not rows:
        return []
    import matplotlib

    matplotlib.use("Agg", force=True)
    quality = [k for k in rows[0].criteria if k not in COST_AXES and any(r.criteria[k].value is not None for r in rows)]
    plots = []
    for cost in COST_AXES:
        if not quality or not any(r.criteria[cost].value is not None for r in rows):
            continue
        png, missing = _figure(rows, cost, quality)
        caption = _caption(rows, cost, quality, missing)
        plots.append(Plot(cost, png, caption))
    return plots


def _label(rows: list[LeaderboardRow], key: str) -> str:
    cv = rows[0].criteria[key]
    if key == "extra":
        return f"{cv.suite}: {cv.metric}"
    return _QUALITY_LABEL.get(cv.metric, cv.metric)


def _caption(rows, cost, quality, missing) -> str:
    labels = [_label(rows, k) for k in quality]
    names = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    text = (
        f"{names} against {COST_AXES[cost].split(',')[0].lower()}. The line joins the Pareto front: "
        "candidates no other candidate beats on both axes (filled markers); hollow markers are dominated."
    )
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        text += " Not plotted (no value): " + "; ".join(f"{_label(rows, k)}: {', '.join(v)}" for k, v in missing.items()) + "."
    return text


def _figure(rows: list[LeaderboardRow], cost: str, quality: list[str]) -> tuple[bytes, dict[str, list[str]]]:
    import matplotlib.pyplot as plt

    n = len(quality)
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n, 4.8), dpi=110, squeeze=False)
    missing: dict[str, list[str]] = {}
    for ax, key in zip(axes[0], quality, strict=True):
        pts, names, skipped = [], [], []
        for row in rows:
            x, q = row.criteria[cost].value, row.criteria[key].value
            if x is None or q is None:
                skipped.append(row.candidate)
                continue
            pts.append((x, q))
            names.append(row.candidate)
        missing[key] = skipped
        higher = rows[0].criteria[key].direction == "max"
        _panel(fig, ax, pts, names, higher, cost, _label(rows, key))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue(), missing


def _panel(fig, ax, pts, names, higher, cost, qlabel) -> None:
    better = "higher" if higher else "lower"
    ax.set_xlabel(f"{COST_AXES[cost]}  (lower is better)", fontsize=10)
    ax.set_ylabel(f"{qlabel}  ({better} is better)", fontsize=10)
    ax.set_title(f"{qlabel} vs {cost.split('_')[0]}", fontsize=11)
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    if not pts:
        ax.text(0.5, 0.5, "no candidate has both values", ha="center", va="center", transform=ax.transAxes)
        return
    xs = [p[0] for p in pts]
    if min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    front = pareto_front(pts, higher)
    on_front = set(front)
    dominated = [p for i, p in enumerate(pts) if i not in on_front]
    if dominated:
        ax.scatter([p[0] for p in dominated], [p[1] for p in dominated], s=42, facecolors="white",
                   edgecolors="#7a7a7a", linewidths=1.4, zorder=3)
    fx, fy = [pts[i][0] for i in front], [pts[i][1] for i in front]
    ax.scatter(fx, fy, s=48, color="#1f6feb", zorder=4)
    if len(front) > 1:
        ax.step(fx, fy, where="post", color="#1f6feb", linewidth=1.6, alpha=0.8, zorder=2)
    _set_limits(ax, pts)
    _place_labels(fig, ax, pts, names)


def _set_limits(ax, pts) -> None:
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.18 or (abs(hi) * 0.1 or 0.05)
    ax.set_ylim(lo - pad, hi + pad)
    if ax.get_xscale() == "log":
        ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
    else:
        xlo, xhi = min(xs), max(xs)
        xpad = (xhi - xlo) * 0.18 or (abs(xhi) * 0.1 or 1.0)
        ax.set_xlim(max(0.0, xlo - xpad) if xlo >= 0 else xlo - xpad, xhi + xpad)


_OFFSETS = [(7, 7), (7, -7), (-7, 7), (-7, -7), (9, 0), (-9, 0), (0, 10), (0, -10)]


def _place_labels(fig, ax, pts, names) -> None:
    """Greedy placement: try offsets around each point, keep the first that overlaps nothing."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    markers = []
    for x, y in pts:
        px, py = to_px((x, y))
        markers.append((px - 6, py - 6, px + 6, py + 6))
    frame = ax.get_window_extent(renderer)
    legend = ax.get_legend()
    taken: list[tuple[float, float, float, float]] = []  # labels already placed
    if legend is not None:
        lb = legend.get_window_extent(renderer)
        taken.append((lb.x0, lb.y0, lb.x1, lb.y1))
    order = sorted(range(len(pts)), key=lambda i: (pts[i][0], pts[i][1]))
    for i in order:
        # Keep a wider berth around other points than around its own, so that a label never
        # sits where it would be read as another point's.
        others = [(x0 - 8, y0 - 8, x1 + 8, y1 + 8) for j, (x0, y0, x1, y1) in enumerate(markers) if j != i]
        obstacles = taken + others + [markers[i]]
        best = None
        for scale in (1.0, 2.2, 3.6, 5.2):
            for dx, dy in _OFFSETS:
                ox, oy = dx * scale, dy * scale
                ha = "left" if ox > 0 else "right" if ox < 0 else "center"
                va = "bottom" if oy > 0 else "top" if oy < 0 else "center"
                text = ax.annotate(names[i], pts[i], xytext=(ox, oy), textcoords="offset points",
                                   ha=ha, va=va, fontsize=9, zorder=5)
                bb = text.get_window_extent(renderer)
                box = (bb.x0 - 2, bb.y0 - 1, bb.x1 + 2, bb.y1 + 1)
                cost = sum(_overlap(box, other) for other in obstacles) + _outside(box, frame) * 4
                text.remove()
                if best is None or cost < best[0]:
                    best = (cost, ox, oy, ha, va, box)
                if cost == 0:
                    break
            if best is not None and best[0] == 0:
                break
        _, ox, oy, ha, va, box = best
        far = math.hypot(ox, oy) > 14
        ax.annotate(names[i], pts[i], xytext=(ox, oy), textcoords="offset points", ha=ha, va=va,
                    fontsize=9, zorder=5,
                    arrowprops={"arrowstyle": "-", "color": "#888888", "linewidth": 0.7} if far else None)
        taken.append(box)


def _overlap(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _outside(box, frame) -> float:
    inside = _overlap(box, (frame.x0, frame.y0, frame.x1, frame.y1))
    return (box[2] - box[0]) * (box[3] - box[1]) - inside


def load_plot(records: list[dict]) -> Plot | None:
    """Throughput against median TTFT, one line per candidate's newest load test (`bench.py load`),
    one point per concurrency level; None when no level has both values."""
    lines = []
    for record in records:
        levels = [lv for lv in record.load["levels"]
                  if (lv.get("ttft_ms") or {}).get("p50") is not None and lv.get("output_tokens_per_s") is not None]
        if levels:
            lines.append((record.candidate, levels))
    if not lines:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.8), dpi=110)
    for name, levels in lines:
        xs = [lv["ttft_ms"]["p50"] for lv in levels]
        ys = [lv["output_tokens_per_s"] for lv in levels]
        ax.plot(xs, ys, marker="o", linewidth=1.6, label=name)
        for x, y, lv in zip(xs, ys, levels, strict=True):
            ax.annotate(f"c={lv['concurrency']}", (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8)
    ax.set_xlabel("TTFT p50, ms  (lower is better)", fontsize=10)
    ax.set_ylabel("Output tokens/s  (higher is better)", fontsize=10)
    ax.set_title("Throughput vs TTFT under load", fontsize=11)
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.legend(fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    caption = ("Output tokens per second against median TTFT at each concurrency level (c=N) of each candidate's newest "
               "load test (bench.py load); further right and higher means more throughput bought with more waiting.")
    return Plot("load", buf.getvalue(), caption)
