"""Portfolio: cash, realized P&L and average price through open, add, partial close, flip and close."""

from __future__ import annotations

import msgspec
import pytest

from engine.events import BUY, SELL, Fill, Liquidity
from engine.portfolio import Portfolio
from engine.testing import instrument


def fill(side: int, size: int, price: int, fee: float = 0.0, iid: int = 0) -> Fill:
    return Fill(iid, "c", side, price, size, Liquidity.TAKER, fee, 0, 0)


def test_tick_value_is_tick_size_times_multiplier():
    """Tick value comes from the decimal tick size and multiplier of each instrument."""
    future = msgspec.structs.replace(instrument(0, "A", "0.25"), multiplier="50")
    portfolio = Portfolio([future, instrument(1, "B", "0.01")])
    assert portfolio.tick_value == {0: 12.5, 1: 0.01}
    assert portfolio.positions[0].qty == 0 and portfolio.positions[1].cash == 0.0


def test_long_round_trip_by_hand():
    """Open, add, partial close, flip to short and close, with fees, against hand-computed values."""
    p = Portfolio([instrument(0, "A", "0.5")])  # tick value 0.5
    pos = p.on_fill(fill(BUY, 10, 100, fee=0.03))  # open long 10 @ 100
    assert (pos.qty, pos.avg_price) == (10, 100.0)
    assert pos.cash == pytest.approx(-500.03) and pos.realized == pytest.approx(-0.03)

    pos = p.on_fill(fill(BUY, 30, 104, fee=0.09))  # add 30 @ 104: avg (1000 + 3120) / 40 = 103
    assert (pos.qty, pos.avg_price) == (40, 103.0)
    assert pos.cash == pytest.approx(-2060.12) and pos.realized == pytest.approx(-0.12)
    assert p.unrealized(0, 105) == pytest.approx(40 * 2 * 0.5)

    pos = p.on_fill(fill(SELL, 15, 107, fee=0.045))  # partial close: +15 * 4 * 0.5 = +30
    assert (pos.qty, pos.avg_price) == (25, 103.0)
    assert pos.cash == pytest.approx(-2060.12 + 802.5 - 0.045)
    assert pos.realized == pytest.approx(30 - 0.12 - 0.045)

    pos = p.on_fill(fill(SELL, 40, 101, fee=0.12))  # close 25 (25 * -2 * 0.5 = -25), open short 15 @ 101
    assert (pos.qty, pos.avg_price) == (-15, 101.0)
    assert pos.realized == pytest.approx(30 - 25 - 0.12 - 0.045 - 0.12)
    assert pos.cash == pytest.approx(-2060.12 + 802.455 + 2020 - 0.12)
    assert p.unrealized(0, 100) == pytest.approx(-15 * (100 - 101) * 0.5)

    pos = p.on_fill(fill(BUY, 15, 99))  # close the short: +15 * 2 * 0.5 = +15
    assert (pos.qty, pos.avg_price) == (0, 0.0)
    assert pos.realized == pytest.approx(15 + 30 - 25 - 0.285)
    assert pos.cash == pytest.approx(pos.realized)  # flat: every cash flow is realized P&L
    assert p.unrealized(0, 123) == 0.0


def test_short_add_and_partial_cover():
    """Adding to a short averages the price; covering part realizes (avg - price) per lot."""
    p = Portfolio([instrument(0, "A", "1")])
    p.on_fill(fill(SELL, 10, 100))
    pos = p.on_fill(fill(SELL, 10, 90))
    assert (pos.qty, pos.avg_price) == (-20, 95.0)
    pos = p.on_fill(fill(BUY, 5, 93))
    assert (pos.qty, pos.avg_price, pos.realized) == (-15, 95.0, 10.0)
    assert pos.cash == 100 * 10 + 90 * 10 - 93 * 5
    pos = p.on_fill(fill(BUY, 20, 97))  # cover 15 at a loss of 2 each, then long 5 @ 97
    assert (pos.qty, pos.avg_price, pos.realized) == (5, 97.0, 10.0 - 30.0)


def test_rebates_are_negative_fees():
    """A negative fee (maker rebate) adds to cash and realized P&L."""
    p = Portfolio([instrument(0, "A", "0.01")])
    pos = p.on_fill(Fill(0, "c", BUY, 10_000, 100, Liquidity.MAKER, -0.2, 0, 0))
    assert pos.cash == pytest.approx(-100 * 100.0 + 0.2)
    assert pos.realized == pytest.approx(0.2)


def test_instruments_are_independent():
    """A fill in one instrument leaves the others untouched."""
    p = Portfolio([instrument(0, "A", "1"), instrument(1, "B", "1")])
    p.on_fill(fill(BUY, 3, 10, iid=1))
    assert (p.positions[0].qty, p.positions[0].cash) == (0, 0.0)
    assert (p.positions[1].qty, p.positions[1].cash) == (3, -30.0)
