"""Price impact: Kyle's lambda and Amihud's illiquidity (SPEC F14), per TF2 bar.

Per TF2 bar k (between consecutive TF2 closes): ``dm_k`` the change of the carried usable mid (ticks),
``Q_k = sum eps v`` the signed volume (the change of ``TradeFlow``'s ``cvd``), ``(sum p v)_k`` the
notional (the change of ``notional``, ticks x lots), all exact.

- ``kyle_lambda = Cov(dm, Q) / Var(Q)`` over the last N = 60 bars (ticks per lot; 0 when Var(Q) = 0),
  from running integer sums; ``kyle_lambda_z``: its z against the causal baseline of lambda at TF2
  closes (30 min; a close is scored before it joins); ``kyle_lambda_ready`` once the window is full.
- ``amihud = mean_k |r_k| / (sum p v)_k`` over the bars of the window that traded (bars without volume
  have no ratio), with ``r_k`` the log-mid return in bps and the notional in millions of tick x lots:
  bps per million tick-lots (0 until a bar traded).

O(1) at each TF2 close; nothing at other samples (values hold).
"""

from __future__ import annotations

import math

from engine.config.features import ImpactParams
from engine.features.bars import TF2
from engine.features.baseline import RollingBaseline
from engine.features.sample import Sample
from engine.features.sampled import SampleFeature
from engine.features.series import CarriedMid, RollingSums


class PriceImpact(SampleFeature):
    """F14 over the TF2 closes of one instrument."""

    def __init__(self, params: ImpactParams | None = None) -> None:
        p = self.params = params or ImpactParams()
        self.mid = CarriedMid()
        self.prev: tuple[int, float, float] | None = None  # (mid2, cvd, notional) at the previous TF2 close
        # per bar: dm (half ticks), Q, Q^2, dm*Q, |r| / notional, traded (0/1)
        self.sums = RollingSums((p.bars,), 6)
        self.baseline = RollingBaseline(p.baseline_samples, p.baseline_min_samples, p.sigma_floor)
        self.out = {"kyle_lambda": 0.0, "kyle_lambda_z": 0.0, "kyle_lambda_ready": 0.0, "amihud": 0.0}

    def on_sample(self, sample: Sample) -> None:
        if not sample.frames & TF2:
            return
        mid2 = self.mid.update(sample.view)
        if mid2 is None:
            return
        flow = sample.flow
        now = (mid2, flow.get("cvd", 0), flow.get("notional", 0))
        prev, self.prev = self.prev, now
        if prev is None:
            return
        dm, q, notional = now[0] - prev[0], int(now[1] - prev[1]), now[2] - prev[2]
        ratio = 1e4 * abs(math.log(now[0] / prev[0])) / (notional / 1e6) if notional > 0 else 0.0
        self.sums.push((dm, q, q * q, dm * q, ratio, 1 if notional > 0 else 0))
        self._update()

    def _update(self) -> None:
        sums, out = self.sums, self.out
        n = sums.filled(0)
        sum_dm, sum_q, sum_qq, sum_dmq, sum_ratio, traded = sums.total(0)
        var = n * sum_qq - sum_q * sum_q  # n^2 Var(Q), exact
        lam = (n * sum_dmq - sum_dm * sum_q) / var / 2 if var > 0 else 0.0  # half ticks -> ticks
        out["kyle_lambda"] = lam
        out["kyle_lambda_z"] = self.baseline.z(lam)
        ready = n >= self.params.bars
        out["kyle_lambda_ready"] = 1.0 if ready else 0.0
        if ready:
            self.baseline.add(lam)
        out["amihud"] = sum_ratio / traded if traded else 0.0

    def values(self) -> dict[str, float]:
        """Current values (this feature's own mapping: copy it to keep it past the next sample)."""
        return self.out
