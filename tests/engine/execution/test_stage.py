"""The execution stage on hand-made intents and markets: exits, accounting identities, guards, determinism."""

from __future__ import annotations

import pytest

from engine.book import BookView
from engine.events import BUY, SELL, OrderAdd, OrderDelete, OrderRequest, OrderType
from engine.execution.models import ConstantLatency, PerLotFees, ProbQueueModel
from engine.execution.simulated import SimulatedExchange
from engine.execution.stage import PORTFOLIO, ExecutionStage
from engine.portfolio import Portfolio
from engine.records import TABLES
from engine.risk import CorrelationCap, DrawdownGuard, OrderIntent, StopRule
from engine.testing import EventBuilder, instrument

NS = 1_000_000_000
EQUITY0 = 100_000.0
TAKER, MAKER = 0.003, -0.002


def stage(max_losses: int = 5, hard: float = 0.03, single_cap: float = 1e9) -> ExecutionStage:
    instruments = [instrument(0, "A", "0.01")]
    exchange = SimulatedExchange(instruments, {0: PerLotFees(MAKER, TAKER)}, ConstantLatency(1_000, 1_000),
                                 ProbQueueModel())
    guard = DrawdownGuard(EQUITY0, 0.015, hard, 1e9, max_losses, 0.5, 0.5)
    correlation = CorrelationCap([0], 60 * NS, 7200, 0.5, 1e12, single_cap, 0.7, 1.5)
    return ExecutionStage(exchange, Portfolio(instruments, EQUITY0), guard, correlation, StopRule(1, 1), 50_000,
                          NS)


def market(moves: list[tuple[int, int]], start: int = NS, step: int = 100_000_000) -> list:
    """A book quoted (bid, ask) at each step: 50 lots each side, one order per side replaced every step."""
    b = EventBuilder(ts=start, step_ns=step)
    events, oid = [], 0
    for bid, ask in moves:
        for old in (oid - 1, oid):
            if old > 0:
                events.append(b(OrderDelete, old, BUY if old % 2 else SELL, 0, 0))
        oid += 2
        events += [b(OrderAdd, oid - 1, BUY, bid, 50), b(OrderAdd, oid, SELL, ask, 50)]
    return events


def intent(ts: int, side: int = BUY, size: int = 10, stop: int = 95, target: int = 110, time_stop: int = 0,
           cid: str = "e1", strategy: str = "s", probability: float = 0.9, order_type: int = OrderType.MARKET,
           price: int = 0) -> OrderIntent:
    view = BookView(0, ts, ts, 0, 0, (100,), (50,), (101,), (50,))
    order = OrderRequest(0, cid, side, order_type, price, size, "IOC", ts, strategy, cid)
    return OrderIntent(order, view, probability, stop, target, time_stop, "range_low")


def rows(core: ExecutionStage, table: str) -> list[dict]:
    cols = TABLES[table]
    return [dict(zip(cols, row, strict=True)) for t, row in core.take_records() if t == table] if False else [
        dict(zip(cols, row, strict=True)) for t, row in core.records if t == table]


def run(core: ExecutionStage, events: list, intents: list[OrderIntent]) -> ExecutionStage:
    core.market(events)
    core.orders_in(intents, None)
    core.flush()
    return core


def rising() -> list:
    return market([(100, 101)] * 5 + [(100 + k, 101 + k) for k in range(1, 12)] + [(111, 112)] * 3)


def test_target_exit_round_trip_hand_computed():
    """Long 10 at 101 (taker), the bid reaches the target 110: sold at 110; PnL = 10 * 9 * 0.01 - fees."""
    core = run(stage(), rising(), [intent(NS + 250_000_000)])
    [trip] = rows(core, "round_trips")
    assert (trip["entry_price"], trip["exit_price"], trip["exit_reason"]) == (101.0, 110.0, "target")
    assert trip["pnl"] == pytest.approx(10 * 9 * 0.01 - 20 * TAKER)
    assert trip["r_multiple"] == pytest.approx(9 / 6)


def test_accounting_identities_hold_on_every_equity_row():
    """equity = equity0 + cash + marked positions on every portfolio row; instrument rows add up; fees add up;
    flat at the end, the realised PnL equals the change in equity."""
    core = run(stage(), rising(), [intent(NS + 250_000_000), intent(NS + 450_000_000, side=SELL, cid="e2",
                                                                     stop=108, target=90)])
    equity = rows(core, "equity")
    portfolio = [r for r in equity if r["instrument_id"] == PORTFOLIO]
    assert len(portfolio) > 10
    for row in portfolio:
        assert row["equity"] == pytest.approx(EQUITY0 + row["cash"] + row["marked_value"])
        same = [r for r in equity if r["ts"] == row["ts"] and r["instrument_id"] != PORTFOLIO]
        assert sum(r["cash"] for r in same[-1:]) == pytest.approx(row["cash"])
    fills = rows(core, "fills")
    assert fills and portfolio[-1]["fees"] == pytest.approx(sum(f["fee"] for f in fills))
    last = portfolio[-1]
    assert core.portfolio.positions[0].qty == 0
    assert last["realized"] == pytest.approx(last["equity"] - EQUITY0)
    trips = rows(core, "round_trips")
    assert sum(t["pnl"] for t in trips) == pytest.approx(last["realized"])


def test_stop_exit_and_the_end_of_data_flatten():
    """A long whose bid falls to its stop is sold at the bid; an open position is flattened at the end of the data."""
    falling = market([(100, 101)] * 3 + [(99, 100), (97, 98), (95, 96), (94, 95)] + [(94, 95)] * 3)
    core = run(stage(), falling, [intent(NS + 150_000_000, stop=96, target=120),
                                  intent(NS + 150_000_000, side=SELL, cid="e2", stop=110, target=50)])
    trips = {t["trip_id"]: t for t in rows(core, "round_trips")}
    assert trips["e1"]["exit_reason"] == "stop" and trips["e1"]["exit_price"] == 95.0
    assert trips["e2"]["exit_reason"] == "end of data" and trips["e2"]["exit_price"] == 95.0


def test_time_stop_exits():
    """A position older than its time stop is closed at the market."""
    core = run(stage(), market([(100, 101)] * 30), [intent(NS + 150_000_000, time_stop=NS)])
    [trip] = rows(core, "round_trips")
    assert trip["exit_reason"] == "time stop" and trip["exit_ts"] - trip["entry_ts"] >= NS


def test_kill_switch_latches_and_blocks_with_the_reason_persisted():
    """One losing round trip with max_losses = 1 latches the kill switch; a later order is refused, reason stored."""
    falling = market([(100, 101)] * 3 + [(97, 98), (94, 95)] + [(100, 101)] * 10)
    core = run(stage(max_losses=1), falling, [intent(NS + 150_000_000, stop=97),
                                              intent(NS + 5 * NS, cid="late")])
    refused = [o for o in rows(core, "orders") if o["client_id"] == "late"]
    assert refused[0]["status"] == "rejected" and refused[0]["reason"].startswith("kill switch: 1 consecutive")
    events = [(e["event"], e["detail"]) for e in rows(core, "risk_events")]
    assert ("kill_switch", "kill switch: 1 consecutive losing trades") in events
    assert core.guard.killed is not None  # the market recovered; the switch stays latched


def test_single_instrument_exposure_cap_refuses_with_reason():
    """An order whose dollar exposure exceeds the single-instrument cap is refused by the correlation guard."""
    core = run(stage(single_cap=5.0), rising(), [intent(NS + 250_000_000)])
    [order] = rows(core, "orders")
    assert order["status"] == "rejected" and order["reason"] == "exposure 10 > single-instrument cap 5"


def test_rows_do_not_depend_on_how_the_inputs_interleave():
    """Market chunks and intents with watermarks in any interleaving give the same rows as all-at-once."""
    events = rising()
    intents = [intent(NS + 250_000_000), intent(NS + 650_000_000, side=SELL, cid="e2", stop=112, target=100)]
    whole = run(stage(), events, intents).records
    core = stage()
    core.market(events[:7])
    core.orders_in(intents[:1], NS + 300_000_000)
    core.market(events[7:20])
    core.orders_in([], NS + 500_000_000)
    core.orders_in(intents[1:], NS + 700_000_000)
    core.market(events[20:])
    core.flush()
    assert core.records == whole
