"""OrderBook against hand-built sequences and against a deliberately naive reference book."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.book import CROSSED, HALTED, STALE, BookView, OrderBook
from engine.events import (
    BUY,
    CLEAR,
    DELETE,
    LAST,
    SELL,
    UPDATE,
    BookDelta,
    BookSnapshot,
    MarketState,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    OrderModify,
    Status,
    Trade,
)


class Seq:
    """Builds events for instrument 0 with consecutive seq numbers."""

    def __init__(self) -> None:
        self.seq = 0
        self.ts = 1_000

    def __call__(self, cls, *args, last: bool = True, **kwargs):
        ev = cls(0, self.ts, self.ts, self.seq, LAST if last else 0, *args, **kwargs)
        self.seq += 1
        self.ts += 10
        return ev


class NaiveBook:
    """Reference: a flat list of orders in arrival order plus L2-only size per level; no indexes."""

    def __init__(self) -> None:
        self.orders: list[list] = []  # [oid, side, price, size] in time priority
        self.anon: dict[tuple[int, int], int] = {}
        self.crossed = False
        self.stale = False
        self.last_seq = -1

    def _find(self, oid):
        return next((o for o in self.orders if o[0] == oid), None)

    def level(self, side, price):
        known = sum(o[3] for o in self.orders if o[1] == side and o[2] == price)
        return known + self.anon.get((side, price), 0)

    def prices(self, side):
        ps = {o[2] for o in self.orders if o[1] == side} | {p for (s, p), v in self.anon.items() if s == side and v}
        ps = {p for p in ps if self.level(side, p) > 0}
        return sorted(ps, reverse=(side == BUY))

    def top(self, side, n):
        return [(p, self.level(side, p)) for p in self.prices(side)[:n]]

    def queue(self, side, price):
        return [(o[0], o[3]) for o in self.orders if o[1] == side and o[2] == price]

    def _reduce_anon(self, side, price, size):
        have = self.anon.get((side, price), 0)
        if self.level(side, price) == 0:
            return
        self.anon[(side, price)] = have - min(size, have)

    def _take(self, oid, side, price, size):
        o = self._find(oid)
        if o is None:
            self._reduce_anon(side, price, size)
            return
        o[3] -= min(size, o[3])
        if o[3] == 0:
            self.orders.remove(o)

    def set_level(self, side, price, size):
        mine = [o for o in self.orders if o[1] == side and o[2] == price]
        known = sum(o[3] for o in mine)
        while known > size:
            newest = mine.pop()
            self.orders.remove(newest)
            known -= newest[3]
        self.anon[(side, price)] = max(0, size - known)

    def apply(self, ev):
        if type(ev) is not BookSnapshot and self.last_seq >= 0:
            if ev.seq <= self.last_seq:
                return
            if ev.seq > self.last_seq + 1:
                self.stale = True
        self.last_seq = ev.seq
        kind = type(ev)
        if kind is OrderAdd:
            if self._find(ev.order_id):
                self.orders.remove(self._find(ev.order_id))
            if ev.size > 0:
                self.orders.append([ev.order_id, ev.side, ev.price, ev.size])
        elif kind is OrderCancel:
            self._take(ev.order_id, ev.side, ev.price, ev.size_cancelled)
        elif kind is OrderExecute:
            self._take(ev.order_id, ev.side, ev.price, ev.size)
        elif kind is OrderDelete:
            o = self._find(ev.order_id)
            if o is None:
                self._reduce_anon(ev.side, ev.price, ev.size)
            else:
                self.orders.remove(o)
        elif kind is OrderModify:
            o = self._find(ev.order_id)
            if o is not None and o[1] == ev.side and o[2] == ev.price and ev.size <= o[3]:
                o[3] = ev.size
                if ev.size == 0:
                    self.orders.remove(o)
            else:
                if o is not None:
                    self.orders.remove(o)
                if ev.size > 0:
                    self.orders.append([ev.order_id, ev.side, ev.price, ev.size])
        elif kind is BookDelta:
            if ev.action == CLEAR:
                self.orders.clear()
                self.anon.clear()
            else:
                self.set_level(ev.side, ev.price, 0 if ev.action == DELETE else ev.size)
        elif kind is BookSnapshot:
            self.orders.clear()
            self.anon.clear()
            for side, levels in ((BUY, ev.bids), (SELL, ev.asks)):
                for price, size, _ in levels:
                    if size > 0:
                        self.anon[(side, price)] = size
            self.crossed = self.stale = False
        if ev.flags & LAST:
            bids, asks = self.prices(BUY), self.prices(SELL)
            if bids and asks and bids[0] >= asks[0]:
                self.crossed = True


# ---- hand-built sequences ------------------------------------------------------------------------------
def test_l3_adds_build_levels_and_fifo_queues():
    """Adds aggregate into L2 levels, best first, with the queue in arrival order."""
    e, book = Seq(), OrderBook(0)
    for ev in (e(OrderAdd, 1, BUY, 100, 5), e(OrderAdd, 2, BUY, 100, 7), e(OrderAdd, 3, BUY, 99, 4),
               e(OrderAdd, 4, SELL, 102, 3), e(OrderAdd, 5, SELL, 101, 2)):
        book.update(ev)
    assert book.top(BUY, 5) == [(100, 12), (99, 4)]
    assert book.top(SELL, 5) == [(101, 2), (102, 3)]
    assert book.queue(BUY, 100) == [(1, 5), (2, 7)]
    assert book.mid2() == 201
    assert book.weighted_mid() == 100 + 1 * 12 / 14
    assert book.depth_within(BUY, 1) == 12 and book.depth_within(BUY, 2) == 16
    assert book.depth_within(SELL, 2) == 5
    assert book.check_invariants() == []


def test_partial_cancel_keeps_priority_and_modify_up_loses_it():
    """A partial cancel keeps the queue position; a size increase sends the order to the back."""
    e, book = Seq(), OrderBook(0)
    for ev in (e(OrderAdd, 1, BUY, 100, 5), e(OrderAdd, 2, BUY, 100, 7), e(OrderCancel, 1, BUY, 100, 2)):
        book.update(ev)
    assert book.queue(BUY, 100) == [(1, 3), (2, 7)]
    book.update(e(OrderModify, 1, BUY, 100, 2))
    assert book.queue(BUY, 100) == [(1, 2), (2, 7)]
    book.update(e(OrderModify, 1, BUY, 100, 9))
    assert book.queue(BUY, 100) == [(2, 7), (1, 9)]
    book.update(e(OrderModify, 2, BUY, 98, 7))
    assert book.top(BUY, 5) == [(100, 9), (98, 7)]


def test_execution_and_delete_remove_levels():
    """Executions reduce the front order; a level disappears when it empties."""
    e, book = Seq(), OrderBook(0)
    book.update(e(OrderAdd, 1, SELL, 101, 5))
    book.update(e(OrderAdd, 2, SELL, 101, 5))
    book.update(e(OrderExecute, 1, SELL, 101, 5, last=False))
    book.update(e(Trade, 101, 5, BUY))
    assert book.queue(SELL, 101) == [(2, 5)]
    book.update(e(OrderDelete, 2, SELL, 101, 5))
    assert book.best_ask is None and book.ask_prices == [] and book.ask_sizes == []


def test_unknown_order_ids_reduce_the_level_and_are_counted():
    """Operations on orders never added (e.g. before the data starts) are applied at L2 and counted."""
    e, book = Seq(), OrderBook(0)
    book.update(e(BookSnapshot, ((100, 50, 2),), ((101, 30, 1),), 1, True))
    book.update(e(OrderAdd, 7, BUY, 100, 10))
    book.update(e(OrderCancel, 999, BUY, 100, 20))
    assert book.size_at(BUY, 100) == 40
    book.update(e(OrderExecute, 998, SELL, 101, 30))
    assert book.best_ask is None
    book.update(e(OrderDelete, 997, SELL, 105, 10))
    assert book.counters.unknown_orders == 3 and book.counters.missing_levels == 1
    assert book.check_invariants() == []


def test_sequence_gap_marks_stale_until_snapshot():
    """A missing seq marks the book STALE (counted); the next snapshot clears it."""
    e, book = Seq(), OrderBook(0)
    book.apply([e(OrderAdd, 1, BUY, 100, 5)])
    e.seq += 3  # three events lost
    out = book.apply([e(OrderAdd, 2, SELL, 101, 5)])
    assert out[-1].state & STALE and book.counters.gaps == 1
    out = book.apply([e(BookSnapshot, ((100, 5, 1),), ((101, 5, 1),), 1, True)])
    assert not out[-1].state & STALE


def test_duplicate_seq_is_dropped_and_counted():
    """An event whose seq was already seen is not applied twice."""
    e, book = Seq(), OrderBook(0)
    add = e(OrderAdd, 1, BUY, 100, 5)
    out = book.apply([add, add])
    assert book.size_at(BUY, 100) == 5 and book.counters.out_of_order == 1
    assert [type(x) for x in out] == [OrderAdd, BookView]


def test_crossed_book_is_flagged_once_and_cleared_by_snapshot():
    """best bid >= best ask at a LAST boundary flags CROSSED until the next snapshot."""
    e, book = Seq(), OrderBook(0)
    out = book.apply([e(OrderAdd, 1, SELL, 100, 5), e(OrderAdd, 2, BUY, 100, 5), e(OrderAdd, 3, BUY, 99, 1)])
    views = [x for x in out if type(x) is BookView]
    assert not views[0].state & CROSSED and views[1].state & CROSSED and views[2].state & CROSSED
    assert book.counters.crossed == 1
    out = book.apply([e(BookSnapshot, ((99, 5, 1),), ((100, 5, 1),), 1, True)])
    assert not out[-1].state & CROSSED


def test_views_only_at_last_boundaries_so_a_sweep_is_never_half_applied():
    """A multi-record atomic event produces one view, after its last record."""
    e, book = Seq(), OrderBook(0)
    book.apply([e(OrderAdd, 1, SELL, 101, 5), e(OrderAdd, 2, SELL, 102, 5), e(OrderAdd, 3, BUY, 99, 5)])
    sweep = [e(OrderExecute, 1, SELL, 101, 5, 1, last=False), e(Trade, 101, 5, BUY, last=False),
             e(OrderExecute, 2, SELL, 102, 5, 2, last=False), e(Trade, 102, 5, BUY)]
    out = book.apply(sweep)
    views = [x for x in out if type(x) is BookView]
    assert len(views) == 1 and views[0].ask_px == () and views[0].bid_px == (99,)


def test_halt_status_sets_halted_until_open():
    """A non-OPEN status marks the view HALTED; OPEN clears it."""
    e, book = Seq(), OrderBook(0)
    out = book.apply([e(Status, MarketState.HALTED), e(Status, MarketState.OPEN)])
    assert out[1].state & HALTED and not out[3].state & HALTED


def test_l2_delta_sets_absolute_size_and_trims_newest_orders():
    """A BookDelta sets the level's total; L3 orders beyond it are trimmed from the back."""
    e, book = Seq(), OrderBook(0)
    for ev in (e(OrderAdd, 1, BUY, 100, 5), e(OrderAdd, 2, BUY, 100, 7)):
        book.update(ev)
    book.update(e(BookDelta, BUY, 100, 6, UPDATE))
    assert book.queue(BUY, 100) == [(1, 5)] and book.size_at(BUY, 100) == 6
    assert book.order(2) is None
    book.update(e(BookDelta, BUY, 100, 0, DELETE))
    assert book.best_bid is None and book.order(1) is None
    assert book.check_invariants() == []


# ---- property test against the naive reference --------------------------------------------------------
PRICES = st.integers(95, 106)
SIZES = st.integers(1, 9)


@st.composite
def operations(draw):
    """A random mix of L3, L2 and integrity operations over a small price band."""
    ops = []
    next_id = 1
    live: list[int] = []
    for _ in range(draw(st.integers(1, 60))):
        kind = draw(st.sampled_from(["add", "add", "add", "cancel", "delete", "execute", "modify", "delta",
                                     "unknown", "snapshot", "gap", "dup"]))
        if kind == "add" or not live and kind in ("cancel", "delete", "execute", "modify"):
            ops.append(("add", next_id, draw(st.sampled_from([BUY, SELL])), draw(PRICES), draw(SIZES)))
            live.append(next_id)
            next_id += 1
        elif kind in ("cancel", "execute"):
            ops.append((kind, draw(st.sampled_from(live)), draw(SIZES)))
        elif kind == "delete":
            oid = draw(st.sampled_from(live))
            live.remove(oid)
            ops.append(("delete", oid))
        elif kind == "modify":
            ops.append(("modify", draw(st.sampled_from(live)), draw(PRICES), draw(st.integers(0, 9))))
        elif kind == "delta":
            ops.append(("delta", draw(st.sampled_from([BUY, SELL])), draw(PRICES), draw(st.integers(0, 12))))
        elif kind == "unknown":
            ops.append(("unknown", draw(st.sampled_from([BUY, SELL])), draw(PRICES), draw(SIZES)))
        elif kind == "snapshot":
            bids = draw(st.lists(st.tuples(st.integers(95, 100), SIZES), max_size=3, unique_by=lambda x: x[0]))
            asks = draw(st.lists(st.tuples(st.integers(101, 106), SIZES), max_size=3, unique_by=lambda x: x[0]))
            ops.append(("snapshot", tuple(sorted(bids, reverse=True)), tuple(sorted(asks))))
            live.clear()
        else:
            ops.append((kind,))
        if kind != "snapshot" and draw(st.booleans()):
            ops.append(("last_off",))
    return ops


def _events(ops):
    e = Seq()
    events = []
    sides: dict[int, tuple[int, int]] = {}
    last_flag = True
    for op in ops:
        kind = op[0]
        if kind == "last_off":
            last_flag = False
            continue
        last = last_flag
        last_flag = True
        if kind == "add":
            _, oid, side, price, size = op
            sides[oid] = (side, price)
            events.append(e(OrderAdd, oid, side, price, size, last=last))
        elif kind in ("cancel", "execute"):
            side, price = sides[op[1]]
            cls = OrderCancel if kind == "cancel" else OrderExecute
            events.append(e(cls, op[1], side, price, op[2], last=last))
        elif kind == "delete":
            side, price = sides[op[1]]
            events.append(e(OrderDelete, op[1], side, price, 0, last=last))
        elif kind == "modify":
            side, _ = sides[op[1]]
            sides[op[1]] = (side, op[2])
            events.append(e(OrderModify, op[1], side, op[2], op[3], last=last))
        elif kind == "delta":
            events.append(e(BookDelta, op[1], op[2], op[3], UPDATE if op[3] else DELETE, last=last))
        elif kind == "unknown":
            events.append(e(OrderCancel, 10_000 + e.seq, op[1], op[2], op[3], last=last))
        elif kind == "snapshot":
            events.append(e(BookSnapshot, tuple((p, s, 1) for p, s in op[1]), tuple((p, s, 1) for p, s in op[2]),
                            3, True))
        elif kind == "gap":
            e.seq += 2
        elif kind == "dup" and events:
            events.append(events[-1])
    return events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations())
def test_book_matches_naive_reference_after_every_event(ops):
    """After every event: same top-N per side, same FIFO queues, same STALE/CROSSED state, invariants hold."""
    book, naive = OrderBook(0, view_levels=4), NaiveBook()
    for ev in _events(ops):
        book.update(ev)
        naive.apply(ev)
        for side in (BUY, SELL):
            assert book.top(side, 4) == naive.top(side, 4)
            assert book.levels(side) == naive.top(side, 100)
            for price, _ in book.levels(side):
                assert book.queue(side, price) == naive.queue(side, price)
        assert bool(book.state & STALE) == naive.stale
        assert bool(book.state & CROSSED) == naive.crossed
        assert book.check_invariants() == []


@settings(max_examples=100, deadline=None)
@given(operations())
def test_apply_views_equal_top_n_of_the_reference(ops):
    """Each BookView emitted by apply() equals the reference's top-N and depth windows at that LAST boundary."""
    book, naive = OrderBook(0, view_levels=3, depth_windows=(2, 5)), NaiveBook()
    events = _events(ops)
    out = book.apply(events)
    views = iter(x for x in out if type(x) is BookView)
    for ev in events:
        seen_before = naive.last_seq
        naive.apply(ev)
        if ev.flags & LAST and not (type(ev) is not BookSnapshot and 0 <= ev.seq <= seen_before):
            view = next(views)
            assert list(zip(view.bid_px, view.bid_sz, strict=True)) == naive.top(BUY, 3)
            assert list(zip(view.ask_px, view.ask_sz, strict=True)) == naive.top(SELL, 3)
            for side, depth in ((BUY, view.bid_depth), (SELL, view.ask_depth)):
                levels = naive.top(side, 100)
                expected = [sum(q for p, q in levels if abs(p - levels[0][0]) < w) for w in (2, 5)] if levels else []
                assert list(depth) == expected
    assert next(views, None) is None


# ---- public mutations (the simulator's matching engine) -----------------------------------------------
@st.composite
def mutations(draw):
    """Random ``rest`` / ``remove`` / ``take`` calls over a small price band, on live order ids only."""
    ops, next_id = [], 1
    live: dict[int, int] = {}  # order id -> size left
    for _ in range(draw(st.integers(1, 80))):
        kind = draw(st.sampled_from(["rest", "rest", "remove", "take"])) if live else "rest"
        if kind == "rest":
            side = draw(st.sampled_from([BUY, SELL]))
            price = draw(st.integers(90, 100) if side == BUY else st.integers(101, 111))
            live[next_id] = draw(SIZES)
            ops.append(("rest", next_id, side, price, live[next_id]))
            next_id += 1
        else:
            oid = draw(st.sampled_from(sorted(live)))
            size = draw(st.integers(1, 12)) if kind == "take" else live[oid]
            ops.append((kind, oid, size))
            live[oid] -= size
            if live[oid] <= 0:
                del live[oid]
    return ops


@settings(max_examples=200, deadline=None)
@given(mutations(), st.lists(st.booleans(), min_size=80, max_size=80))
def test_public_mutations_keep_views_and_queues_equal_to_the_reference(ops, look):
    """rest/remove/take, with views built at random points in between, match the naive reference book."""
    book, naive = OrderBook(0, view_levels=3, depth_windows=(2, 5)), NaiveBook()
    e = Seq()
    where: dict[int, tuple[int, int]] = {}
    for op, build_view in zip(ops, look, strict=False):
        if op[0] == "rest":
            _, oid, side, price, size = op
            book.rest(oid, side, price, size)
            where[oid] = (side, price)
            naive.apply(e(OrderAdd, oid, side, price, size))
        elif op[0] == "remove":
            assert book.remove(op[1]) == dict(naive.queue(*where[op[1]]))[op[1]]
            naive.apply(e(OrderDelete, op[1], *where[op[1]], 0))
        else:
            oid, size = op[1], op[2]
            before = dict(naive.queue(*where[oid]))[oid]
            assert book.take(oid, size) == min(size, before)
            naive.apply(e(OrderExecute, oid, *where[oid], size))
        if build_view:  # fills the view cache, which the next mutations must keep right
            view = book.view()
            assert list(zip(view.bid_px, view.bid_sz, strict=True)) == naive.top(BUY, 3)
            assert list(zip(view.ask_px, view.ask_sz, strict=True)) == naive.top(SELL, 3)
            for side, depth in ((BUY, view.bid_depth), (SELL, view.ask_depth)):
                levels = naive.top(side, 100)
                expected = [sum(q for p, q in levels if abs(p - levels[0][0]) < w) for w in (2, 5)] if levels else []
                assert list(depth) == expected
        for side in (BUY, SELL):
            assert book.levels(side) == naive.top(side, 100)
            for price, _ in book.levels(side):
                assert book.queue(side, price) == naive.queue(side, price)
        assert book.check_invariants() == []
