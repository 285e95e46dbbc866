"""`bench.py report`: a self-contained HTML page (parsed here, and rendered in headless Chromium
where it is installed), the markdown and CSV tables, and Pareto plots whose labels do not overlap."""

from __future__ import annotations

import base64
import io
import os
import subprocess
from html.parser import HTMLParser
from itertools import combinations
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench import cli
from leaderboard.plots import pareto_front
from tests.test_leaderboard import make_run, write_run

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).is_file()), None)
# Close values on purpose: labels must still not overlap.
FIELD = [
    ("baseline", 0.95, 0.031, 812, 120),
    ("qlora4bit", 0.96, 0.029, 350, 80),
    ("int8", 0.955, 0.030, 420, 95),
    ("whisper-tiny", 0.21, None, 150, 40),
    ("pruned-llm", 0.97, 0.025, 600, 100),
    ("smol-llm", 0.99, 0.020, 352, 82),
    ("smol-llm-int8", 0.985, 0.021, 355, 83),
]


def make_results(root: Path, second_group: bool = True) -> Path:
    for i, (name, wer, cider, mem, lat) in enumerate(FIELD):
        run = make_run(name, wer=wer, cider_d=cider, memory=mem, latency=lat, aac=cider is not None,
                       run_id=f"20261125-0{i}-{name}")
        run["environment"].update(device_name="Xeon <b>", torch="2.13.0", python="3.11.7")
        write_run(root, run)
    if second_group:
        run = make_run("baseline", wer=0.95, cider_d=0.031, memory=812, latency=70, run_id="20261125-99-baseline")
        run["environment"].update(threads=2)
        write_run(root, run)
    return root


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[str] = []
        self._table = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = {"class": attrs.get("class"), "rows": []}
            self.tables.append(self._table)
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs.get("src", ""))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self._table["rows"].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    results = make_results(root / "results")
    result = CliRunner().invoke(cli, ["report", "--results", str(results), "--out", str(root / "out")])
    assert result.exit_code == 0, result.output
    return root / "out"


def test_report_files_and_html_structure(report):
    page = (report / "report.html").read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(page)
    boards = [t for t in parser.tables if t["class"] == "leaderboard"]
    envs = [t for t in parser.tables if t["class"] == "env"]
    assert len(boards) == 2 and len(envs) == 2  # two comparable groups: 1 thread, 2 threads
    header, *body = boards[0]["rows"]
    assert header[:3] == ["Rank", "Candidate", "Score"] and "WER ↓" in header
    assert [row[1].split()[0] for row in body][0] == "whisper-tiny" and len(body) == len(FIELD)
    assert any("0.43x vs baseline" in cell for row in body for cell in row)  # qlora4bit memory
    env_rows = {row[0]: row[1:] for row in envs[0]["rows"]}  # one column per run, fields as rows
    assert env_rows["field"][0] == "whisper-tiny" and env_rows["threads"] == ["1"] * len(FIELD)
    assert env_rows["device name"][0] == "Xeon <b>"  # escaped in the page, shown as text
    assert "<b>" not in page.replace("Xeon &lt;b&gt;", "")
    assert "threads 2 vs 1" in page
    # Self-contained: every image inline, a real PNG; nothing fetched from elsewhere.
    assert len(parser.images) == 4  # group 1: two plots; group 2: two plots
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in page and "https://" not in page
    md = (report / "leaderboard.md").read_text()
    assert "| Candidate" in md and "whisper-tiny" in md and "## Group 2" in md
    csv_lines = (report / "leaderboard-group1.csv").read_text().splitlines()
    assert csv_lines[0].startswith("rank,candidate,run_id,score,wer,wer_rank") and len(csv_lines) == len(FIELD) + 1


def test_single_group_writes_one_csv(tmp_path):
    results = make_results(tmp_path / "results", second_group=False)
    result = CliRunner().invoke(cli, ["report", "--results", str(results), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["leaderboard.csv", "leaderboard.md", "report.html"]


def test_pareto_front():
    # (cost, quality); lower quality is better (WER)
    pts = [(1, 0.5), (2, 0.3), (3, 0.4), (4, 0.1), (4, 0.2)]
    assert pareto_front(pts, higher_is_better=False) == [0, 1, 3]
    assert pareto_front(pts, higher_is_better=True) == [0]


def test_plot_labels_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from leaderboard.plots import _panel

    pts = [(lat, wer) for _, wer, _, _, lat in FIELD]
    names = [name for name, *_ in FIELD]
    fig, ax = plt.subplots(figsize=(6.2, 4.8), dpi=110)
    _panel(fig, ax, pts, names, False, "latency_ms", "WER")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text() in names]
    assert sorted(t.get_text() for t in labels) == sorted(names)
    from matplotlib.text import Text

    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text, not its leader line
    frame = ax.get_window_extent(renderer)
    for a, b in combinations(boxes, 2):
        assert not a.overlaps(b), "two labels overlap"
    for box in boxes:  # inside the axes
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    plt.close(fig)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium at /usr/bin/chromium (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000",
    ]
    url = (report / "report.html").resolve().as_uri()
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert '<table class="leaderboard">' in html and html.count("<img ") == 4
    # Set by the page's own script once loaded: every image decoded, nothing wider than the window.
    assert 'data-images="4"' in html and 'data-images-ok="4"' in html, html[:400]
    assert 'data-page-fits="yes"' in html

    shot = Path(os.environ.get("LALM_BENCH_SCREENSHOT_DIR", tmp_path)) / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    from PIL import Image

    with Image.open(io.BytesIO(shot.read_bytes())) as image:
        assert image.size == (1400, 2000)
        # Not a blank page: the screenshot has many distinct colours.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50

