"""The dashboard in a real headless Chromium: it loads from the daemon alone, the heatmap changes between two
screenshots taken a few seconds (several frames) apart, and the console shows no error."""

from __future__ import annotations

import pytest

from tests.engine.app.browser import HeadlessPage, find_browser
from tests.engine.app.daemon.helpers import DaemonProcess

BROWSER = find_browser()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine (.ci/run installs Debian's "
                                                        "`chromium` with apt-get)")


@pytest.fixture
def daemon(tmp_path):
    process = DaemonProcess(tmp_path, "--symbol", "AAPL,TSLA", "--set", "daemon.speed=5",
                            "--set", "daemon.frame_interval_ms=250").start()
    process.wait_ready()
    yield process
    assert process.stop() == 0


def test_the_heatmap_moves_and_the_console_stays_clean(daemon):
    """Two screenshots of the heatmap 8 frames (about 2 s) apart differ, the canvas is drawn, no console error."""
    assert BROWSER is not None
    with HeadlessPage(BROWSER, width=1300, height=700) as page:
        page.open(f"http://127.0.0.1:{daemon.port}/")
        page.wait_for("window.chimeraFrames >= 2")
        box = page.evaluate("(() => { const r = document.getElementById('heatmap').getBoundingClientRect();"
                            " return [r.width, r.height]; })()")
        assert box[0] > 100 and box[1] > 100
        first_frames = page.evaluate("window.chimeraFrames")
        first = page.screenshot("#heatmap")
        page.wait_for(f"window.chimeraFrames >= {first_frames + 8}")
        second = page.screenshot("#heatmap")
        assert first != second
        lit = page.evaluate(
            "(() => { const c = document.getElementById('heatmap'); const d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
            " for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 60) n++; return n; })()")
        assert lit > 1000  # liquidity cells are drawn, not only the background
        options = page.evaluate("[...document.querySelectorAll('#symbol option')].map(o => o.value)")
        assert options == ["AAPL", "TSLA"]
        assert page.evaluate("document.querySelectorAll('#positions tbody tr').length") == 2
        assert page.errors == []
