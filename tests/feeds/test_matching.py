"""The simulator's Exchange: its book's view follows every order entry, cancel and execution."""

from __future__ import annotations

from engine.book import OrderBook
from engine.events import BUY, HIDDEN, LAST, SELL, OrderExecute, Trade, TruthLabel
from feeds.simulator.matching import Exchange

T0 = 1_000_000_000


def opened() -> Exchange:
    """An exchange with bids 100 (5, then 2) / 99 (4) and asks 102 (3) / 103 (6, then 1), its view built once."""
    ex = Exchange(0, T0, lambda: 0)
    ex.seed(0.0, [(BUY, 100, 5), (BUY, 100, 2), (BUY, 99, 4), (SELL, 102, 3), (SELL, 103, 6), (SELL, 103, 1)])
    ex.book.view()  # fill the view cache: every later change must drop what it covers
    return ex


def replayed(ex: Exchange) -> OrderBook:
    book = OrderBook(0)
    for ev in ex.out:
        if not isinstance(ev, TruthLabel):
            book.update(ev)
    return book


def sides(ex: Exchange) -> tuple:
    view = ex.book.view()
    return view.bid_px, view.bid_sz, view.ask_px, view.ask_sz, view.bid_depth, view.ask_depth


def assert_matches_replay(ex: Exchange) -> None:
    fresh = replayed(ex).view()
    assert sides(ex) == (fresh.bid_px, fresh.bid_sz, fresh.ask_px, fresh.ask_sz, fresh.bid_depth, fresh.ask_depth)
    assert ex.book.check_invariants() == []


def test_add_at_a_better_price_shows_the_new_best_bid():
    """After Exchange.add inside the spread, book.view() shows the new best bid and its size."""
    ex = opened()
    assert ex.book.view().bid_px[0] == 100
    ex.add(1.0, BUY, 101, 3)
    view = ex.book.view()
    assert view.bid_px[:3] == (101, 100, 99) and view.bid_sz[:3] == (3, 7, 4)
    assert_matches_replay(ex)


def test_add_to_a_level_in_view_updates_its_size_and_depth():
    """Joining the best ask's queue changes the view's ask size and depth windows."""
    ex = opened()
    ex.add(1.0, SELL, 102, 4)
    view = ex.book.view()
    assert view.ask_sz[0] == 7 and view.ask_depth[0] == 14
    assert_matches_replay(ex)


def test_delete_and_partial_cancel_update_the_view():
    """A full cancel empties the best bid level; a partial cancel shrinks the best ask."""
    ex = opened()
    bids = [oid for oid, _ in ex.book.queue(BUY, 100)]
    ex.delete(1.0, bids[0])
    assert ex.book.view().bid_sz[0] == 2
    ex.delete(1.1, bids[1])
    assert ex.book.view().bid_px[0] == 99
    ask = ex.book.queue(SELL, 102)[0][0]
    assert ex.reduce(1.2, ask, 1)
    assert ex.book.view().ask_sz[0] == 2
    assert_matches_replay(ex)


def test_market_order_takes_the_front_of_the_queue_and_updates_the_view():
    """A buy market order fills the best ask front first, then walks to the next level."""
    ex = opened()
    filled, last = ex.market(1.0, BUY, 5)
    assert (filled, last) == (5, 103)
    executions = [ev for ev in ex.out if isinstance(ev, OrderExecute)]
    assert [(ev.price, ev.size) for ev in executions] == [(102, 3), (103, 2)]
    view = ex.book.view()
    assert view.ask_px[0] == 103 and view.ask_sz[0] == 5
    assert_matches_replay(ex)


def test_market_order_never_takes_the_last_order_of_a_side():
    """A sell market order larger than the bid side stops before the last resting bid."""
    ex = opened()
    filled, _ = ex.market(1.0, SELL, 100)
    assert filled == 5 + 2  # the two orders at 100; the single order at 99 stays
    assert ex.book.view().bid_px == (99,)
    assert_matches_replay(ex)


def test_hidden_liquidity_fills_first_inside_the_spread_without_a_book_change():
    """A buy meeting 4 hidden lots one tick inside the spread prints them hidden at 101, then takes 102."""
    ex = opened()
    before = sides(ex)
    filled, last = ex.market(1.0, BUY, 6, hidden=4, improve=1)
    assert (filled, last) == (6, 102)
    trades = [ev for ev in ex.out if isinstance(ev, Trade)]
    assert [(ev.price, ev.size, ev.hidden, bool(ev.flags & HIDDEN)) for ev in trades] == [
        (101, 4, True, True), (102, 2, False, False)]
    assert len({ev.match_id for ev in trades}) == 1 and trades[-1].flags & LAST
    assert [(ev.price, ev.size) for ev in ex.out if isinstance(ev, OrderExecute)] == [(102, 2)]
    assert ex.book.view().ask_sz[0] == 1 and sides(ex)[:2] == before[:2]
    assert_matches_replay(ex)


def test_a_fully_hidden_fill_leaves_the_book_unchanged_and_stays_inside_the_spread():
    """A sell filled by a larger hidden bid prints once (HIDDEN|LAST), one tick under the ask at most."""
    ex = opened()
    before = sides(ex)
    filled, last = ex.market(1.0, SELL, 3, hidden=10, improve=5)
    assert (filled, last) == (3, 101)  # improvement capped: strictly inside the 100-102 spread
    trades = [ev for ev in ex.out if isinstance(ev, Trade)]
    assert len(trades) == 1 and trades[0].hidden and trades[0].flags & (HIDDEN | LAST) == HIDDEN | LAST
    assert trades[0].aggressor == SELL and sides(ex) == before and ex.n_hidden == 1 and ex.n_trades == 0
    assert_matches_replay(ex)
