"""Hand-built tapes and simulator runs for the liquidity-concentration and market-maker detector tests
(walls, spoofing, quote withdrawal): an L3 tape whose builder keeps its own book (so market orders
fill the real FIFO queues), L2 deltas, and the planted-truth helpers (run a preset, match
detections to labels by side, price within one bin and time overlap)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import cache

import msgspec

from engine.book import OrderBook
from engine.config import Config
from engine.events import (
    BUY,
    LAST,
    BookDelta,
    Clock,
    Detection,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    Trade,
    TruthLabel,
)
from engine.testing import instrument, run_market

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
        self.next_trade = 1
        self.book = OrderBook(1)

    def at(self, t: float) -> Tape:
        ts = T0 + round(t * NS)
        assert ts >= self.ts, "time goes forward"
        self.ts = ts
        return self

    def _put(self, cls, *fields, last: bool = True):
        self.seq += 1
        ev = cls(1, self.ts, self.ts, self.seq, LAST if last else 0, *fields)
        self.book.update(ev)
        self.events.append(ev)
        return ev

    def add(self, side: int, price: int, size: int) -> int:
        oid = self.next_oid
        self.next_oid += 1
        self._put(OrderAdd, oid, side, price, size)
        return oid

    def ladder(self, side: int, prices, size: int) -> list[int]:
        return [self.add(side, p, size) for p in prices]

    def delete(self, oid: int) -> None:
        side, price, size = self.book.order(oid)
        self._put(OrderDelete, oid, side, price, size)

    def cancel(self, oid: int, size: int) -> None:
        side, price, rest = self.book.order(oid)
        self._put(OrderCancel, oid, side, price, size, rest - size)

    def market(self, side: int, size: int) -> None:
        """A market order of ``side`` filling the opposite side's FIFO queues (one atomic event)."""
        fills = []
        for price, _ in self.book.top(-side, 1_000):
            for oid, rest in self.book.queue(-side, price):
                take = min(rest, size)
                fills.append((oid, price, take))
                size -= take
                if not size:
                    break
            if not size:
                break
        for i, (oid, price, take) in enumerate(fills):
            trade_id = self.next_trade
            self.next_trade += 1
            self._put(OrderExecute, oid, -side, price, take, trade_id, last=False)
            self._put(Trade, price, take, side, trade_id, trade_id, last=i == len(fills) - 1)

    def trade(self, price: int, size: int, aggressor: int) -> None:
        """A print without a book change (an L2 feed's trade, or a hidden execution)."""
        self._put(Trade, price, size, aggressor, self.next_trade, self.next_trade)
        self.next_trade += 1

    def delta(self, side: int, price: int, size: int, action: int = 2) -> None:
        self._put(BookDelta, side, price, size, action)

    def clock(self) -> None:
        self._put(Clock)


def detections(events: list, factory: Callable, batch_size: int = 1_000_000, bin_ticks: int = 1,
               instrument_def=INST) -> list[Detection]:
    """Every detection of a fresh market stage over ``events`` with one listener built by ``factory``."""
    def build(context):
        return factory(dataclasses.replace(context, bin_ticks=bin_ticks))
    _, samples = run_market(instrument_def, events, build, batch_size=batch_size)
    return [d for s in samples for d in s.detections]


def finite(detection: Detection) -> bool:
    """Every number in the detection (header and evidence) is finite."""
    values = [detection.strength, *detection.evidence().values()]
    return all(math.isfinite(v) for v in values if isinstance(v, int | float))


# ---- planted truth ----------------------------------------------------------------------------------
@cache
def simulate(preset: str | None, seed: int, symbol: str | None = None, duration_s: float | None = None,
             episodes_per_hour: float | None = None) -> tuple:
    """``(instrument, market events, truth labels, bin)`` of one simulator session (a preset, or a
    background session of ``symbol``), cached for the test session."""
    from feeds.simulator.scenarios import load_preset
    from feeds.simulator.simulator import MarketSimulator

    config = Config() if episodes_per_hour is None else msgspec.convert(
        {"simulator": {"episodes_per_hour": episodes_per_hour}}, Config)
    scenario = load_preset(preset) if preset else None
    symbols = [symbol] if symbol else scenario.spec.symbols
    sim = MarketSimulator(symbols, config, seed=seed, duration_s=duration_s or scenario.spec.duration_s,
                          scenario=scenario)
    events = list(sim.events())
    inst = sim.instruments()[0]
    market = [e for e in events if not isinstance(e, TruthLabel) and e.instrument_id == inst.instrument_id]
    labels = tuple(e for e in events if isinstance(e, TruthLabel) and e.instrument_id == inst.instrument_id)
    return inst, market, labels, 1 if inst.profile == "large_tick" else 10


def matches(detection: Detection, label: TruthLabel, bin_ticks: int, slack_ns: int = 0) -> bool:
    """Same side, price range within one bin of the label's, and time overlap (the detection's
    ``[t_start, ts_recv]`` against the label's ``[t_start, t_end + slack]``)."""
    return (detection.side == label.side and detection.price_lo <= label.price_hi + bin_ticks
            and detection.price_hi >= label.price_lo - bin_ticks
            and detection.t_start <= label.t_end + slack_ns and detection.ts_recv >= label.t_start)


def score(found: list[Detection], labels, kind: int, bin_ticks: int, slack_ns: int = 0) -> tuple[int, int, int, int]:
    """``(labels, labels hit, detections, detections that hit a label)`` for labels of ``kind``."""
    planted = [lb for lb in labels if lb.kind == kind]
    hit = {i for d in found for i, lb in enumerate(planted) if matches(d, lb, bin_ticks, slack_ns)}
    good = sum(any(matches(d, lb, bin_ticks, slack_ns) for lb in planted) for d in found)
    return len(planted), len(hit), len(found), good


def reads_no_truth(module) -> bool:
    """The module imports nothing from the simulator and never names the truth labels."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            names |= {a.name for a in node.names}
    return not any(n.startswith("feeds") or n in ("TruthLabel", "TruthKind") for n in names) \
        and "TruthLabel" not in inspect.getsource(module)


__all__ = ["BUY", "INST", "MS", "NS", "T0", "Tape", "detections", "finite", "matches", "reads_no_truth", "score",
           "simulate"]
