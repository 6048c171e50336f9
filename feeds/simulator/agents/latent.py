"""The latent fair price during an episode: it stays (pin), jumps, or jumps and reverts.

A ``LatentPlan`` describes what happens to the latent price ``X`` from the start of an episode:
- ``pin_s``: for this long ``X`` is held at its start value plus the plan's own move so far (the
  diffusion and the trades' impact are undone every 100 ms): "the latent price stays";
- ``jump`` ticks (signed) or ``to`` a price expression, applied ``jump_at`` seconds after the start
  (or at the ``"end"`` of the partner episode), spread linearly over ``ramp_s``; ``anchor`` moves the
  ranging regimes' mean-reversion anchor too, so a RANGE regime keeps the new level;
- ``revert_s``: after the jump, glide back to the start level over this long.

``LatentAgent`` carries a plan out through ``venue.shift_latent``. It wakes every 100 ms while it
pins, ramps or reverts, and otherwise only at the jump time (or when its partner ends). The order
flow follows ``X`` as usual: market-order and limit-order pulls toward ``X``, stale quotes
cancelled, so a pinned ``X`` makes a pushed price come back and a jump makes it travel.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import msgspec

from feeds.simulator.agents.base import (
    EPS,
    PRICE_PATTERN,
    WATCH_DT,
    EpisodeAgent,
    Marks,
    mid_price,
    parse_price,
    resolve_price,
)

LATENT_TO = "^$|" + PRICE_PATTERN  # empty, or a price expression
Seconds = Annotated[float, msgspec.Meta(ge=0.0)]


class LatentPlan(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What the latent price does during an episode (see the module docstring)."""

    pin_s: Seconds = 0.0  # hold X at its start value (plus the plan's move) this long
    jump: float = 0.0  # ticks, signed: move X by this much...
    to: Annotated[str, msgspec.Meta(pattern=LATENT_TO)] = ""  # ...or to this price (resolved at the jump time)
    jump_at: Seconds | Literal["end"] = 0.0  # seconds after the start, or "end" of the partner episode
    ramp_s: Seconds = 0.0  # spread the move linearly over this long
    revert_s: Seconds = 0.0  # then glide back to the start level over this long (0: the move stays)
    anchor: bool = True  # move the OU anchor of ranging regimes with the move

    @property
    def moves(self) -> bool:
        """True when the plan moves the latent price (a jump or a target)."""
        return bool(self.jump) or bool(self.to)


class LatentAgent:
    """Executes a ``LatentPlan`` on one instrument (a ``hooks.Agent``).

    ``partner`` is the episode whose end an ``"end"`` jump waits for; ``name`` (without a partner)
    publishes the mid at the start as a mark for later ``@name`` prices.
    """

    def __init__(self, plan: LatentPlan, partner: EpisodeAgent | None = None, marks: Marks | None = None,
                 deadline: float = math.inf, name: str = "") -> None:
        if plan.to:
            parse_price(plan.to)
        self.plan, self.partner, self.deadline, self.name = plan, partner, deadline, name
        self.marks: Marks = marks if marks is not None else {}
        self.t0: float | None = None
        self.x0 = 0.0
        self.applied = 0.0  # the plan's own offset applied so far (ticks)
        self.t_jump = 0.0
        self.size: float | None = None  # resolved move (ticks)

    def on_wake(self, venue: Any) -> float | None:
        """Apply the plan at this time; returns the next wake."""
        now = venue.now
        if self.t0 is None:
            self.t0, self.x0 = now, venue.latent_price
            if self.name:
                self.marks[(venue.instrument_id, self.name)] = mid_price(venue)
        self._resolve_jump(venue, now)
        target = self._offset(now)
        if target != self.applied:
            venue.shift_latent(target - self.applied, self.plan.anchor)
            self.applied = target
        pinned = now < self.t0 + self.plan.pin_s - EPS
        if pinned:
            venue.shift_latent(self.x0 + target - venue.latent_price)
        nxt = self._next(now, pinned)
        return nxt if nxt is not None and nxt < self.deadline else None

    def on_fill(self, venue: Any, order_id: int, price: int, size: int) -> None:
        """The latent agent has no orders."""

    def _resolve_jump(self, venue: Any, now: float) -> None:
        plan = self.plan
        if self.size is not None or not plan.moves:
            return
        if plan.jump_at == "end":
            if self.partner is None or not self.partner.done:
                return
        elif now < self.t0 + plan.jump_at - EPS:
            return
        self.t_jump = now
        if plan.to:
            high, low = (self.partner.high, self.partner.low) if self.partner is not None else (0, 0)
            self.size = resolve_price(venue, plan.to, self.marks, high, low) - venue.latent_price
        else:
            self.size = plan.jump

    def _offset(self, now: float) -> float:
        """The plan's offset of X from its start value at ``now``."""
        if self.size is None:
            return 0.0
        plan, dt = self.plan, now - self.t_jump
        if dt < plan.ramp_s:
            return self.size * dt / plan.ramp_s
        dt -= plan.ramp_s
        if plan.revert_s <= 0.0:
            return self.size
        if dt < plan.revert_s:
            return self.size * (1.0 - dt / plan.revert_s)
        return 0.0

    def _next(self, now: float, pinned: bool) -> float | None:
        """Next wake: every 100 ms while pinning, ramping or reverting; else the jump time (None: done)."""
        plan = self.plan
        if pinned:
            return now + WATCH_DT
        if self.size is not None:
            moving_until = self.t_jump + plan.ramp_s + max(plan.revert_s, 0.0)
            return now + WATCH_DT if now < moving_until - EPS else None
        if not plan.moves or plan.jump_at == "end":
            return None  # nothing left to do, or the partner wakes us when it ends
        return max(self.t0 + plan.jump_at, now + EPS)
