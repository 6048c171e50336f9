"""Realised volatility at several horizons (SPEC F10), from the mids of the bar-close samples.

Returns ``r = m_t - m_{t-h}`` (ticks) are taken at the TF1 closes that fall on a multiple of ``h``
seconds (aligned to the epoch, so h = 10 and 60 are the TF2 and TF3 closes), from the carried usable
mid (engine/features/series.py). Per horizon and window W:

- ``rv_{h}s_{W}`` = ``sqrt(mean r^2) / sqrt(h)`` over the last W/h returns, ticks per sqrt(second);
- ``rv_bps_{h}s_{W}``: the same from log mids, ``r = 1e4 ln(m_t / m_{t-h})``, bps per sqrt(second);
- ``rv_ewma_{h}s`` / ``rv_bps_ewma_{h}s``: ``sigma^2_t = lam sigma^2_{t-1} + (1 - lam) r^2`` with a
  half-life of 5 min, bias-corrected over the returns seen;
- ``sigma1 = rv_60s_{60m} * sqrt(60)``: the typical 1-minute move in ticks (every strategy's buffer);
- ``vol_ratio_{S}_{L} = rv_1s_S / rv_1s_L`` (VR, e.g. 5 min / 60 min), on the shortest horizon;
- ``jump_count``: returns of the shortest horizon with ``|r| > 4 sigma`` in the last 5 min, sigma the
  rms of that horizon's returns over the hour *before* the return (causal); ``shock_jump_count``
  the same with 6 sigma in the last 60 s (the SHOCK regime rule).

A window's value is 0 until it holds ``min_returns`` returns; ``rv_ready_{W}`` is 1 once the series
spans W for every horizon; ``sigma1_ready`` and ``vol_ratio_ready`` likewise. Returns are not
demeaned (rms), as SPEC defines sigma. Work: O(windows) at each TF1 close, nothing per event.
"""

from __future__ import annotations

import math
from collections import deque

from engine.config.features import VolatilityParams
from engine.features.bars import NS, TF1
from engine.features.sample import Sample
from engine.features.sampled import SampleFeature
from engine.features.series import REFRESH, CarriedMid, span_name


class _Horizon:
    """Returns of one horizon: rolling sums of r^2 (half ticks^2, exact) and r_bps^2 over each window,
    their mean squares, and the EWMAs (bias-corrected)."""

    __slots__ = ("h", "step", "windows", "lengths", "size", "ring", "ring_bps", "pos", "n", "totals", "totals_bps",
                 "mean2", "mean2_bps", "decay", "ewma", "ewma_bps", "ewma_weight", "prev", "root", "outputs",
                 "ewma_names")

    def __init__(self, h: int, windows_s: tuple[int, ...], named_s: tuple[int, ...], half_life_s: float) -> None:
        self.h = h
        self.step = h * NS
        self.windows = windows_s
        self.lengths = [w // h for w in windows_s]  # window lengths in returns
        self.size = max(self.lengths)
        self.ring = [0] * self.size
        self.ring_bps = [0.0] * self.size
        self.pos = 0
        self.n = 0
        self.totals = [0] * len(windows_s)
        self.totals_bps = [0.0] * len(windows_s)
        self.mean2 = [0.0] * len(windows_s)  # mean r^2 (half ticks^2) of each window, 0 below min_returns
        self.mean2_bps = [0.0] * len(windows_s)
        self.decay = 0.5 ** (h / half_life_s)
        self.ewma = self.ewma_bps = self.ewma_weight = 0.0
        self.prev: int | None = None  # carried mid2 at the previous boundary of this horizon
        self.root = math.sqrt(h)
        self.outputs = [(windows_s.index(w), f"rv_{h}s_{span_name(w)}", f"rv_bps_{h}s_{span_name(w)}")
                        for w in named_s]
        self.ewma_names = (f"rv_ewma_{h}s", f"rv_bps_ewma_{h}s")

    def add(self, d2: int, b2: float, min_returns: int) -> None:
        """One return: ``d2`` its square in half ticks^2, ``b2`` in bps^2."""
        ring, ring_bps, pos, n = self.ring, self.ring_bps, self.pos, self.n
        totals, totals_bps, mean2, mean2_bps = self.totals, self.totals_bps, self.mean2, self.mean2_bps
        for i, length in enumerate(self.lengths):
            if n >= length:  # the return leaving the window is ``length`` places back (a negative index wraps)
                totals[i] += d2 - ring[pos - length]
                totals_bps[i] += b2 - ring_bps[pos - length]
                held = length
            else:
                totals[i] += d2
                totals_bps[i] += b2
                held = n + 1
            if not totals[i]:  # every return in the window is zero (exact in half ticks): drop float residue
                totals_bps[i] = 0.0
            if held >= min_returns:
                mean2[i], mean2_bps[i] = totals[i] / held, max(totals_bps[i], 0.0) / held
        ring[pos], ring_bps[pos] = d2, b2
        self.pos = pos + 1 if pos + 1 < self.size else 0
        self.n = n + 1
        if self.n % REFRESH == 0:  # float sums: recompute from the ring now and then
            for i, length in enumerate(self.lengths):
                held = min(self.n, length)
                totals_bps[i] = math.fsum(ring_bps[(self.pos - k - 1) % self.size] for k in range(held))
        decay = self.decay
        self.ewma = decay * self.ewma + (1.0 - decay) * d2
        self.ewma_bps = decay * self.ewma_bps + (1.0 - decay) * b2
        self.ewma_weight = decay * self.ewma_weight + (1.0 - decay)

    def full(self, window_s: int) -> bool:
        return self.n >= window_s // self.h


class RealisedVolatility(SampleFeature):
    """F10 over the bar-close samples of one instrument."""

    def __init__(self, params: VolatilityParams | None = None) -> None:
        p = self.params = params or VolatilityParams()
        base = self.base = min(p.horizons_s)
        base_windows = tuple(sorted({*p.windows_s, *(w for pair in p.ratio_windows_s for w in pair),
                                     p.jump_sigma_window_s}))
        self.horizons = [_Horizon(h, base_windows if h == base else tuple(sorted(p.windows_s)), tuple(p.windows_s),
                                  p.ewma_half_life_s) for h in sorted(p.horizons_s)]
        first = self.horizons[0]
        self.ratios = [(first.windows.index(short), first.windows.index(long), long // base,
                        f"vol_ratio_{span_name(short)}_{span_name(long)}") for short, long in p.ratio_windows_s]
        self.jump_index = first.windows.index(p.jump_sigma_window_s)
        self.jump_min = 12 * p.min_returns
        self.jump2, self.shock2 = p.jump_sigmas ** 2, p.shock_sigmas ** 2
        self.jump_window, self.shock_window = p.jump_window_s * NS, p.shock_window_s * NS
        self.sigma1 = next(h for h in self.horizons if h.h == p.sigma1_horizon_s)
        self.sigma1_name = f"rv_{p.sigma1_horizon_s}s_{span_name(p.sigma1_window_s)}"
        self.mid = CarriedMid()
        self.jumps: deque[int] = deque()
        self.shocks: deque[int] = deque()
        self.ready = False
        self.out: dict[str, float] = {}
        for horizon in self.horizons:
            for _, ticks, bps in horizon.outputs:
                self.out[ticks] = self.out[bps] = 0.0
            self.out.update(dict.fromkeys(horizon.ewma_names, 0.0))
        self.out.update({f"rv_ready_{span_name(w)}": 0.0 for w in p.windows_s})
        self.out.update({name: 0.0 for *_, name in self.ratios})
        self.out.update(vol_ratio_ready=0.0, sigma1=0.0, sigma1_ready=0.0, jump_count=0.0, shock_jump_count=0.0)

    def on_sample(self, sample: Sample) -> None:
        if not sample.frames & TF1:
            return  # bar feature: values hold between closes
        mid2 = self.mid.update(sample.view)
        if mid2 is None:
            return
        ts = sample.ts_recv
        for horizon in self.horizons:
            if ts % horizon.step == 0:
                self._on_boundary(horizon, ts, mid2)
        if not self.ready:
            self._readiness()

    def _on_boundary(self, horizon: _Horizon, ts: int, mid2: int) -> None:
        prev, horizon.prev = horizon.prev, mid2
        if prev is None:
            return
        d = mid2 - prev
        r_bps = 1e4 * math.log(mid2 / prev)
        base = horizon.h == self.base
        if base:
            self._test_jump(horizon, ts, d)
        horizon.add(d * d, r_bps * r_bps, self.params.min_returns)
        out, root = self.out, horizon.root
        ticks_name, bps_name = horizon.ewma_names
        weight = horizon.ewma_weight
        out[ticks_name] = math.sqrt(horizon.ewma / weight) / 2 / root
        out[bps_name] = math.sqrt(horizon.ewma_bps / weight) / root
        mean2, mean2_bps = horizon.mean2, horizon.mean2_bps
        for index, ticks_name, bps_name in horizon.outputs:
            out[ticks_name] = math.sqrt(mean2[index]) / 2 / root
            out[bps_name] = math.sqrt(mean2_bps[index]) / root
        if base:
            n = horizon.n
            for short, long, length, name in self.ratios:
                high = mean2[long]
                out[name] = math.sqrt(mean2[short] / high) if high > 0 and n >= length else 0.0
        if horizon is self.sigma1:
            out["sigma1"] = out[self.sigma1_name] * root

    def _test_jump(self, horizon: _Horizon, ts: int, d: int) -> None:
        n = min(horizon.n, horizon.lengths[self.jump_index])
        if n >= self.jump_min and d:
            sigma2 = horizon.totals[self.jump_index] / n  # half ticks^2, the returns before this one
            if sigma2 > 0:
                ratio2 = d * d / sigma2
                if ratio2 > self.jump2:
                    self.jumps.append(ts)
                if ratio2 > self.shock2:
                    self.shocks.append(ts)
        jumps, shocks = self.jumps, self.shocks
        while jumps and jumps[0] <= ts - self.jump_window:
            jumps.popleft()
        while shocks and shocks[0] <= ts - self.shock_window:
            shocks.popleft()
        self.out["jump_count"] = float(len(jumps))
        self.out["shock_jump_count"] = float(len(shocks))

    def _readiness(self) -> None:
        p, out = self.params, self.out
        for w in p.windows_s:
            out[f"rv_ready_{span_name(w)}"] = 1.0 if all(h.full(w) for h in self.horizons) else 0.0
        out["sigma1_ready"] = 1.0 if self.sigma1.full(p.sigma1_window_s) else 0.0
        out["vol_ratio_ready"] = 1.0 if all(self.horizons[0].full(long) for _, long in p.ratio_windows_s) else 0.0
        self.ready = all(out[f"rv_ready_{span_name(w)}"] for w in p.windows_s) and bool(
            out["sigma1_ready"] and out["vol_ratio_ready"])

    def values(self) -> dict[str, float]:
        """Current values (the mapping is this feature's own: copy it to keep it past the next sample)."""
        return self.out
