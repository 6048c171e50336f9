"""Rows for the store: the table vocabulary shared by the cores (producers) and the store (writer).

A record is ``(table, row)`` where ``row`` is a tuple in the column order of ``TABLES[table]``.
Producers never add the run id: the writer prepends it, so rows are identical across runs of the
same input. Each ``(table, instrument)`` sequence of rows comes from one stage of one lane (or from
the portfolio stages), in an order fixed by the input; the rows a stage adds at the end of the
stream follow in stage order. ``--resume`` relies on it (engine/store/queries.py). Cores collect
rows in a ``RecordBuffer`` and the stage shell moves them to the persistence task.

``END`` is the unique end-of-stream marker that flows down every queue of the pipeline, the records
queue into the store included.
"""

from __future__ import annotations

SIGNAL_DETAIL = (
    "targets", "confluence", "structural", "regime", "confidence", "confidence_mode", "invalidation",
    "detection_ids", "evidence",
)
"""The signals columns added by schema version 4 (``Signal.detail_columns``): every target, C, K, the regime,
the confidence and how it was obtained, the invalidation rule, the causing detections, the trigger values."""

TABLES: dict[str, tuple[str, ...]] = {
    "instruments": (
        "instrument_id", "symbol", "venue", "tick_size", "price_scale", "lot_size", "multiplier",
        "currency", "profile",
    ),
    "trades": (
        "instrument_id", "seq", "ts_event", "ts_recv", "price", "size", "aggressor", "trade_id",
        "match_id", "hidden",
    ),
    "book_samples": (
        "instrument_id", "seq", "ts_recv", "state", "best_bid", "best_ask", "bid_px", "bid_sz",
        "ask_px", "ask_sz",
    ),
    "feature_samples": ("instrument_id", "seq", "ts_recv", "state", "features"),
    "signals": (
        "signal_id", "instrument_id", "seq", "ts_recv", "strategy", "side", "entry_type",
        "entry_price", "stop", "target", "time_stop_ns", "score", "probability", "score_mode",
        "decision", "reason", "features", *SIGNAL_DETAIL,
    ),
    "orders": (
        "client_id", "signal_id", "instrument_id", "ts_local", "side", "order_type", "price", "size",
        "tif", "strategy", "status", "reason", "purpose", "filled", "avg_price", "decision_mid", "ts_done",
    ),
    "fills": (
        "client_id", "fill_no", "instrument_id", "ts_exchange", "ts_local", "side", "price", "size",
        "liquidity", "fee", "mid", "mid_1s", "mid_10s",
    ),
    "equity": ("instrument_id", "ts", "position", "cash", "realized", "unrealized", "equity", "mark", "marked_value",
               "fees"),
    "round_trips": (
        "trip_id", "instrument_id", "strategy", "regime", "side", "qty", "entry_ts", "exit_ts", "entry_price",
        "exit_price", "initial_stop", "final_stop", "target", "pnl", "fees", "r_multiple", "exit_reason",
    ),
    "risk_events": ("instrument_id", "ts", "strategy", "event", "detail"),
    "truth_labels": (
        "instrument_id", "seq", "episode_id", "kind", "side", "price_lo", "price_hi", "t_start",
        "t_end", "params", "outcome",
    ),
    "integrity": ("instrument_id", "stage", "counter", "value"),
    "detections": (
        "detection_id", "instrument_id", "seq", "ts_recv", "detector", "side", "price_lo", "price_hi", "strength",
        "t_start", "evidence",
    ),
}


class RecordBuffer:
    """Rows a core produced since the shell last took them."""

    def __init__(self) -> None:
        self.records: list[tuple[str, tuple]] = []

    def take_records(self) -> list[tuple[str, tuple]]:
        rows = self.records
        self.records = []
        return rows


class _EndOfStream:
    """Unique end-of-stream marker (never a string); flows down every queue once."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_STREAM"


END = _EndOfStream()
