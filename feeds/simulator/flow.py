"""Order-flow ingredients: placement profile, sizes, lifetimes and metaorders (SPEC section 9).

- Placement: a limit order joins its own side at distance ``k = 1..K`` ticks behind the own best
  (``k = 1`` joins the best queue), ``w_k ~ k^0.5 exp(-k / k0)``; ``k`` values are pre-drawn.
- Lifetimes: a two-class mixture, fleeting (share ``fleeting_share``, mean ``fleeting_mean_s``) and
  patient (mean ``patient_mean_s`` divided by the regime cancel multiplier at placement). The stream
  encodes the class in the sign: a positive value is a fleeting lifetime in seconds, a negative one
  is minus a patient lifetime at unit cancel multiplier.
- Metaorders: Poisson arrivals, size ``Q = Q_min (1 + Pareto(alpha))`` capped at ``meta_cap`` of the
  daily volume, executed as child market orders (sizes from the market-order mixture) arriving as a
  Poisson stream whose volume rate is ``p / (1 - p)`` of the background market-order volume, with a
  participation ``p`` uniform in the configured range. ``MetaorderRecord`` keeps the diagnostics of the
  impact fact inside the simulator (never on the event stream), with the latent move during the
  metaorder that it did not cause (``exogenous``, zero-mean given its side: a control variate).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import numpy as np

from feeds.simulator.rng import stream


def placement_weights(k0: float, levels: int) -> np.ndarray:
    """Normalised hump profile ``w_k ~ k^0.5 exp(-k / k0)`` for ``k = 1..levels``."""
    k = np.arange(1, levels + 1, dtype=float)
    w = np.sqrt(k) * np.exp(-k / k0)
    return w / w.sum()


def placement_draw(rng: np.random.Generator, k0: float, levels: int) -> Callable[[int], np.ndarray]:
    """``draw(n)``: placement distances ``k`` (1 = the own best) from ``placement_weights``."""
    w = placement_weights(k0, levels)
    ks = np.arange(1, levels + 1, dtype=np.int64)
    return lambda n: rng.choice(ks, size=n, p=w)


def lifetime_draw(rng: np.random.Generator, fleeting_share: float, fleeting_mean: float,
                  patient_mean: float) -> Callable[[int], np.ndarray]:
    """``draw(n)``: signed lifetimes, ``> 0`` fleeting seconds, ``< 0`` minus a unit-multiplier patient one."""

    def draw(n: int) -> np.ndarray:
        e = rng.standard_exponential(n)
        fleeting = rng.random(n) < fleeting_share
        return np.where(fleeting, e * fleeting_mean, -e * patient_mean)

    return draw


def improvement_draw(rng: np.random.Generator, mean: float) -> Callable[[int], np.ndarray]:
    """``draw(n)``: in-spread improvements over the own best, geometric with the given mean (>= 1)."""
    p = 1.0 / max(1.0, mean)
    return lambda n: rng.geometric(p, n)


def latency_sampler(rng: np.random.Generator, mean_us: float, sd_us: float) -> Callable[[], int]:
    """Stream of lognormal feed latencies in integer ns with the given mean and standard deviation."""
    if sd_us <= 0.0:
        const = int(mean_us * 1000)
        return stream(lambda n: np.full(n, const, dtype=np.int64))
    s2 = np.log1p((sd_us / mean_us) ** 2)
    mu = np.log(mean_us) - s2 / 2

    def draw(n: int) -> np.ndarray:
        return (rng.lognormal(mu, np.sqrt(s2), n) * 1000.0).astype(np.int64)

    return stream(draw)


def latent_shock_draw(rng: np.random.Generator, rate: float, dt: float, share: float) -> Callable[[int], np.ndarray]:
    """``draw(n)``: unit-variance latent increments of one grid step, part diffusive, part jumps.

    ``share`` of the variance arrives as compound-Poisson jumps at ``rate`` per second (normal sizes),
    the rest as a Gaussian increment; the sum has variance 1 per step, so the latent variance is
    unchanged while returns become intermittent at horizons of a few ``1 / rate`` (fat tails).
    """
    lam = rate * dt

    def draw(n: int) -> np.ndarray:
        z = rng.standard_normal(n)
        if share <= 0.0 or lam <= 0.0:
            return z
        jumps = rng.standard_normal(n) * np.sqrt(rng.poisson(lam, n) / lam)
        return np.sqrt(1.0 - share) * z + np.sqrt(share) * jumps

    return draw


def mean_size(mix: tuple[tuple[int, float], ...]) -> float:
    """Mean of a size mixture."""
    total = sum(p for _, p in mix)
    return sum(v * p for v, p in mix) / total


class MetaorderRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Diagnostics of one metaorder (for the impact fact); times in ns, mids in half ticks."""

    instrument_id: int
    side: int
    size: int  # total size Q (lots)
    executed: int  # lots executed (< size when the session ended first)
    t_start: int
    t_end: int
    mid2_start: int
    mid2_end: int
    daily_volume: float  # the simulator's daily market-order volume estimate (lots)
    participation: float  # target participation rate
    children: int  # child market orders sent
    exogenous: float = 0.0  # latent move during the metaorder not caused by it (ticks): a control variate


class Metaorder:
    """A metaorder being executed: remaining size and the time of its next child."""

    __slots__ = ("side", "size", "executed", "t_start", "mid2_start", "rate", "t_next", "participation",
                 "children", "x_start", "own")

    def __init__(self, side: int, size: int, t_start: float, mid2_start: int, rate: float,
                 participation: float) -> None:
        self.side = side
        self.size = size
        self.executed = 0
        self.t_start = t_start
        self.mid2_start = mid2_start
        self.rate = rate  # child orders per second
        self.t_next = t_start
        self.participation = participation
        self.children = 0
        self.x_start = 0.0  # latent price at the start
        self.own = 0.0  # latent impact of this metaorder so far


def metaorder_size(rng: np.random.Generator, q_min: float, alpha: float, cap: float) -> int:
    """Draw ``Q = q_min (1 + Pareto(alpha))``, capped at ``cap``, at least 1 lot."""
    q = q_min * (1.0 + float(rng.pareto(alpha)))
    return max(1, int(min(q, cap)))
