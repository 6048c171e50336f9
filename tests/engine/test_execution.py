"""BookWalkExchange and the execution stage against hand-computed fills, fees, latencies and equity."""

from __future__ import annotations

import pytest

from engine.book import BookView
from engine.events import BUY, SELL, Ack, Fill, Liquidity, OrderRequest, OrderType, Reject
from engine.execution.exchange import BookWalkExchange, ExecutionStage
from engine.portfolio import Portfolio
from engine.records import TABLES
from engine.risk import OrderIntent
from engine.testing import instrument

ENTRY, RESPONSE = 1_000, 20_000
T = 5_000_000


def view(iid: int = 0) -> BookView:
    """Bids 100x8, 99x12, 97x30; asks 101x5, 102x10, 104x20."""
    return BookView(iid, T, T, 10, 0, (100, 99, 97), (8, 12, 30), (101, 102, 104), (5, 10, 20))


def order(side: int, size: int, order_type: int = OrderType.MARKET, price: int = 0, cid: str = "c1",
          iid: int = 0) -> OrderRequest:
    return OrderRequest(iid, cid, side, order_type, price, size, "IOC", T, "qi", f"s-{cid}")


@pytest.fixture
def exchange() -> BookWalkExchange:
    return BookWalkExchange(taker_fee_per_lot=0.25, entry_latency_ns=ENTRY, response_latency_ns=RESPONSE)


def fills(responses) -> list[tuple[int, int]]:
    return [(r.price, r.size) for r in responses if type(r) is Fill]


def test_market_buy_walks_the_asks_level_by_level(exchange):
    """A market buy of 12 takes 5 @ 101 and 7 @ 102, one taker fill per level, fees per lot."""
    out = exchange.submit(order(BUY, 12), view())
    t_exch, t_back = T + ENTRY, T + ENTRY + RESPONSE
    assert out == [
        Ack(0, "c1", t_exch, t_back),
        Fill(0, "c1", BUY, 101, 5, Liquidity.TAKER, 1.25, t_exch, t_back),
        Fill(0, "c1", BUY, 102, 7, Liquidity.TAKER, 1.75, t_exch, t_back),
    ]


def test_market_sell_walks_the_bids(exchange):
    """A market sell of 25 takes 8 @ 100, 12 @ 99 and 5 @ 97."""
    assert fills(exchange.submit(order(SELL, 25), view())) == [(100, 8), (99, 12), (97, 5)]


def test_market_order_larger_than_the_visible_side_fills_what_is_shown(exchange):
    """Hidden liquidity is never assumed: the remainder beyond the visible side is cancelled."""
    out = exchange.submit(order(BUY, 100), view())
    assert fills(out) == [(101, 5), (102, 10), (104, 20)]
    assert not any(type(r) is Reject for r in out)


@pytest.mark.parametrize(
    ("side", "size", "limit", "expected"),
    [
        (BUY, 30, 102, [(101, 5), (102, 10)]),  # stops before 104; remainder cancelled
        (BUY, 3, 104, [(101, 3)]),
        (BUY, 40, 104, [(101, 5), (102, 10), (104, 20)]),
        (SELL, 30, 99, [(100, 8), (99, 12)]),
        (SELL, 30, 98, [(100, 8), (99, 12)]),  # limit between levels
    ],
)
def test_ioc_walks_up_to_its_limit(exchange, side, size, limit, expected):
    """An IOC order fills the levels at or better than its limit price only."""
    out = exchange.submit(order(side, size, OrderType.IOC, limit), view())
    assert type(out[0]) is Ack
    assert fills(out) == expected
    assert all(r.side == side and r.liquidity == Liquidity.TAKER for r in out[1:])


@pytest.mark.parametrize(("side", "limit"), [(BUY, 100), (SELL, 101)])
def test_ioc_with_nothing_inside_its_limit_is_rejected(exchange, side, limit):
    """An IOC whose limit is not marketable is rejected, never acknowledged."""
    out = exchange.submit(order(side, 5, OrderType.IOC, limit), view())
    assert out == [Reject(0, "c1", "no visible liquidity within the limit", T + ENTRY, T + ENTRY + RESPONSE)]


@pytest.mark.parametrize("order_type", [OrderType.LIMIT, OrderType.STOP])
def test_resting_orders_are_rejected(exchange, order_type):
    """Limit and stop orders are rejected until the queue model exists, never assumed filled."""
    out = exchange.submit(order(BUY, 5, order_type, 101), view())
    assert out == [Reject(0, "c1", "resting orders need the queue model", T + ENTRY, T + ENTRY + RESPONSE)]


def test_no_book_and_empty_side_are_rejected(exchange):
    """Without a view, or with the opposite side empty, the order is rejected with the reason."""
    assert exchange.submit(order(BUY, 5), None)[0].reason == "no book"
    one_sided = BookView(0, T, T, 1, 0, (100,), (5,), (), ())
    assert exchange.submit(order(BUY, 5), one_sided)[0].reason == "no visible liquidity within the limit"
    assert fills(exchange.submit(order(SELL, 5), one_sided)) == [(100, 5)]


def test_default_latencies_are_one_millisecond_each():
    """Entry and response latency default to 1 ms (SPEC section 12)."""
    [ack, fill] = BookWalkExchange(0.003).submit(order(BUY, 1), view())
    assert (ack.ts_exchange, ack.ts_local) == (T + 1_000_000, T + 2_000_000)
    assert fill.fee == pytest.approx(0.003)


# ---- execution stage --------------------------------------------------------------------------------
def rows(records: list[tuple[str, tuple]], table: str) -> list[dict]:
    return [dict(zip(TABLES[table], row, strict=True)) for t, row in records if t == table]


def stage_with(*tick_sizes: str) -> ExecutionStage:
    portfolio = Portfolio([instrument(i, f"S{i}", tick) for i, tick in enumerate(tick_sizes)])
    exchange = BookWalkExchange(taker_fee_per_lot=0.003, entry_latency_ns=ENTRY, response_latency_ns=RESPONSE)
    return ExecutionStage(exchange, portfolio, equity0=10_000.0)


def test_stage_records_orders_fills_and_equity():
    """A filled market buy gives one orders row, a fills row per level and an equity row per fill."""
    stage = stage_with("0.5")
    out = stage.apply([OrderIntent(order(BUY, 12), view())])
    assert [type(r) for r in out] == [Ack, Fill, Fill]
    assert stage.fills == 2
    records = stage.take_records()
    assert [t for t, _ in records] == ["fills", "equity", "fills", "equity", "orders"]
    fill_rows = rows(records, "fills")
    assert [(r["client_id"], r["fill_no"], r["price"], r["size"], r["side"], r["liquidity"]) for r in fill_rows] == [
        ("c1", 1, 101, 5, BUY, Liquidity.TAKER), ("c1", 2, 102, 7, BUY, Liquidity.TAKER)]
    assert [r["fee"] for r in fill_rows] == pytest.approx([0.015, 0.021])
    assert all((r["ts_exchange"], r["ts_local"]) == (T + ENTRY, T + ENTRY + RESPONSE) for r in fill_rows)
    equity = rows(records, "equity")
    # tick value 0.5; mark = mid 100.5. After 5 @ 101: cash -252.515, unrealized 5 * -0.5 * 0.5.
    # After 7 @ 102: avg 1219/12, cash -609.536, unrealized 12 * (100.5 - 1219/12) * 0.5 = -6.5.
    assert [(r["position"], r["ts"]) for r in equity] == [(5, T + ENTRY + RESPONSE), (12, T + ENTRY + RESPONSE)]
    assert [r["cash"] for r in equity] == pytest.approx([-252.515, -609.536])
    assert [r["realized"] for r in equity] == pytest.approx([-0.015, -0.036])
    assert [r["unrealized"] for r in equity] == pytest.approx([-1.25, -6.5])
    assert [r["equity"] for r in equity] == pytest.approx([10_000 - 1.265, 10_000 - 6.536])
    [order_row] = rows(records, "orders")
    assert order_row == {
        "client_id": "c1", "signal_id": "s-c1", "instrument_id": 0, "ts_local": T, "side": BUY,
        "order_type": OrderType.MARKET, "price": 0, "size": 12, "tif": "IOC", "strategy": "qi",
        "status": "filled", "reason": None,
    }
    assert stage.flush() == []


def test_stage_order_statuses():
    """Orders end filled, partially_filled or rejected (with the exchange's reason)."""
    stage = stage_with("0.01")
    stage.apply([
        OrderIntent(order(BUY, 5, cid="full"), view()),
        OrderIntent(order(BUY, 30, OrderType.IOC, 102, cid="part"), view()),
        OrderIntent(order(SELL, 5, OrderType.LIMIT, 120, cid="rest"), view()),
        OrderIntent(order(SELL, 5, cid="blind"), None),
    ])
    statuses = [(r["client_id"], r["status"], r["reason"]) for r in rows(stage.take_records(), "orders")]
    assert statuses == [("full", "filled", None), ("part", "partially_filled", None),
                        ("rest", "rejected", "resting orders need the queue model"),
                        ("blind", "rejected", "no book")]
    assert stage.fills == 3
    position = stage.portfolio.positions[0]
    assert position.qty == 20


def test_equity_values_other_instruments_at_their_average_price():
    """Equity after a fill marks the filled instrument to its mid and the others at their average price."""
    stage = stage_with("1", "0.5")
    stage.apply([OrderIntent(order(SELL, 8, iid=1, cid="a"), view(1))])  # short 8 @ 100 in instrument 1
    stage.take_records()
    stage.apply([OrderIntent(order(BUY, 5, iid=0, cid="b"), view(0))])  # long 5 @ 101 in instrument 0
    [named] = rows(stage.take_records(), "equity")
    cash = (8 * 100 * 0.5 - 8 * 0.003) + (-5 * 101 * 1.0 - 5 * 0.003)
    assert named["cash"] == pytest.approx(cash)
    assert named["equity"] == pytest.approx(10_000 + cash + 5 * 100.5 * 1.0 + (-8) * 100 * 0.5)
