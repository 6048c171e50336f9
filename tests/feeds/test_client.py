"""Our orders inside the simulator's matching engine (ClientDesk) and the clock gate of a gated run."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from engine.book import OrderBook
from engine.config import Config
from engine.events import (
    BUY,
    SELL,
    Ack,
    CancelAck,
    Fill,
    Liquidity,
    OrderAdd,
    OrderDelete,
    OrderExecute,
    OrderRequest,
    OrderType,
    Reject,
    Trade,
    TruthLabel,
)
from feeds.simulator import MarketSimulator
from feeds.simulator.client import CLIENT_OID_BASE, ClientDesk
from feeds.simulator.lane import Lane

T0 = Config().simulator.session_start_ns


def hand_built(orders: list[tuple[int, int, int]]) -> tuple[Lane, ClientDesk]:
    """A lane whose book is exactly ``orders`` ((side, price, size), ids 1.. in this order); no flow runs."""
    config = Config()
    cfg = config.simulator
    lane = Lane(0, "TSLA", config.instrument("TSLA"), cfg, np.random.SeedSequence(11), cfg.grid_ms / 1000.0)
    lane.ex.seed(0.0, orders)
    return lane, ClientDesk(lane, response_ns=500)


def order(client_id: str, side: int, size: int, kind: OrderType = OrderType.MARKET, price: int = 0) -> OrderRequest:
    return OrderRequest(0, client_id, side, int(kind), price, size, "GTC" if kind == OrderType.LIMIT else "IOC", 0)


def at(desk: ClientDesk, t: float) -> None:
    """Time ``t`` (seconds) comes: the lane wakes its agents, the desk handles what has arrived."""
    desk.lane.wake_agents(t)


def flow_market(lane: Lane, t: float, side: int, size: int) -> None:
    """A market order of the simulation's own flow (what the lane's loop does for one)."""
    lane.now = t
    lane.ex.market(t, side, size)
    lane.after_trade(t)


def events_since(lane: Lane, n: int, kind: type) -> list:
    return [ev for ev in lane.ex.out[n:] if type(ev) is kind]


def replayed(lane: Lane) -> OrderBook:
    book = OrderBook(0)
    for ev in lane.ex.out:
        if not isinstance(ev, TruthLabel):
            book.update(ev)
    return book


BOOK = [(BUY, 100, 5), (BUY, 100, 2), (BUY, 99, 4), (SELL, 102, 3), (SELL, 103, 6), (SELL, 103, 1), (SELL, 104, 5)]


def test_market_order_walks_the_real_book_and_prints_trades_everyone_sees():
    lane, desk = hand_built(BOOK)
    n = len(lane.ex.out)
    desk.submit(order("m1", BUY, 8), T0 + 2_000_000_000)
    at(desk, 2.0)
    reports = desk.drain()
    assert [type(r) for r in reports] == [Ack, Fill, Fill]
    fills = [(r.price, r.size, r.liquidity) for r in reports[1:]]
    assert fills == [(102, 3, Liquidity.TAKER), (103, 5, Liquidity.TAKER)]
    ts = T0 + 2_000_000_000
    assert all(r.ts_exchange == ts and r.ts_local == ts + 500 for r in reports)
    # the stream: one execution per resting order hit, front of the queue first, one match id
    execs = events_since(lane, n, OrderExecute)
    trades = events_since(lane, n, Trade)
    assert [(e.order_id, e.price, e.size) for e in execs] == [(4, 102, 3), (5, 103, 5)]
    assert [(t.price, t.size, t.aggressor) for t in trades] == [(102, 3, BUY), (103, 5, BUY)]
    assert len({t.match_id for t in trades}) == 1 and all(t.ts_event == ts for t in trades)
    # the liquidity is gone for everyone: the matching book and a book rebuilt from the stream agree
    assert lane.book.best_ask == 103 and lane.book.size_at(SELL, 103) == 2
    view, fresh = lane.book.view(), replayed(lane).view()
    assert (view.ask_px, view.ask_sz) == (fresh.ask_px, fresh.ask_sz)
    assert lane.ex.last_trade == 103


def test_market_order_moves_the_simulation_like_any_market_order():
    lane, desk = hand_built(BOOK)
    x0, imb0 = lane.X, lane.imb
    desk.submit(order("m1", BUY, 8), T0 + 1_000_000_000)
    at(desk, 1.0)
    assert x0 < lane.X  # permanent impact on the latent price
    assert lane.imb > imb0  # the flow imbalance the queue reaction watches
    assert lane.t_last == 1.0


def test_partial_fill_of_an_ioc_and_a_marketable_limit_whose_rest_rests():
    lane, desk = hand_built(BOOK)
    desk.submit(order("ioc", BUY, 5, OrderType.IOC, 102), T0 + 1_000_000_000)
    at(desk, 1.0)
    reports = desk.drain()
    assert [type(r) for r in reports] == [Ack, Fill, CancelAck]
    assert (reports[1].price, reports[1].size) == (102, 3)
    assert not desk.working("ioc")
    n = len(lane.ex.out)
    desk.submit(order("lim", BUY, 9, OrderType.LIMIT, 103), T0 + 2_000_000_000)
    at(desk, 2.0)
    reports = desk.drain()
    assert [type(r) for r in reports] == [Ack, Fill, Fill]
    assert [(r.price, r.size) for r in reports[1:]] == [(103, 6), (103, 1)]
    adds = events_since(lane, n, OrderAdd)
    assert len(adds) == 1 and (adds[0].side, adds[0].price, adds[0].size) == (BUY, 103, 2)
    assert adds[0].order_id > CLIENT_OID_BASE  # our own id range, distinguishable on the stream
    assert lane.book.best_bid == 103 and lane.book.best_ask == 104 and desk.working("lim")


def test_market_order_never_takes_the_last_order_of_a_side():
    lane, desk = hand_built(BOOK)
    desk.submit(order("big", BUY, 100), T0 + 1_000_000_000)
    at(desk, 1.0)
    reports = desk.drain()
    assert [type(r) for r in reports] == [Ack, Fill, Fill, Fill, CancelAck]
    assert sum(r.size for r in reports if type(r) is Fill) == 10
    assert lane.book.best_ask == 104 and lane.book.size_at(SELL, 104) == 5


def test_resting_limit_fills_only_after_the_orders_ahead_never_by_adds_behind():
    lane, desk = hand_built(BOOK)  # bid 100: order 1 (5 lots) then order 2 (2 lots)
    desk.submit(order("p", BUY, 3, OrderType.LIMIT, 100), T0 + 1_000_000_000)
    at(desk, 1.0)
    assert [type(r) for r in desk.drain()] == [Ack]
    ours = desk.orders["p"].oid
    assert lane.book.queue(BUY, 100) == [(1, 5), (2, 2), (ours, 3)]
    lane.ex.add(1.5, BUY, 100, 4)  # the simulation adds behind us
    flow_market(lane, 2.0, SELL, 6)  # takes order 1 and 1 lot of order 2: nothing for us
    assert desk.drain() == []
    assert lane.ex.delete(2.5, 2)  # the rest of the order ahead is cancelled: we are first
    flow_market(lane, 3.0, SELL, 1)
    fills = desk.drain()
    assert [(type(f), f.price, f.size, f.liquidity, f.ts_exchange) for f in fills] == [
        (Fill, 100, 1, Liquidity.MAKER, T0 + 3_000_000_000)]
    flow_market(lane, 4.0, SELL, 5)  # 2 lots for us, then 3 of the add behind
    fills = desk.drain()
    assert [(f.price, f.size) for f in fills] == [(100, 2)]
    assert not desk.working("p") and desk.orders["p"].status == "filled"
    assert lane.book.queue(BUY, 100) == [(8, 1)]
    assert ours not in lane.owner


def test_cancel_removes_our_order_and_a_late_cancel_is_refused():
    lane, desk = hand_built(BOOK)
    desk.submit(order("p", BUY, 3, OrderType.LIMIT, 101), T0 + 1_000_000_000)
    desk.cancel("p", T0 + 2_000_000_000)
    at(desk, 1.0)
    ours = desk.orders["p"].oid
    assert lane.book.best_bid == 101
    n = len(lane.ex.out)
    at(desk, 2.0)
    assert [type(r) for r in desk.drain()] == [Ack, CancelAck]
    deletes = events_since(lane, n, OrderDelete)
    assert [(d.order_id, d.price, d.size) for d in deletes] == [(ours, 101, 3)]
    assert lane.book.best_bid == 100
    desk.submit(order("q", SELL, 2, OrderType.LIMIT, 101), T0 + 3_000_000_000)
    at(desk, 3.0)
    flow_market(lane, 3.5, BUY, 2)  # our whole offer trades
    desk.cancel("q", T0 + 4_000_000_000)
    at(desk, 4.0)
    reports = desk.drain()
    assert [type(r) for r in reports] == [Ack, Fill, Reject]
    assert reports[-1].reason == "cancel too late: filled"


def test_stop_orders_are_refused():
    lane, desk = hand_built(BOOK)
    desk.submit(order("s", SELL, 1, OrderType.STOP, 99), T0 + 1_000_000_000)
    at(desk, 1.0)
    (reject,) = desk.drain()
    assert type(reject) is Reject and "stop" in reject.reason


# ---- gated runs --------------------------------------------------------------------------------
def encoded(events: list) -> bytes:
    return b"".join(msgspec.msgpack.encode(ev) for ev in events)


def test_gated_run_without_orders_is_the_ungated_stream():
    """Pausing draws nothing: any sequence of watermarks gives the same events, byte for byte."""
    config = Config()
    ungated = list(MarketSimulator(["TSLA", "AAPL"], config, seed=5, duration_s=20.0).events())
    sim = MarketSimulator(["TSLA", "AAPL"], config, seed=5, duration_s=20.0, gated=True)
    out: list = []
    step = [3_000_000, 250_000_000, 1_000_000_000, 7_777_777, 1]
    i = 0
    t = T0
    while not sim.finished:
        t += step[i % len(step)]
        i += 1
        out += sim.resume(t)
    assert encoded(out) == encoded(ungated)
    gated_iter = list(MarketSimulator(["TSLA", "AAPL"], config, seed=5, duration_s=20.0, gated=True,
                                      gate_step_ns=50_000_000).events())
    assert encoded(gated_iter) == encoded(ungated)


def test_gate_advances_on_time_and_never_goes_back():
    sim = MarketSimulator(["TSLA"], Config(), seed=2, duration_s=5.0, gated=True)
    first = sim.resume(T0 + 1_000_000)
    assert all(ev.ts_recv < T0 + 1_000_000 for ev in first)
    quiet = sim.resume(T0 + 1_000_001)  # one nanosecond: nothing happens, and nothing waits for an event
    assert quiet == [] and sim.watermark_ns == T0 + 1_000_001
    assert sim.resume(T0) == []  # an earlier watermark returns nothing
    rest = sim.resume(T0 + 10_000_000_000)
    assert sim.finished and rest and all(ev.ts_recv >= T0 + 1_000_001 for ev in rest)


def run_with_orders(seed: int, latency_ns: int) -> tuple[list, list, MarketSimulator]:
    """A gated run: at every simulated second we buy 2 lots at market and rest a bid at the best bid."""
    sim = MarketSimulator(["TSLA"], Config(), seed=seed, duration_s=12.0, gated=True, response_ns=1000)
    events: list = []
    reports: list = []
    for k in range(1, 12):
        decided = T0 + k * 1_000_000_000
        events += sim.resume(decided)
        book = sim.lanes[0].book
        sim.submit(OrderRequest(0, f"m{k}", BUY, int(OrderType.MARKET), 0, 2, "IOC", decided), latency_ns)
        sim.submit(OrderRequest(0, f"l{k}", BUY, int(OrderType.LIMIT), book.best_bid, 1, "GTC", decided), latency_ns)
        reports += sim.drain()
    while not sim.finished:
        events += sim.resume(sim.watermark_ns + 1_000_000_000)
    reports += sim.drain()
    return events, reports, sim


def test_orders_enter_at_decision_time_plus_latency_and_the_run_is_deterministic():
    latency = 300_000
    events, reports, sim = run_with_orders(4, latency)
    assert sim.desk(0).late == 0
    ours = [ev for ev in events if type(ev) is OrderAdd and ev.order_id > CLIENT_OID_BASE]
    assert len(ours) == 11
    for ev in ours:  # entered exactly at the decision (a whole second) plus the latency
        assert (ev.ts_event - T0 - latency + 1) % 1_000_000_000 <= 1
    acks = [r for r in reports if type(r) is Ack]
    assert len(acks) == 22 and all((a.ts_exchange - T0 - latency + 1) % 1_000_000_000 <= 1 for a in acks)
    taker = [r for r in reports if type(r) is Fill and r.liquidity == Liquidity.TAKER]
    # our market orders are prints on the simulator's own tape, at their arrival time
    prints = {(ev.ts_event, ev.price, ev.size) for ev in events if type(ev) is Trade and ev.aggressor == BUY}
    assert taker and all((f.ts_exchange, f.price, f.size) in prints for f in taker)
    again_events, again_reports, _ = run_with_orders(4, latency)
    assert encoded(again_events) == encoded(events) and encoded(again_reports) == encoded(reports)
    other, _, _ = run_with_orders(5, latency)
    assert encoded(other) != encoded(events)


def test_the_simulation_reacts_to_our_orders():
    """Same seed, with and without our orders: the streams part at our first order's arrival."""
    events, _, _ = run_with_orders(4, 300_000)
    plain = list(MarketSimulator(["TSLA"], Config(), seed=4, duration_s=12.0).events())
    first = next(i for i, (a, b) in enumerate(zip(events, plain, strict=False)) if a != b)
    assert events[first].ts_recv >= T0 + 1_000_000_000
    assert len(events) != len(plain)


def test_ungated_run_races_ahead_of_an_order():
    sim = MarketSimulator(["TSLA"], Config(), seed=4, duration_s=3.0)
    events = sim.events()
    next(events)  # the first event of the stream: the simulator has already run its first second
    sim.submit(OrderRequest(0, "x", BUY, int(OrderType.MARKET), 0, 1, "IOC", T0), 1000)
    assert sim.desk(0).late == 1


@pytest.mark.parametrize("bad", [0, -5])
def test_gate_step_must_be_positive(bad):
    with pytest.raises(ValueError, match="gate_step_ns"):
        MarketSimulator(["TSLA"], Config(), seed=1, duration_s=1.0, gated=True, gate_step_ns=bad)
