"""The simulator's Exchange: its book's view follows every order entry, cancel and execution."""

from __future__ import annotations

from engine.book import OrderBook
from engine.events import BUY, HIDDEN, LAST, SELL, OrderExecute, Trade, TruthKind, TruthLabel
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


# ---- natural sweeps: every aggressive order that executes at >= 2 prices is labelled (SPEC F22) ----------------
def labels(ex: Exchange) -> list[TruthLabel]:
    return [ev for ev in ex.out if isinstance(ev, TruthLabel)]


def test_a_market_order_at_one_price_is_no_sweep():
    """Filling at the best only (one order, or two orders of one level, or all of a level) emits no label."""
    ex = opened()
    ex.market(1.0, BUY, 2)  # 2 of the 3 lots at 102
    ex.market(1.1, SELL, 6)  # 5 + 1 lots at 100: two fills, one price
    ex.market(1.2, BUY, 1)  # the last lot at 102
    assert labels(ex) == []


def test_a_market_order_walking_two_levels_is_one_natural_sweep():
    """BUY 5 takes 3 at 102 and 2 at 103: one SWEEP label, the aggressor's side, 102-103, stamped at the order's
    time, after its fills; episode id 0 and the planted episode counter untouched."""
    ex = opened()
    ex.market(1.5, BUY, 5)
    (label,) = labels(ex)
    ts = T0 + 1_500_000_000
    assert (label.kind, label.side, label.price_lo, label.price_hi) == (TruthKind.SWEEP, BUY, 102, 103)
    assert label.t_start == label.t_end == label.ts_event == label.ts_recv == ts
    assert label.episode_id == 0 and label.seq == 0
    assert label.params == {"natural": 1, "levels": 2, "volume": 5, "hidden": 0, "first_price": 102,
                            "last_price": 103}
    assert ex.out[-1] is label and isinstance(ex.out[-2], Trade) and ex.out[-2].flags & LAST
    assert ex.label(2.0, TruthKind.SPOOF, SELL, 103, 103, ts, ts, {}) == 1  # a planted episode still gets id 1


def test_a_sell_sweep_through_the_bids_names_its_lowest_and_highest_fill():
    """With one more bid at 98 (the last order of a side is never taken), SELL 9 takes 100 (5, 2) and 2 at 99:
    SELL, 99-100, three fills."""
    ex = opened()
    ex.add(0.5, BUY, 98, 1)
    filled, last = ex.market(1.0, SELL, 9)
    (label,) = labels(ex)
    assert (filled, last) == (9, 99)
    assert (label.side, label.price_lo, label.price_hi) == (SELL, 99, 100)
    assert (label.params["levels"], label.params["volume"], label.params["first_price"],
            label.params["last_price"]) == (2, 9, 100, 99)


def test_a_hidden_fill_inside_the_spread_counts_as_a_price():
    """A hidden fill at 101 then the visible 102 is two prices (a sweep by F22); a hidden fill at the best and
    the visible fill there is one price."""
    ex = opened()
    ex.market(1.0, BUY, 4, hidden=2, improve=1)
    (label,) = labels(ex)
    assert (label.price_lo, label.price_hi) == (101, 102)
    assert (label.params["levels"], label.params["volume"], label.params["hidden"]) == (2, 4, 2)
    ex = opened()
    ex.market(1.0, BUY, 3, hidden=2, improve=0)  # hidden at 102, then 1 visible lot at 102
    assert labels(ex) == []


def test_natural_sweep_labels_can_be_left_out_and_change_no_market_record():
    """``natural=False`` (an agent's own labelled sweep) and ``natural_sweeps = False`` emit no label; the market
    records are the same with and without the labels."""
    ex, quiet = opened(), opened()
    quiet.natural_sweeps = False
    for e in (ex, quiet):
        e.add(0.5, BUY, 98, 1)
        e.market(1.0, BUY, 5)
        e.market(1.1, SELL, 9, natural=True)
        e.add(1.2, SELL, 104, 3)
    assert len(labels(ex)) == 2 and labels(quiet) == []
    assert [e for e in ex.out if not isinstance(e, TruthLabel)] == quiet.out
    ex = opened()
    ex.market(1.0, BUY, 5, natural=False)
    assert labels(ex) == []
