"""Agent hook: how planted-episode agents act inside the simulator (interface only).

An ``Agent`` lives on one instrument and is driven by time. The simulator calls
``on_wake(venue)`` at the agent's scheduled times (the first one given by the scenario), in event
time order with the background flow; the agent acts through the ``Venue`` and returns its next wake
time (seconds since the session start, strictly later than ``venue.now``) or ``None`` to sleep until
woken by ``venue.wake_at``. When one of its resting orders is executed, ``on_fill(venue, order_id,
price, size)`` is called right after the market order's atomic event (all fills already applied).
An agent may also define ``on_stop(venue, stop_id, filled, price)``: called right after one of its
stops fired, with the lots its market order filled and the last fill price (optional, looked up by
name so the two-method protocol stays the minimum).

Everything an agent does is a normal exchange event on the stream (``OrderAdd``, ``OrderDelete``,
``OrderExecute``/``Trade``...): its orders are tagged inside the simulator (``tag``) and the tags never
leave it. Ground truth goes out only through ``venue.label`` (the truth channel).

``Venue`` (implemented by the simulator's per-instrument lane):

- ``instrument_id``, ``now`` (seconds since the session start), ``now_ns``, ``book`` (the matching
  ``OrderBook``; read it, never mutate it), ``last_trade_price`` (ticks, 0 before the first trade),
  ``latent_price`` (ticks, float), ``mean_order_size`` (lots: the mean background market order, the
  unit of relative sizes), ``rng`` (a generator reserved for agents of this instrument);
- ``limit(side, price, size, tag)`` rests a limit order; a price at or through the opposite best
  first executes as a marketable limit order up to ``price``; returns the order id of the resting
  remainder (0 when fully executed);
- ``market(side, size, tag)`` executes a market order, returns ``(filled lots, last fill price)``;
- ``cancel(order_id)`` fully cancels one of the agent's resting orders, False if it is gone;
- ``cancel_background(side, ticks)`` cancels every background (untagged) order of ``side`` within
  ``ticks`` of that side's best, returns the number cancelled;
- ``suppress_adds(side, ticks, duration_s)`` rejects background limit orders of ``side`` within
  ``ticks`` of that side's best (in-spread ones included) until ``now + duration_s``;
- ``boost_market_orders(side, factor, duration_s)`` multiplies that side's Hawkes baseline by
  ``factor`` until ``now + duration_s`` (bursts);
- ``stop(side, trigger, size, tag)`` arms a stop: a market order of ``size`` sent right after the
  first trade printed after arming at a price reaching ``trigger`` (buy stop: price >= trigger; sell
  stop: price <= trigger), at that trade's time; returns a stop id; ``cancel_stop(stop_id)`` disarms
  it;
- ``shift_latent(delta_ticks, anchor=False)`` moves the latent fair price (episode outcome: stay,
  revert, jump); ``anchor=True`` moves the ranging regimes' mean-reversion anchor with it, so a
  RANGE regime does not pull a permanent jump back;
- ``wake_at(agent, t)`` schedules an extra wake of ``agent`` at ``t`` seconds (>= ``now``);
- ``label(kind, side, price_lo, price_hi, t_start_ns, t_end_ns, params, outcome, episode)`` emits a
  ``TruthLabel`` (episode 0 draws a new episode id); returns the episode id.

A ``Scenario`` turns the instrument list into scheduled agents: ``agents(instruments, duration_s,
rng)`` returns ``(instrument_id, first_wake_s, agent)`` triples. A scenario that forces regimes also
has ``regime_chain(rng, dwell_scale)`` (``RegimeForcing``): the simulator then uses the chain it
returns (a ``regimes.RegimeChain`` whose ``advance`` applies the forced entries) as the shared one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import numpy as np

from engine.book import OrderBook
from engine.events import InstrumentDef
from feeds.simulator.regimes import RegimeChain


@runtime_checkable
class Venue(Protocol):
    """What an agent can see and do on its instrument (see the module docstring)."""

    instrument_id: int
    book: OrderBook
    rng: np.random.Generator

    @property
    def now(self) -> float: ...

    @property
    def now_ns(self) -> int: ...

    @property
    def last_trade_price(self) -> int: ...

    @property
    def latent_price(self) -> float: ...

    @property
    def mean_order_size(self) -> float: ...

    def limit(self, side: int, price: int, size: int, tag: str = "agent") -> int: ...

    def market(self, side: int, size: int, tag: str = "agent") -> tuple[int, int]: ...

    def cancel(self, order_id: int) -> bool: ...

    def cancel_background(self, side: int, ticks: int) -> int: ...

    def suppress_adds(self, side: int, ticks: int, duration_s: float) -> None: ...

    def boost_market_orders(self, side: int, factor: float, duration_s: float) -> None: ...

    def stop(self, side: int, trigger: int, size: int, tag: str = "agent") -> int: ...

    def cancel_stop(self, stop_id: int) -> bool: ...

    def shift_latent(self, delta_ticks: float, anchor: bool = False) -> None: ...

    def wake_at(self, agent: Agent, t: float) -> None: ...

    def label(self, kind: int, side: int, price_lo: int, price_hi: int, t_start_ns: int, t_end_ns: int,
              params: dict | None = None, outcome: int = 0, episode: int = 0) -> int: ...


@runtime_checkable
class Agent(Protocol):
    """A planted-episode actor on one instrument."""

    def on_wake(self, venue: Venue) -> float | None:
        """Act at a scheduled time; return the next wake time (s since the open) or None."""
        ...

    def on_fill(self, venue: Venue, order_id: int, price: int, size: int) -> None:
        """One of the agent's resting orders was executed for ``size`` lots at ``price``."""
        ...


@runtime_checkable
class Scenario(Protocol):
    """Source of the agents of one simulation."""

    def agents(self, instruments: list[InstrumentDef], duration_s: float,
               rng: np.random.Generator) -> Iterable[tuple[int, float, Agent]]:
        """``(instrument_id, first_wake_s, agent)`` for every agent of the run."""
        ...


@runtime_checkable
class RegimeForcing(Protocol):
    """A scenario that imposes regimes on the shared chain (optional part of a ``Scenario``)."""

    def regime_chain(self, rng: np.random.Generator, dwell_scale: float) -> RegimeChain:
        """The shared regime chain of the run, with the forced entries applied by its ``advance``."""
        ...
