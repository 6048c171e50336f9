"""Daemon soak: 10 simulated symbols for 30 simulated minutes at an accelerated pace, through ``chimera daemon``.

The daemon runs in its own process (``--set daemon.speed=SPEED``, one session of ``SESSION_S``); this script
scrapes ``/metrics`` every ``SCRAPE_S`` wall seconds and reads the daemon's RSS with psutil. Reported: RSS
growth from the end of the warm-up (the first ``WARMUP`` of the session's simulated time) to the end of
the session (goal < 10 %), the deepest stage input queue seen (items, of ``[pipeline] queue_size``), and
the p99 of tick-to-signal latency (wall time from the market stage taking a batch to a signal from it,
over the session's signals; goal < 1 ms). Loopback only; the daemon is stopped with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from benchmarks.common import emit, result

SYMBOLS = ["AAPL", "NVDA", "TSLA", "SPY", "ES", "AMZN", "SIMA", "SIMB", "SIMC", "SIMD"]
SESSION_S = 1800.0
SPEED = 5.0
WARMUP = 0.2
SCRAPE_S = 2.0
ROOT = Path(__file__).resolve().parent.parent


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def _log_events(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "daemon.log"
        command = [sys.executable, "-m", "engine.app.cli", "daemon", "--port", "0", "--db", f"{tmp}/soak.db",
                   "--log-json", "--log-level", "info", "--symbol", ",".join(SYMBOLS),
                   "--set", f"daemon.speed={SPEED}", "--set", f"daemon.session_s={SESSION_S}"]
        with log.open("wb") as err:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
            try:
                return _soak(process, log)
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                process.wait(300)


def _soak(process: subprocess.Popen, log: Path) -> list[dict]:
    deadline = time.monotonic() + SESSION_S / SPEED * 2 + 300
    port = None
    while port is None:
        port = next((e["port"] for e in _log_events(log) if e.get("event") == "daemon_listening"), None)
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the daemon did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    proc = psutil.Process(process.pid)
    warm_wall = SESSION_S / SPEED * WARMUP
    started = time.monotonic()
    rss_warm = None
    rss: list[tuple[float, float]] = []
    last: dict[str, float] = {}
    while not any(e.get("event") == "session_finished" for e in _log_events(log)):
        if time.monotonic() > deadline:
            raise RuntimeError("the session did not finish in time")
        time.sleep(SCRAPE_S)
        try:
            last = _metrics(port)
        except OSError:
            continue
        elapsed = time.monotonic() - started
        mb = proc.memory_info().rss / 2**20
        rss.append((elapsed, mb))
        if rss_warm is None and elapsed >= warm_wall:
            rss_warm = mb
    final = rss[-1][1]
    growth = (final - rss_warm) / rss_warm * 100 if rss_warm else float("nan")
    depth = max((v for k, v in last.items() if k.startswith("chimera_stage_queue_depth_max")), default=0.0)
    p99 = last.get("chimera_tick_to_signal_seconds_p99")
    events = last.get("chimera_events_total", 0.0)
    wall = time.monotonic() - started
    note = (f"{len(SYMBOLS)} symbols, {SESSION_S / 60:.0f} simulated min at {SPEED:g}x ({wall:.0f} s wall), "
            f"{events:,.0f} events; RSS {rss_warm:.0f} MiB after warm-up, {final:.0f} MiB at the end")
    out = [
        result("daemon soak RSS growth after warm-up", round(growth, 2), "%", 10.0, higher_is_better=False,
               note=note),
        result("daemon soak deepest stage queue", depth, "items", None, higher_is_better=False,
               note="largest input-queue depth any stage saw ([pipeline] queue_size 64)"),
    ]
    if p99 is not None:
        out.append(result("daemon soak tick-to-signal p99", round(p99 * 1e3, 3), "ms", 1.0, higher_is_better=False,
                          note="market stage taking a batch -> signal emitted, latest 4,096 signals"))
    return out


if __name__ == "__main__":
    results = run()
    if "--json" in sys.argv:
        emit(results)
    else:
        for row in results:
            print(row)
