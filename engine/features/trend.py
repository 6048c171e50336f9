"""Trend strength (SPEC F13 a-c), from the carried usable mids of the bar-close samples.

(a) Drift t-statistic over W on TF2 closes: ``t_drift = (m_t - m_{t-W}) / (sigma * sqrt(n))`` with n
    = W / 10 s and sigma the sample standard deviation (n - 1) of the n TF2 mid changes in W: N(0, 1)
    under a driftless random walk, so thresholds mean the same on every instrument. W = 5, 20 min:
    ``t_drift_5m``, ``t_drift_20m``. Per timeframe, for the confluence of SPEC 4.1, the same statistic
    over the last 30 bars of TF1, TF2 and TF3: ``t_drift_tf1`` (30 s), ``t_drift_tf2`` (5 min),
    ``t_drift_tf3`` (30 min), each updated at its own closes.
(b) Kaufman efficiency ratio on TF2 closes ``ER = |m_t - m_{t-n}| / sum |dm|`` in [0, 1] (0 when the
    mid did not move): ``efficiency_ratio_5m``, ``efficiency_ratio_20m``.
(c) t-statistic of the OLS slope of mid on time over the n + 1 TF2 closes of W: ``trend_t_5m``,
    ``trend_t_20m``. A feature only: on a random walk it grows like sqrt(n) (spurious regression), so
    it must never be thresholded absolutely.

Each value is 0 until its window is full (``trend_ready_5m`` ..., ``t_drift_tf1_ready`` ...). A
straight line has zero spread of changes (or residuals): sigma is floored at ``sigma_floor_ticks``
so the statistics stay finite. (d) trend scanning builds forward-looking training labels only and
lives with the labels, not here.

Work: (a) and (b) O(1) a close from running sums of (dm, dm^2, |dm|) in half ticks (exact integers);
(c) O(n) at TF2 closes (n <= 120), exact integer sums.
"""

from __future__ import annotations

import math
from collections import deque

from engine.config.features import TrendParams
from engine.features.bars import TF1, TF2, TF3
from engine.features.sample import Sample
from engine.features.sampled import SampleFeature
from engine.features.series import CarriedMid, RollingSums, span_name

TF2_S = 10


def drift_t(total: int, squares: int, n: int, floor2: float) -> float:
    """``total / (sigma sqrt(n))`` from the sum and sum of squares of n changes (sigma with n - 1)."""
    variance = (squares - total * total / n) / (n - 1)
    return total / math.sqrt(max(variance, floor2) * n)


def ols_t(mids: list[int], floor2: float) -> float:
    """t-statistic of the OLS slope of ``mids`` on 0..N-1 (residual sigma floored at sqrt(floor2))."""
    count = len(mids)
    sum_y = sum(mids)
    sum_xy = sum(x * y for x, y in enumerate(mids))
    sum_yy = sum(y * y for y in mids)
    sum_x = count * (count - 1) // 2
    sxx = count * (count * count - 1) / 12  # sum (x - mean x)^2
    sxy = (count * sum_xy - sum_x * sum_y) / count
    syy = (count * sum_yy - sum_y * sum_y) / count
    sse = max(syy - sxy * sxy / sxx, floor2 * (count - 2))
    return sxy * math.sqrt(count - 2) / math.sqrt(sxx * sse)


class TrendStrength(SampleFeature):
    """F13 (a)-(c) over the bar-close samples of one instrument."""

    def __init__(self, params: TrendParams | None = None) -> None:
        p = self.params = params or TrendParams()
        self.floor2 = (2 * p.sigma_floor_ticks) ** 2  # half ticks^2
        self.bars = [n // TF2_S for n in p.windows_s]
        self.names = [span_name(w) for w in p.windows_s]
        self.mid = CarriedMid()
        self.prev: dict[int, int | None] = {TF1: None, TF2: None, TF3: None}
        self.tf_sums = {frame: RollingSums((p.tf_bars,), 3) for frame in (TF1, TF3)}
        self.tf2_sums = RollingSums(tuple(sorted({p.tf_bars, *self.bars})), 3)
        self.mids: deque[int] = deque(maxlen=max(self.bars) + 1)
        self.tf_index = {TF1: 0, TF2: self.tf2_sums.windows.index(p.tf_bars), TF3: 0}
        self.tf_names = {k: f"t_drift_tf{k}" for k in (1, 2, 3)}
        self.tf_ready = {k: f"t_drift_tf{k}_ready" for k in (1, 2, 3)}
        self.out: dict[str, float] = {}
        for name in self.names:
            self.out.update({f"t_drift_{name}": 0.0, f"efficiency_ratio_{name}": 0.0, f"trend_t_{name}": 0.0,
                             f"trend_ready_{name}": 0.0})
        for k in (1, 2, 3):
            self.out.update({f"t_drift_tf{k}": 0.0, f"t_drift_tf{k}_ready": 0.0})

    def on_sample(self, sample: Sample) -> None:
        frames = sample.frames
        if not frames & TF1:
            return
        mid2 = self.mid.update(sample.view)
        if mid2 is None:
            return
        self._tf(TF1, 1, self.tf_sums[TF1], mid2)
        if frames & TF2:
            self._tf(TF2, 2, self.tf2_sums, mid2)
            self._tf2(mid2)
        if frames & TF3:
            self._tf(TF3, 3, self.tf_sums[TF3], mid2)

    def _tf(self, frame: int, k: int, sums: RollingSums, mid2: int) -> None:
        prev, self.prev[frame] = self.prev[frame], mid2
        if prev is None:
            return
        d = mid2 - prev
        sums.push((d, d * d, abs(d)))
        n = self.params.tf_bars
        if sums.count >= n:
            total, squares, _ = sums.sums[self.tf_index[frame]]
            self.out[self.tf_names[k]] = drift_t(total, squares, n, self.floor2)
            self.out[self.tf_ready[k]] = 1.0

    def _tf2(self, mid2: int) -> None:
        mids, sums, out = self.mids, self.tf2_sums, self.out
        mids.append(mid2)
        for n, name in zip(self.bars, self.names, strict=True):
            index = sums.windows.index(n)
            if sums.filled(index) < n:
                continue
            total, squares, path = sums.total(index)
            out[f"t_drift_{name}"] = drift_t(total, squares, n, self.floor2)
            out[f"efficiency_ratio_{name}"] = abs(total) / path if path else 0.0
            out[f"trend_t_{name}"] = ols_t(list(mids)[-n - 1:], self.floor2)
            out[f"trend_ready_{name}"] = 1.0

    def values(self) -> dict[str, float]:
        """Current values (this feature's own mapping: copy it to keep it past the next sample)."""
        return self.out
