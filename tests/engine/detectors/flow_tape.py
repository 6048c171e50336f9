"""A tiny L3 tape builder for the flow-detector tests (sweep, trapped, vacuum): resting orders by
price, market orders that walk them (``OrderExecute`` + ``Trade`` per fill, one atomic event), and
the simulator preset runs the planted-truth tests share."""

from __future__ import annotations

from functools import cache

from engine.config import Config
from engine.events import (
    BUY,
    LAST,
    BookDelta,
    Clock,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    Trade,
    TruthLabel,
)
from engine.testing import instrument

NS = 1_000_000_000
MS = 1_000_000
T0 = 1_000 * NS
INST = instrument(1, "TEST")


class Tape:
    """Events of instrument 1 with consecutive seq; ``at(t)`` sets the time (seconds after T0)."""

    def __init__(self) -> None:
        self.events: list = []
        self.ts = T0
        self.seq = 0
        self.next_oid = 1
        self.next_match = 1
        self.resting: dict[tuple[int, int], list[list[int]]] = {}  # (side, price) -> [[oid, size], ...]

    def at(self, t: float) -> Tape:
        ts = T0 + round(t * NS)
        assert ts >= self.ts, "time goes forward"
        self.ts = ts
        return self

    def header(self, last: bool = True) -> tuple[int, int, int, int, int]:
        """The next event's header (instrument, times, seq, flags)."""
        self.seq += 1
        return (1, self.ts, self.ts, self.seq, LAST if last else 0)

    def add(self, side: int, price: int, size: int) -> int:
        oid = self.next_oid
        self.next_oid += 1
        self.events.append(OrderAdd(*self.header(True), oid, side, price, size))
        self.resting.setdefault((side, price), []).append([oid, size])
        return oid

    def ladder(self, side: int, prices, size: int) -> None:
        for p in prices:
            self.add(side, p, size)

    def delete(self, side: int, price: int, which: int = 0) -> None:
        """Delete the front order at ``price`` (or the ``which``-th of its queue)."""
        oid, size = self.resting[(side, price)].pop(which)
        self.events.append(OrderDelete(*self.header(True), oid, side, price, size))

    def cancel(self, side: int, price: int, size: int) -> None:
        """Partially cancel the front order at ``price``."""
        order = self.resting[(side, price)][0]
        order[1] -= size
        self.events.append(OrderCancel(*self.header(True), order[0], side, price, size, order[1]))

    def market(self, side: int, size: int, match: bool = True, hidden_at: int | None = None) -> None:
        """A market order of ``side`` walking the opposite side's resting orders (one atomic event);
        ``match=False`` leaves ``match_id`` 0 (feeds without ids)."""
        match_id = self.next_match if match else 0
        self.next_match += 1
        fills: list = []
        book = sorted((p, q) for (s, p), q in self.resting.items() if s == -side and q)
        if side < 0:
            book.reverse()
        left = size
        for price, queue in book:
            while queue and left > 0:
                oid, osize = queue[0]
                take = min(osize, left)
                fills.append(OrderExecute(*self.header(False), oid, -side, price, take))
                fills.append(Trade(*self.header(False), price, take, side, 0, match_id))
                left -= take
                if take == osize:
                    queue.pop(0)
                else:
                    queue[0][1] -= take
            if left == 0:
                break
        assert left == 0, "the book is too thin for this order"
        last = fills[-1]
        fills[-1] = Trade(last.instrument_id, last.ts_event, last.ts_recv, last.seq, LAST, last.price, last.size,
                          last.aggressor, last.trade_id, last.match_id)
        self.events += fills

    def trade(self, price: int, size: int, aggressor: int, match_id: int = 0, hidden: bool = False) -> None:
        """A bare print (no book change), e.g. a hidden execution or an L2 trade."""
        self.events.append(Trade(*self.header(True), price, size, aggressor, 0, match_id, hidden))

    def delta(self, side: int, price: int, size: int) -> None:
        """An L2 level update (absolute size)."""
        self.events.append(BookDelta(*self.header(True), side, price, size, 2))

    def clock(self) -> None:
        self.events.append(Clock(*self.header(True)))


def book_around(tape: Tape, bid: int = 999, ask: int = 1000, levels: int = 10, size: int = 100) -> None:
    """A symmetric ladder: bids ``bid`` down, asks ``ask`` up, ``levels`` levels of ``size``."""
    tape.ladder(BUY, range(bid, bid - levels, -1), size)
    tape.ladder(-BUY, range(ask, ask + levels), size)


@cache
def preset_run(name: str, seed: int, symbols: tuple[str, ...] = ()) -> tuple:
    """``(instrument, market events, truth labels, session start ns)`` of one simulator preset run."""
    from feeds.simulator import MarketSimulator
    from feeds.simulator.scenarios import load_preset

    scenario = load_preset(name)
    sim = MarketSimulator(list(symbols or scenario.spec.symbols), Config(), seed=seed,
                          duration_s=scenario.spec.duration_s, scenario=scenario)
    events = list(sim.events())
    market = tuple(e for e in events if not isinstance(e, TruthLabel))
    labels = tuple(e for e in events if isinstance(e, TruthLabel))
    return sim.instruments()[0], market, labels, sim.cfg.session_start_ns


def detections(samples, kind: type) -> list:
    """Every detection of ``kind`` in the samples, in order."""
    return [d for s in samples for d in s.detections if isinstance(d, kind)]
