"""Our orders inside the simulator's matching engine: the client desk of one lane.

A ``ClientDesk`` is an agent of its lane (``hooks.Agent``): every order or cancel we send is
scheduled as a wake of the desk at its exchange arrival time, so it enters the lane's event loop in
time order with the background flow, and everything it does is an ordinary exchange event that
every agent and the background flow see:

- a market order, an IOC order, or the marketable part of a limit order executes against the
  lane's real book (``Lane.execute``): it walks the opposite side front of the queue first, prints
  ``OrderExecute`` + ``Trade`` per fill (one ``match_id``), consumes that liquidity, excites the
  Hawkes market-order intensity and moves the latent price like any other market order of the
  same size. Like every market order of the simulator it never takes the last resting order of a
  side (the rest of a market or IOC order is then cancelled) and it never meets hidden liquidity;
- the rest of a limit order is a real ``OrderAdd`` at the back of its level's FIFO queue, with an
  order id of our own range (``CLIENT_OID_BASE`` and up: distinguishable on the stream, never
  reused by the background flow). It fills only when market orders of the simulation trade
  through the orders ahead of it (maker fills, reported at the execution's time); background
  cancel clocks never target it. A rest that would still cross the book (the opposite side's last
  order is never taken) is cancelled instead of resting;
- a cancel removes our resting order (``OrderDelete``); it is refused when the order is already
  gone (filled: "cancel too late") or when it is the last order of its side (the simulator never
  empties a side).

Answers are the engine's execution vocabulary (``Ack``, ``Fill``, ``CancelAck``, ``Reject``), stamped
with the exchange time of the simulation (``ts_exchange``) and ``ts_exchange + response_ns``
(``ts_local``); ``drain`` hands them over in the order they happened. Fees are those of an optional
fee model (``fee(price, size, liquidity)`` and ``order_fee()``), zero without one. Stop orders are
refused (the engine's protective stops are client-side market exits).

Determinism: the desk draws no random number; the same seed and the same orders at the same
arrival times give the same event stream, byte for byte.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Protocol

from engine.events import (
    BUY,
    SELL,
    Ack,
    CancelAck,
    Fill,
    Liquidity,
    OrderRequest,
    OrderType,
    Reject,
)

CLIENT_OID_BASE = 1 << 40  # our order ids: far above anything a session's background flow reaches
CLIENT_TAG = "client"

Response = Ack | Reject | Fill | CancelAck


class Fees(Protocol):
    def fee(self, price: int, size: int, liquidity: int) -> float: ...

    def order_fee(self) -> float: ...


class ClientOrder:
    """One of our orders as the desk follows it."""

    __slots__ = ("request", "remaining", "oid", "status", "first_fill")

    def __init__(self, request: OrderRequest) -> None:
        self.request = request
        self.remaining = request.size
        self.oid = 0  # the exchange order id while it rests
        self.status = "pending"  # pending | resting | filled | cancelled | rejected
        self.first_fill = True


class ClientDesk:
    """Our order entry on one lane (see the module docstring)."""

    def __init__(self, lane: Any, response_ns: int = 0, fees: Fees | None = None) -> None:
        self.lane = lane
        self.iid = lane.iid
        self.response_ns = response_ns
        self.fees = fees
        self.orders: dict[str, ClientOrder] = {}
        self.by_oid: dict[int, ClientOrder] = {}
        self.pending: list[tuple[float, int, str, str]] = []  # (arrival s, n, "order" | "cancel", client id)
        self.n = 0
        self.next_oid = CLIENT_OID_BASE
        self.reports: list[Response] = []
        # requests that reached the lane after its clock had passed their arrival time:
        # (kind, client id, arrival ns, ns it entered at)
        self.late_requests: list[tuple[str, str, int, int]] = []

    # ---- entry points (from outside the simulation) ---------------------------------------------
    def submit(self, request: OrderRequest, arrival_ns: int) -> None:
        """Send ``request``; it reaches the matching engine at ``arrival_ns`` (decision time + latency)."""
        if request.instrument_id != self.iid:
            raise ValueError(f"order for instrument {request.instrument_id} sent to the desk of {self.iid}")
        if request.client_id in self.orders:
            raise ValueError(f"duplicate client order id {request.client_id!r}")
        self.orders[request.client_id] = ClientOrder(request)
        self._schedule(arrival_ns, "order", request.client_id)

    def cancel(self, client_id: str, arrival_ns: int) -> None:
        """Ask to cancel ``client_id``; the request reaches the matching engine at ``arrival_ns``."""
        if client_id not in self.orders:
            raise ValueError(f"cancel of an unknown client order id {client_id!r}")
        self._schedule(arrival_ns, "cancel", client_id)

    @property
    def late(self) -> int:
        """How many requests entered late (``late_requests``)."""
        return len(self.late_requests)

    def drain(self) -> list[Response]:
        """The answers produced since the last call, in the order they happened."""
        out, self.reports = self.reports, []
        return out

    def working(self, client_id: str) -> bool:
        order = self.orders.get(client_id)
        return order is not None and order.status in ("pending", "resting")

    def _schedule(self, arrival_ns: int, kind: str, client_id: str) -> None:
        lane = self.lane
        t = (arrival_ns - lane.cfg.session_start_ns) / 1e9
        now = max(lane.now, lane.clock)
        if t < now:  # the lane has simulated past the arrival: enter now (recorded; a gated run avoids it)
            self.late_requests.append((kind, client_id, arrival_ns, lane.ex.ns(now)))
            t = now
        self.n += 1
        heappush(self.pending, (t, self.n, kind, client_id))
        lane.wake_at(self, t)

    # ---- agent protocol (called by the lane's event loop) ---------------------------------------
    def on_wake(self, venue: Any) -> float | None:
        """Handle every request that has arrived by now, in arrival order."""
        t = venue.now
        while self.pending and self.pending[0][0] <= t:
            _, _, kind, client_id = heappop(self.pending)
            order = self.orders[client_id]
            if kind == "cancel":
                self._cancel(order, t)
            else:
                self._arrive(order, t)
        return None  # every request has its own wake (``_schedule``)

    def on_fill(self, venue: Any, order_id: int, price: int, size: int) -> None:
        """A market order of the simulation executed ``size`` lots of our resting order (maker)."""
        order = self.by_oid.get(order_id)
        if order is None:
            return
        self._fill(order, price, size, Liquidity.MAKER, venue.now)

    # ---- matching --------------------------------------------------------------------------------
    def _arrive(self, order: ClientOrder, t: float) -> None:
        req, lane = order.request, self.lane
        if req.order_type == OrderType.STOP:
            self._reject(order, "stop orders are not taken by the simulator's matching engine", t)
            return
        if req.size <= 0 or req.side not in (BUY, SELL):
            self._reject(order, f"bad order: side {req.side}, size {req.size}", t)
            return
        order.status = "resting"
        self.reports.append(Ack(self.iid, req.client_id, *self._stamp(t)))
        book = lane.book
        opposite = book.best_ask if req.side == BUY else book.best_bid
        limited = req.order_type != OrderType.MARKET
        marketable = not limited or req.order_type == OrderType.IOC or (
            opposite is not None and (opposite - req.price) * req.side <= 0)
        if marketable:
            fills = lane.execute(t, req.side, order.remaining, req.price if limited else None)
            for price, size in fills:
                self._fill(order, price, size, Liquidity.TAKER, t)
            if not fills and req.order_type != OrderType.LIMIT:
                self._reject(order, "no visible liquidity within the limit", t)
                return
        if order.remaining <= 0 or order.status != "resting":
            return
        opposite = book.best_ask if req.side == BUY else book.best_bid
        if req.order_type != OrderType.LIMIT or (opposite is not None and (opposite - req.price) * req.side <= 0):
            self._done(order, "cancelled", t)  # IOC / market rest, or a rest that would cross the book
            return
        self.next_oid += 1
        order.oid = lane.rest_order(t, req.side, req.price, order.remaining, self, self.next_oid, CLIENT_TAG)
        self.by_oid[order.oid] = order

    def _cancel(self, order: ClientOrder, t: float) -> None:
        req = order.request
        if order.status == "pending":  # never reached the book: the cancel overtook nothing, it wins
            self._done(order, "cancelled", t)
            return
        if order.status != "resting":
            self.reports.append(Reject(self.iid, req.client_id, f"cancel too late: {order.status}", *self._stamp(t)))
            return
        if not self.lane.cancel(order.oid):
            self.reports.append(Reject(self.iid, req.client_id, "cancel refused: the last order of its side",
                                       *self._stamp(t)))
            return
        self._done(order, "cancelled", t)

    def _fill(self, order: ClientOrder, price: int, size: int, liquidity: int, t: float) -> None:
        req = order.request
        fee = 0.0
        if self.fees is not None:
            fee = self.fees.fee(price, size, liquidity)
            if order.first_fill:
                fee += self.fees.order_fee()
        order.first_fill = False
        order.remaining -= size
        self.reports.append(Fill(self.iid, req.client_id, req.side, price, size, liquidity, fee, *self._stamp(t)))
        if order.remaining == 0:
            order.status = "filled"
            self.by_oid.pop(order.oid, None)

    def _done(self, order: ClientOrder, status: str, t: float) -> None:
        order.status = status
        self.by_oid.pop(order.oid, None)
        self.reports.append(CancelAck(self.iid, order.request.client_id, *self._stamp(t)))

    def _reject(self, order: ClientOrder, reason: str, t: float) -> None:
        order.status = "rejected"
        self.reports.append(Reject(self.iid, order.request.client_id, reason, *self._stamp(t)))

    def _stamp(self, t: float) -> tuple[int, int]:
        ts = self.lane.ex.ns(t)
        return ts, ts + self.response_ns
