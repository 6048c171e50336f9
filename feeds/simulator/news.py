"""News shocks (SPEC section 9): Poisson arrivals, Student-t jumps, and the liquidity vacuum they cause.

Market-wide news arrive at ``news_market_per_hour`` (one global generator) and move every
instrument by ``beta_i * J``; idiosyncratic news arrive at ``news_instrument_per_hour`` per instrument
(its own generator). ``J = sign |t_3| k_J sigma_60s`` with ``sigma_60s = sigma0 sqrt(60 s)`` in the
instrument's ticks; ``|t_3|`` is truncated at 3 (P(|t_3| > 3) = 5.8 %), because one untruncated draw
(|t_3| = 8 happens once in 200 news) moves the price by ~30 sigma_60s and then dominates every
moment estimate of a session (it alone set the ACF of |r_10s| to ~0 in a two-hour test session).

A shock puts the regime into SHOCK (market-wide: the shared chain; idiosyncratic: that instrument
only, for an exponential SHOCK dwell, after which it rejoins the shared regime), multiplies the
cancel hazard of orders within ``vacuum_ticks`` of both bests by ``vacuum_mult`` for a duration
uniform in ``vacuum_s``, and the SHOCK market-order multiplier decays from ``shock_mo_mult`` to 1 with
time constant ``shock_tau_s``.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np


class NewsShock(msgspec.Struct, frozen=True):
    """One news arrival: direction and the unit jump ``|t_3|`` (scaled per instrument)."""

    t: float
    sign: int
    magnitude: float


def next_arrival(rng: np.random.Generator, t: float, per_hour: float) -> float:
    """Time of the next Poisson arrival after ``t`` (``inf`` when the rate is 0)."""
    if per_hour <= 0.0:
        return math.inf
    return t + float(rng.exponential(3600.0 / per_hour))


def draw_shock(rng: np.random.Generator, t: float, cap: float = 3.0) -> NewsShock:
    """Direction (fair coin) and ``|t_3|`` magnitude (truncated at ``cap``) of a news shock at ``t``."""
    sign = 1 if rng.random() < 0.5 else -1
    return NewsShock(t, sign, min(cap, abs(float(rng.standard_t(3)))))


def jump_ticks(shock: NewsShock, kj: float, sigma0: float, scale: float = 1.0) -> float:
    """Latent jump in ticks: ``scale * sign * |t3| * k_J * sigma0 * sqrt(60)``."""
    return scale * shock.sign * shock.magnitude * kj * sigma0 * math.sqrt(60.0)
