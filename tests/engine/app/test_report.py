"""chimera report, heatmap and export on a real short simulation run: the PNG's size and content, the
exported rows, and the HTML report opened in a real headless Chromium (no console errors, the heatmap drawn)."""

from __future__ import annotations

import io
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import orjson
import pytest

from engine.app.cli import main
from tests.engine.app.browser import HeadlessPage, find_browser


@pytest.fixture(scope="module")
def run_db(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("report") / "run.db")
    code = main(["run", "--symbol", "TSLA,AAPL", "--duration", "180", "--speed", "max", "--db", path, "--json",
                 "--set", "risk.max_consecutive_losses=100"])
    assert code == 0
    return path


def decode_png(data: bytes) -> np.ndarray:
    from matplotlib import image

    return image.imread(io.BytesIO(data), format="png")


def distinct_colours(pixels: np.ndarray) -> int:
    rgb = (pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    return len(np.unique(rgb, axis=0))


def test_heatmap_png_has_the_requested_size_and_is_not_blank(run_db, tmp_path, capsys):
    """The PNG is width x height pixels and its plot area holds many colours (liquidity, trades, markers)."""
    out = tmp_path / "heat.png"
    assert main(["heatmap", "--db", run_db, "--symbol", "TSLA", "--out", str(out), "--width", "1200",
                 "--height", "700"]) == 0
    pixels = decode_png(out.read_bytes())
    assert pixels.shape[:2] == (700, 1200)
    plot_area = pixels[100:600, 150:1100]
    assert distinct_colours(plot_area) > 50
    assert float(plot_area[..., :3].std()) > 0.05
    assert "heatmap of TSLA" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_writes_every_row_of_the_table(run_db, tmp_path, fmt):
    """export writes the run's fills in each format with every row and column."""
    out = tmp_path / f"fills.{fmt}"
    assert main(["export", "--db", run_db, "--table", "fills", "--format", fmt, "--out", str(out)]) == 0
    with sqlite3.connect(run_db) as conn:
        expected = conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    assert expected > 0
    if fmt == "csv":
        lines = out.read_text().splitlines()
        assert lines[0].startswith("client_id,fill_no,") and len(lines) == expected + 1
    elif fmt == "json":
        rows = orjson.loads(out.read_bytes())
        assert len(rows) == expected and {"mid_1s", "mid_10s", "fee"} <= set(rows[0])
    else:
        import pyarrow.parquet as pq

        assert pq.read_table(out).num_rows == expected


def test_export_of_an_unknown_run_is_a_one_line_error(run_db, capsys):
    """--run naming no run exits 2 with one line naming the run."""
    assert main(["export", "--db", run_db, "--table", "fills", "--format", "csv", "--run", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"chimera: error: --run nope: no such run in {run_db} (chimera runs --db {run_db} lists them)"]


class ExternalResources(HTMLParser):
    """Script and stylesheet tags that would load something (script content is not parsed as tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        for name, value in attrs:
            if name in ("src", "href") and tag in ("script", "link", "img", "iframe"):
                self.found.append((tag, value or ""))


def report(run_db: str, tmp_path) -> str:
    out = tmp_path / "report.html"
    assert main(["report", "--db", run_db, "--out", str(out)]) == 0
    return str(out)


def test_report_is_one_self_contained_file(run_db, tmp_path):
    """The HTML inlines plotly (no script or stylesheet from the network) and holds both plots and the tables."""
    text = Path(report(run_db, tmp_path)).read_text(encoding="utf-8")
    external = ExternalResources()
    external.feed(text)
    assert external.found == [] and external.scripts == 2  # plotly inlined, then the plots
    assert 'id="heatmap-plot"' in text and 'id="equity-plot"' in text
    assert "per strategy" in text and "implementation shortfall" in text


def test_report_renders_in_headless_chromium_without_errors(run_db, tmp_path):
    """Chromium loads the report offline, logs no JavaScript error, and the heatmap's plot area is drawn."""
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium found (install Debian's chromium; .ci/run does) - the browser test cannot run")
    path = report(run_db, tmp_path)
    with HeadlessPage(browser) as page:
        page.open(f"file://{path}")
        assert page.evaluate("document.querySelectorAll('#heatmap-plot .main-svg').length") >= 1
        png = page.screenshot("#heatmap-plot")
        errors = list(page.errors)
    (tmp_path / "heatmap-screenshot.png").write_bytes(png)
    assert errors == []
    pixels = decode_png(png)
    h, w = pixels.shape[:2]
    assert w > 800 and h > 500
    plot_area = pixels[int(h * 0.15):int(h * 0.85), int(w * 0.1):int(w * 0.85)]
    assert distinct_colours(plot_area) > 50
    assert float(plot_area[..., :3].std()) > 0.05
