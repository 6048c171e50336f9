"""Performance and transaction-cost analytics of one run, from its persisted rows (SPEC 10 reports).

Pure functions over plain rows (dicts keyed by the column names of ``engine.records.TABLES``), so the
run summary, ``chimera report`` and tests compute the same figures from the same database.

Definitions:
- returns: simple returns between consecutive whole-portfolio equity rows (instrument -1), which
  are written every ``[execution] equity_interval_ms`` of event time and at every fill; Sharpe and
  Sortino are the per-row mean over the standard deviation (Sortino: over the downside deviation,
  root mean square of the negative returns), scaled to a year of 252 sessions of 6.5 h by the mean
  row spacing; max drawdown is from the running high of equity, as a share and in currency;
- round trips: hit rate = share with PnL > 0 (fees included); profit factor = gross wins / gross
  losses; mean R = mean of the R multiples (exit minus entry over the initial stop distance);
  holding time = exit minus entry, seconds;
- TCA: implementation shortfall per filled order = ``side * (average fill - decision mid)`` in
  ticks, and in currency times the filled lots and tick value; passive fill ratio = passive filled
  lots / all filled lots; adverse selection at 1 s and 10 s = ``-side * (mid after - mid at fill)``
  in ticks, averaged over passive fills (positive: the market moved against us after we were
  filled); fill ratio of limit orders = limit orders with any fill / limit orders sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

NS = 1_000_000_000
YEAR_S = 252 * 6.5 * 3600
PORTFOLIO = -1


def equity_stats(rows: list[dict], equity0: float) -> dict[str, float | None]:
    """Total return, Sharpe, Sortino, max drawdown from the whole-portfolio equity rows (in ``ts`` order)."""
    points = sorted((r["ts"], r["equity"]) for r in rows if r["instrument_id"] == PORTFOLIO)
    if not points:
        return {"equity_start": equity0, "equity_end": equity0, "total_return": 0.0, "sharpe": None,
                "sortino": None, "max_drawdown": 0.0, "max_drawdown_value": 0.0}
    ts = np.array([p[0] for p in points], dtype=np.int64)
    equity = np.array([p[1] for p in points], dtype=float)
    series = np.concatenate(([equity0], equity))
    returns = series[1:] / series[:-1] - 1.0
    high = np.maximum.accumulate(series)
    drawdown = (high - series) / high
    out: dict[str, float | None] = {
        "equity_start": equity0,
        "equity_end": float(equity[-1]),
        "total_return": float(equity[-1] / equity0 - 1.0),
        "max_drawdown": float(drawdown.max()),
        "max_drawdown_value": float((high - series).max()),
        "sharpe": None,
        "sortino": None,
    }
    if len(returns) > 2 and len(ts) > 1:
        spacing = max(1e-9, float(ts[-1] - ts[0]) / NS / (len(ts) - 1))
        scale = math.sqrt(YEAR_S / spacing)
        std = float(returns.std(ddof=1))
        if std > 0:
            out["sharpe"] = float(returns.mean()) / std * scale
        downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
        if downside > 0:
            out["sortino"] = float(returns.mean()) / downside * scale
    return out


def trip_stats(trips: Iterable[dict]) -> dict[str, float | int | None]:
    """Trades, PnL, fees, hit rate, profit factor, mean R and mean holding time of round trips."""
    trips = [t for t in trips if t["pnl"] is not None]
    pnl = np.array([t["pnl"] for t in trips], dtype=float)
    wins, losses = pnl[pnl > 0].sum(), -pnl[pnl < 0].sum()
    r = [t["r_multiple"] for t in trips if t.get("r_multiple") is not None]
    holding = [(t["exit_ts"] - t["entry_ts"]) / NS for t in trips if t["exit_ts"]]
    return {
        "trades": len(trips),
        "pnl": float(pnl.sum()),
        "fees": float(sum(t["fees"] for t in trips)),
        "hit_rate": float((pnl > 0).mean()) if len(pnl) else None,
        "profit_factor": float(wins / losses) if losses > 0 else (None if wins == 0 else math.inf),
        "mean_r": float(np.mean(r)) if r else None,
        "mean_holding_s": float(np.mean(holding)) if holding else None,
    }


def grouped_trip_stats(trips: list[dict], key: str, names: dict | None = None) -> dict[str, dict]:
    """``trip_stats`` per value of ``key`` (strategy, regime, instrument_id mapped through ``names``)."""
    groups: dict[str, list[dict]] = {}
    for t in trips:
        value = t[key]
        groups.setdefault(str(names.get(value, value) if names else value), []).append(t)
    return {name: trip_stats(rows) for name, rows in sorted(groups.items())}


def tca(orders: list[dict], fills: list[dict], tick_values: dict[int, float]) -> dict[str, float | int | None]:
    """Implementation shortfall, passive fill ratio, limit fill ratio, adverse selection at 1 s and 10 s, fees."""
    shortfall_ticks, shortfall_value = [], 0.0
    for o in orders:
        if o["filled"] and o["avg_price"] is not None and o["decision_mid"] is not None:
            ticks = o["side"] * (o["avg_price"] - o["decision_mid"])
            shortfall_ticks.append(ticks)
            shortfall_value += ticks * o["filled"] * tick_values.get(o["instrument_id"], 1.0)
    filled = sum(f["size"] for f in fills)
    passive = [f for f in fills if f["liquidity"] == 0]
    limits = [o for o in orders if o["order_type"] == 0 and o["status"] != "rejected"]

    def adverse(column: str) -> float | None:
        moves = [-f["side"] * (f[column] - f["mid"]) for f in passive if f[column] is not None and f["mid"] is not None]
        return float(np.mean(moves)) if moves else None

    return {
        "orders": len(orders),
        "filled_orders": sum(1 for o in orders if o["filled"]),
        "rejected_orders": sum(1 for o in orders if o["status"] == "rejected"),
        "fills": len(fills),
        "filled_lots": filled,
        "fees": float(sum(f["fee"] for f in fills)),
        "implementation_shortfall_ticks": float(np.mean(shortfall_ticks)) if shortfall_ticks else None,
        "implementation_shortfall_value": shortfall_value,
        "passive_fill_ratio": sum(f["size"] for f in passive) / filled if filled else None,
        "limit_fill_ratio": sum(1 for o in limits if o["filled"]) / len(limits) if limits else None,
        "adverse_selection_1s_ticks": adverse("mid_1s"),
        "adverse_selection_10s_ticks": adverse("mid_10s"),
    }


def run_analytics(equity: list[dict], trips: list[dict], orders: list[dict], fills: list[dict], equity0: float,
                  symbols: dict[int, str], tick_values: dict[int, float]) -> dict:
    """Everything above for one run, as the summary's ``analytics`` section."""
    return {
        "portfolio": equity_stats(equity, equity0),
        "trades": trip_stats(trips),
        "per_strategy": grouped_trip_stats(trips, "strategy"),
        "per_regime": grouped_trip_stats(trips, "regime"),
        "per_instrument": grouped_trip_stats(trips, "instrument_id", symbols),
        "tca": tca(orders, fills, tick_values),
    }
