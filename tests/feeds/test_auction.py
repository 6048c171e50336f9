"""Opening and closing auctions of the simulator (``simulator.auctions``, off by default)."""

from __future__ import annotations

import msgspec
import pytest

from engine.book import OrderBook
from engine.config import Config
from engine.events import LAST, NO_SIDE, MarketState, OrderExecute, Status, Trade, TruthLabel
from feeds.simulator import MarketSimulator
from feeds.simulator.auction import uncrossing_price

SYMBOLS = ["AAPL", "TSLA"]  # one small-tick, one large-tick instrument


def auction_config(**simulator) -> Config:
    return msgspec.convert({"simulator": {"auctions": True, **simulator}}, Config)


def session(config: Config, seed: int = 5, duration: float = 60.0) -> list:
    return [e for e in MarketSimulator(SYMBOLS, config, seed=seed, duration_s=duration).events()
            if not isinstance(e, TruthLabel)]


def naive_max_volume(bids, asks) -> tuple[int, set[int]]:
    """Largest executable volume over all prices and the prices reaching it with the least imbalance."""
    prices = sorted({p for p, _ in bids} | {p for p, _ in asks})
    rows = []
    for p in prices:
        demand = sum(q for price, q in bids if price >= p)
        supply = sum(q for price, q in asks if price <= p)
        rows.append((p, min(demand, supply), abs(demand - supply)))
    volume = max(v for _, v, _ in rows)
    imbalance = min(i for _, v, i in rows if v == volume)
    return volume, {p for p, v, i in rows if v == volume and i == imbalance}


def test_uncrossing_price_known_answers():
    # bids 100 @ 10, 1 @ 12; asks 100 @ 9, 1 @ 11: 100 lots trade at 9 or 10 (imbalance 1 at both); 10 is
    # nearer the reference 10.4
    assert uncrossing_price([(12, 1), (10, 100)], [(9, 100), (11, 1)], 10.4) == (10, 100)
    assert uncrossing_price([(12, 1), (10, 100)], [(9, 100), (11, 1)], 8.0) == (9, 100)
    # 30 bid at 11 against 10 @ 10 and 25 @ 11: 35 supplied at 11, 10 at 10 -> 30 at 11
    assert uncrossing_price([(11, 30)], [(10, 10), (11, 25)], 10.0) == (11, 30)
    assert uncrossing_price([(9, 5)], [(10, 5)], 9.5) is None  # not crossed
    assert uncrossing_price([], [(10, 5)], 9.5) is None


@pytest.mark.parametrize("which", ["open", "close"])
def test_auction_prints_one_uncrossing_trade_at_the_max_volume_price(which):
    events = session(auction_config())
    for iid in range(len(SYMBOLS)):
        own = [e for e in events if e.instrument_id == iid]
        statuses = [e for e in own if isinstance(e, Status)]
        assert [s.state for s in statuses] == [MarketState.PRE_OPEN, MarketState.OPEN, MarketState.QUOTE_ONLY,
                                               MarketState.CLOSED]
        start, end = (statuses[0], statuses[1]) if which == "open" else (statuses[2], statuses[3])
        i0, i1 = own.index(start), own.index(end)
        book = OrderBook(iid)
        for ev in own[:i0 + 1]:
            assert book.update(ev)
        auction = own[i0 + 1:i1]
        call_end = next(i for i, e in enumerate(auction) if isinstance(e, OrderExecute))
        for ev in auction[:call_end]:
            book.update(ev)
        bids, asks = book.levels(1), book.levels(-1)
        assert bids[0][0] >= asks[0][0], "the book is crossed before the uncrossing"
        volume, prices = naive_max_volume(bids, asks)
        prints = [e for e in auction if isinstance(e, Trade)]
        assert len(prints) == 1
        (cross,) = prints
        assert cross.aggressor == NO_SIDE and cross.price in prices and cross.size == volume
        fills = [e for e in auction if isinstance(e, OrderExecute)]
        assert all(f.price == cross.price and f.trade_id == cross.trade_id for f in fills)
        assert sum(f.size for f in fills if f.side > 0) == sum(f.size for f in fills if f.side < 0) == volume
        # one atomic event: LAST only on its last record, so no consumer sees the crossed book
        assert auction[-1] is cross and cross.flags & LAST
        assert not any(e.flags & LAST for e in auction[call_end:-1])
        for ev in auction[call_end:]:
            book.update(ev)
        assert book.best_bid < book.best_ask
        assert book.counters.crossed == 0 and not book.check_invariants()


def test_whole_session_with_auctions_replays_without_integrity_counts():
    events = session(auction_config(), duration=90.0)
    for iid in range(len(SYMBOLS)):
        book = OrderBook(iid)
        for ev in events:
            if ev.instrument_id == iid:
                assert book.update(ev)
        assert book.counters.crossed == 0 and not book.check_invariants()


def test_auctions_are_deterministic_and_off_by_default():
    enc = msgspec.msgpack.encode
    assert [enc(e) for e in session(auction_config(), seed=11)] == [enc(e) for e in session(auction_config(), seed=11)]
    plain = session(Config(), seed=11)
    assert not any(isinstance(e, Trade) and e.aggressor == NO_SIDE for e in plain)
    assert [s.state for s in plain if isinstance(s, Status) and s.instrument_id == 0] == [MarketState.OPEN]
    wide = session(auction_config(auction_orders=200, auction_width_ticks=20), seed=11)
    sizes = [e.size for e in wide if isinstance(e, Trade) and e.aggressor == NO_SIDE]
    base = [e.size for e in session(auction_config(), seed=11) if isinstance(e, Trade) and e.aggressor == NO_SIDE]
    assert len(sizes) == len(base) == 2 * len(SYMBOLS) and sum(sizes) > sum(base)
