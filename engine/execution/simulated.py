"""The simulated exchange: our orders against the recorded (or simulated) market, honestly (SPEC 10).

It keeps its own order book per instrument, fed with every market event in feed order, so an
order is matched against the book *as it was when the order reached the exchange*, not as it was
when it was decided. Assumptions, all of them:

- Time. An order decided at local time ``ts_local`` reaches the exchange at ``ts_local + entry``
  (``LatencyModel``) and is handled just before the first market event whose ``ts_event`` is at or
  after that time; every response (ack, fill, cancel ack, reject) is seen locally ``response``
  later. Feed latency is the data's own ``ts_recv - ts_event``. A cancel travels the same way, so
  a fill can beat it (the cancel is then answered "too late: filled").
- Market and marketable orders walk the visible opposite side at arrival, level by level up to the
  limit (a market order: the whole visible side), one taker fill per level at that level's price
  (so the order's average is the VWAP of the walked levels). The unfilled rest of a market or IOC
  order is cancelled; the rest of a marketable limit order rests at its price. Hidden liquidity is
  never assumed. A book that is STALE, CROSSED or HALTED at arrival rejects new orders.
- Liquidity is consumed once: what our aggressive fills took at a level stays taken (later orders
  of ours cannot take it again) until the market itself has removed that much from the level.
- Passive limit orders join the back of their level. With order ids (L3) their position is exact
  FIFO (``FifoQueue``); with L2 only, or when ``[execution] queue_model`` asks for it, the
  probabilistic model (``L2Queue``). Any print through our price, or the opposite best crossing it,
  fills what is left at our price, capped by the displayed size that crossed.
- Replay limitation: recorded data cannot react to us: our resting size adds nothing to the book,
  our fills remove nothing from the queue others see, and passive fills at a level are capped by
  the volume that traded there. Large orders must be judged in the simulator's own matching engine.
- Stop orders rest at the exchange untriggered and become market orders when a print or the
  same-side best reaches the stop price (a sell stop: a print at or below it, or the best bid at
  or below it).
- Fees per instrument (``FeeModel``), maker for passive fills, taker for aggressive ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from itertools import count

from engine.book import UNUSABLE, OrderBook
from engine.events import (
    BUY,
    Ack,
    BookDelta,
    BookSnapshot,
    CancelAck,
    Fill,
    InstrumentDef,
    Liquidity,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    OrderModify,
    OrderRequest,
    OrderType,
    Reject,
    Trade,
    TruthLabel,
)
from engine.execution.exchange import Response
from engine.execution.models import FeeModel, LatencyModel, QueueModel
from engine.execution.queue import FifoQueue, L2Queue

L3_EVENTS = (OrderAdd, OrderCancel, OrderDelete, OrderExecute, OrderModify)


class SimOrder:
    """One of our orders as the exchange sees it."""

    __slots__ = ("request", "remaining", "arrival", "queue", "first_fill", "status", "stop_triggered")

    def __init__(self, request: OrderRequest, arrival: int) -> None:
        self.request = request
        self.remaining = request.size
        self.arrival = arrival
        self.queue: FifoQueue | L2Queue | None = None
        self.first_fill = True
        self.status = "pending"  # pending | resting | filled | cancelled | rejected
        self.stop_triggered = False


class SimulatedExchange:
    """Matches our orders against the market stream; implements the ``Broker`` protocol."""

    def __init__(self, instruments: list[InstrumentDef], fees: Mapping[int, FeeModel], latency: LatencyModel,
                 queue_model: QueueModel, force_l2: bool = False) -> None:
        self.books = {d.instrument_id: OrderBook(d.instrument_id) for d in instruments}
        self.fees = fees
        self.latency = latency
        self.queue_model = queue_model
        self.force_l2 = force_l2
        self.l3 = dict.fromkeys(self.books, False)
        self.orders: dict[str, SimOrder] = {}
        self.arrivals: dict[int, list] = {iid: [] for iid in self.books}  # heap of (t, n, kind, payload)
        self.resting: dict[int, dict[tuple[int, int], list[SimOrder]]] = {iid: {} for iid in self.books}
        self.stops: dict[int, list[SimOrder]] = {iid: [] for iid in self.books}
        self.consumed: dict[int, dict[tuple[int, int], int]] = {iid: {} for iid in self.books}
        self._n = count()

    # ---- Broker --------------------------------------------------------------------------------
    def submit(self, order: OrderRequest) -> None:
        """Send an order; it reaches the exchange one entry latency after ``order.ts_local``."""
        arrival = order.ts_local + self.latency.entry()
        self.orders[order.client_id] = SimOrder(order, arrival)
        heapq.heappush(self.arrivals[order.instrument_id], (arrival, next(self._n), "new", order.client_id))

    def cancel(self, instrument_id: int, client_id: str, ts_local: int) -> None:
        """Ask to cancel a working order; the request travels one entry latency."""
        arrival = ts_local + self.latency.entry()
        heapq.heappush(self.arrivals[instrument_id], (arrival, next(self._n), "cancel", client_id))

    def on_market(self, ev) -> list[Response]:
        """Apply one market event (arrivals due before it first); return our responses."""
        iid = ev.instrument_id
        book = self.books.get(iid)
        if book is None or type(ev) is TruthLabel:
            return []
        out: list[Response] = []
        pending = self.arrivals[iid]
        while pending and pending[0][0] <= ev.ts_event:
            self._arrive(heapq.heappop(pending), out)
        kind = type(ev)
        if kind in L3_EVENTS:
            self.l3[iid] = True
        before_known = kind in L3_EVENTS and book.order(ev.order_id) is not None
        moved_from = book.order(ev.order_id) if kind is OrderModify else None
        resting = self.resting[iid]
        if resting and kind is not Trade and kind is not BookSnapshot and kind in L3_EVENTS:
            key = (ev.side, ev.price)
            if moved_from is not None and (moved_from[0], moved_from[1]) != key:
                for order in resting.get((moved_from[0], moved_from[1]), ()):
                    if type(order.queue) is FifoQueue:
                        order.queue.moved_away(ev.order_id)
            for order in list(resting.get(key, ())):
                queue = order.queue
                filled = 0
                if isinstance(queue, FifoQueue):
                    filled = queue.on_event(ev, before_known)
                elif isinstance(queue, L2Queue) and kind is OrderExecute:
                    filled = queue.on_trade(ev.size)
                if filled:
                    self._passive_fill(order, ev.price, filled, ev.ts_event, out)
        if not book.update(ev):
            return out
        self._after_update(ev, kind, book, out)
        return out

    def advance(self, ts: int) -> list[Response]:
        """Handle every arrival due at or before ``ts`` (end of data: nothing more will come)."""
        out: list[Response] = []
        for pending in self.arrivals.values():
            while pending and pending[0][0] <= ts:
                self._arrive(heapq.heappop(pending), out)
        return out

    def quote(self, instrument_id: int) -> tuple[int | None, int | None]:
        book = self.books[instrument_id]
        return book.best_bid, book.best_ask

    def working(self, client_id: str) -> bool:
        order = self.orders.get(client_id)
        return order is not None and order.status in ("pending", "resting")

    # ---- market side ----------------------------------------------------------------------------
    def _after_update(self, ev, kind, book: OrderBook, out: list[Response]) -> None:
        iid = ev.instrument_id
        resting = self.resting[iid]
        consumed = self.consumed[iid]
        if kind is BookSnapshot:
            consumed.clear()
            for (side, price), orders in resting.items():
                for order in orders:
                    order.queue = self._new_queue(book, side, price, l3=False)
        elif consumed and kind is not Trade:
            key = (ev.side, ev.price) if hasattr(ev, "side") else None
            if key in consumed:
                left = min(consumed[key], book.size_at(*key))
                if left > 0:
                    consumed[key] = left
                else:
                    del consumed[key]
        if resting:
            if kind is Trade and not ev.hidden:
                self._on_print(ev, resting, out)
            elif kind is BookDelta or kind in L3_EVENTS:
                for order in resting.get((ev.side, ev.price), ()):
                    if type(order.queue) is L2Queue:
                        order.queue.on_depth(book.size_at(ev.side, ev.price))
            self._crossed(book, resting, ev.ts_event, out)
        if self.stops[iid]:
            self._trigger_stops(ev, book, out)

    def _fifo(self, iid: int) -> bool:
        return self.l3[iid] and not self.force_l2

    def _on_print(self, trade: Trade, resting: dict, out: list[Response]) -> None:
        """L2 data: a print at our price advances us; any print through our price fills us."""
        for (side, price), orders in list(resting.items()):
            through = (trade.price - price) * side < 0
            for order in list(orders):
                if through:
                    self._passive_fill(order, price, order.remaining, trade.ts_event, out)
                elif trade.price == price and type(order.queue) is L2Queue and not self.l3[trade.instrument_id]:
                    filled = order.queue.on_trade(trade.size)
                    if filled:
                        self._passive_fill(order, price, filled, trade.ts_event, out)

    def _crossed(self, book: OrderBook, resting: dict, ts: int, out: list[Response]) -> None:
        """The opposite best at or through our price fills us at our price, up to the size that crossed
        (less what our own orders already took there)."""
        bid, ask = book.best_bid, book.best_ask
        consumed = self.consumed[book.instrument_id]
        for (side, price), orders in list(resting.items()):
            if side == BUY and ask is not None and ask <= price:
                crossing = sum(size - consumed.get((-1, p), 0) for p, size in book.levels(-1) if p <= price)
            elif side != BUY and bid is not None and bid >= price:
                crossing = sum(size - consumed.get((BUY, p), 0) for p, size in book.levels(BUY) if p >= price)
            else:
                continue
            for order in list(orders):
                take = min(order.remaining, crossing)
                if take > 0:
                    crossing -= take
                    self._passive_fill(order, price, take, ts, out)

    def _trigger_stops(self, ev, book: OrderBook, out: list[Response]) -> None:
        iid = ev.instrument_id
        stops = self.stops[iid]
        printed = ev.price if type(ev) is Trade else None
        for order in list(stops):
            req = order.request
            best = book.best_bid if req.side != BUY else book.best_ask
            if req.side == BUY:
                hit = (printed is not None and printed >= req.price) or (best is not None and best >= req.price)
            else:
                hit = (printed is not None and printed <= req.price) or (best is not None and best <= req.price)
            if hit:
                stops.remove(order)
                order.stop_triggered = True
                self._take(order, book, ev.ts_event, out)

    # ---- our orders -----------------------------------------------------------------------------
    def _arrive(self, item: tuple, out: list[Response]) -> None:
        t, _, kind, client_id = item
        order = self.orders[client_id]
        if kind == "cancel":
            self._cancel(order, t, out)
            return
        req = order.request
        book = self.books[req.instrument_id]
        if book.state & UNUSABLE:
            self._reject(order, "book stale, crossed or halted at arrival", t, out)
            return
        order.status = "resting"
        out.append(Ack(req.instrument_id, req.client_id, t, t + self.latency.response()))
        if req.order_type == OrderType.STOP:
            self.stops[req.instrument_id].append(order)
            return
        opposite = book.best_ask if req.side == BUY else book.best_bid
        marketable = req.order_type in (OrderType.MARKET, OrderType.IOC) or (
            opposite is not None and (opposite - req.price) * req.side <= 0)
        if marketable:
            self._take(order, book, t, out)
        if order.remaining > 0 and order.status == "resting":
            if req.order_type == OrderType.LIMIT:
                self._rest(order, book)
            else:
                self._done(order, "cancelled", t, out, cancel_ack=True)

    def _take(self, order: SimOrder, book: OrderBook, t: int, out: list[Response]) -> None:
        """Walk the visible opposite side up to the limit (a market or triggered stop order: all of it)."""
        req = order.request
        consumed = self.consumed[req.instrument_id]
        limited = req.order_type in (OrderType.LIMIT, OrderType.IOC)
        side = -req.side
        filled_any = False
        for price, size in book.levels(side):
            if order.remaining <= 0 or (limited and (price - req.price) * req.side > 0):
                break
            key = (side, price)
            available = size - consumed.get(key, 0)
            take = min(order.remaining, available)
            if take <= 0:
                continue
            consumed[key] = consumed.get(key, 0) + take
            self._fill(order, price, take, Liquidity.TAKER, t, out)
            filled_any = True
        if not filled_any and req.order_type != OrderType.LIMIT:
            self._done(order, "cancelled", t, out, cancel_ack=False,
                       reason="no visible liquidity within the limit")
        elif order.remaining > 0 and req.order_type != OrderType.LIMIT:
            self._done(order, "cancelled", t, out, cancel_ack=True)

    def _rest(self, order: SimOrder, book: OrderBook) -> None:
        req = order.request
        key = (req.side, req.price)
        order.queue = self._new_queue(book, req.side, req.price, l3=self._fifo(req.instrument_id))
        self.resting[req.instrument_id].setdefault(key, []).append(order)

    def _new_queue(self, book: OrderBook, side: int, price: int, l3: bool) -> FifoQueue | L2Queue:
        size = book.size_at(side, price)
        if l3:
            return FifoQueue(book.queue(side, price), size)
        return L2Queue(self.queue_model, size)

    def _passive_fill(self, order: SimOrder, price: int, size: int, t: int, out: list[Response]) -> None:
        take = min(size, order.remaining)
        if take > 0:
            self._fill(order, price, take, Liquidity.MAKER, t, out)

    def _fill(self, order: SimOrder, price: int, size: int, liquidity: int, t: int, out: list[Response]) -> None:
        req = order.request
        fees = self.fees[req.instrument_id]
        fee = fees.fee(price, size, liquidity)
        if order.first_fill:
            fee += fees.order_fee()
            order.first_fill = False
        order.remaining -= size
        out.append(Fill(req.instrument_id, req.client_id, req.side, price, size, liquidity, fee, t,
                        t + self.latency.response()))
        if order.remaining == 0:
            self._done(order, "filled", t, out)

    def _cancel(self, order: SimOrder, t: int, out: list[Response]) -> None:
        req = order.request
        if order.status not in ("pending", "resting"):
            out.append(Reject(req.instrument_id, req.client_id, f"cancel too late: {order.status}", t,
                              t + self.latency.response()))
            return
        self._done(order, "cancelled", t, out, cancel_ack=True)

    def _reject(self, order: SimOrder, reason: str, t: int, out: list[Response]) -> None:
        order.status = "rejected"
        req = order.request
        out.append(Reject(req.instrument_id, req.client_id, reason, t, t + self.latency.response()))

    def _done(self, order: SimOrder, status: str, t: int, out: list[Response], cancel_ack: bool = False,
              reason: str | None = None) -> None:
        """The order leaves the book (filled, cancelled or expired)."""
        req = order.request
        order.status = status
        orders = self.resting[req.instrument_id].get((req.side, req.price))
        if orders is not None and order in orders:
            orders.remove(order)
            if not orders:
                del self.resting[req.instrument_id][(req.side, req.price)]
        if order in self.stops[req.instrument_id]:
            self.stops[req.instrument_id].remove(order)
        if reason is not None:
            order.status = "rejected"
            out.append(Reject(req.instrument_id, req.client_id, reason, t, t + self.latency.response()))
        elif cancel_ack:
            out.append(CancelAck(req.instrument_id, req.client_id, t, t + self.latency.response()))
