"""Read helpers over the signals table: the per-strategy summary of a run and the filtered listing
behind ``chimera signals``.

The confidence stored with each signal is the strategy's ``S_raw * C`` until a signal classifier
is trained; ``confidence_mode`` (and the scorer's ``score_mode``) say which one a row holds.
"""

from __future__ import annotations

import sqlite3

LIST_COLUMNS = (
    "run_id", "signal_id", "instrument_id", "ts_recv", "strategy", "side", "entry_type", "entry_price", "stop",
    "targets", "time_stop_ns", "score", "confluence", "structural", "regime", "confidence", "confidence_mode",
    "probability", "score_mode", "decision", "reason", "invalidation", "detection_ids", "evidence",
)


def strategy_summary(conn: sqlite3.Connection, run_id: str) -> dict[str, dict]:
    """Per strategy of one run: signals, accepted, mean confidence, long/short counts and the confidence modes."""
    sql = ("SELECT strategy, COUNT(*), SUM(decision = 'accepted'), AVG(confidence), SUM(side > 0), SUM(side < 0), "
           "GROUP_CONCAT(DISTINCT confidence_mode) FROM signals WHERE run_id = ? GROUP BY strategy ORDER BY strategy")
    out = {}
    for name, count, accepted, mean, longs, shorts, modes in conn.execute(sql, (run_id,)):
        out[name] = {
            "signals": count, "accepted": accepted or 0,
            "mean_confidence": round(mean, 4) if mean is not None else None,
            "long": longs or 0, "short": shorts or 0,
            "confidence_mode": modes or "",
        }
    return out


def list_signals(conn: sqlite3.Connection, run_id: str | None = None, strategy: str | None = None,
                 since_ns: int | None = None, limit: int | None = None) -> list[dict]:
    """Signals in time order (with their instrument's symbol), optionally of one run, one strategy, and from
    ``since_ns`` (ts_recv) on."""
    where, params = [], []
    for clause, value in (("s.run_id = ?", run_id), ("s.strategy = ?", strategy), ("s.ts_recv >= ?", since_ns)):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = (f"SELECT {', '.join('s.' + c for c in LIST_COLUMNS)}, i.symbol FROM signals s LEFT JOIN instruments i "
           "ON i.run_id = s.run_id AND i.instrument_id = s.instrument_id")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY s.ts_recv, s.instrument_id, s.signal_id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [dict(zip((*LIST_COLUMNS, "symbol"), row, strict=True)) for row in conn.execute(sql, params)]
