"""Order entry and FIFO matching for one simulated instrument, emitting the L3 event stream.

The ``Exchange`` owns an ``engine.book.OrderBook`` as its matching state. Every operation builds the
section-1 events of one atomic exchange event, applies exactly those events to the book (through
the book's public mutations ``rest``, ``remove`` and ``take``, which its own event handlers share,
so its indexes and view cache stay right) and appends them to ``out``. Hence the invariants tested
by the suite: replaying the emitted market events into a fresh ``OrderBook`` reproduces this book
level by level and order by order, with every integrity counter at zero, and this book's
``view()`` equals the fresh book's at any point of the stream.

Stamping: ``ts_event = session_start_ns + round-down(t * 1e9)``; all records of one atomic event
share ``ts_event`` and ``ts_recv``, and the last one carries ``LAST``; every record carries ``SIM``.
``ts_recv = max(previous ts_recv, ts_event + latency)`` keeps the receive times of one instrument
monotone, so replay order ``(ts_recv, seq)`` equals emission order. Market events take consecutive
``seq`` numbers; truth labels have their own counter. The lane's event loop (``loop``) does what
``add`` and ``delete`` do inline, for its two most frequent events.

A market order walks the opposite side level by level, front of the queue first (FIFO), and
emits ``OrderExecute`` (resting order, its side) + ``Trade`` (aggressor sign, ``trade_id`` per fill,
``match_id`` per aggressive order) per fill. It never takes the last resting order of a side, so
both sides stay populated (the unfilled rest is dropped, IOC-style). Order tags (agent orders) stay
inside the simulator.

Hidden liquidity (``market(..., hidden=q, improve=j)``): a non-displayed order of ``q`` lots resting
``j`` ticks inside the spread in front of the passive side's best has price priority, so the
aggressive order fills against it first. Its fill is a ``Trade`` flagged ``HIDDEN`` (``hidden=True``)
with no ``OrderExecute`` and no book change: LOBSTER's type-5 semantics. The rest of the order then
walks the visible book; the hidden fill shares the order's ``match_id``.

Natural sweeps (complete ground truth for SPEC F22): every aggressive order that executes at
``SWEEP_LEVELS`` (F22's k_lv = 2) or more distinct prices, its hidden fill included, is a sweep by
F22's definition (with match ids, one aggressive order is one burst; the volume clause adds no sweep
the level clause has not found at k_lv = 2). ``market`` emits a ``TruthLabel`` of kind ``SWEEP`` for
each such order, right after its fills: side = the aggressor's, ``price_lo``/``price_hi`` = its lowest
and highest fill prices, ``t_start = t_end`` = its ``ts_event``, episode id 0 (no planted episode),
params ``natural`` = 1, ``levels``, ``volume``, ``hidden`` (lots filled against hidden liquidity),
``first_price``, ``last_price``. The label is read from the fills the matching just made, not from any
detector. It only adds a record on the truth channel (its own ``seq`` counter, no random draw, no
change of the book), so the market events are the same with or without it (a test compares them).
``natural=False`` leaves it out: the lane passes it for the orders of an agent that plants its own
SWEEP label; ``natural_sweeps = False`` (``simulator.natural_sweep_labels``) turns the labels off.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.book import OrderBook
from engine.events import (
    HIDDEN,
    LAST,
    SIM,
    Clock,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    Status,
    Trade,
    TruthKind,
    TruthLabel,
)

FLAG_LAST = SIM | LAST
FLAG_HIDDEN = SIM | HIDDEN
SWEEP_LEVELS = 2  # SPEC F22 k_lv: an aggressive order that executes at this many distinct prices is a sweep


class Exchange:
    """Matching state and event emission of one instrument."""

    __slots__ = ("iid", "book", "out", "t0", "lat", "prev_recv", "seq", "truth_seq", "next_oid",
                 "next_trade", "next_match", "tags", "tagged_fills", "last_trade", "episode",
                 "n_trades", "n_market", "n_partial", "n_deletes", "n_clocks", "n_hidden", "n_auctions",
                 "n_client_adds", "natural_sweeps", "n_natural")

    def __init__(self, iid: int, t0_ns: int, latency_ns: Callable[[], int], view_levels: int = 10) -> None:
        self.iid = iid
        self.book = OrderBook(iid, view_levels)
        self.out: list = []
        self.t0 = t0_ns
        self.lat = latency_ns
        self.prev_recv = 0
        self.seq = 0
        self.truth_seq = 0
        self.next_oid = 1
        self.next_trade = 1
        self.next_match = 1
        self.tags: dict[int, str] = {}
        self.tagged_fills: list[tuple[int, str, int, int]] = []  # (order_id, tag, price, size)
        self.last_trade = 0
        self.episode = 0
        self.n_trades = self.n_market = self.n_partial = self.n_deletes = self.n_clocks = 0
        self.n_hidden = 0  # hidden (type-5) fills
        self.n_auctions = 0  # auction uncrossing prints (``auction``)
        self.n_client_adds = 0  # client orders rested with their own ids (``add(..., oid=...)``)
        self.natural_sweeps = True  # label natural sweeps (simulator.natural_sweep_labels)
        self.n_natural = 0  # natural SWEEP labels emitted

    @property
    def n_adds(self) -> int:
        """Orders added so far (the simulation's ids are consecutive from 1, plus client orders)."""
        return self.next_oid - 1 + self.n_client_adds

    # ---- stamping ---------------------------------------------------------------------------------
    def stamp(self, t: float) -> tuple[int, int]:
        """``(ts_event, ts_recv)`` of an atomic event at simulation time ``t`` seconds."""
        ts = self.t0 + int(t * 1e9)
        recv = ts + self.lat()
        if recv < self.prev_recv:
            recv = self.prev_recv
        self.prev_recv = recv
        return ts, recv

    def _seq(self) -> int:
        seq = self.seq
        self.seq = seq + 1
        return seq

    # ---- order entry ------------------------------------------------------------------------------
    def add(self, t: float, side: int, price: int, size: int, tag: str | None = None, oid: int = 0) -> int:
        """Rest a limit order at the back of its level; returns its order id.

        ``oid`` > 0: an order id chosen by the caller (our client orders, from their own range)
        instead of the next one of the simulation's counter.
        """
        ts = self.t0 + int(t * 1e9)
        recv = ts + self.lat()
        if recv < self.prev_recv:
            recv = self.prev_recv
        self.prev_recv = recv
        if oid > 0:
            self.n_client_adds += 1
        else:
            oid = self.next_oid
            self.next_oid = oid + 1
        seq = self.seq
        self.seq = seq + 1
        self.out.append(OrderAdd(self.iid, ts, recv, seq, FLAG_LAST, oid, side, price, size))
        self.book.rest(oid, side, price, size)
        if tag is not None:
            self.tags[oid] = tag
        return oid

    def delete(self, t: float, oid: int) -> bool:
        """Fully cancel a resting order; False when it is no longer in the book."""
        book = self.book
        lv = book.orders.get(oid)
        if lv is None:
            return False
        size = book.remove(oid)
        ts = self.t0 + int(t * 1e9)
        recv = ts + self.lat()
        if recv < self.prev_recv:
            recv = self.prev_recv
        self.prev_recv = recv
        seq = self.seq
        self.seq = seq + 1
        self.out.append(OrderDelete(self.iid, ts, recv, seq, FLAG_LAST, oid, lv.side, lv.price, size))
        if self.tags:
            self.tags.pop(oid, None)
        self.n_deletes += 1
        return True

    def reduce(self, t: float, oid: int, size: int) -> bool:
        """Partially cancel ``size`` lots (keeps priority); a reduction to zero is a delete."""
        book = self.book
        lv = book.orders.get(oid)
        if lv is None:
            return False
        current = lv.orders[oid]
        if size >= current:
            return self.delete(t, oid)
        ts, recv = self.stamp(t)
        self.out.append(OrderCancel(self.iid, ts, recv, self._seq(), FLAG_LAST, oid, lv.side, lv.price,
                                    size, current - size))
        book.take(oid, size)
        self.n_partial += 1
        return True

    def seed(self, t: float, orders: list[tuple[int, int, int]]) -> list[int]:
        """Rest ``(side, price, size)`` orders as ONE atomic event (the opening book); returns their ids."""
        ts, recv = self.stamp(t)
        out, iid, oids = self.out, self.iid, []
        book = self.book
        for i, (side, price, size) in enumerate(orders):
            oid = self.next_oid
            self.next_oid = oid + 1
            ev = OrderAdd(iid, ts, recv, self._seq(), FLAG_LAST if i == len(orders) - 1 else SIM, oid, side,
                          price, size)
            out.append(ev)
            book.rest(oid, side, price, size)
            oids.append(oid)
        return oids

    def market(self, t: float, side: int, size: int, limit: int | None = None, hidden: int = 0,
               improve: int = 0, natural: bool = True) -> tuple[int, int]:
        """Execute a market order of ``side`` (up to ``limit`` if given); returns ``(filled, last price)``.

        ``hidden`` lots of non-displayed liquidity ``improve`` ticks in front of the passive best
        (kept inside the spread) fill first, as a hidden print (see the module docstring). With
        ``natural``, an order that executed at ``SWEEP_LEVELS`` or more prices is labelled a sweep.
        """
        book = self.book
        prices, best = (book.ask_prices, 0) if side > 0 else (book.bid_prices, -1)
        if not prices:
            return 0, 0
        ts, recv = self.stamp(t)
        iid, out, tags, take_from = self.iid, self.out, self.tags, book.take
        match = self.next_match
        seq = seq0 = self.seq
        trade = self.next_trade
        rem = size
        blocked = False
        n_hidden = 0
        if hidden > 0 and limit is None:
            own = book.bid_prices if side > 0 else book.ask_prices
            price = prices[best]
            if own:
                gap = (price - own[-1 if side > 0 else 0]) * side - 1  # ticks strictly inside the spread
                price -= side * (improve if improve < gap else max(gap, 0))
            take = rem if rem < hidden else hidden
            out.append(Trade(iid, ts, recv, seq, FLAG_HIDDEN, price, take, side, trade, match, True))
            seq += 1
            trade += 1
            rem -= take
            n_hidden = 1
        while rem > 0 and not blocked:
            price = prices[best]
            if limit is not None and (price - limit) * side > 0:
                break
            queue = book.queue(-side, price)  # front first
            last = len(queue) - 1 if len(prices) == 1 else -1  # never take the last order of a side
            for i, (oid, osize) in enumerate(queue):
                if i == last:
                    blocked = True
                    break
                take = rem if rem < osize else osize
                out.append(OrderExecute(iid, ts, recv, seq, SIM, oid, -side, price, take, trade))
                out.append(Trade(iid, ts, recv, seq + 1, SIM, price, take, side, trade, match))
                seq += 2
                trade += 1
                take_from(oid, take)
                if tags and oid in tags:
                    self.tagged_fills.append((oid, tags[oid] if take < osize else tags.pop(oid), price, take))
                rem -= take
                if rem == 0:
                    break
        if seq == seq0:
            return 0, 0
        fill = out[-1]
        out[-1] = Trade(iid, ts, recv, fill.seq, fill.flags | LAST, fill.price, fill.size, side, fill.trade_id, match,
                        fill.hidden)
        self.n_trades += (seq - seq0 - n_hidden) >> 1
        self.n_hidden += n_hidden
        self.seq, self.next_trade, self.next_match = seq, trade, match + 1
        self.last_trade = fill.price
        self.n_market += 1
        if natural and self.natural_sweeps and seq - seq0 > 2 - n_hidden:  # at least two fills: maybe two prices
            self._natural_sweep(t, ts, side, out, seq - seq0)
        return size - rem, fill.price

    def _natural_sweep(self, t: float, ts: int, side: int, out: list, records: int) -> None:
        """Label the aggressive order whose ``records`` records end ``out`` if it is a sweep (SPEC F22)."""
        fills = [ev for ev in out[-records:] if type(ev) is Trade]
        prices = {ev.price for ev in fills}
        if len(prices) < SWEEP_LEVELS:
            return
        volume = sum(ev.size for ev in fills)
        hidden = sum(ev.size for ev in fills if ev.hidden)
        self.n_natural += 1
        self.label(t, TruthKind.SWEEP, side, min(prices), max(prices), ts, ts,
                   {"natural": 1, "levels": len(prices), "volume": volume, "hidden": hidden,
                    "first_price": fills[0].price, "last_price": fills[-1].price}, episode=-1)

    # ---- other records ----------------------------------------------------------------------------
    def clock(self, t: float) -> None:
        """Emit a ``Clock`` (silence marker)."""
        ts = self.t0 + int(t * 1e9)  # stamp() and _seq() inlined: a Clock is a frequent event
        recv = ts + self.lat()
        if recv < self.prev_recv:
            recv = self.prev_recv
        self.prev_recv = recv
        seq = self.seq
        self.seq = seq + 1
        self.out.append(Clock(self.iid, ts, recv, seq, FLAG_LAST))
        self.n_clocks += 1

    def status(self, t: float, state: int, reason: str = "") -> None:
        """Emit a ``Status`` change."""
        ts, recv = self.stamp(t)
        self.out.append(Status(self.iid, ts, recv, self._seq(), FLAG_LAST, state, reason))

    def label(self, t: float, kind: int, side: int, price_lo: int, price_hi: int, t_start: int, t_end: int,
              params: dict, outcome: int = 0, episode: int = 0) -> int:
        """Emit a ``TruthLabel`` stamped at ``t`` (``ts_recv = ts_event``); returns its episode id.

        ``episode`` 0 opens a new episode; -1 (a natural event) gives episode id 0 and leaves the
        episode counter alone, so the planted episodes keep their ids."""
        return self.label_ns(self.t0 + int(t * 1e9), kind, side, price_lo, price_hi, t_start, t_end, params, outcome,
                             episode)

    def label_ns(self, ts: int, kind: int, side: int, price_lo: int, price_hi: int, t_start: int, t_end: int,
                 params: dict, outcome: int = 0, episode: int = 0) -> int:
        """``label`` stamped at ``ts`` ns (absolute event time)."""
        if episode < 0:
            episode = 0
        elif episode == 0:
            self.episode += 1
            episode = self.episode
        seq = self.truth_seq
        self.truth_seq = seq + 1
        self.out.append(TruthLabel(self.iid, ts, ts, seq, FLAG_LAST, episode, kind, side, price_lo, price_hi,
                                   t_start, t_end, params, outcome))
        return episode

    def ns(self, t: float) -> int:
        """Absolute ns time of simulation time ``t``."""
        return self.t0 + int(t * 1e9)
