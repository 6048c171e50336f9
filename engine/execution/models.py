"""The swappable execution models (SPEC section 10): fees, latency and the L2 queue-position model.

Each sits behind a small Protocol and is chosen by name in ``[execution]``; each lists its
assumptions in its docstring. The conservative choices are the defaults: fees charged on every
fill, lognormal jitter on top of the configured latencies, and a queue model that never moves us
forward on depth increases.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from engine.events import Liquidity

# ---- fees -------------------------------------------------------------------------------------------


class FeeModel(Protocol):
    def fee(self, price: int, size: int, liquidity: int) -> float:
        """Fee in currency units for one fill of ``size`` lots at ``price`` ticks (negative = rebate)."""
        ...

    def order_fee(self) -> float:
        """Fixed fee per order sent (charged once, on the order's first fill)."""
        ...


class PerLotFees:
    """Fees per lot (shares, contracts), by liquidity.

    Assumptions: the maker rate applies to every passive fill (negative = rebate), the taker rate to
    every aggressive one; tiers, caps and exchange/clearing splits are folded into the two rates; the
    fixed per-order fee is charged on the order's first fill only (an unfilled order costs nothing).
    """

    def __init__(self, maker_per_lot: float, taker_per_lot: float, per_order: float = 0.0) -> None:
        self.maker = maker_per_lot
        self.taker = taker_per_lot
        self.per_order = per_order

    def fee(self, price: int, size: int, liquidity: int) -> float:
        return size * (self.taker if liquidity == Liquidity.TAKER else self.maker)

    def order_fee(self) -> float:
        return self.per_order


class BpsFees:
    """Fees in basis points of notional (``price * size * tick_value``), by liquidity.

    Assumptions: as ``PerLotFees``, with the rate proportional to the traded value (crypto and
    some futures venues); the fixed per-order fee is charged on the first fill.
    """

    def __init__(self, maker_bps: float, taker_bps: float, tick_value: float, per_order: float = 0.0) -> None:
        self.maker = maker_bps * 1e-4
        self.taker = taker_bps * 1e-4
        self.tick_value = tick_value
        self.per_order = per_order

    def fee(self, price: int, size: int, liquidity: int) -> float:
        rate = self.taker if liquidity == Liquidity.TAKER else self.maker
        return rate * price * size * self.tick_value

    def order_fee(self) -> float:
        return self.per_order


# ---- latency ------------------------------------------------------------------------------------------


class LatencyModel(Protocol):
    def entry(self) -> int:
        """Order entry latency, ns: local decision time to exchange arrival."""
        ...

    def response(self) -> int:
        """Response latency, ns: exchange event (ack, fill, cancel) to local receipt."""
        ...


class ConstantLatency:
    """Fixed entry and response latencies (hftbacktest ``ConstantLatency``).

    Assumptions: no queueing in the gateway, the same delay for every order and message; feed
    latency is whatever the data says (``ts_recv - ts_event``) and decision latency is added by the
    risk stage.
    """

    def __init__(self, entry_ns: int, response_ns: int) -> None:
        self.entry_ns = entry_ns
        self.response_ns = response_ns

    def entry(self) -> int:
        return self.entry_ns

    def response(self) -> int:
        return self.response_ns


class LognormalLatency:
    """Entry and response latencies with lognormal jitter around their configured means.

    Assumptions: each draw is independent, lognormal with the given mean and a log-space standard
    deviation ``sigma`` (so the median is ``mean * exp(-sigma^2 / 2)`` and a slow tail exists);
    draws come from a seeded generator in the canonical order of the orders, so a run is
    reproducible; messages are not reordered by jitter beyond what their times imply.
    """

    def __init__(self, entry_ns: int, response_ns: int, sigma: float, rng: np.random.Generator) -> None:
        self.sigma = sigma
        self.rng = rng
        self.mu_entry = math.log(entry_ns) - sigma * sigma / 2
        self.mu_response = math.log(response_ns) - sigma * sigma / 2

    def entry(self) -> int:
        return max(1, int(self.rng.lognormal(self.mu_entry, self.sigma)))

    def response(self) -> int:
        return max(1, int(self.rng.lognormal(self.mu_response, self.sigma)))


# ---- L2 queue position --------------------------------------------------------------------------------


class QueuePosition:
    """Our resting order's place in an L2 level: lots in ``front`` of us and the level size last seen."""

    __slots__ = ("front", "level", "traded")

    def __init__(self, front: int, level: int) -> None:
        self.front = float(front)
        self.level = level
        self.traded = 0  # lots traded at our price since the last depth update


class QueueModel(Protocol):
    def on_trade(self, position: QueuePosition, size: int) -> None:
        """A print of ``size`` lots at our price."""
        ...

    def on_depth(self, position: QueuePosition, new_size: int) -> None:
        """Our level's displayed size changed to ``new_size`` (after any trades already counted)."""
        ...


class ProbQueueModel:
    """hftbacktest's ``ProbQueueModel`` with ``f(x) = x^n`` (SPEC section 10, L2 data only).

    Assumptions: a trade of q at our price removes q from the front; a depth decrease Δ net of the
    trades since the last update is a cancel that came from behind us with probability
    ``f(back) / (f(back) + f(front))``; depth increases join behind us and never move us forward;
    we are filled by ``-front`` once it goes negative (the caller caps that by what traded there).
    """

    def __init__(self, power: float = 2.0) -> None:
        self.power = power

    def on_trade(self, position: QueuePosition, size: int) -> None:
        position.front -= size
        position.traded += size

    def on_depth(self, position: QueuePosition, new_size: int) -> None:
        change = new_size - position.level
        if change < 0:
            delta = -change - position.traded  # net of the trades already counted
            if delta > 0 and position.front > 0:
                front = position.front
                back = max(0.0, position.level - front)
                fb, ff = back ** self.power, front ** self.power
                prob = fb / (fb + ff) if fb + ff > 0 else 1.0
                front = front - (1 - prob) * delta + min(back - prob * delta, 0.0)
                position.front = min(front, float(new_size))
        position.level = new_size
        position.traded = 0


class RiskAverseQueueModel:
    """Conservative L2 queue model: only trades at our price move us forward (hftbacktest
    ``RiskAverseQueueModel``).

    Assumptions: every cancel at our level came from behind us; the front never exceeds the
    level's displayed size.
    """

    def on_trade(self, position: QueuePosition, size: int) -> None:
        position.front -= size
        position.traded += size

    def on_depth(self, position: QueuePosition, new_size: int) -> None:
        position.front = min(position.front, float(new_size))
        position.level = new_size
        position.traded = 0
