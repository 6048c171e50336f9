"""The dashboard's live feed: server-sent events, one frame per ``[daemon] frame_interval_ms`` per client.

Back-pressure: each client has one coroutine that builds a frame from the current state, writes it and
waits for the transport to drain before the next one (aiohttp's ``StreamResponse.write``). A slow
browser therefore gets fewer frames; nothing is queued for it, so the server's memory does not grow
with it. A frame is bounded: ``heatmap_levels`` levels a side and at most ``FRAME_ITEMS`` new trades,
detections and signals per instrument since the client's previous frame.

A frame: ``{"t": wall seconds, "equity", "drawdown", "kill_switch", "instruments": {SYMBOL: {"ts",
"tick", "bids": [[ticks, size]...], "asks": [...], "trades": [[ts, ticks, size, aggressor]...],
"detections": [[ts, detector, side, lo, hi]...], "signals": [[ts, strategy, side, ticks, decision]...],
"position": {...}}}}``. The page and its script are served from this package (no CDN).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from importlib import resources

import orjson
from aiohttp import web

FRAME_ITEMS = 200
SEND_BUFFER = 32_768  # bytes of kernel send buffer per stream client
ASSETS = ("index.html", "dashboard.js", "dashboard.css")


def asset(name: str) -> bytes | None:
    if name not in ASSETS:
        return None
    return resources.files("engine.app.daemon").joinpath("static", name).read_bytes()


def _after(rows, ts_index: int, since: int) -> list:
    """Rows newer than ``since`` (the newest ``FRAME_ITEMS``), scanning from the newest end."""
    out = []
    for row in reversed(rows):
        if row[ts_index] <= since or len(out) >= FRAME_ITEMS:
            break
        out.append(row)
    out.reverse()
    return out


def frame(daemon, cursors: dict[str, int]) -> dict:
    """One frame for a client whose previous frame reached ``cursors`` (symbol -> event time)."""
    live, controls = daemon.live, daemon.controls
    levels = daemon.config.daemon.heatmap_levels
    positions = {row["symbol"]: row for row in daemon.positions()}
    instruments = {}
    for symbol, inst in live.by_symbol.items():
        iid = inst.definition.instrument_id
        book = controls.books.get(iid)
        since = cursors.get(symbol, 0)
        trades = _after(inst.trades, 3, since)
        detections = _after(inst.detections, 3, since)
        signals = _after(inst.signals, 3, since)
        ts = book.view().ts_recv if book is not None else inst.last_ts
        cursors[symbol] = max(since, ts, trades[-1][3] if trades else 0)
        instruments[symbol] = {
            "ts": ts,
            "tick": float(inst.definition.tick_size),
            "bids": book.top(1, levels) if book is not None else [],
            "asks": book.top(-1, levels) if book is not None else [],
            "trades": [[r[3], r[4], r[5], r[6]] for r in trades],
            "detections": [[r[3], r[4], r[5], r[6], r[7]] for r in detections],
            "signals": [[r[3], r[4], r[5], r[7], r[14]] for r in signals],
            "position": positions.get(symbol),
        }
    return {"t": time.time(), "equity": live.equity, "drawdown": live.drawdown,
            "kill_switch": controls.kill_switch.engaged, "instruments": instruments}


async def serve(daemon, request: web.Request) -> web.StreamResponse:
    """``GET /api/stream``: frames until the client leaves or the daemon stops."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:  # a small kernel buffer: a client that stops reading blocks its own frames soon
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    if request.transport is not None:  # and little buffered in the process for it
        request.transport.set_write_buffer_limits(high=SEND_BUFFER)
    await response.prepare(request)
    interval = daemon.config.daemon.frame_interval_ms / 1000.0
    cursors: dict[str, int] = {}
    daemon.live.stream_clients += 1
    try:
        while not daemon.stopping.is_set():
            await response.write(b"data: " + orjson.dumps(frame(daemon, cursors)) + b"\n\n")
            daemon.live.stream_frames += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await daemon.stopping.wait()
    except ConnectionResetError:
        pass
    finally:
        daemon.live.stream_clients -= 1
    return response
