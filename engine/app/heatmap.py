"""The Bookmap-style picture of one instrument over a time window, read from a run's database.

``load_heatmap`` gathers what the picture shows: resting liquidity per price and time from the
stored book samples (the top levels of each side at every stored bar close), the best bid and ask,
trades aggregated per time column (a bubble at the column's VWAP, its area proportional to the
volume, coloured by aggressor), and the run's detections, signals and fills. Intensity is clipped
at the 99th percentile of the non-empty cells (Bookmap's percentile cut-off), so one huge order
does not wash out the rest. ``render_png`` draws it with matplotlib (Agg backend: no display).
Prices are shown in currency (ticks times the tick size), times in seconds since the window start.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import orjson

from engine.errors import UsageError
from engine.store import fetch_dicts

MAX_COLUMNS = 1500  # time columns drawn (samples are merged into wider columns beyond this)
MAX_ROWS = 600  # price rows drawn (ticks are merged into bins beyond this)
CLIP_PERCENTILE = 99.0


@dataclass
class Heatmap:
    symbol: str
    tick_size: float
    t0: int  # ns of the first column
    times: np.ndarray  # seconds since t0, column starts
    prices: np.ndarray  # price of each row (currency), bottom first
    intensity: np.ndarray  # rows x columns, resting size, clipped
    best_bid: np.ndarray  # per column (currency, NaN when empty)
    best_ask: np.ndarray
    trades: dict[str, np.ndarray] = field(default_factory=dict)  # t, price, volume, side
    detections: list[dict] = field(default_factory=list)  # t, price, kind
    signals: list[dict] = field(default_factory=list)  # t, price, side, decision
    fills: list[dict] = field(default_factory=list)  # t, price, side, size


def latest_run(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1").fetchone()
    if row is None:
        raise UsageError("the database holds no run")
    return row[0]


def instruments_of(conn: sqlite3.Connection, run_id: str) -> dict[str, dict]:
    return {r["symbol"]: r for r in fetch_dicts(conn, "instruments", run_id)}


def load_heatmap(conn: sqlite3.Connection, run_id: str, symbol: str | None = None, t_from: int | None = None,
                 t_to: int | None = None) -> Heatmap:
    """The picture's data for ``symbol`` (default: the instrument with the most fills, else the first)
    between ``t_from`` and ``t_to`` (ns, inclusive; default: the whole run).

    Raises:
        UsageError: unknown run or symbol, or no book samples in the window.
    """
    instruments = instruments_of(conn, run_id)
    if not instruments:
        raise UsageError(f"run {run_id}: no instruments (is the run id right?)")
    if symbol is None:
        symbol = _busiest(conn, run_id, instruments)
    if symbol not in instruments:
        raise UsageError(f"--symbol {symbol}: not in run {run_id} (it has {', '.join(sorted(instruments))})")
    inst = instruments[symbol]
    iid, tick = inst["instrument_id"], float(Decimal(inst["tick_size"]))
    lo, hi = (t_from if t_from is not None else 0), (t_to if t_to is not None else 2**62)
    where, params = "instrument_id = ? AND ts_recv BETWEEN ? AND ?", (iid, lo, hi)
    samples = fetch_dicts(conn, "book_samples", run_id, where, params)
    if not samples:
        raise UsageError(f"{symbol}: no book samples in run {run_id} between the given times")
    samples.sort(key=lambda r: r["ts_recv"])
    t0 = samples[0]["ts_recv"]
    span = max(1, samples[-1]["ts_recv"] - t0)
    columns = min(MAX_COLUMNS, len(samples))
    width = span / columns + 1
    book = _book_grid(samples, t0, width, columns)
    levels, best_bid, best_ask = book
    all_prices = [p for col in levels for p in col]
    if not all_prices:
        raise UsageError(f"{symbol}: the book samples in the window are empty")
    p_lo, p_hi = min(all_prices), max(all_prices)
    bin_ticks = max(1, int(np.ceil((p_hi - p_lo + 1) / MAX_ROWS)))
    rows = (p_hi - p_lo) // bin_ticks + 1
    grid = np.zeros((rows, columns))
    for c, col in enumerate(levels):
        for price, size in col.items():
            grid[(price - p_lo) // bin_ticks, c] += size
    filled = grid[grid > 0]
    if filled.size:
        grid = np.minimum(grid, np.percentile(filled, CLIP_PERCENTILE))
    heat = Heatmap(symbol, tick, t0, np.arange(columns) * width / 1e9, (p_lo + np.arange(rows) * bin_ticks) * tick,
                   grid, best_bid * tick, best_ask * tick)
    heat.trades = _trades(conn, run_id, where, params, t0, width, tick)
    heat.detections = [{"t": (d["ts_recv"] - t0) / 1e9, "price": (d["price_lo"] + d["price_hi"]) / 2 * tick,
                        "kind": d["detector"].removesuffix("Detection"), "side": d["side"]}
                       for d in fetch_dicts(conn, "detections", run_id, where, params)]
    heat.signals = [{"t": (s["ts_recv"] - t0) / 1e9, "price": s["entry_price"] * tick, "side": s["side"],
                     "decision": s["decision"], "strategy": s["strategy"]}
                    for s in fetch_dicts(conn, "signals", run_id, where, params)]
    heat.fills = [{"t": (f["ts_exchange"] - t0) / 1e9, "price": f["price"] * tick, "side": f["side"],
                   "size": f["size"], "liquidity": "maker" if f["liquidity"] == 0 else "taker"}
                  for f in fetch_dicts(conn, "fills", run_id, "instrument_id = ? AND ts_exchange BETWEEN ? AND ?",
                                       params)]
    return heat


def _busiest(conn: sqlite3.Connection, run_id: str, instruments: dict[str, dict]) -> str:
    by_id = {r["instrument_id"]: s for s, r in instruments.items()}
    row = conn.execute("SELECT instrument_id, COUNT(*) AS n FROM fills WHERE run_id = ? GROUP BY instrument_id "
                       "ORDER BY n DESC, instrument_id LIMIT 1", (run_id,)).fetchone()
    if row is not None and row[0] in by_id:
        return by_id[row[0]]
    return by_id[min(by_id)]


def _book_grid(samples: list[dict], t0: int, width: float, columns: int):
    """Per column: resting size per price (the last sample in the column), best bid and ask (ticks)."""
    levels: list[dict[int, int]] = [{} for _ in range(columns)]
    best_bid = np.full(columns, np.nan)
    best_ask = np.full(columns, np.nan)
    for s in samples:
        c = min(columns - 1, int((s["ts_recv"] - t0) / width))
        col: dict[int, int] = {}
        for px, sz in ((s["bid_px"], s["bid_sz"]), (s["ask_px"], s["ask_sz"])):
            for p, q in zip(orjson.loads(px), orjson.loads(sz), strict=True):
                col[p] = col.get(p, 0) + q
        levels[c] = col
        if s["best_bid"] is not None:
            best_bid[c] = s["best_bid"]
        if s["best_ask"] is not None:
            best_ask[c] = s["best_ask"]
    for c in range(1, columns):  # a column without a sample shows the book as it was
        if not levels[c]:
            levels[c] = levels[c - 1]
            best_bid[c], best_ask[c] = best_bid[c - 1], best_ask[c - 1]
    return levels, best_bid, best_ask


def _trades(conn, run_id: str, where: str, params: tuple, t0: int, width: float, tick: float) -> dict[str, np.ndarray]:
    """Trades per (column, aggressor): VWAP price and volume."""
    acc: dict[tuple[int, int], list[float]] = {}
    for t in fetch_dicts(conn, "trades", run_id, where, params):
        key = (int((t["ts_recv"] - t0) / width), t["aggressor"])
        entry = acc.setdefault(key, [0.0, 0.0])
        entry[0] += t["price"] * t["size"]
        entry[1] += t["size"]
    keys = sorted(acc)
    return {
        "t": np.array([k[0] * width / 1e9 for k in keys]),
        "price": np.array([acc[k][0] / acc[k][1] * tick for k in keys]),
        "volume": np.array([acc[k][1] for k in keys]),
        "side": np.array([k[1] for k in keys]),
    }


def render_png(heat: Heatmap, path: str, width_px: int = 1600, height_px: int = 900) -> None:
    """Write the heatmap alone as a PNG of ``width_px`` x ``height_px``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    dpi = 100
    fig, ax = plt.subplots(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    try:
        step_t = heat.times[1] - heat.times[0] if len(heat.times) > 1 else 1.0
        step_p = heat.prices[1] - heat.prices[0] if len(heat.prices) > 1 else heat.tick_size
        extent = (heat.times[0], heat.times[-1] + step_t, heat.prices[0] - step_p / 2, heat.prices[-1] + step_p / 2)
        ax.imshow(heat.intensity, origin="lower", aspect="auto", extent=extent, cmap="inferno", interpolation="nearest")
        ax.plot(heat.times, heat.best_bid, color="#4fc3f7", lw=0.8, label="best bid")
        ax.plot(heat.times, heat.best_ask, color="#ff8a65", lw=0.8, label="best ask")
        tr = heat.trades
        if len(tr.get("t", ())):
            sizes = 8 + 120 * np.sqrt(tr["volume"] / tr["volume"].max())
            colours = np.where(tr["side"] > 0, "#00e676", np.where(tr["side"] < 0, "#ff1744", "#bdbdbd"))
            ax.scatter(tr["t"], tr["price"], s=sizes, c=colours, alpha=0.55, edgecolors="white", linewidths=0.3,
                       label="trades (VWAP per column)")
        if heat.detections:
            ax.scatter([d["t"] for d in heat.detections], [d["price"] for d in heat.detections], marker="D", s=30,
                       facecolors="none", edgecolors="#ffee58", label="detections")
        for decision, marker in (("accepted", "*"), ("rejected", "x")):
            sig = [s for s in heat.signals if s["decision"] == decision]
            if sig:
                ax.scatter([s["t"] for s in sig], [s["price"] for s in sig], marker=marker, s=90, c="#e040fb",
                           label=f"signals ({decision})")
        for side, marker, colour in ((1, "^", "#00b0ff"), (-1, "v", "#ff9100")):
            fl = [f for f in heat.fills if f["side"] == side]
            if fl:
                ax.scatter([f["t"] for f in fl], [f["price"] for f in fl], marker=marker, s=70, c=colour,
                           edgecolors="white", label="buy fills" if side > 0 else "sell fills")
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_xlabel("seconds from the window start")
        ax.set_ylabel(f"{heat.symbol} price")
        ax.set_title(f"{heat.symbol}: resting liquidity, trades, detections, signals and fills")
        ax.legend(loc="upper left", fontsize=7, framealpha=0.6)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
