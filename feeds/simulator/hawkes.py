"""Bivariate (buy, sell) Hawkes process with a two-exponential kernel, simulated by Ogata thinning.

Intensity of side i: ``lambda_i(t) = mu_i + n * sum_j c_ij sum_k phi(t - t_k^j)`` with
``phi(t) = w1 b1 e^{-b1 t} + (1 - w1) b2 e^{-b2 t}`` (unit integral), ``c_ii = c_self``,
``c_ij = c_cross``; with ``c_self + c_cross = 1`` each row's branching ratio is ``n`` and the
stationary rate per side is ``mu / (1 - n)`` for a symmetric baseline.

Because the kernel is a sum of exponentials the whole history is four numbers (one per side and
kernel component), decayed lazily: O(1) per event. ``next_event`` proposes the next event by
thinning under a bound that is valid because, with the baseline held constant, the intensity only
decays between events; it does not change the state, so the caller may discard the proposal when
something else (a baseline change, an outside market order) happens first. ``excite`` records an
event. The branching ratio is read at proposal time, so a regime change rescales the excitation of
past events too (a documented approximation).
"""

from __future__ import annotations

import math
from collections.abc import Callable

INF = math.inf


class Hawkes:
    """State of one instrument's bivariate market-order Hawkes process."""

    __slots__ = ("b1", "b2", "j1", "j2", "c_self", "c_cross", "s1b", "s2b", "s1s", "s2s", "t")

    def __init__(self, beta1: float = 10.0, beta2: float = 0.2, w1: float = 0.6, c_self: float = 0.8,
                 c_cross: float = 0.2) -> None:
        self.b1 = beta1
        self.b2 = beta2
        self.j1 = w1 * beta1  # jump of the fast component per event (kernel value at 0)
        self.j2 = (1.0 - w1) * beta2
        self.c_self = c_self
        self.c_cross = c_cross
        self.s1b = self.s2b = self.s1s = self.s2s = 0.0
        self.t = 0.0

    def _decayed(self, t: float) -> tuple[float, float]:
        """Excitation sums ``(buy events, sell events)`` at time ``t`` (no state change)."""
        d = t - self.t
        e1 = math.exp(-self.b1 * d)
        e2 = math.exp(-self.b2 * d)
        return self.s1b * e1 + self.s2b * e2, self.s1s * e1 + self.s2s * e2

    def intensities(self, t: float, mu_b: float, mu_s: float, n: float) -> tuple[float, float]:
        """``(lambda_buy, lambda_sell)`` at time ``t``."""
        ab, as_ = self._decayed(t)
        cs, cc = self.c_self * n, self.c_cross * n
        return mu_b + cs * ab + cc * as_, mu_s + cs * as_ + cc * ab

    def next_event(self, t: float, t_end: float, mu_b: float, mu_s: float, n: float,
                   exp_draw: Callable[[], float], unif_draw: Callable[[], float]) -> tuple[float, int]:
        """Next accepted event ``(time, side)`` after ``t`` and before ``t_end``, else ``(inf, 0)``."""
        b1, b2 = self.b1, self.b2
        cs, cc = self.c_self * n, self.c_cross * n
        s1b, s2b, s1s, s2s, t0 = self.s1b, self.s2b, self.s1s, self.s2s, self.t
        exp = math.exp
        d = t - t0
        e1, e2 = exp(-b1 * d), exp(-b2 * d)
        ab, as_ = s1b * e1 + s2b * e2, s1s * e1 + s2s * e2
        bound = mu_b + mu_s + (cs + cc) * (ab + as_)
        while bound > 0.0:
            t += exp_draw() / bound
            if t >= t_end:
                break
            d = t - t0
            e1, e2 = exp(-b1 * d), exp(-b2 * d)
            ab, as_ = s1b * e1 + s2b * e2, s1s * e1 + s2s * e2
            lb = mu_b + cs * ab + cc * as_
            total = lb + mu_s + cs * as_ + cc * ab
            u = unif_draw() * bound
            if u <= total:
                return t, (1 if u < lb else -1)
            bound = total
        return INF, 0

    def excite(self, t: float, side: int) -> None:
        """Record a market order of ``side`` at time ``t`` (t never before the last recorded time)."""
        d = t - self.t
        e1 = math.exp(-self.b1 * d)
        e2 = math.exp(-self.b2 * d)
        if side > 0:
            self.s1b = self.s1b * e1 + self.j1
            self.s2b = self.s2b * e2 + self.j2
            self.s1s *= e1
            self.s2s *= e2
        else:
            self.s1b *= e1
            self.s2b *= e2
            self.s1s = self.s1s * e1 + self.j1
            self.s2s = self.s2s * e2 + self.j2
        self.t = t
