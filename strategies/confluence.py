"""Multi-timeframe confluence, the regime label and the gate matrix (SPEC sections 4 and 5).

One ``Confluence`` per instrument, shared by that lane's strategies; ``observe(features)`` is
idempotent per feature vector, so every strategy may call it first. At each bar close it updates:

- the directional evidence per timeframe (TF1 1 s, TF2 10 s, TF3 60 s)
  ``d_TF = tanh((z(OFI_TF) + z(CVD slope_TF) + z(lean) + t_drift_TF / 3) / 2)``;
- short histories of the mid and the CVD (TF1 closes and detection samples, ``window_s`` seconds)
  that the strategies' triggers read (CVD over the last 5 s, the mid before a vacuum, extremes);
- the rule regime label (SPEC 5) at TF2 closes, with hysteresis; ``regime`` is ``""`` until the
  20-minute trend statistics are ready (a regime is only reported when known). When a regime model
  runs live (F26 with ``regime_ml_live``), its argmax regime replaces the rule label once the model
  is ready (the model sees the rule label as one of its inputs); in shadow mode it changes nothing.

The z-scores are the feature engine's 30-minute ones when those are ready (``ofi_z_*``), else this
module's own EWMA z-scores over the bar closes (``z_span``), which need ``z_min_samples`` closes
before they are used (0 until then). Everything is causal: only values at or before the sample.

Families: ``trend(side)`` is ``C = sum w_TF eps d_TF / sum w_TF`` over the frames whose z-scores are
in use (a short session has no 60 s evidence yet; without it C would be capped at 0.2) (S4); ``reversal(side)`` is
``C = 0.5 eps d_1s + 0.3 (1 - |d_10s|) + 0.2 (1 + eps d_60s) / 2``, and ``reversal_ok`` adds the
fast-frame, slow-frame and exhaustion conditions. The exhaustion reads the 10 s frame's history of
closes at which its z-scores were in use: a close before that is not SPEC's d_TF (no OFI, CVD-slope or
lean evidence) and stays out, and with fewer than 3 such closes the condition passes. Counting those
warm-up closes judged the exhaustion on the drift term alone, then a first real |d| against it: on
issue 15's ten-minute run, seed 2, that kept S2 out of a true stack at 990/989 (confirmed, C 0.55-0.72,
refused for 15 s until C fell). ``gate(strategy, side)`` applies the default gate
matrix (S1, S2, S3, S5, S6 off in SHOCK; S5 off in TREND and BREAKOUT; S4 off in RANGE_LOW) and
returns the size factor (0 = gated; 0.5 for S1 fading a TREND).
"""

from __future__ import annotations

import math
from collections import deque

from engine.config.strategies import ConfluenceParams
from engine.features.bars import TF1, TF2, TF3
from engine.features.vector import FeatureVector

NS = 1_000_000_000
REVERSAL = ("sweep_reversal", "stacked_absorption", "iceberg_defense", "mean_reversion", "hvn_bounce")
TREND_FAMILY = ("vacuum_entry",)


REGIMES = ("RANGE_LOW", "RANGE_HIGH", "TREND_UP", "TREND_DOWN", "BREAKOUT", "SHOCK")  # engine.events.Regime order
POSTERIORS = tuple(f"regime_p_{name}" for name in REGIMES)  # F26 (ml/regime_feature.py)


def model_regime(values: dict[str, float]) -> str:
    """The regime model's argmax regime from a feature vector's F26 posteriors (the first on ties)."""
    best = 0
    for i in range(1, len(POSTERIORS)):
        if values[POSTERIORS[i]] > values[POSTERIORS[best]]:
            best = i
    return REGIMES[best]


class _Ewma:
    """Exponentially weighted mean and variance; ``z(x)`` is 0 until ``min_samples`` values were seen."""

    __slots__ = ("alpha", "mean", "var", "n", "min_samples")

    def __init__(self, span: int, min_samples: int) -> None:
        self.alpha = 2.0 / (span + 1.0)
        self.mean = 0.0
        self.var = 0.0
        self.n = 0
        self.min_samples = min_samples

    def z(self, x: float) -> float:
        if self.n < self.min_samples:
            return 0.0
        return (x - self.mean) / max(math.sqrt(self.var), 1e-9)

    def add(self, x: float) -> None:
        self.n += 1
        if self.n == 1:
            self.mean = x
            return
        diff = x - self.mean
        incr = self.alpha * diff
        self.mean += incr
        self.var = (1.0 - self.alpha) * (self.var + diff * incr)


class _Frame:
    """One timeframe's evidence: z of its OFI, CVD slope and the lean, plus the trend t-statistic."""

    __slots__ = ("name", "ofi", "slope", "lean", "cvd", "d", "history")

    def __init__(self, name: str, span: int, min_samples: int) -> None:
        self.name = name
        self.ofi = _Ewma(span, min_samples)
        self.slope = _Ewma(span, min_samples)
        self.lean = _Ewma(span, min_samples)
        self.cvd: float | None = None
        self.d = 0.0
        self.history: deque[float] = deque(maxlen=4)

    @property
    def ready(self) -> bool:
        """Its z-scores are in use (enough closes seen)."""
        return self.ofi.n >= self.ofi.min_samples

    def close(self, values: dict[str, float], ofi_key: str, drift_key: str) -> None:
        ofi, lean, cvd = values[ofi_key], values["micro_lean"], values["cvd"]
        slope = 0.0 if self.cvd is None else cvd - self.cvd
        self.cvd = cvd
        engine_z = values.get(f"ofi_z_{self.name}", 0.0) if values.get("ofi_z_ready") else None
        z_ofi = engine_z if engine_z is not None else self.ofi.z(ofi)
        drift = values.get(drift_key, 0.0) if values.get(f"{drift_key}_ready") else 0.0
        self.d = math.tanh((z_ofi + self.slope.z(slope) + self.lean.z(lean) + drift / 3.0) / 2.0)
        if self.ready:  # a close before the z-scores are in use is no d_TF evidence (SPEC 4.1): not history
            self.history.append(self.d)
        self.ofi.add(ofi)
        self.slope.add(slope)
        self.lean.add(lean)


class Confluence:
    """Per-instrument evidence shared by the strategies of one lane (see the module docstring)."""

    def __init__(self, params: ConfluenceParams | None = None, window_s: float = 900.0) -> None:
        p = self.params = params or ConfluenceParams()
        self.frames = {name: _Frame(name, p.z_span, p.z_min_samples) for name in ("1s", "10s", "60s")}
        self.window_ns = int(window_s * NS)
        self.mids: deque[tuple[int, float]] = deque()  # (ts, mid) at TF1 closes and detection samples
        self.cvds: deque[tuple[int, float]] = deque()
        self.ofi_1s = _Ewma(p.z_span, p.z_min_samples)
        self.ofi_z_1s = 0.0  # the 1 s OFI z-score at the newest sample
        self.prev_ofi_z_1s = 0.0
        self.regime = ""
        self.candidate = ""
        self.streak = 0
        self.rv = _Ewma(180, 30)
        self.last_key: tuple[int, int, int] | None = None

    # ---- updating --------------------------------------------------------------------------------
    def observe(self, fv: FeatureVector) -> None:
        """Take in one feature vector (once; repeated calls with the same vector do nothing)."""
        key = (fv.ts_recv, fv.seq, fv.frames)
        if key == self.last_key:
            return
        self.last_key = key
        values = fv.values
        if not values.get("has_bbo"):
            return
        ts = fv.ts_recv
        self._push(self.mids, ts, values["mid"])
        self._push(self.cvds, ts, values["cvd"])
        self.prev_ofi_z_1s = self.ofi_z_1s
        self.ofi_z_1s = self._ofi_z(values)
        frames = fv.frames
        if frames & TF1:
            self.frames["1s"].close(values, "ofi_1s", "t_drift_tf1")
            self.ofi_1s.add(values["ofi_1s"])
        if frames & TF2:
            self.frames["10s"].close(values, "ofi_10s", "t_drift_tf2")
            self.update_regime(values)
        if frames & TF3:
            self.frames["60s"].close(values, "ofi_60s", "t_drift_tf3")

    def _ofi_z(self, values: dict[str, float]) -> float:
        if values.get("ofi_z_ready"):
            return values["ofi_z_1s"]
        return self.ofi_1s.z(values["ofi_1s"])

    def _push(self, ring: deque, ts: int, value: float) -> None:
        ring.append((ts, value))
        horizon = ts - self.window_ns
        while ring[0][0] < horizon:
            ring.popleft()

    def update_regime(self, values: dict[str, float]) -> None:
        """The rule label (SPEC 5) at a TF2 close, with hysteresis; nothing until the 20-min statistics are ready."""
        p = self.params
        rv = values.get("rv_60s_5m", 0.0)
        high = self.rv.n >= self.rv.min_samples and rv > self.rv.mean + 0.43 * math.sqrt(self.rv.var)  # ~q67
        self.rv.add(rv)
        if values.get("regime_ml_live") and values.get("regime_ml_ready"):
            self.regime = self.candidate = model_regime(values)
            self.streak = 0
            return
        if not values.get("trend_ready_20m"):
            return
        drift, er = values.get("t_drift_20m", 0.0), values.get("efficiency_ratio_20m", 0.0)
        if values.get("shock_jump_count", 0.0) > 0:
            label = "SHOCK"
        elif values.get("vol_ratio_ready") and values.get("vol_ratio_1m_30m", 0.0) >= p.breakout_vr \
                and values.get("volume_accel", 0.0) >= p.breakout_vr:
            label = "BREAKOUT"
        elif drift >= p.trend_t and er >= p.trend_er:
            label = "TREND_UP"
        elif drift <= -p.trend_t and er >= p.trend_er:
            label = "TREND_DOWN"
        else:
            label = "RANGE_HIGH" if high else "RANGE_LOW"
        if label == "SHOCK" or not self.regime:
            self.regime, self.candidate, self.streak = label, label, 0
            return
        if label == self.regime:
            self.candidate, self.streak = label, 0
            return
        self.streak = self.streak + 1 if label == self.candidate else 1
        self.candidate = label
        if self.streak >= p.hysteresis:
            self.regime, self.streak = label, 0

    # ---- reading ---------------------------------------------------------------------------------
    def d(self, frame: str) -> float:
        return self.frames[frame].d

    def trend(self, side: int) -> float:
        """Trend-family confluence in [-1, 1] for a trade on ``side``."""
        p = self.params
        pairs = [(w, f) for w, f in zip((p.weight_1s, p.weight_10s, p.weight_60s), ("1s", "10s", "60s"), strict=True)
                 if self.frames[f].ready]
        total = sum(w for w, _ in pairs)
        return sum(w * side * self.d(f) for w, f in pairs) / total if total > 0 else 0.0

    def reversal(self, side: int) -> float:
        """Reversal-family confluence in [-0.5, 1] for a trade on ``side``."""
        return (0.5 * side * self.d("1s") + 0.3 * (1.0 - abs(self.d("10s")))
                + 0.2 * (1.0 + side * self.d("60s")) / 2.0)

    def reversal_ok(self, side: int, slow: bool = True) -> bool:
        """Fast frame turned, slow frame not strongly against, middle frame exhausting (SPEC 4.3);
        ``slow=False`` leaves the slow frame out (S6, whose own 20-minute trend filter stands in)."""
        history = self.frames["10s"].history
        exhausting = len(history) < 3 or abs(history[-1]) <= abs(history[-3])
        slow_ok = not slow or side * self.d("60s") > -self.params.slow_against
        return side * self.d("1s") > 0 and slow_ok and exhausting

    def confluence(self, strategy: str, side: int) -> tuple[float, bool]:
        """``(C, passes)`` of a strategy's family (reversal unless the strategy is S4)."""
        p = self.params
        if strategy in TREND_FAMILY:
            c = self.trend(side)
            return c, c >= p.min_trend
        c = self.reversal(side)
        return c, c >= p.min_reversal and self.reversal_ok(side)

    def gate(self, strategy: str, side: int) -> float:
        """The regime gate matrix: the size factor of a signal (0 = not allowed); 1 when the regime is unknown."""
        regime = self.regime
        if not regime or not self.params.gates:
            return 1.0
        if regime == "SHOCK" and strategy in REVERSAL:
            return 0.0
        if strategy == "mean_reversion" and (regime.startswith("TREND") or regime == "BREAKOUT"):
            return 0.0
        if strategy == "vacuum_entry" and regime == "RANGE_LOW":
            return 0.0
        if strategy == "sweep_reversal" and regime.startswith("TREND"):
            against = (regime == "TREND_UP" and side < 0) or (regime == "TREND_DOWN" and side > 0)
            return 0.5 if against else 1.0
        return 1.0

    def change(self, ring_name: str, ts: int, seconds: float) -> float:
        """Change of the mid or the CVD (``ring_name``) over the last ``seconds`` up to ``ts``."""
        ring = self.mids if ring_name == "mid" else self.cvds
        if not ring:
            return 0.0
        start = ts - int(seconds * NS)
        base = ring[-1][1]
        for t, value in ring:
            if t >= start:
                base = value
                break
        return ring[-1][1] - base

    def value_at(self, ring_name: str, ts: int) -> float | None:
        """The last mid or CVD recorded strictly before ``ts`` (None when none is)."""
        ring = self.mids if ring_name == "mid" else self.cvds
        found = None
        for t, value in ring:
            if t >= ts:
                break
            found = value
        return found

    def extreme(self, side: int, ts: int, seconds: float) -> float | None:
        """The highest (side > 0) or lowest mid over the last ``seconds``."""
        start = ts - int(seconds * NS)
        values = [v for t, v in self.mids if t >= start]
        if not values:
            return None
        return max(values) if side > 0 else min(values)
