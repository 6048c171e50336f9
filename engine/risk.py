"""The risk stage core: pre-trade checks and sizing, one decision per scored signal (SPEC 11).

Every signal gets exactly one ``signals`` row with its decision (accepted, or rejected and why).
Checks are small objects behind the ``RiskCheck`` protocol, evaluated in order, first rejection
wins. This issue ships the pre-trade checks that need no market model (usable book, order size,
position limit, order rate); volatility-targeted sizing, the drawdown kill switch and the
correlation cap plug in here later as further checks and a sizing policy.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import msgspec
import orjson

from engine.book import CROSSED, HALTED, STALE, BookView
from engine.events import OrderRequest, OrderType
from engine.records import RecordBuffer
from ml.scoring import ScoredSignal

NS = 1_000_000_000


class OrderIntent(msgspec.Struct, frozen=True, gc=False):
    """An accepted order together with the book view it was decided on."""

    order: OrderRequest
    view: BookView | None

    def sort_key(self) -> tuple:
        return (self.order.ts_local, self.order.instrument_id, self.order.client_id)


class RiskState:
    """What the checks may look at: intended positions and recent order times per instrument."""

    def __init__(self) -> None:
        self.position: dict[int, int] = {}
        self.recent: dict[int, deque[int]] = {}


class RiskCheck(Protocol):
    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        """Return a rejection reason, or None to accept."""
        ...


class UsableBook:
    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        view = scored.signal.view
        if view is None:
            return "no book view"
        if view.state & STALE:
            return "book stale"
        if view.state & CROSSED:
            return "book crossed"
        if view.state & HALTED:
            return "market halted"
        return None


class MaxOrderSize:
    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        return f"size {size} > max order size {self.limit}" if size > self.limit else None


class PositionLimit:
    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        signal = scored.signal
        after = state.position.get(signal.instrument_id, 0) + signal.side * size
        return f"position {after} beyond limit {self.limit}" if abs(after) > self.limit else None


class OrderRate:
    def __init__(self, per_second: int) -> None:
        self.per_second = per_second

    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        times = state.recent.setdefault(scored.signal.instrument_id, deque())
        now = scored.signal.ts_recv
        while times and times[0] <= now - NS:
            times.popleft()
        return f"more than {self.per_second} orders/s" if len(times) >= self.per_second else None


class RiskManager(RecordBuffer):
    """Stage core: scored signals (canonical order) -> order intents."""

    def __init__(self, checks: list[RiskCheck], order_size: int, decision_latency_ns: int = 50_000) -> None:
        super().__init__()
        self.checks = checks
        self.order_size = order_size
        self.decision_latency_ns = decision_latency_ns
        self.state = RiskState()
        self.accepted = 0
        self.rejected = 0

    def apply(self, batch: list[ScoredSignal]) -> list[OrderIntent]:
        out = []
        for scored in batch:
            signal = scored.signal
            size = self.order_size
            reason = None
            for check in self.checks:
                reason = check.check(scored, size, self.state)
                if reason is not None:
                    break
            self.records.append(("signals", _signal_row(scored, reason)))
            if reason is not None:
                self.rejected += 1
                continue
            self.accepted += 1
            iid = signal.instrument_id
            self.state.position[iid] = self.state.position.get(iid, 0) + signal.side * size
            self.state.recent.setdefault(iid, deque()).append(signal.ts_recv)
            order = OrderRequest(
                instrument_id=iid,
                client_id=f"o-{signal.signal_id}",
                side=signal.side,
                order_type=signal.entry_type,
                price=signal.entry_price,
                size=size,
                tif="IOC" if signal.entry_type != OrderType.LIMIT else "DAY",
                ts_local=signal.ts_recv + self.decision_latency_ns,
                strategy=signal.strategy,
                signal_id=signal.signal_id,
            )
            out.append(OrderIntent(order, signal.view))
        return out

    def flush(self) -> list:
        return []


def _signal_row(scored: ScoredSignal, reason: str | None) -> tuple:
    s = scored.signal
    features = orjson.dumps(s.features.values).decode() if s.features is not None else "null"
    return (
        s.signal_id, s.instrument_id, s.seq, s.ts_recv, s.strategy, s.side, s.entry_type, s.entry_price,
        s.stop, s.targets[0] if s.targets else None, s.time_stop_ns, s.score, scored.probability,
        scored.mode, "rejected" if reason else "accepted", reason, features, *s.detail_columns(),
    )
