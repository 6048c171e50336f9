"""RiskManager and its pre-trade checks: one decision row per signal, first rejection wins, order intents."""

from __future__ import annotations

from collections import deque

import orjson
import pytest

from engine.book import CROSSED, HALTED, STALE, BookView
from engine.events import BUY, SELL, OrderType
from engine.features.vector import FeatureVector
from engine.records import TABLES
from engine.risk import (
    MaxOrderSize,
    OrderIntent,
    OrderRate,
    PositionLimit,
    RiskManager,
    RiskState,
    UsableBook,
)
from ml.scoring import ScoredSignal
from strategies.base import Signal

NS = 1_000_000_000


def book(state: int = 0, iid: int = 0) -> BookView:
    return BookView(iid, 0, 0, 1, state, (100,), (10,), (101,), (10,))


def scored(seq: int = 1, ts: int = NS, side: int = BUY, iid: int = 0, view: BookView | None = None,
           entry_type: int = OrderType.IOC, features: FeatureVector | None = None,
           targets: tuple[int, ...] = (110,)) -> ScoredSignal:
    signal = Signal(
        signal_id=f"{iid}:{seq}:qi", instrument_id=iid, ts_recv=ts, seq=seq, strategy="qi", side=side,
        entry_type=entry_type, entry_price=101 if side == BUY else 100, stop=95, targets=targets,
        time_stop_ns=30 * NS, score=0.8, confluence=0.5, features=features,
        view=book(iid=iid) if view is None else view,
    )
    return ScoredSignal(signal, 0.4, "untrained")


def decisions(manager: RiskManager) -> list[tuple[str, str | None]]:
    columns = TABLES["signals"]
    rows = [row for table, row in manager.take_records() if table == "signals"]
    return [(row[columns.index("decision")], row[columns.index("reason")]) for row in rows]


@pytest.mark.parametrize(
    ("state", "reason"),
    [(0, None), (STALE, "book stale"), (CROSSED, "book crossed"), (HALTED, "market halted"),
     (STALE | CROSSED, "book stale")],
)
def test_usable_book(state, reason):
    """A signal on a STALE, CROSSED or HALTED book is rejected with the reason named."""
    assert UsableBook().check(scored(view=book(state)), 1, RiskState()) == reason


def test_usable_book_needs_a_view():
    """A signal without a book view is rejected."""
    s = scored()
    signal = Signal(**{f: getattr(s.signal, f) for f in s.signal.__struct_fields__ if f != "view"})
    assert UsableBook().check(ScoredSignal(signal, 0.4, "untrained"), 1, RiskState()) == "no book view"


def test_max_order_size():
    """Sizes above the limit are rejected, the limit itself is accepted."""
    check = MaxOrderSize(100)
    assert check.check(scored(), 100, RiskState()) is None
    assert check.check(scored(), 101, RiskState()) == "size 101 > max order size 100"


def test_position_limit_uses_the_position_after_the_order():
    """The limit applies to |position + side * size|, in both directions."""
    check, state = PositionLimit(150), RiskState()
    state.position[0] = 100
    assert check.check(scored(side=BUY), 50, state) is None
    assert check.check(scored(side=BUY), 51, state) == "position 151 beyond limit 150"
    assert check.check(scored(side=SELL), 250, state) is None
    assert check.check(scored(side=SELL), 251, state) == "position -151 beyond limit 150"
    assert check.check(scored(side=BUY, iid=1), 150, state) is None  # other instrument starts flat


def test_order_rate_counts_the_last_second_per_instrument():
    """At most N accepted orders per instrument in any (t - 1 s, t] window."""
    check, state = OrderRate(2), RiskState()
    state.recent[0] = deque([NS, NS + 10])
    assert check.check(scored(ts=NS + 20), 1, state) == "more than 2 orders/s"
    assert check.check(scored(ts=2 * NS, iid=1), 1, state) is None
    assert check.check(scored(ts=2 * NS), 1, state) is None  # the order at exactly t - 1 s has left
    assert list(state.recent[0]) == [NS + 10]


def manager(order_size: int = 100, max_position: int = 250, rate: int = 20) -> RiskManager:
    checks = [UsableBook(), MaxOrderSize(500), PositionLimit(max_position), OrderRate(rate)]
    return RiskManager(checks, order_size=order_size, decision_latency_ns=50_000)


def test_accepted_signal_becomes_an_order_intent():
    """An accepted signal gives an OrderRequest stamped after the decision latency, with its view."""
    rm = manager()
    s = scored(seq=4, ts=5 * NS)
    [intent] = rm.apply([s])
    assert isinstance(intent, OrderIntent) and intent.view is s.signal.view
    order = intent.order
    assert (order.instrument_id, order.client_id, order.side, order.order_type, order.price, order.size) == (
        0, "o-0:4:qi", BUY, OrderType.IOC, 101, 100)
    assert (order.tif, order.ts_local, order.strategy, order.signal_id) == ("IOC", 5 * NS + 50_000, "qi", "0:4:qi")
    assert intent.sort_key() == (5 * NS + 50_000, 0, "o-0:4:qi")
    assert rm.flush() == []


def test_limit_entries_rest_for_the_day():
    """A LIMIT entry is sent with tif DAY, anything else as IOC."""
    [intent] = manager().apply([scored(entry_type=OrderType.LIMIT)])
    assert intent.order.tif == "DAY"
    [intent] = manager().apply([scored(entry_type=OrderType.MARKET)])
    assert intent.order.tif == "IOC"


def test_every_signal_gets_one_decision_row_and_positions_accumulate():
    """Accepted orders move the intended position; the third buy breaks the limit, the sell is accepted."""
    rm = manager(order_size=100, max_position=250)
    batch = [scored(seq=1, ts=NS), scored(seq=2, ts=NS + 1), scored(seq=3, ts=NS + 2),
             scored(seq=4, ts=NS + 3, side=SELL), scored(seq=5, ts=NS + 4, view=book(STALE))]
    intents = rm.apply(batch)
    assert [i.order.client_id for i in intents] == ["o-0:1:qi", "o-0:2:qi", "o-0:4:qi"]
    assert decisions(rm) == [
        ("accepted", None), ("accepted", None), ("rejected", "position 300 beyond limit 250"),
        ("accepted", None), ("rejected", "book stale"),
    ]
    assert rm.state.position == {0: 100}
    assert (rm.accepted, rm.rejected) == (3, 2)
    assert rm.take_records() == []


def test_first_rejection_wins_and_rejections_do_not_count_towards_the_rate():
    """Checks run in order; a rejected signal neither moves the position nor uses the order rate."""
    rm = manager(order_size=600, rate=1)  # every order is too large
    rm.apply([scored(seq=1), scored(seq=2)])
    assert decisions(rm) == [("rejected", "size 600 > max order size 500")] * 2
    assert rm.state.position == {} and rm.state.recent.get(0, []) == []
    rm = manager(rate=1)
    rm.apply([scored(seq=1, ts=NS), scored(seq=2, ts=NS + 5), scored(seq=3, ts=2 * NS + 1)])
    assert decisions(rm) == [("accepted", None), ("rejected", "more than 1 orders/s"), ("accepted", None)]


def test_signal_row_columns():
    """The signals row follows TABLES['signals'] and carries the feature values as JSON."""
    vector = FeatureVector(0, 3 * NS, 9, 0, 1, {"spread": 1.0, "queue_imbalance": 0.0}, book())
    rm = manager()
    rm.apply([scored(seq=9, ts=3 * NS, features=vector, targets=())])
    [(table, row)] = rm.take_records()
    assert table == "signals" and len(row) == len(TABLES["signals"])
    named = dict(zip(TABLES["signals"], row, strict=True))
    assert {k: named[k] for k in ("signal_id", "instrument_id", "seq", "ts_recv", "strategy", "side", "entry_type",
                                  "entry_price", "stop", "target", "time_stop_ns", "score", "probability",
                                  "score_mode", "decision", "reason")} == {
        "signal_id": "0:9:qi", "instrument_id": 0, "seq": 9, "ts_recv": 3 * NS, "strategy": "qi", "side": BUY,
        "entry_type": OrderType.IOC, "entry_price": 101, "stop": 95, "target": None, "time_stop_ns": 30 * NS,
        "score": 0.8, "probability": 0.4, "score_mode": "untrained", "decision": "accepted", "reason": None,
    }
    assert orjson.loads(named["features"]) == {"spread": 1.0, "queue_imbalance": 0.0}
    rm.apply([scored(seq=10)])
    assert dict(zip(TABLES["signals"], rm.take_records()[0][1], strict=True))["features"] == "null"
