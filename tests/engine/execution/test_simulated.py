"""SimulatedExchange against hand-built books: walks at arrival, consumed-once liquidity, exact FIFO
queue position, the L2 queue model, cancels and their races with fills, stops, fees and latencies."""

from __future__ import annotations

from engine.events import (
    BUY,
    SELL,
    Ack,
    BookDelta,
    CancelAck,
    Fill,
    Liquidity,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    OrderRequest,
    OrderType,
    Reject,
    Status,
    Trade,
)
from engine.execution.models import ConstantLatency, PerLotFees, ProbQueueModel, RiskAverseQueueModel
from engine.execution.simulated import SimulatedExchange
from engine.testing import EventBuilder, instrument

ENTRY, RESPONSE = 1_000, 20_000
STEP = 1_000_000  # the builder's ns between events


def exchange(force_l2: bool = False, model=None) -> SimulatedExchange:
    return SimulatedExchange([instrument(0, "A")], {0: PerLotFees(-0.002, 0.003)}, ConstantLatency(ENTRY, RESPONSE),
                             model or ProbQueueModel(2.0), force_l2=force_l2)


def seeded(ex: SimulatedExchange) -> EventBuilder:
    """Bids 100: orders 1 (3 lots), 2 (4 lots); 99: order 3 (10). Asks 101: order 4 (5); 102: order 5 (10)."""
    b = EventBuilder()
    for oid, side, price, size in ((1, BUY, 100, 3), (2, BUY, 100, 4), (3, BUY, 99, 10), (4, SELL, 101, 5),
                                   (5, SELL, 102, 10)):
        ex.on_market(b(OrderAdd, oid, side, price, size))
    return b


def order(b: EventBuilder, side: int, size: int, order_type: int = OrderType.MARKET, price: int = 0,
          cid: str = "c1") -> OrderRequest:
    """Decided now (the builder's next timestamp minus one step): it arrives before the next event."""
    return OrderRequest(0, cid, side, order_type, price, size, "IOC", b.ts - STEP, "s", "sig")


def fills(out) -> list[tuple[str, int, int, int]]:
    return [(r.client_id, r.price, r.size, r.liquidity) for r in out if type(r) is Fill]


def test_market_buy_walks_the_book_as_it_is_at_arrival_with_vwap_levels():
    """A market buy of 8 decided before the 101 ask is cancelled fills 8 @ 102: the book at arrival, not at decision."""
    ex = exchange()
    b = seeded(ex)
    ex.submit(order(b, BUY, 8))
    decided = b.ts - STEP
    seq = b(OrderDelete, 4, SELL, 101, 5).seq  # (only its seq: the delete lands before our order arrives)
    out = ex.on_market(OrderDelete(0, decided + 500, decided + 500, seq, 0x80, 4, SELL, 101, 5))
    out += ex.on_market(b(OrderAdd, 9, BUY, 98, 1))
    assert fills(out) == [("c1", 102, 8, Liquidity.TAKER)]
    ack = next(r for r in out if type(r) is Ack)
    assert (ack.ts_exchange, ack.ts_local) == (decided + ENTRY, decided + ENTRY + RESPONSE)


def test_market_order_walks_levels_partial_remainder_cancelled_and_fees_per_lot():
    """A market buy of 20 takes 5 @ 101 and 10 @ 102 (taker fee 0.003 a lot); the rest is cancelled, never assumed."""
    ex = exchange()
    b = seeded(ex)
    ex.submit(order(b, BUY, 20))
    out = ex.on_market(b(OrderAdd, 9, BUY, 98, 1))
    assert fills(out) == [("c1", 101, 5, Liquidity.TAKER), ("c1", 102, 10, Liquidity.TAKER)]
    assert [round(r.fee, 6) for r in out if type(r) is Fill] == [0.015, 0.03]
    assert type(out[-1]) is CancelAck


def test_liquidity_is_consumed_once():
    """Two market buys of 5 in a row: the first takes the 5 @ 101, the second cannot take them again (102)."""
    ex = exchange()
    b = seeded(ex)
    ex.submit(order(b, BUY, 5, cid="a"))
    ex.submit(order(b, BUY, 5, cid="b"))
    out = ex.on_market(b(OrderAdd, 9, BUY, 98, 1))
    assert fills(out) == [("a", 101, 5, Liquidity.TAKER), ("b", 102, 5, Liquidity.TAKER)]


def test_consumed_liquidity_returns_only_when_the_market_removes_it():
    """After the market executes the 5 @ 101 we had taken, new size at 101 is available to us again."""
    ex = exchange()
    b = seeded(ex)
    ex.submit(order(b, BUY, 5, cid="a"))
    ex.on_market(b(OrderExecute, 4, SELL, 101, 5))
    ex.on_market(b(OrderAdd, 10, SELL, 101, 2))
    ex.submit(order(b, BUY, 2, cid="b"))
    out = ex.on_market(b(OrderAdd, 9, BUY, 98, 1))
    assert fills(out) == [("b", 101, 2, Liquidity.TAKER)]


def rest_bid(ex: SimulatedExchange, b: EventBuilder, size: int = 5, price: int = 100, l2: bool = False):
    ex.submit(order(b, BUY, size, OrderType.LIMIT, price, cid="p"))
    if l2:
        return ex.on_market(b(BookDelta, SELL, 110, 1, 1))
    return ex.on_market(b(OrderAdd, 20, SELL, 110, 1))  # any event: our order arrives before it


def test_fifo_queue_advances_on_executions_and_cancels_ahead_never_on_adds_behind():
    """Behind 3 + 4 lots: an add behind us and its execution change nothing; the ahead orders leaving make us first."""
    ex = exchange()
    b = seeded(ex)
    rest_bid(ex, b)
    assert ex.on_market(b(OrderAdd, 30, BUY, 100, 6)) == []  # joins behind us
    assert fills(ex.on_market(b(OrderExecute, 1, BUY, 100, 3))) == []  # ahead: 4 left
    assert fills(ex.on_market(b(OrderCancel, 2, BUY, 100, 1, 3))) == []  # ahead: 3 left
    assert fills(ex.on_market(b(OrderExecute, 30, BUY, 100, 2))) == []  # behind us: no fill while ahead > 0
    assert fills(ex.on_market(b(OrderDelete, 2, BUY, 100, 3))) == []  # ahead: 0
    out = ex.on_market(b(OrderExecute, 30, BUY, 100, 4))
    assert fills(out) == [("p", 100, 4, Liquidity.MAKER)]  # partially, capped by what traded there
    assert [round(r.fee, 6) for r in out if type(r) is Fill] == [-0.008]  # maker rebate
    out = ex.on_market(b(OrderAdd, 31, SELL, 100, 9))  # the ask crosses our bid: what is left fills
    assert fills(out) == [("p", 100, 1, Liquidity.MAKER)]


def test_fifo_modify_up_sends_an_order_ahead_of_us_behind():
    """An order ahead that increases its size loses priority: it is no longer in front of us."""
    from engine.events import OrderModify

    ex = exchange()
    b = seeded(ex)
    rest_bid(ex, b)
    ex.on_market(b(OrderModify, 1, BUY, 100, 8))
    ex.on_market(b(OrderDelete, 2, BUY, 100, 4))
    assert fills(ex.on_market(b(OrderExecute, 1, BUY, 100, 2))) == [("p", 100, 2, Liquidity.MAKER)]


def test_l2_probabilistic_queue_model_hand_computed():
    """L2 only: joining 7 lots, a cancel of 4 moves us by (1-p)*4 with p = f(back)/(f(back)+f(front));
    trades then fill."""
    ex = exchange()
    b = EventBuilder()
    ex.on_market(b(BookDelta, BUY, 100, 7, 1))
    ex.on_market(b(BookDelta, SELL, 101, 5, 1))
    rest_bid(ex, b, l2=True)
    # front 7, back 0 -> p = 0: the whole decrease is ahead of us; front = 7 - 4 = 3
    ex.on_market(b(BookDelta, BUY, 100, 3, 2))
    assert fills(ex.on_market(b(Trade, 100, 2, SELL))) == []  # front 1
    out = ex.on_market(b(Trade, 100, 4, SELL))
    assert fills(out) == [("p", 100, 3, Liquidity.MAKER)]  # front -3: 3 of ours filled (capped by the print)


def test_prob_queue_model_formula():
    """SPEC 10 with n = 2 on front 6, back 4, a cancel of 5: front = min(6 - (1-p)5 + min(4 - 5p, 0), 5)."""
    from engine.execution.models import QueuePosition

    position = QueuePosition(6, 10)
    ProbQueueModel(2.0).on_depth(position, 5)
    p = 16 / (16 + 36)
    assert abs(position.front - min(6 - (1 - p) * 5 + min(4 - p * 5, 0), 5)) < 1e-12


def test_risk_averse_queue_model_only_trades_advance():
    """RiskAverseQueueModel: a cancel never moves us forward beyond the level's new size."""
    ex = exchange(model=RiskAverseQueueModel())
    b = EventBuilder()
    ex.on_market(b(BookDelta, BUY, 100, 7, 1))
    ex.on_market(b(BookDelta, SELL, 101, 5, 1))
    rest_bid(ex, b, l2=True)
    ex.on_market(b(BookDelta, BUY, 100, 6, 2))  # front min(7, 6) = 6
    assert fills(ex.on_market(b(Trade, 100, 6, SELL))) == []
    assert fills(ex.on_market(b(Trade, 100, 2, SELL))) == [("p", 100, 2, Liquidity.MAKER)]


def test_trade_through_our_price_fills_fully():
    """A print below our resting bid fills all of it at our price."""
    ex = exchange()
    b = EventBuilder()
    ex.on_market(b(BookDelta, BUY, 100, 7, 1))
    ex.on_market(b(BookDelta, SELL, 101, 5, 1))
    rest_bid(ex, b, l2=True)
    assert fills(ex.on_market(b(Trade, 99, 1, SELL))) == [("p", 100, 5, Liquidity.MAKER)]


def test_cancel_arrives_before_fill_and_cancel_loses_the_race():
    """A cancel that arrives first is acknowledged; one that arrives after the fill is answered "too late"."""
    ex = exchange()
    b = seeded(ex)
    rest_bid(ex, b)
    ex.cancel(0, "p", b.ts - STEP)
    out = ex.on_market(b(OrderAdd, 40, BUY, 97, 1))
    assert [type(r) for r in out] == [CancelAck]
    ex.submit(order(b, BUY, 2, OrderType.LIMIT, 100, cid="q"))
    ex.on_market(b(OrderDelete, 1, BUY, 100, 3))
    ex.on_market(b(OrderDelete, 2, BUY, 100, 4))
    ex.cancel(0, "q", b.ts - ENTRY // 2)  # arrives after the next event, which fills us
    out = ex.on_market(b(OrderAdd, 41, SELL, 100, 5))
    assert fills(out) == [("q", 100, 2, Liquidity.MAKER)]
    out = ex.on_market(b(OrderAdd, 42, BUY, 97, 1))
    assert [(type(r), r.reason) for r in out] == [(Reject, "cancel too late: filled")]


def test_marketable_limit_walks_then_rests():
    """A buy limit at 101 for 8 takes the 5 @ 101 and rests 3 at 101 (not beyond its limit)."""
    ex = exchange()
    b = seeded(ex)
    ex.submit(order(b, BUY, 8, OrderType.LIMIT, 101))
    out = ex.on_market(b(OrderAdd, 9, BUY, 98, 1))
    assert fills(out) == [("c1", 101, 5, Liquidity.TAKER)]
    assert ex.working("c1")


def test_stop_order_triggers_on_a_print_and_walks():
    """A sell stop at 99 triggers on a print at 99 and sells into the bids as they are then."""
    ex = exchange()
    b = seeded(ex)
    ex.submit(order(b, SELL, 4, OrderType.STOP, 99))
    assert fills(ex.on_market(b(OrderAdd, 9, BUY, 98, 1))) == []
    out = ex.on_market(b(Trade, 99, 1, SELL))
    assert fills(out) == [("c1", 100, 4, Liquidity.TAKER)]


def test_orders_are_rejected_on_a_halted_book():
    """An order arriving while the instrument is halted is rejected with the reason."""
    ex = exchange()
    b = seeded(ex)
    ex.on_market(b(Status, 2))
    ex.submit(order(b, BUY, 1))
    out = ex.on_market(b(OrderAdd, 9, BUY, 98, 1))
    assert [type(r) for r in out] == [Reject] and "halted" in out[0].reason
