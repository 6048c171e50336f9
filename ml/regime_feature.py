"""F26 live: the regime model's posteriors at every TF2 close, computed incrementally.

``RegimeTracker`` takes one TF2 bar at a time (the ``RegimeInputs`` fields of that bar) and returns
the row ``ml/regime.py``'s ``regime_features`` gives for it, without recomputing the session: the
rolling windows read running sums (kept exactly as the batch code's cumulative sums, so the values
are bit-for-bit those of the batch), the window quantiles read the last at most 180 bars, and the
baselines over "all earlier bars" are sorted lists of the last ``history`` bars (``EarlierValues``,
the same object the batch uses); the rule label's hysteresis is a small state machine. The cost
per close is a few quantiles over 180 values and one ``predict_proba`` of one row, independent of
the session's length. The batch reference is ``regime.posteriors(model, x, history)``.

``RegimeFeature`` is the per-sample feature (``engine/features/sampled.py``): at TF1 closes it
records the 1 s mid change, at TF2 closes it completes the bar (mid, spread and ``D_10`` depth at
the close, volume in the bar, whether the book was OPEN at every TF1 close of the bar, the 1 s
changes' maximum and sum of squares) and updates the posteriors. Between TF2 closes its values
stay as they are; other samples cost one bit test. Values: ``regime_p_<REGIME>`` for the six
regimes, ``regime_ml_ready`` (1 once ``MIN_BARS`` bars were seen; the posteriors are 0 before) and
``regime_ml_live`` (1: the argmax regime drives the confluence gate; 0: shadow, recorded only).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from engine.book import HALTED
from engine.events import Regime
from engine.features.bars import TF1, TF2
from engine.features.sample import Sample
from engine.features.sampled import SampleFeature
from ml.labels import (
    BREAKOUT,
    RANGE_HIGH,
    RANGE_LOW,
    SHOCK,
    TREND_DOWN,
    TREND_UP,
    UNKNOWN,
    EarlierValues,
    RuleParams,
    _jump_quantile,
)
from ml.regime import FEATURES, JUMP_SIGMAS, MIN_BARS, SINCE_CAP, spread_classes

NAMES = tuple(f"regime_p_{r.name}" for r in Regime)
MAX_WINDOW = 360  # the longest rolling window of any feature (the 60-min volatility)
QUANTILE_WINDOW = 180  # the spread and depth baselines
NAN = math.nan


class _Running:
    """Cumulative sum of one series (non-finite values add 0, as ``np.cumsum`` of the batch's masked
    series) and its last ``window + 1`` values: rolling sums equal the batch's ``c[t] - c[t - w]``."""

    __slots__ = ("sums",)

    def __init__(self, window: int) -> None:
        self.sums: deque[float] = deque([0.0], maxlen=window + 1)

    def add(self, value: float) -> None:
        sums = self.sums
        sums.append(sums[-1] + (value if math.isfinite(value) else 0.0))

    def last(self, window: int) -> float:
        """Sum of the last ``window`` values (all of them while fewer were added)."""
        sums = self.sums
        return sums[-1] - sums[max(-window - 1, -len(sums))]


def _div(a: float, b: float) -> float:
    """``a / b`` as numpy divides (inf or NaN for a zero divisor) without a Python exception."""
    if b == 0.0:
        if a == 0.0 or math.isnan(a) or math.isnan(b):
            return NAN
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _nanmax(values) -> float:
    """``np.fmax`` over the values: the largest finite one, NaN when none is."""
    best = NAN
    for v in values:
        if v == v and not v <= best:  # v is not NaN and (best is NaN or v > best)
            best = v
    return best


class _Window:
    """The last ``size`` values of one series (oldest first)."""

    __slots__ = ("values",)

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)


def _window_quantile(values: deque[float], q: float, window: int, min_periods: int) -> float:
    """``causal_quantile(x, q, window, min_periods)`` at the next bar, from the last ``window`` values."""
    n = len(values)
    if n == 0:
        return NAN
    arr = np.fromiter(values, dtype=np.float64, count=n)
    finite = np.isfinite(arr)
    count = int(finite.sum())
    if count == window:
        return float(np.quantile(arr, q))
    if count >= max(min_periods, 1):
        return float(np.nanquantile(arr, q))
    return NAN


class _Hysteresis:
    """``apply_hysteresis(raw, persist, immediate, overlay=True)`` one label at a time."""

    __slots__ = ("persist", "immediate", "last_plain", "under", "run", "accepted")

    def __init__(self, persist: int, immediate: tuple[int, ...]) -> None:
        self.persist = persist
        self.immediate = immediate
        self.last_plain = UNKNOWN  # the last raw label that is not an immediate one
        self.under: int | None = None  # the previous smoothed-underneath label
        self.run = 0
        self.accepted = UNKNOWN

    def step(self, raw: int) -> int:
        event = raw in self.immediate
        if not event:
            self.last_plain = raw
        under = UNKNOWN if raw == UNKNOWN else self.last_plain
        self.run = self.run + 1 if under == self.under else 1
        self.under = under
        if under != UNKNOWN and (self.run >= self.persist or self.accepted == UNKNOWN):
            self.accepted = under
        if event:
            return raw
        return UNKNOWN if under == UNKNOWN else self.accepted


class RegimeTracker:
    """``regime_features`` rows, and the model's posteriors, one TF2 bar at a time (see the module)."""

    def __init__(self, model, history: int | None = 720) -> None:
        self.model = model
        self.forest = OneRowForest(model)
        self.history = history
        p = self.params = RuleParams()
        self.jump_q, self.jump_z = _jump_quantile(p)
        self.t = 0  # bars seen
        self.mid = _Window(QUANTILE_WINDOW + 4)
        self.spread = _Window(QUANTILE_WINDOW)  # earlier bars only (the current one is added after use)
        self.depth_bid = _Window(QUANTILE_WINDOW)
        self.depth_ask = _Window(QUANTILE_WINDOW)
        self.recent_spread = _Window(6)
        self.recent_max = _Window(6)
        self.recent_closed = _Window(6)
        self.recent_event = _Window(p.shock_bars)  # SHOCK jump or not OPEN, per bar
        self.last_jump = -(SINCE_CAP + 1)
        self.last_mid = NAN
        self.d = _Running(MAX_WINDOW)
        self.d2 = _Running(MAX_WINDOW)
        self.dabs = _Running(MAX_WINDOW)
        self.dn = _Running(MAX_WINDOW)
        self.vol = _Running(QUANTILE_WINDOW)
        self.voln = _Running(QUANTILE_WINDOW)
        self.ss = _Running(30)
        self.nn = _Running(30)
        self.s5_earlier = EarlierValues(history)  # σ_5min: its median (feature) and q67 (RANGE_HIGH)
        self.jump_earlier = EarlierValues(history)  # per-bar max |r_1s|: σ_1s of the jump test
        self.r30_earlier = EarlierValues(history)  # 30-bar 1 s volatility: its median
        self.labels = _Hysteresis(p.persist, p.immediate)
        self.columns = {name: i for i, name in enumerate(FEATURES)}
        self.rows = 0

    # ---- rolling statistics (the batch functions of ml/labels.py at the newest bar) ------------------
    def _rv(self, window: int, min_periods: int | None = None) -> float:
        n = self.dn.last(window)
        if n >= max(window if min_periods is None else min_periods, 1):
            return math.sqrt(self.d2.last(window) / n)
        return NAN

    def _drift(self, window: int) -> float:
        s1, s2, n = self.d.last(window), self.d2.last(window), self.dn.last(window)
        if n != window:
            return NAN
        var = (s2 - s1 * s1 / n) / (n - 1)
        if not var > 1e-12 * s2 / n:
            return NAN
        return s1 / (math.sqrt(var) * math.sqrt(n))

    def _er(self, window: int) -> float:
        if self.dn.last(window) != window:
            return NAN
        path = self.dabs.last(window)
        return abs(self.d.last(window)) / path if path > 0 else 0.0

    def _va(self, short: int, long: int) -> float:
        vl = self.vol.last(long)
        if self.voln.last(long) != long or not vl > 0:
            return NAN
        return (self.vol.last(short) / short) / (vl / long)

    def _vr(self, short: int, long: int, min_long: int) -> float:
        den = self._rv(long, min_long)
        return _div(self._rv(short), den) if den > 0 else NAN

    def _move(self, bars: int) -> float:
        mids = self.mid.values
        return mids[-1] - mids[-1 - bars] if self.t >= bars else NAN

    def _lagged(self, lag: int, window: int) -> tuple[float, float]:
        """(max, min) of the finite mids over bars ``[t - lag - window + 1, t - lag]`` (at least ``MIN_BARS``)."""
        if self.t < lag + MIN_BARS - 1:
            return NAN, NAN
        mids = list(self.mid.values)[-window - lag: len(self.mid.values) - lag]
        seg = [m for m in mids if math.isfinite(m)]
        if len(seg) < MIN_BARS:
            return NAN, NAN
        return max(seg), min(seg)

    # ---- one bar ------------------------------------------------------------------------------------
    def add_bar(self, mid: float, spread: float, depth_bid: float, depth_ask: float, volume: float,
                is_open: bool, max_abs_r1s: float, sum_sq_r1s: float, n_r1s: float) -> np.ndarray:
        """The feature row of the newest bar (``len(FEATURES)`` values, NaN where undefined)."""
        p = self.params
        d = mid - self.last_mid if self.t > 0 else NAN
        self.last_mid = mid
        self.mid.values.append(mid)
        for running, value in ((self.d, d), (self.d2, d * d), (self.dabs, abs(d)),
                               (self.dn, 1.0 if math.isfinite(d) else 0.0)):
            running.add(value)
        self.vol.add(volume)
        self.voln.add(1.0 if math.isfinite(volume) else 0.0)
        self.ss.add(sum_sq_r1s)
        self.nn.add(n_r1s)
        self.recent_spread.values.append(spread)
        self.recent_max.values.append(max_abs_r1s)
        closed = 0.0 if is_open else 1.0
        self.recent_closed.values.append(closed)

        s1, s5, s30 = self._rv(6), self._rv(30), self._rv(180, 30)
        s5_med = self.s5_earlier.quantile(0.5, MIN_BARS)
        high = self.s5_earlier.quantile(p.range_high_quantile, p.min_history_bars)
        spread_med = _window_quantile(self.spread.values, 0.5, QUANTILE_WINDOW, MIN_BARS)
        spread_q = _window_quantile(self.spread.values, p.spread_quantile, p.spread_history_bars,
                                    p.min_history_bars)
        med_b = _window_quantile(self.depth_bid.values, 0.5, QUANTILE_WINDOW, MIN_BARS)
        med_a = _window_quantile(self.depth_ask.values, 0.5, QUANTILE_WINDOW, MIN_BARS)
        depth_b, depth_a = _div(depth_bid, med_b), _div(depth_ask, med_a)
        scale = _div(self.jump_earlier.quantile(self.jump_q, p.min_history_bars), self.jump_z)
        jump_now = _div(max_abs_r1s, scale)
        if jump_now > JUMP_SIGMAS:
            self.last_jump = self.t
        hi, lo = self._lagged(4, 180)
        position = (mid - lo) / (hi - lo) if hi > lo else 0.5
        drift120, er120 = self._drift(120), self._er(120)
        va_30 = self._va(3, 30)
        ss1, ss3, ss30 = self.ss.last(1), self.ss.last(3), self.ss.last(30)
        n1, n3, n30 = self.nn.last(1), self.nn.last(3), self.nn.last(30)

        # the rule label (ml/labels.py raw_rule_labels + apply_hysteresis) at this bar
        jump_flag = max_abs_r1s > p.shock_sigma * scale
        self.recent_event.values.append(1.0 if (jump_flag or not is_open) else 0.0)
        thin = _div(depth_bid, med_b) <= p.depth_ratio and _div(depth_ask, med_a) <= p.depth_ratio
        shock = sum(self.recent_event.values) > 0 or spread > spread_q or thin
        vr = self._vr(p.breakout_vol_bars, p.vol_long_bars, 2 * p.vol_short_bars)
        breakout = vr >= p.vr_threshold and va_30 >= p.va_threshold and (mid > hi or mid < lo)
        if self.t < p.warmup_bars:
            raw = UNKNOWN
        elif shock:
            raw = SHOCK
        elif breakout:
            raw = BREAKOUT
        elif drift120 >= p.drift_threshold and er120 >= p.er_threshold:
            raw = TREND_UP
        elif drift120 <= -p.drift_threshold and er120 >= p.er_threshold:
            raw = TREND_DOWN
        elif s5 >= high:
            raw = RANGE_HIGH
        else:
            raw = RANGE_LOW
        label = self.labels.step(raw)

        logs = np.log(np.array([
            s1 + 1e-3, s5 + 1e-3, s30 + 1e-3, (s5 + 1e-3) / (s5_med + 1e-3), (s1 + 1e-3) / (s5_med + 1e-3),
            math.sqrt(ss1 / max(n1, 1.0)) + 1e-3 if n1 > 0 else NAN,
            math.sqrt(ss3 / max(n3, 1.0)) + 1e-3 if n3 > 0 else NAN,
            math.sqrt(ss30 / max(n30, 1.0)) + 1e-3 if n30 > 0 and self.t >= 30 else NAN,
        ]))
        r1, r3, r30 = float(logs[5]), float(logs[6]), float(logs[7])
        base = self.r30_earlier.quantile(0.5, MIN_BARS)
        row = [
            logs[0], logs[1], logs[2], logs[3], logs[4],
            self._vr(6, 180, 30), self._vr(30, 360, 60), va_30, self._va(3, 180),
            drift120, self._drift(60), self._drift(30), self._drift(6),
            er120, self._er(60), self._er(30), self._er(6),
            _div(self._move(6), s30 * math.sqrt(6.0)), _div(self._move(18), s30 * math.sqrt(18.0)),
            _div(spread, spread_med), _div(_nanmax(self.recent_spread.values), spread_med),
            NAN if math.isnan(depth_b) or math.isnan(depth_a) else min(depth_b, depth_a),
            depth_b, depth_a, _div(_nanmax(self.recent_max.values), scale), jump_now,
            float(min(self.t - self.last_jump, SINCE_CAP)), _nanmax(self.recent_closed.values),
            position, float(label), r1 - base, r3 - base, r30 - base, r1 - r30,
        ]
        out = np.array(row, dtype=np.float64)
        out[~np.isfinite(out)] = np.nan

        # the baselines take this bar's values only now: every one reads earlier bars
        self.s5_earlier.add(s5)
        self.jump_earlier.add(max_abs_r1s)
        self.r30_earlier.add(r30)
        self.spread.values.append(spread)
        self.depth_bid.values.append(depth_bid)
        self.depth_ask.values.append(depth_ask)
        self.t += 1
        return out

    def posteriors(self, row: np.ndarray) -> np.ndarray:
        """The model's six posteriors (``Regime`` order) for one feature row."""
        return spread_classes(self.model, self.forest.predict_proba(row.reshape(1, -1)))[0]


def predict_proba_one(model, X: np.ndarray) -> np.ndarray:
    """``model.predict_proba(X)`` through ``OneRowForest`` (one-off; the tracker keeps its forest)."""
    return OneRowForest(model).predict_proba(X)


class OneRowForest:
    """``predict_proba`` of a fitted ``HistGradientBoostingClassifier`` for one row at a time, the same values.

    scikit-learn walks each tree in a separate call (iterations x classes calls: 1,000 for 200
    iterations of 5 classes), which costs 2-20 ms per row, and more on a loaded machine where its
    OpenMP threads wait for cores. Here every tree's nodes sit in flat arrays and all trees descend
    together, one numpy step per tree level; the leaf values are then added in scikit-learn's order
    (the baseline, then iteration after iteration: a sequential ``cumsum``) and the model's own loss
    turns them into probabilities, so the result is bit for bit ``predict_proba``. A model that is
    not such a classifier, or splits on categorical features, is asked the ordinary way.
    """

    def __init__(self, model) -> None:
        self.model = model
        predictors = getattr(model, "_predictors", None)
        self.flat = False
        if predictors is None or not hasattr(model, "_loss") or not hasattr(model, "_baseline_prediction"):
            return
        nodes = [p.nodes for iteration in predictors for p in iteration]
        if any(n["is_categorical"].any() for n in nodes):
            return
        self.flat = True
        offsets = np.cumsum([0] + [len(n) for n in nodes[:-1]])
        every = np.concatenate(nodes)
        shift = np.repeat(offsets, [len(n) for n in nodes])
        self.roots = offsets.astype(np.intp)
        self.feature = every["feature_idx"].astype(np.intp)
        self.threshold = every["num_threshold"].astype(np.float64)
        self.missing_left = every["missing_go_to_left"].astype(bool)
        self.left = (every["left"] + shift).astype(np.intp)
        self.right = (every["right"] + shift).astype(np.intp)
        self.leaf = every["is_leaf"].astype(bool)
        self.value = every["value"].astype(np.float64)
        self.shape = (len(predictors), model.n_trees_per_iteration_)
        self.baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(1, -1)

    ARRAYS = ("roots", "feature", "threshold", "missing_left", "left", "right", "leaf", "value", "baseline")

    def arrays(self) -> dict:
        """The flat forest as plain arrays (a ``flat`` forest only): what ``from_arrays`` needs for ``raw``."""
        return {**{name: getattr(self, name) for name in self.ARRAYS}, "shape": self.shape}

    @classmethod
    def from_arrays(cls, arrays: dict) -> OneRowForest:
        """A forest that computes ``raw`` from ``arrays()`` of another (no model behind it: ``raw`` only)."""
        forest = cls(None)
        for name in cls.ARRAYS:
            setattr(forest, name, np.asarray(arrays[name]))
        forest.shape = tuple(arrays["shape"])
        forest.flat = True
        return forest

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(1, classes)`` probabilities of the single row ``X`` (shape ``(1, features)``)."""
        if not self.flat:
            return self.model.predict_proba(X)
        return self.model._loss.predict_proba(self.raw(X))

    def raw(self, X: np.ndarray) -> np.ndarray:
        """``(1, trees per iteration)`` raw scores of the single row ``X``: the model's ``_raw_predict``
        (for a binary classifier its ``decision_function``), bit for bit. Only for a ``flat`` forest."""
        row = np.asarray(X, dtype=np.float64).reshape(-1)
        node = self.roots
        leaf = self.leaf[node]
        while not leaf.all():
            x = row[self.feature[node]]
            left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(leaf, node, np.where(left, self.left[node], self.right[node]))
            leaf = self.leaf[node]
        values = self.value[node].reshape(self.shape)
        return np.asfortranarray(np.cumsum(np.concatenate([self.baseline, values]), axis=0)[-1:])


class RegimeFeature(SampleFeature):
    """F26 in the feature vector (see the module docstring); only built when a regime model is loaded."""

    def __init__(self, model, history: int = 720, live: bool = True, depth_index: int = -1) -> None:
        self.tracker = RegimeTracker(model, history)
        self.live = 1.0 if live else 0.0
        self.depth_index = depth_index
        self.current: dict[str, float] = {**dict.fromkeys(NAMES, 0.0), "regime_ml_ready": 0.0,
                                          "regime_ml_live": self.live}
        self._reset_bar()
        self.prev_mid = NAN
        self.prev_volume = 0.0
        self.spread = self.depth_bid = self.depth_ask = NAN
        self.bars = 0

    def _reset_bar(self) -> None:
        self.open = True
        self.max_abs = 0.0
        self.sum_sq = 0.0
        self.n = 0.0
        self.volume = 0.0

    def on_sample(self, sample: Sample) -> None:
        frames = sample.frames
        if not frames & TF1:
            return
        view = sample.view
        if view.bid_px and view.ask_px:
            mid = (view.bid_px[0] + view.ask_px[0]) / 2
            self.spread = float(view.ask_px[0] - view.bid_px[0])
            if view.bid_depth and view.ask_depth:
                self.depth_bid = float(view.bid_depth[self.depth_index])
                self.depth_ask = float(view.ask_depth[self.depth_index])
        else:
            mid = self.prev_mid  # the batch inputs forward-fill the mid, the spread and the depths
        if math.isfinite(mid) and math.isfinite(self.prev_mid):
            r = mid - self.prev_mid
            self.sum_sq += r * r
            self.n += 1.0
            self.max_abs = max(self.max_abs, abs(r))
        self.prev_mid = mid
        volume = sample.flow.get("volume", 0.0)
        self.volume += volume - self.prev_volume  # the 1 s volume, summed over the bar as the batch does
        self.prev_volume = volume
        if view.state & HALTED:
            self.open = False
        if not frames & TF2:
            return
        tracker = self.tracker
        row = tracker.add_bar(mid, self.spread, self.depth_bid, self.depth_ask, self.volume, self.open,
                              self.max_abs, self.sum_sq, self.n)
        self._reset_bar()
        self.bars += 1
        if self.bars >= MIN_BARS:
            out = self.current
            for name, value in zip(NAMES, tracker.posteriors(row).tolist(), strict=True):
                out[name] = value
            out["regime_ml_ready"] = 1.0

    def values(self) -> dict[str, float]:
        return self.current


def argmax_regime(values: dict[str, float]) -> str:
    """The regime name with the highest posterior in a feature vector's F26 values."""
    best = max(range(len(NAMES)), key=lambda i: values[NAMES[i]])
    return Regime(best).name
