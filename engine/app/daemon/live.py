"""What the daemon's readers see of a running pipeline: taps around the stage cores and bounded rings.

A ``Tap`` wraps one stage core (same ``apply``/``flush``/``take_records``; every other attribute is
the core's): it stamps the wall time of each batch the stage handles (``/readyz`` staleness) and
hands the rows the core produced to ``LiveView.observe`` on their way to the store, so the API sees
exactly what is persisted: trades, detections, signals with their risk decision, orders, fills and
equity. Every history is a ``deque`` with a fixed ``maxlen``: memory does not grow with the session.

Tick-to-signal latency: the market tap stamps the wall time at which it started the batch that
produced each sample; the signals tap measures, for each signal, the wall time since the batch that
produced its sample entered the market stage (one bounded map, oldest entries evicted).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from engine.events import InstrumentDef

LATENCY_WINDOW = 4096  # tick-to-signal samples kept
PENDING_SAMPLES = 8192  # samples awaiting a possible signal (oldest dropped)


class InstrumentLive:
    """The bounded history of one instrument."""

    def __init__(self, definition: InstrumentDef, history: int) -> None:
        self.definition = definition
        self.trades: deque[tuple] = deque(maxlen=history)
        self.detections: deque[tuple] = deque(maxlen=history)
        self.signals: deque[tuple] = deque(maxlen=history)
        self.fills: deque[tuple] = deque(maxlen=history)
        self.last_ts = 0


class LiveView:
    """Bounded rings of what the pipeline persisted, per instrument, plus counters for the metrics."""

    def __init__(self, instruments: list[InstrumentDef], history: int, now: Callable[[], float] = time.monotonic):
        self.now = now
        self.history = history
        self.by_id: dict[int, InstrumentLive] = {}
        self.by_symbol: dict[str, InstrumentLive] = {}
        self.reset(instruments)
        self.signals_by_strategy: dict[tuple[str, str], int] = {}  # (strategy, decision) -> count
        self.fills_by_strategy: dict[str, int] = {}
        self.order_strategy: OrderedDict[str, str] = OrderedDict()  # client id -> strategy (bounded)
        self.events = 0
        self.stage_seen: dict[str, float] = {}  # stage key -> wall time of its last batch
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.pending: OrderedDict[tuple[int, int], float] = OrderedDict()
        self.equity: float | None = None
        self.equity_peak: float | None = None
        self.stream_clients = 0  # dashboard clients connected
        self.stream_frames = 0  # dashboard frames sent

    def reset(self, instruments: list[InstrumentDef]) -> None:
        """A new session's instruments (the history of a symbol that stays is kept)."""
        keep = self.by_symbol
        self.by_id, self.by_symbol = {}, {}
        for d in instruments:
            live = keep.get(d.symbol) or InstrumentLive(d, self.history)
            live.definition = d
            self.by_id[d.instrument_id] = live
            self.by_symbol[d.symbol] = live

    def observe(self, rows: list[tuple[str, tuple]]) -> None:
        """Rows on their way to the store (``(table, row)`` in ``engine.records.TABLES`` order)."""
        for table, row in rows:  # orders first: a fill is counted for its order's strategy
            if table == "orders":
                self._order(row)
        for table, row in rows:
            handler = self._handlers.get(table)
            if handler is not None:
                handler(self, row)

    def _trade(self, row: tuple) -> None:
        live = self.by_id.get(row[0])
        if live is not None:
            live.trades.append(row)
            live.last_ts = row[3]

    def _detection(self, row: tuple) -> None:
        live = self.by_id.get(row[1])
        if live is not None:
            live.detections.append(row)

    def _signal(self, row: tuple) -> None:
        key = (row[4], row[14])
        self.signals_by_strategy[key] = self.signals_by_strategy.get(key, 0) + 1
        live = self.by_id.get(row[1])
        if live is not None:
            live.signals.append(row)

    def _order(self, row: tuple) -> None:
        self.order_strategy[row[0]] = row[9]
        while len(self.order_strategy) > LATENCY_WINDOW:
            self.order_strategy.popitem(last=False)

    def _fill(self, row: tuple) -> None:
        strategy = self.order_strategy.get(row[0], "")
        self.fills_by_strategy[strategy] = self.fills_by_strategy.get(strategy, 0) + 1
        live = self.by_id.get(row[2])
        if live is not None:
            live.fills.append(row)

    def _equity(self, row: tuple) -> None:
        self.note_equity(row[6])

    def note_equity(self, equity: float) -> None:
        """The latest total equity (the drawdown is measured from its running peak)."""
        self.equity = equity
        self.equity_peak = equity if self.equity_peak is None else max(self.equity_peak, equity)

    @property
    def drawdown(self) -> float:
        """Fraction below the equity peak (0 at a new peak, 0 before the first fill)."""
        if not self.equity or not self.equity_peak:
            return 0.0
        return max(0.0, 1.0 - self.equity / self.equity_peak)

    _handlers: dict[str, Callable[[LiveView, tuple], None]] = {
        "trades": _trade, "detections": _detection, "signals": _signal, "fills": _fill,
        "equity": _equity,
    }

    def sample_started(self, samples: list, started: float) -> None:
        """The market stage produced ``samples`` from a batch it started at wall time ``started``."""
        pending = self.pending
        for sample in samples:
            pending[(sample.instrument_id, sample.seq)] = started
        while len(pending) > PENDING_SAMPLES:
            pending.popitem(last=False)

    def signals_emitted(self, signals: list) -> None:
        now = self.now()
        for signal in signals:
            started = self.pending.pop((signal.instrument_id, signal.seq), None)
            if started is not None:
                self.latencies.append(now - started)


class Tap:
    """A stage core as the pipeline sees it, with the daemon's observation added."""

    def __init__(self, key: str, core, live: LiveView, role: str = "") -> None:
        self.key = key
        self.core = core
        self.live = live
        self.role = role

    def __getattr__(self, name: str):
        return getattr(self.core, name)

    def apply(self, batch: list) -> list:
        live = self.live
        started = live.now()
        live.stage_seen[self.key] = started
        out = self.core.apply(batch)
        if self.role == "market":
            live.events += len(batch)
            if out:
                live.sample_started(out, started)
        elif self.role == "signals" and out:
            live.signals_emitted(out)
        return out

    def flush(self) -> list:
        return self.core.flush()

    def take_records(self) -> list:
        take = getattr(self.core, "take_records", None)
        if take is None:
            return []
        rows = take()
        if rows:
            self.live.observe(rows)
        return rows


def tap_pipeline(pipeline, live: LiveView) -> None:
    """Wrap every lane and portfolio core of ``pipeline`` (before it runs) in a ``Tap``."""
    for lane in pipeline.lanes:
        lane.stages[:] = [(name, Tap(f"{lane.symbol}/{name}", core, live, name)) for name, core in lane.stages]
    pipeline.portfolio[:] = [(name, Tap(name, core, live, name)) for name, core in pipeline.portfolio]
