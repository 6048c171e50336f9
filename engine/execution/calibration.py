"""Calibrating the L2 queue model against exact FIFO where L3 truth exists (SPEC section 10).

``queue_time_to_fill`` replays one L3 stream through two exchanges: one tracking exact FIFO from
the order ids, one reading the same stream as L2 only (level sizes and executions) through a
``QueueModel``. At every ``every_ns`` of event time it rests one lot at the best bid and one at the
best ask in both, and measures each order's time to its first fill (an order not filled within
``horizon_ns`` counts as filled at the horizon, so models are compared on the same censored
scale). The error of a model is the mean absolute difference of its times to fill from FIFO's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.events import BUY, SELL, Fill, InstrumentDef, OrderRequest, OrderType
from engine.execution.models import ConstantLatency, PerLotFees, QueueModel
from engine.execution.simulated import SimulatedExchange


def queue_time_to_fill(instrument: InstrumentDef, events: Iterable, models: dict[str, Callable[[], QueueModel]],
                       every_ns: int, horizon_ns: int) -> dict[str, dict[str, float]]:
    """Per model: mean absolute time-to-fill error against exact FIFO (seconds), the mean times to fill
    and the share of orders each filled within the horizon. ``"fifo"`` is the reference row."""
    iid = instrument.instrument_id
    fees = {iid: PerLotFees(0.0, 0.0)}
    latency = ConstantLatency(1, 1)
    exchanges = {"fifo": SimulatedExchange([instrument], fees, latency, models[next(iter(models))]())}
    for name, make in models.items():
        exchanges[name] = SimulatedExchange([instrument], fees, latency, make(), force_l2=True)
    placed: dict[str, int] = {}
    filled: dict[str, dict[str, int]] = {name: {} for name in exchanges}
    next_order = 0
    last_ts = 0
    book = exchanges["fifo"].books[iid]
    for ev in events:
        if ev.instrument_id != iid:
            continue
        last_ts = ev.ts_event
        if next_order == 0:
            next_order = ev.ts_event + every_ns
        elif ev.ts_event >= next_order and book.best_bid is not None and book.best_ask is not None:
            for side, price in ((BUY, book.best_bid), (SELL, book.best_ask)):
                client_id = f"q{len(placed)}"
                placed[client_id] = ev.ts_event
                order = OrderRequest(iid, client_id, side, OrderType.LIMIT, price, 1, "DAY", ev.ts_event - 2)
                for exchange in exchanges.values():
                    exchange.submit(order)
            next_order = ev.ts_event + every_ns
        for name, exchange in exchanges.items():
            for response in exchange.on_market(ev):
                if type(response) is Fill and response.client_id not in filled[name]:
                    filled[name][response.client_id] = response.ts_exchange
    usable = [cid for cid, t in placed.items() if t + horizon_ns <= last_ts]
    return {name: _errors(usable, placed, filled[name], filled["fifo"], horizon_ns) for name in exchanges}


def _errors(orders: list[str], placed: dict[str, int], mine: dict[str, int], truth: dict[str, int],
            horizon: int) -> dict[str, float]:
    def ttf(fills: dict[str, int], cid: str) -> float:
        t = fills.get(cid)
        return min(horizon, t - placed[cid]) / 1e9 if t is not None else horizon / 1e9

    if not orders:
        return {"orders": 0, "mae_s": float("nan"), "mean_ttf_s": float("nan"), "filled_share": float("nan")}
    errors = [abs(ttf(mine, c) - ttf(truth, c)) for c in orders]
    return {
        "orders": len(orders),
        "mae_s": sum(errors) / len(errors),
        "mean_ttf_s": sum(ttf(mine, c) for c in orders) / len(orders),
        "filled_share": sum(1 for c in orders if c in mine and mine[c] - placed[c] <= horizon) / len(orders),
    }
