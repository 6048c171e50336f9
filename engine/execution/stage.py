"""The execution stage core: order intents and the market stream in, fills, round trips and equity out.

Two inputs, merged deterministically: the whole market stream in feed order (``market``), and the
risk stage's intents in canonical order with the merge's watermark (``orders``). A market event is
processed only once the intent watermark has passed its ``ts_recv`` (no intent decided before it
can still come), and an intent is released when the market reaches its decision time
(``ts_local``). So the rows are the same for any batch size, queue size or schedule, and for the
reference path, which calls the same two methods.

What the stage does per market event: deliver the broker's responses whose local time has come
(a fill is known ``response`` latency after it happened), release due intents through the
portfolio guards (kill switch, drawdown ladder, disabled strategy, correlation cap: a refusal is an
``orders`` row with its reason and a ``risk_events`` row), hand the event to the broker, mark the
instrument to its mid (equity, drawdown, correlation samples, swings), and manage each open round
trip: its stop only tightens (``StopRule``), and the stop, target or time stop sends a market exit.
At the end of the stream every working order is cancelled and every position flattened against
the last book, so a completed run ends flat unless the book had no liquidity left.

Rows: ``orders`` (one per order, at its end, with purpose, filled size, average price and the mid
it was decided at), ``fills`` (with the mid at the fill and 1 s and 10 s after it, for adverse
selection), ``equity`` (every instrument and the whole portfolio, instrument -1, at each fill and
each ``equity_interval_ns`` of event time), ``round_trips`` and ``risk_events``.
"""

from __future__ import annotations

import heapq
from collections import deque
from itertools import count
from typing import Protocol

from engine.events import BUY, Ack, CancelAck, Fill, OrderRequest, OrderType, Reject, TruthLabel
from engine.execution.exchange import Broker, Response
from engine.portfolio import Portfolio
from engine.records import RecordBuffer
from engine.risk import CorrelationCap, DrawdownGuard, OrderIntent, StopRule, SwingTrail
from ml.exit_agent import EXIT_ALL, EXIT_HALF, LiveExitAgent

NS = 1_000_000_000
PORTFOLIO = -1  # instrument id of the whole-portfolio equity rows
END_OF_TIME = 2**62


class OrderState:
    __slots__ = ("request", "purpose", "decision_mid", "filled", "notional", "status", "reason", "fills",
                 "trip", "done_ts")

    def __init__(self, request: OrderRequest, purpose: str, decision_mid: float | None, trip: RoundTrip | None):
        self.request = request
        self.purpose = purpose
        self.decision_mid = decision_mid
        self.filled = 0
        self.notional = 0
        self.status = "working"
        self.reason: str | None = None
        self.fills = 0
        self.trip = trip
        self.done_ts: int | None = None


class RoundTrip:
    """One entry and the exits that close it."""

    __slots__ = ("trip_id", "instrument_id", "strategy", "regime", "side", "qty", "entry_notional", "exited",
                 "exit_notional", "entry_ts", "exit_ts", "initial_stop", "stop", "target", "time_stop_at",
                 "fees", "exit_reason", "entry_id", "exit_id", "exits", "retry_at")

    def __init__(self, intent: OrderIntent, ts: int) -> None:
        order = intent.order
        self.trip_id = order.client_id
        self.instrument_id = order.instrument_id
        self.strategy = order.strategy
        self.regime = intent.regime
        self.side = order.side
        self.qty = 0
        self.entry_notional = 0
        self.exited = 0
        self.exit_notional = 0
        self.entry_ts = ts
        self.exit_ts = 0
        self.initial_stop = intent.stop
        self.stop = intent.stop
        self.target = intent.target
        self.time_stop_at = ts + intent.time_stop_ns if intent.time_stop_ns else 0
        self.fees = 0.0
        self.exit_reason = ""
        self.entry_id = order.client_id
        self.exit_id: str | None = None
        self.exits = 0
        self.retry_at = 0  # an exit that ended short is sent again from this time (100 ms later)

    @property
    def entry_price(self) -> float:
        return self.entry_notional / self.qty if self.qty else 0.0

    @property
    def open(self) -> int:
        return self.qty - self.exited


class TripObserver(Protocol):
    """Read-only view of the stage's trips: never changes an order, a fill or a row."""

    def on_step(self, instrument_id: int, ts: int, quote: tuple[int | None, int | None],
                trips: list[RoundTrip]) -> None:
        """One market event of ``instrument_id`` (before stops and exits are managed)."""

    def on_close(self, trip: RoundTrip) -> None:
        """A round trip closed (its exit reason, fees and prices final)."""


class TradeListener(Protocol):
    """Learns from the trades the stage closes (the online layer, ``ml/online.py``): never changes an
    order, a fill or a row."""

    def on_trade_closed(self, trip: RoundTrip, pnl: float, tick_value: float) -> None:
        """``trip`` closed with net ``pnl`` (currency, after fees); ``tick_value``: currency per tick and lot."""

    def close(self) -> None:
        """End of stream."""


class ExecutionStage(RecordBuffer):
    """Stage core over a ``Broker``; see the module docstring."""

    def __init__(self, broker: Broker, portfolio: Portfolio, guard: DrawdownGuard, correlation: CorrelationCap,
                 stop_rule: StopRule, decision_latency_ns: int, equity_interval_ns: int,
                 release_at_watermark: bool = False) -> None:
        """``release_at_watermark``: an intent decided, or an answer due, before the watermark is handled
        at its own time without waiting for a later market event (a gated simulator venue waits for
        the orders this sends)."""
        super().__init__()
        self.broker = broker
        self.portfolio = portfolio
        self.guard = guard
        self.correlation = correlation
        self.stop_rule = stop_rule
        self.decision_latency_ns = decision_latency_ns
        self.equity_interval_ns = equity_interval_ns
        self.release_at_watermark = release_at_watermark
        self.buffer: deque = deque()
        self.buffer_peak = 0  # most market events held at once (bounded by the pipeline's depth)
        self.intents: list = []  # heap of (ts_local, n, intent)
        self.responses: list = []  # heap of (ts_local, n, response)
        self.orders: dict[str, OrderState] = {}
        self.trips: dict[int, list[RoundTrip]] = {iid: [] for iid in portfolio.positions}
        self.swings = {iid: SwingTrail() for iid in portfolio.positions}
        self.held_fills: dict[int, deque] = {iid: deque() for iid in portfolio.positions}
        self.mids: dict[int, float] = {}
        self.best: dict[int, tuple[int | None, int | None]] = {}
        self.next_equity = 0
        self.last_ts = 0
        self.fills = 0
        self.rejected = 0
        self.closed: list[RoundTrip] = []
        self.observer: TripObserver | None = None  # sees the open trips at each market step (exit-agent paths)
        self.exit_agent: LiveExitAgent | None = None  # SPEC 7: manages open trips instead of target and stop rule
        self.trade_listener: TradeListener | None = None  # learns from each closed trade (online learning)
        self._n = count()

    # ---- the two inputs ---------------------------------------------------------------------------
    def market(self, events: list) -> list:
        """Market events in feed order; processed once the intent watermark passes them."""
        self.buffer.extend(ev for ev in events if type(ev) is not TruthLabel)
        if len(self.buffer) > self.buffer_peak:
            self.buffer_peak = len(self.buffer)
        return []

    def orders_in(self, intents: list[OrderIntent], watermark: int | None) -> list:
        """Intents in canonical order; ``watermark``: no later intent is decided before it (None: unknown)."""
        for intent in intents:
            heapq.heappush(self.intents, (intent.order.ts_local, next(self._n), intent))
        if watermark is not None:
            self._advance(watermark)
            if self.release_at_watermark:
                self._release_to(watermark)
        return []

    def _release_to(self, watermark: int) -> None:
        """Intents decided and answers due before ``watermark``, in time order, without a later market event."""
        self._collect(self.broker.advance(watermark))
        intents, responses = self.intents, self.responses
        while True:
            ti = intents[0][0] if intents else END_OF_TIME
            tr = responses[0][0] if responses else END_OF_TIME
            if tr < watermark and tr <= ti:
                self._deliver(tr)
            elif ti < watermark:
                self._release(heapq.heappop(intents)[2], ti)
            else:
                break

    def apply(self, batch: list) -> list:
        """Reference-path convenience: a batch of intents with no watermark (held until ``flush``)."""
        return self.orders_in(batch, None)

    def flush(self) -> list:
        """End of stream: process everything, cancel what works, flatten, and write the last rows."""
        self._advance(END_OF_TIME)
        while self.intents:
            _, _, intent = heapq.heappop(self.intents)
            self._refuse(intent, "end of data before the order was decided", self.last_ts)
        ts = self.last_ts
        for state in list(self.orders.values()):
            if state.status == "working" and self.broker.working(state.request.client_id):
                self.broker.cancel(state.request.instrument_id, state.request.client_id, ts)
        for trips in self.trips.values():
            for trip in trips:
                if trip.open > 0 and trip.exit_id is None:
                    self._exit(trip, "end of data", ts)
        self._collect(self.broker.advance(END_OF_TIME))
        self._deliver(END_OF_TIME)
        for state in self.orders.values():
            if state.status == "working":
                state.status = "expired"
                self._order_row(state)
        for trips in self.trips.values():
            for trip in trips:
                if trip.qty > 0:
                    trip.exit_reason = trip.exit_reason or "open at end"
                    self._close(trip, ts)
        for iid in self.held_fills:
            self._release_fills(iid, END_OF_TIME)
        self._equity_rows(ts)
        if self.trade_listener is not None:
            self.trade_listener.close()
        return []

    # ---- time ---------------------------------------------------------------------------------------
    def _advance(self, limit: int) -> None:
        buffer = self.buffer
        while buffer and buffer[0].ts_recv < limit:
            self._step(buffer.popleft())

    def _step(self, ev) -> None:
        ts = ev.ts_recv
        self.last_ts = ts
        if self.responses and self.responses[0][0] <= ts:
            self._deliver(ts)
        while self.intents and self.intents[0][0] <= ts:
            self._release(heapq.heappop(self.intents)[2], ts)
        out = self.broker.on_market(ev)
        if out:
            self._collect(out)
        iid = ev.instrument_id
        if iid not in self.trips:
            return
        self._mark(iid, ts)
        if self.next_equity and ts >= self.next_equity:
            self._equity_rows(ts)
        if not self.next_equity:
            self.next_equity = (ts // self.equity_interval_ns + 1) * self.equity_interval_ns
        if self.observer is not None:
            self.observer.on_step(iid, ts, self.best.get(iid, (None, None)), self.trips[iid])
        if self.exit_agent is not None:
            self.exit_agent.on_market(iid, ts, self.best.get(iid, (None, None)))
        if self.trips[iid]:
            self._manage(iid, ts)
        if self.held_fills[iid]:
            self._release_fills(iid, ts)

    def _mark(self, iid: int, ts: int) -> None:
        quote = self.broker.quote(iid)
        if quote == self.best.get(iid):
            return
        self.best[iid] = quote
        bid, ask = quote
        if bid is None or ask is None or bid >= ask:
            return
        mid = (bid + ask) / 2
        if self.mids.get(iid) == mid:
            return
        self.mids[iid] = mid
        self.portfolio.mark(iid, mid)
        self.swings[iid].on_mid(ts, mid)
        self.correlation.on_mark(ts, iid, mid * self.portfolio.tick_value[iid])
        if self.portfolio.positions[iid].qty:
            kill = self.guard.on_equity(self.portfolio.equity())
            if kill is not None:
                self._kill(kill, ts)

    # ---- intents and exits --------------------------------------------------------------------------
    def _release(self, intent: OrderIntent, ts: int) -> None:
        order = intent.order
        factor, reason = self.guard.gate(order.strategy, intent.probability)
        size = int(order.size * factor)
        if reason is None and size < 1:
            reason = "size 0 after the drawdown ladder"
        if reason is None:
            reason = self.correlation.check(self.portfolio.exposures(), order.instrument_id, order.side * size)
        if reason is not None:
            self._refuse(intent, reason, ts)
            return
        if size != order.size:
            order = OrderRequest(order.instrument_id, order.client_id, order.side, order.order_type, order.price,
                                 size, order.tif, order.ts_local, order.strategy, order.signal_id)
        trip = RoundTrip(intent, order.ts_local)
        self.trips[order.instrument_id].append(trip)
        view = intent.view
        mid = (view.bid_px[0] + view.ask_px[0]) / 2 if view is not None and view.bid_px and view.ask_px else None
        self._send(order, "entry", mid, trip)

    def _refuse(self, intent: OrderIntent, reason: str, ts: int) -> None:
        self.rejected += 1
        state = OrderState(intent.order, "entry", None, None)
        state.status, state.reason, state.done_ts = "rejected", reason, ts
        self._order_row(state)
        self.records.append(("risk_events", (intent.order.instrument_id, ts, intent.order.strategy, "rejected",
                                             f"{intent.order.client_id}: {reason}")))

    def _send(self, order: OrderRequest, purpose: str, mid: float | None, trip: RoundTrip | None) -> None:
        self.orders[order.client_id] = OrderState(order, purpose, mid, trip)
        self.broker.submit(order)

    def _manage(self, iid: int, ts: int) -> None:
        """Tighten stops; exit on stop, target or time stop (at the price we could get: bid for a long)."""
        bid, ask = self.best.get(iid, (None, None))
        if bid is None or ask is None:
            return
        swing = self.swings[iid]
        for trip in self.trips[iid]:
            if trip.open <= 0 or trip.exit_id is not None:
                if trip.time_stop_at and ts >= trip.time_stop_at and self._entry_working(trip):
                    self.broker.cancel(iid, trip.entry_id, ts)
                continue
            if trip.exit_reason:  # an exit that ended short, or an entry fill after the exit began
                if ts >= trip.retry_at:
                    self._exit(trip, trip.exit_reason, ts)
                continue
            exit_price = bid if trip.side == BUY else ask
            if self.exit_agent is not None:
                self._agent_manage(trip, iid, ts, bid, ask, exit_price)
                continue
            mark = self.mids.get(iid, float(exit_price))
            if trip.stop:
                moved = self.stop_rule.update(trip.side, trip.entry_price, trip.initial_stop, trip.stop, mark,
                                              swing.protective(trip.side))
                if moved != trip.stop:
                    self.records.append(("risk_events", (iid, ts, trip.strategy, "stop_moved",
                                                         f"{trip.trip_id}: {trip.stop} -> {moved}")))
                    trip.stop = moved
            if trip.stop and (exit_price - trip.stop) * trip.side <= 0:
                self._exit(trip, "stop", ts)
            elif trip.target and (exit_price - trip.target) * trip.side >= 0:
                self._exit(trip, "target", ts)
            elif trip.time_stop_at and ts >= trip.time_stop_at:
                self._exit(trip, "time stop", ts)

    def _agent_manage(self, trip: RoundTrip, iid: int, ts: int, bid: int, ask: int, exit_price: int) -> None:
        """SPEC 7: the stop (moved only by the agent) and the time stop are forced; at each TF1 close the
        agent holds, exits half or all, or moves the stop to breakeven or a trail."""
        agent = self.exit_agent
        assert agent is not None
        if trip.stop and (exit_price - trip.stop) * trip.side <= 0:
            self._exit(trip, "stop", ts)
            return
        if trip.time_stop_at and ts >= trip.time_stop_at:
            self._exit(trip, "time stop", ts)
            return
        decision = agent.decide(trip, ts, bid, ask)
        if decision is None:
            return
        action, stop = decision
        if action == EXIT_ALL:
            self._exit(trip, "exit agent", ts)
        elif action == EXIT_HALF:
            trip.exits += 1
            client_id = f"{trip.trip_id}/x{trip.exits}"
            trip.exit_id = client_id  # no exit reason: the rest stays managed once this exit is done
            order = OrderRequest(iid, client_id, -trip.side, OrderType.MARKET, 0, trip.qty // 2, "IOC",
                                 ts + self.decision_latency_ns, trip.strategy, trip.trip_id)
            self._send(order, "exit:exit agent half", self.mids.get(iid), trip)
        elif stop != trip.stop:
            self.records.append(("risk_events", (iid, ts, trip.strategy, "stop_moved",
                                                 f"{trip.trip_id}: {trip.stop} -> {stop} (exit agent)")))
            trip.stop = stop

    def _entry_working(self, trip: RoundTrip) -> bool:
        state = self.orders.get(trip.entry_id)
        return state is not None and state.status == "working" and self.broker.working(trip.entry_id)

    def _exit(self, trip: RoundTrip, reason: str, ts: int) -> None:
        if self._entry_working(trip):
            self.broker.cancel(trip.instrument_id, trip.entry_id, ts)
        trip.exit_reason = trip.exit_reason or reason
        if trip.open <= 0:
            return
        trip.exits += 1
        client_id = f"{trip.trip_id}/x{trip.exits}"
        trip.exit_id = client_id
        order = OrderRequest(trip.instrument_id, client_id, -trip.side, OrderType.MARKET, 0, trip.open, "IOC",
                             ts + self.decision_latency_ns, trip.strategy, trip.trip_id)
        self._send(order, f"exit:{reason}", self.mids.get(trip.instrument_id), trip)

    def flatten(self, reason: str) -> int:
        """Operator action: cancel every working entry and send a market exit for every open position
        (filled as the market stream goes on); returns the exits sent."""
        ts = self.last_ts
        self.records.append(("risk_events", (PORTFOLIO, ts, "", "flatten", reason)))
        return self._flatten(ts, "flatten")

    def kill(self, reason: str) -> None:
        """Operator action: latch the kill switch (``guard.reset()`` unlatches it) and flatten."""
        self.guard.killed = reason
        self._kill(reason, self.last_ts)

    def _kill(self, reason: str, ts: int) -> None:
        """The kill switch latched: cancel every working order, flatten every position."""
        self.records.append(("risk_events", (PORTFOLIO, ts, "", "kill_switch", reason)))
        self._flatten(ts, "kill switch")

    def _flatten(self, ts: int, why: str) -> int:
        exits = 0
        for state in list(self.orders.values()):
            if state.status == "working" and state.purpose == "entry" and self.broker.working(state.request.client_id):
                self.broker.cancel(state.request.instrument_id, state.request.client_id, ts)
        for trips in self.trips.values():
            for trip in trips:
                if trip.open > 0 and trip.exit_id is None:
                    self._exit(trip, why, ts)
                    exits += 1
        return exits

    # ---- responses ------------------------------------------------------------------------------------
    def _collect(self, responses: list[Response]) -> None:
        for response in responses:
            heapq.heappush(self.responses, (response.ts_local, next(self._n), response))

    def _deliver(self, ts: int) -> None:
        responses = self.responses
        while responses and responses[0][0] <= ts:
            self._on_response(heapq.heappop(responses)[2])

    def _on_response(self, response: Response) -> None:
        state = self.orders.get(response.client_id)
        if state is None or type(response) is Ack:
            return
        if type(response) is Fill:
            self._on_fill(state, response)
            if state.filled == state.request.size:
                self._finish(state, "filled", None, response.ts_local)
        elif type(response) is Reject:
            if state.status == "working":
                self._finish(state, "rejected", response.reason, response.ts_local)
        elif type(response) is CancelAck and state.status == "working":
            self._finish(state, "partially_filled" if state.filled else "cancelled", None, response.ts_local)

    def _finish(self, state: OrderState, status: str, reason: str | None, ts: int) -> None:
        state.status, state.reason, state.done_ts = status, reason, ts
        self._order_row(state)
        trip = state.trip
        if trip is not None and state.purpose != "entry" and trip.exit_id == state.request.client_id:
            trip.exit_id = None  # an exit that ended short: sent again 100 ms later
            trip.retry_at = ts + NS // 10
            if trip.open == 0 and not self._entry_working(trip):
                self._close(trip, ts)
        elif trip is not None and state.purpose == "entry":
            if trip.qty == 0:
                self.trips[trip.instrument_id].remove(trip)  # never filled: no round trip
            elif trip.open == 0 and trip.exit_id is None:
                self._close(trip, ts)  # the exits were done before the entry's cancel came back

    def _on_fill(self, state: OrderState, fill: Fill) -> None:
        self.fills += 1
        state.fills += 1
        state.filled += fill.size
        state.notional += fill.price * fill.size
        iid = fill.instrument_id
        self.portfolio.on_fill(fill)
        trip = state.trip
        if trip is not None:
            trip.fees += fill.fee
            if state.purpose == "entry":
                trip.qty += fill.size
                trip.entry_notional += fill.price * fill.size
            else:
                trip.exited += fill.size
                trip.exit_notional += fill.price * fill.size
        mid = self.mids.get(iid)
        self.held_fills[iid].append([fill, state.fills, mid, None, None])
        self._equity_rows(fill.ts_local)
        kill = self.guard.on_equity(self.portfolio.equity())
        if kill is not None:
            self._kill(kill, fill.ts_local)

    def _close(self, trip: RoundTrip, ts: int) -> None:
        if trip not in self.trips[trip.instrument_id]:
            return
        self.trips[trip.instrument_id].remove(trip)
        trip.exit_ts = ts
        tv = self.portfolio.tick_value[trip.instrument_id]
        exit_price = trip.exit_notional / trip.exited if trip.exited else None
        gross = trip.side * (trip.exit_notional - trip.entry_price * trip.exited) * tv
        pnl = gross - trip.fees
        risk = abs(trip.entry_price - trip.initial_stop) if trip.initial_stop else 0.0
        r_multiple = (gross / (trip.exited * tv * risk)) if risk and trip.exited else None
        self.closed.append(trip)
        if self.exit_agent is not None:
            self.exit_agent.forget(trip.trip_id)
        if self.observer is not None:
            self.observer.on_close(trip)
        if self.trade_listener is not None:
            self.trade_listener.on_trade_closed(trip, pnl, tv)
        self.records.append(("round_trips", (
            trip.trip_id, trip.instrument_id, trip.strategy, trip.regime, trip.side, trip.qty, trip.entry_ts, ts,
            trip.entry_price, exit_price, trip.initial_stop, trip.stop, trip.target, pnl, trip.fees, r_multiple,
            trip.exit_reason,
        )))
        for event in self.guard.on_trade_closed(trip.strategy, pnl):
            if event.startswith("kill switch"):
                self._kill(event, ts)
            else:
                self.records.append(("risk_events", (trip.instrument_id, ts, trip.strategy, "strategy_disabled",
                                                     event)))

    # ---- rows ----------------------------------------------------------------------------------------
    def _order_row(self, state: OrderState) -> None:
        o = state.request
        avg = state.notional / state.filled if state.filled else None
        self.records.append(("orders", (
            o.client_id, o.signal_id, o.instrument_id, o.ts_local, o.side, o.order_type, o.price, o.size, o.tif,
            o.strategy, state.status, state.reason, state.purpose, state.filled, avg, state.decision_mid,
            state.done_ts,
        )))

    def _release_fills(self, iid: int, ts: int) -> None:
        """Fill rows wait for the mids 1 s and 10 s after them (adverse selection)."""
        held = self.held_fills[iid]
        mid = self.mids.get(iid)
        for entry in held:
            t = entry[0].ts_exchange
            if entry[3] is None and ts >= t + NS and ts != END_OF_TIME:
                entry[3] = mid
            if entry[4] is None and ts >= t + 10 * NS and ts != END_OF_TIME:
                entry[4] = mid
        while held and (held[0][4] is not None or ts == END_OF_TIME):
            fill, number, at, after_1s, after_10s = held.popleft()
            self.records.append(("fills", (
                fill.client_id, number, fill.instrument_id, fill.ts_exchange, fill.ts_local, fill.side, fill.price,
                fill.size, fill.liquidity, fill.fee, at, after_1s, after_10s,
            )))

    def _equity_rows(self, ts: int) -> None:
        portfolio = self.portfolio
        cash = realized = unrealized = value = fees = 0.0
        equity = portfolio.equity()
        for iid, pos in portfolio.positions.items():
            v = portfolio.value(iid)
            u = portfolio.unrealized(iid, pos.mark) if pos.qty else 0.0
            self.records.append(("equity", (iid, ts, pos.qty, pos.cash, pos.realized, u, equity, pos.mark, v,
                                            pos.fees)))
            cash += pos.cash
            realized += pos.realized
            unrealized += u
            value += v
            fees += pos.fees
        self.records.append(("equity", (PORTFOLIO, ts, 0, cash, realized, unrealized, equity, None, value, fees)))
        if self.equity_interval_ns:
            self.next_equity = (ts // self.equity_interval_ns + 1) * self.equity_interval_ns
