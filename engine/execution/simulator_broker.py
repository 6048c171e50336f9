"""``SimulatorBroker``: the ``Broker`` whose orders enter the simulator's own matching engine.

With ``[execution] venue = "simulator"`` on the simulator feed, our orders are not matched against a
copy of the book (``SimulatedExchange``) but sent to the running simulation (``feeds.simulator``'s
client desks, through a gated ``MarketSimulator``): market and marketable orders take the real
book's liquidity and print on the simulator's own tape, passive orders rest in its FIFO queues and
fill when the simulated flow trades through them, and the background flow and the agents react to
all of it (docs/execution.md, "The simulator venue"). Assumptions:

- Time. An order decided at ``ts_local`` reaches the matching engine ``entry`` latency later
  (``LatencyModel``, drawn in the order the stage sends orders); each answer is seen ``response``
  later. The simulator runs gated: it waits for the execution stage at every step of
  ``[execution] simulator_gate_us`` of simulated time, so an order arrives on time whenever its
  entry latency is at least one step; a shorter one enters at the simulator's clock, at most one
  step late (counted: ``late``).
- Matching is the simulator's: front of the queue first, never the last resting order of a side
  (the rest of a market or IOC order is then cancelled), no hidden liquidity for us, and a limit
  rest that would still cross the book is cancelled. Stop orders are refused (the stage's
  protective stops are client-side market exits). A cancel is refused when the order already
  filled, or when it is the last order of its side.
- Fees per instrument (``FeeModel``), maker for passive fills, taker for aggressive ones, the
  per-order fee on the first fill.

The broker sees the market stream like any other (``on_market``, in feed order) and keeps its own
book per instrument for ``quote``; our resting orders are in that stream (order ids from
``CLIENT_OID_BASE`` up), hence in the quote, as they are in the market every agent sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from engine.book import OrderBook
from engine.events import Ack, CancelAck, Fill, InstrumentDef, OrderRequest, Reject, TruthLabel
from engine.execution.exchange import Response
from engine.execution.models import FeeModel, LatencyModel


class ClientDeskView(Protocol):
    """What the broker reads of one lane's client desk (``feeds.simulator.client.ClientDesk``)."""

    @property
    def orders(self) -> Mapping[str, object]: ...

    @property
    def late_requests(self) -> list[tuple[str, str, int, int]]: ...

    def working(self, client_id: str) -> bool: ...


class GatedSimulator(Protocol):
    """What the broker uses of a gated ``MarketSimulator`` (``engine.execution`` may not import ``feeds``)."""

    @property
    def gated(self) -> bool: ...

    def submit(self, order: OrderRequest, latency_ns: int) -> None: ...

    def cancel(self, instrument_id: int, client_id: str, ts_local: int, latency_ns: int) -> None: ...

    def drain(self) -> list: ...

    def desks(self) -> Iterable[ClientDeskView]: ...


class SimulatorBroker:
    """Our orders into a gated ``MarketSimulator`` (``submit``/``cancel``/``drain``/``desk``); a ``Broker``."""

    def __init__(self, simulator: GatedSimulator, instruments: list[InstrumentDef], fees: Mapping[int, FeeModel],
                 latency: LatencyModel) -> None:
        if not getattr(simulator, "gated", False):
            raise ValueError("SimulatorBroker needs a gated simulator (MarketSimulator(..., gated=True))")
        self.simulator = simulator
        self.books = {d.instrument_id: OrderBook(d.instrument_id) for d in instruments}
        self.fees = fees
        self.latency = latency
        self.filled_once: set[str] = set()
        self.fills = 0

    # ---- Broker --------------------------------------------------------------------------------
    def submit(self, order: OrderRequest) -> None:
        self.simulator.submit(order, self.latency.entry())

    def cancel(self, instrument_id: int, client_id: str, ts_local: int) -> None:
        self.simulator.cancel(instrument_id, client_id, ts_local, self.latency.entry())

    def on_market(self, ev) -> list[Response]:
        book = self.books.get(ev.instrument_id)
        if book is not None and type(ev) is not TruthLabel:
            book.update(ev)
        return self._answers()

    def advance(self, ts: int) -> list[Response]:
        return self._answers()

    def quote(self, instrument_id: int) -> tuple[int | None, int | None]:
        book = self.books[instrument_id]
        return book.best_bid, book.best_ask

    def working(self, client_id: str) -> bool:
        for desk in self.simulator.desks():
            if client_id in desk.orders:
                return desk.working(client_id)
        return False

    @property
    def late_requests(self) -> list[tuple[str, str, int, int]]:
        """Requests that entered after their arrival time: ``(kind, client id, arrival ns, entered ns)``."""
        return [r for desk in self.simulator.desks() for r in desk.late_requests]

    # ---- the simulator's answers, with our latency and fees ------------------------------------
    def _answers(self) -> list[Response]:
        raw = self.simulator.drain()
        if not raw:
            return []
        out: list[Response] = []
        for r in raw:
            t = r.ts_exchange
            local = t + self.latency.response()
            if type(r) is Fill:
                fees = self.fees[r.instrument_id]
                fee = fees.fee(r.price, r.size, r.liquidity)
                if r.client_id not in self.filled_once:
                    self.filled_once.add(r.client_id)
                    fee += fees.order_fee()
                self.fills += 1
                out.append(Fill(r.instrument_id, r.client_id, r.side, r.price, r.size, r.liquidity, fee, t, local))
            elif type(r) is Ack:
                out.append(Ack(r.instrument_id, r.client_id, t, local))
            elif type(r) is CancelAck:
                out.append(CancelAck(r.instrument_id, r.client_id, t, local))
            elif type(r) is Reject:
                out.append(Reject(r.instrument_id, r.client_id, r.reason, t, local))
        return out
