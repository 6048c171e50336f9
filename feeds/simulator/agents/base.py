"""Life cycle shared by planted-episode agents: relative prices and sizes, marks, truth labels.

An ``EpisodeAgent`` lives on one instrument (``hooks.Agent``). Its life: an optional *watch* from
``start_s - lookback_s`` (samples the last trade every 100 ms to know the recent ``high``/``low``),
``start`` at ``start_s`` (or at its first wake), ``step`` at the wake times it asks for, and
``finish`` once its work is done, at ``max_s`` after the start, or at ``deadline`` (the end of the
session), whichever comes first. ``finish`` withdraws what the agent still has in the book and
emits its ``TruthLabel`` (or labels, sharing one episode id) with the measured facts; a latent-price
partner waiting for the episode's end is woken.

Prices are ``int`` ticks or expressions ``REF[+-N]`` resolved at the moment they are needed:
``bid``, ``ask``, ``mid`` (floor), ``last`` (last trade, else mid), ``high``/``low`` (extremes of the
watch), ``@name`` (the mark that the episode named ``name`` on the same instrument published when
it started: its main price; an episode referring to it starts only once it is set). Sizes are
``int`` lots or ``"<x>mo"``: x times the instrument's mean market-order size (so one preset fits
both instrument profiles).

Invariants: every order goes through the ``Venue`` (ordinary exchange events, tags stay inside the
simulator); an agent never wakes itself at a time that is not strictly later than now; ``finish``
runs once.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from engine.errors import ConfigError
from engine.events import Outcome

PRICE_PATTERN = r"^(bid|ask|mid|last|high|low|@[a-z][a-z0-9_]*)([+-][0-9]+)?$"
SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?mo$"
WATCH_DT = 0.1  # seconds between samples of the watch and between polls of busy agents
MARK_WAIT_S = 0.001  # an episode naming an @mark that is not set yet retries this often
EPS = 1e-6

_PRICE = re.compile(PRICE_PATTERN)
_SIZE = re.compile(SIZE_PATTERN)

Price = int | str
Size = int | str
Marks = dict[tuple[int, str], int]


def parse_price(expr: Price) -> tuple[str, int]:
    """``(reference, offset)`` of a price expression; an int is ``("", price)``."""
    if isinstance(expr, int):
        return "", expr
    m = _PRICE.match(expr)
    if m is None:
        raise ConfigError(f"bad price expression {expr!r} (expected e.g. 'bid', 'ask+2', 'high+1', '@run-1')")
    return m.group(1), int(m.group(2) or 0)


def check_size(size: Size) -> None:
    """Raise ``ConfigError`` unless ``size`` is a positive int or an ``"<x>mo"`` string."""
    if isinstance(size, int) and not isinstance(size, bool):
        if size <= 0:
            raise ConfigError(f"size {size} must be positive")
        return
    if not isinstance(size, str) or _SIZE.match(size) is None or float(size[:-2]) <= 0:
        raise ConfigError(f"bad size {size!r} (expected lots, e.g. 40, or mean market orders, e.g. '2.5mo')")


def resolve_size(venue: Any, size: Size) -> int:
    """Lots of a size (``"<x>mo"`` scales the venue's mean market-order size; at least 1 lot)."""
    if isinstance(size, int):
        return size
    return max(1, round(float(size[:-2]) * venue.mean_order_size))


def mid_price(venue: Any) -> int:
    """Floor of the current mid (ticks)."""
    return venue.book.mid2() // 2


def resolve_price(venue: Any, expr: Price, marks: Marks, high: int = 0, low: int = 0) -> int:
    """Ticks of a price expression on ``venue`` now (``high``/``low``: extremes of a watch, 0 = none)."""
    ref, offset = parse_price(expr)
    if ref == "":
        return offset
    book = venue.book
    if ref == "bid":
        base = book.best_bid
    elif ref == "ask":
        base = book.best_ask
    elif ref == "mid":
        base = mid_price(venue)
    elif ref.startswith("@"):
        key = (venue.instrument_id, ref[1:])
        if key not in marks:
            raise ConfigError(f"price {expr!r}: no episode named {ref[1:]!r} has started on instrument "
                              f"{venue.instrument_id} yet")
        base = marks[key]
    else:  # last, high, low
        extreme = high if ref == "high" else low if ref == "low" else 0
        base = extreme or venue.last_trade_price or mid_price(venue)
    return base + offset


class EpisodeAgent:
    """Base of the planted-episode agents (see the module docstring)."""

    kind: ClassVar[int] = -1  # TruthKind of the labels
    push: ClassVar[int] = 1  # +1: the episode pushes price toward ``side``; -1: against it

    def __init__(self, side: int, *, outcome: int = Outcome.NONE, max_s: float = 60.0, name: str = "",
                 marks: Marks | None = None, start_s: float | None = None, lookback_s: float = 0.0,
                 deadline: float = math.inf, scenario: str = "") -> None:
        if side not in (1, -1):
            raise ValueError(f"side must be +1 or -1, not {side!r}")
        self.side, self.outcome, self.max_s, self.name = side, int(outcome), max_s, name
        self.marks: Marks = marks if marks is not None else {}
        self.start_s, self.lookback_s, self.deadline, self.scenario = start_s, lookback_s, deadline, scenario
        self.high = self.low = 0
        self.t0: float | None = None
        self.t0_ns = self.t_end_ns = 0
        self.done = False
        self.reason = ""
        self.episode = 0
        self.partner: Any = None  # latent-price agent woken when this episode ends
        self.needs: tuple[str, ...] = ()  # marks the start waits for (see ``refer``)
        self.waiting_since: float | None = None

    @property
    def direction(self) -> int:
        """Sign of the price move the episode's aggressive flow pushes for."""
        return self.side * self.push

    # ---- hooks.Agent -----------------------------------------------------------------------------
    def on_wake(self, venue: Any) -> float | None:
        """Watch, start, step or finish, depending on the time; returns the next wake."""
        if self.done:
            return None
        now = venue.now
        if self.t0 is None:
            self._watch(venue)
            if self.start_s is not None and now < self.start_s - EPS:
                return min(now + WATCH_DT, self.start_s)
            if any((venue.instrument_id, name) not in self.marks for name in self.needs):
                if self.waiting_since is None:
                    self.waiting_since = now
                if now >= min(self.waiting_since + self.max_s, self.deadline):
                    self.done, self.reason = True, "no mark"  # what it refers to never started: no episode
                    return None
                return now + MARK_WAIT_S  # an episode this one refers to (@name) has not started yet
            self.t0, self.t0_ns = now, venue.now_ns
            nxt = self.start(venue)
        elif now >= self.t_stop - EPS:
            self.finish(venue, "timeout")
            return None
        else:
            nxt = self.step(venue)
        if self.done:
            return None
        stop = self.t_stop
        if nxt is None or nxt > stop:
            nxt = stop
        return nxt if nxt > now + EPS else now + EPS

    def on_fill(self, venue: Any, order_id: int, price: int, size: int) -> None:
        """A resting order of this agent was executed (passive agents override)."""

    @property
    def t_stop(self) -> float:
        """Latest end of the episode (start + ``max_s``, capped by the session deadline)."""
        return min((self.t0 or 0.0) + self.max_s, self.deadline)

    # ---- subclass interface ------------------------------------------------------------------------
    def start(self, venue: Any) -> float | None:
        """Begin the episode; returns the next wake (None: only at ``t_stop`` or when woken)."""
        return None

    def step(self, venue: Any) -> float | None:
        """A later wake; returns the next one."""
        return None

    def withdraw(self, venue: Any) -> None:
        """Remove what the agent still has in the market (called by ``finish``)."""

    def emit(self, venue: Any) -> None:
        """Emit the episode's truth label(s) (called by ``finish``)."""

    # ---- helpers -----------------------------------------------------------------------------------
    def finish(self, venue: Any, reason: str) -> None:
        """End the episode once: withdraw, label, wake the latent partner."""
        if self.done:
            return
        self.done, self.reason, self.t_end_ns = True, reason, venue.now_ns
        self.withdraw(venue)
        self.emit(venue)
        if self.partner is not None:
            venue.wake_at(self.partner, venue.now)

    def label(self, venue: Any, price_lo: int, price_hi: int, params: dict, t_start_ns: int | None = None,
              t_end_ns: int | None = None) -> int:
        """Emit one truth label of this episode (all labels of an episode share its id)."""
        params = dict(params)
        params["scenario"] = self.scenario
        params["end"] = self.reason
        if self.name:
            params["name"] = self.name
        self.episode = venue.label(self.kind, self.side, min(price_lo, price_hi), max(price_lo, price_hi),
                                   self.t0_ns if t_start_ns is None else t_start_ns,
                                   self.t_end_ns if t_end_ns is None else t_end_ns, params, self.outcome,
                                   self.episode)
        return self.episode

    def price(self, venue: Any, expr: Price) -> int:
        """Resolve a price expression now (ticks)."""
        return resolve_price(venue, expr, self.marks, self.high, self.low)

    def refer(self, *exprs: Price | None) -> None:
        """Declare the price expressions of this episode: its start waits for the marks they name."""
        self.needs = tuple(ref[1:] for ref, _ in (parse_price(e) for e in exprs if e is not None)
                           if ref.startswith("@"))

    def mark(self, venue: Any, price: int) -> None:
        """Publish this episode's main price under its name (for ``@name`` expressions)."""
        if self.name:
            self.marks[(venue.instrument_id, self.name)] = price

    def _watch(self, venue: Any) -> None:
        last = venue.last_trade_price or mid_price(venue)
        if self.high == 0 or last > self.high:
            self.high = last
        if self.low == 0 or last < self.low:
            self.low = last
