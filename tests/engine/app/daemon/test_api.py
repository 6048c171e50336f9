"""The daemon's HTTP API over real sockets: every read endpoint, its errors, the limits and /metrics."""

from __future__ import annotations

import pytest

from engine.app.daemon.api import RateLimiter
from tests.engine.app.daemon.helpers import DaemonProcess, wait_until


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    process = DaemonProcess(tmp, "--symbol", "AAPL,TSLA", "--set", "daemon.speed=50").start()
    process.wait_ready()
    yield process
    assert process.stop() == 0


def test_healthz_answers_ok(daemon):
    """/healthz answers 200 with status ok while the process is up."""
    assert daemon.get("/healthz") == (200, {"status": "ok"})


def test_readyz_is_ready_once_feeds_flow_and_the_writer_commits(daemon):
    """/readyz answers 200 with no problems while every lane stage and the writer are active."""
    assert daemon.get("/readyz") == (200, {"ready": True, "problems": []})


def test_instruments_lists_the_configured_symbols(daemon):
    """/api/instruments lists each symbol with its tick size and venue."""
    status, body = daemon.get("/api/instruments")
    assert status == 200
    assert [(i["symbol"], i["tick_size"], i["venue"]) for i in body] == [("AAPL", "0.01", "SIM"),
                                                                         ("TSLA", "0.25", "SIM")]


def test_book_returns_the_requested_levels_best_first(daemon):
    """/api/book/SYMBOL?levels=N returns at most N levels a side, bids descending, asks ascending, uncrossed."""
    status, body = daemon.get("/api/book/AAPL?levels=4")
    assert status == 200
    bids, asks = [p for p, _ in body["bids"]], [p for p, _ in body["asks"]]
    assert 1 <= len(bids) <= 4 and 1 <= len(asks) <= 4
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0] < asks[0]
    assert all(size > 0 for _, size in body["bids"] + body["asks"])


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/api/book/NOPE", 404, "unknown symbol 'NOPE'; see /api/instruments"),
    ("/api/trades/NOPE", 404, "unknown symbol 'NOPE'; see /api/instruments"),
    ("/api/book/AAPL?levels=0", 400, "levels must be in [1, 30], got 0"),
    ("/api/book/AAPL?levels=x", 400, "levels must be an integer, got 'x'"),
    ("/api/trades/AAPL?since=-1", 400, "since must be in [0, 9223372036854775807], got -1"),
    ("/api/signals?limit=0", 400, "limit must be in [1, 10000], got 0"),
    ("/nowhere", 404, "Not Found"),
])
def test_bad_symbols_and_parameters_get_a_one_line_json_error(daemon, path, status, message):
    """An unknown symbol is 404 and a bad parameter 400, each as one line of JSON naming the problem."""
    got, body, head = daemon.request("GET", path)
    assert (got, body) == (status, {"error": message})
    assert head["Content-Type"].startswith("application/json")


def test_trades_since_returns_only_later_trades_in_order(daemon):
    """/api/trades/SYMBOL?since=T returns the trades after T in event order."""
    def enough():
        trades = daemon.get("/api/trades/AAPL")[1]
        return trades if len(trades) >= 4 else None

    trades = wait_until(enough, "4 trades")
    times = [t["ts_recv"] for t in trades]
    assert times == sorted(times)
    middle = times[0]
    _, later = daemon.get(f"/api/trades/AAPL?since={middle}")
    assert later and all(t["ts_recv"] > middle for t in later)
    expected = [t for t in times if t > middle]
    assert [t["ts_recv"] for t in later][:len(expected)] == expected
    assert all(t["aggressor"] in (-1, 0, 1) and t["size"] > 0 for t in trades)


def test_signals_carry_their_risk_decision(daemon):
    """/api/signals returns signals with strategy, side and the risk decision, and since= filters them."""
    status, signals = daemon.get("/api/signals")
    assert status == 200
    for s in signals:
        assert s["decision"] in ("accepted", "rejected") and s["side"] in (-1, 1) and s["symbol"] in ("AAPL", "TSLA")
    if signals:
        last = signals[-1]["ts_recv"]
        assert daemon.get(f"/api/signals?since={last}") == (200, [])


def test_positions_lists_every_instrument(daemon):
    """/api/positions has one row per instrument with quantity and P&L, and the equity and drawdown."""
    status, body = daemon.get("/api/positions")
    assert status == 200
    assert sorted(p["symbol"] for p in body["positions"]) == ["AAPL", "TSLA"]
    assert 0.0 <= body["drawdown"] < 1.0


def test_runs_lists_the_daemon_session_as_running(daemon):
    """/api/runs lists the current session as a running daemon run."""
    status, runs = daemon.get("/api/runs")
    assert status == 200
    assert [(r["command"], r["status"]) for r in runs] == [("daemon", "running")]


def test_metrics_expose_the_pipeline_figures_in_prometheus_format(daemon):
    """/metrics is Prometheus text with events, per-stage queue depth and lag, writer latency and risk state."""
    status, text, head = daemon.request("GET", "/metrics")
    assert status == 200 and head["Content-Type"].startswith("text/plain")
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    assert values["chimera_events_total"] > 0
    assert 'chimera_stage_queue_depth_max{instrument="AAPL",stage="market"}' in values
    assert 'chimera_stage_lag_seconds{instrument="TSLA",stage="features"}' in values
    assert values["chimera_writer_batch_seconds_count"] > 0 and values["chimera_writer_batch_seconds_sum"] > 0
    assert values["chimera_kill_switch_engaged"] == 0.0
    assert 'chimera_position_lots{instrument="AAPL"}' in values
    assert 'chimera_scorer_info{scorer="UntrainedScorer"}' in values
    assert "# TYPE chimera_events_total counter" in text


def test_the_stream_sends_bounded_frames(daemon):
    """/api/stream is server-sent events whose frames carry each instrument's book within the level cap."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port}/api/stream", timeout=30) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        line = response.readline()
    frame = json.loads(line.removeprefix(b"data: "))
    assert set(frame["instruments"]) == {"AAPL", "TSLA"}
    for inst in frame["instruments"].values():
        assert len(inst["bids"]) <= 30 and len(inst["asks"]) <= 30
        assert len(inst["trades"]) <= 200


def test_the_dashboard_and_its_assets_are_served_locally(daemon):
    """/ is the dashboard page; its script and style come from the daemon, nothing from another host."""
    status, page, _ = daemon.request("GET", "/")
    assert status == 200 and "<canvas id=\"heatmap\"" in page
    assert "http://" not in page and "https://" not in page
    for asset in ("/static/dashboard.js", "/static/dashboard.css"):
        status, body, _ = daemon.request("GET", asset)
        assert status == 200 and "http://" not in body and "https://" not in body
    assert daemon.get("/static/secret.py") == (404, {"error": "no asset 'secret.py'"})


def test_a_request_body_over_the_limit_is_refused(tmp_path):
    """A body larger than [daemon] max_request_bytes is refused with 413 and one JSON line."""
    process = DaemonProcess(tmp_path, "--set", "daemon.max_request_bytes=64", "--set", "daemon.rate_burst=3",
                            "--set", "daemon.rate_per_s=1").start()
    try:
        status, body = process.post("/api/control/risk", {"max_position": 10, "padding": "x" * 200})
        assert (status, body) == (413, {"error": "request body larger than 64 bytes"})
        codes = [process.get("/healthz")[0] for _ in range(6)]
        assert codes[:2] == [200, 200] and 429 in codes
        assert process.get("/healthz") == (429, {"error": "too many requests; slow down"})
    finally:
        assert process.stop() == 0


def test_the_rate_limiter_refills_at_its_rate():
    """The token bucket allows a burst, then one request per 1/rate seconds, per client."""
    limiter = RateLimiter(per_s=2.0, burst=2.0)
    assert [limiter.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("b", 0.0) is True
    assert limiter.allow("a", 0.25) is False
    assert limiter.allow("a", 0.5) is True


def test_a_client_that_stops_reading_gets_fewer_frames(tmp_path):
    """A client that never reads is sent only what its buffers hold, then nothing more, while a reading client
    gets every frame."""
    import socket
    import urllib.request

    process = DaemonProcess(tmp_path, "--symbol", "AAPL,NVDA,TSLA,SPY,ES,AMZN", "--set", "daemon.speed=20",
                            "--set", "daemon.frame_interval_ms=50").start()

    def frames_sent() -> float:
        metrics = process.request("GET", "/metrics")[1]
        return float(metrics.split("\nchimera_stream_frames_total ")[1].split("\n")[0])

    try:
        process.wait_ready()
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", process.port))
        slow.sendall(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        wait_until(lambda: "\nchimera_stream_clients 1.0\n" in process.request("GET", "/metrics")[1], "the slow client")
        read, slow_frames = 0, []
        with urllib.request.urlopen(f"http://127.0.0.1:{process.port}/api/stream", timeout=30) as fast:
            while read < 160:
                if fast.readline().startswith(b"data: "):
                    read += 1
                    if read in (80, 160):
                        slow_frames.append(frames_sent() - read)
        assert 0 < slow_frames[0] < 80
        assert slow_frames[1] - slow_frames[0] <= 2  # blocked: 80 more frames to the reader, none to it
        slow.close()
    finally:
        assert process.stop() == 0
