"""Risk (SPEC 11): the risk stage core (sizing and pre-trade checks, one decision per scored signal)
and the portfolio guards the execution stage applies as the market moves (stops that only tighten,
the drawdown ladder and its latched kill switch, the correlation cap).

Every signal gets exactly one ``signals`` row with its decision (accepted, or rejected and why).
Checks are small objects behind the ``RiskCheck`` protocol, evaluated in order, first rejection
wins. Sizing (``Sizing``) is the minimum of the stop-based, volatility-targeted, liquidity and
per-instrument caps, scaled by confidence. Guards that need fills and marks (``DrawdownGuard``,
``CorrelationCap``, ``StopRule``) live here as pure objects and are driven by the execution
stage, which sees the market; each rejection they make is persisted with its reason there.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import msgspec
import numpy as np
import orjson

from engine.book import CROSSED, HALTED, STALE, BookView
from engine.events import OrderRequest, OrderType
from engine.records import RecordBuffer
from ml.scoring import ScoredSignal

NS = 1_000_000_000


class OrderIntent(msgspec.Struct, frozen=True, gc=False):
    """An accepted order together with the book view it was decided on."""

    order: OrderRequest
    view: BookView | None
    probability: float = 1.0
    stop: int = 0  # ticks; 0 = none
    target: int = 0  # ticks; 0 = none
    time_stop_ns: int = 0  # 0 = none
    regime: str = "unknown"

    def sort_key(self) -> tuple:
        return (self.order.ts_local, self.order.instrument_id, self.order.client_id)


class RiskState:
    """What the checks may look at: intended positions and recent order times per instrument."""

    def __init__(self) -> None:
        self.position: dict[int, int] = {}
        self.recent: dict[int, deque[int]] = {}


class RiskCheck(Protocol):
    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        """Return a rejection reason, or None to accept."""
        ...


class UsableBook:
    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        view = scored.signal.view
        if view is None:
            return "no book view"
        if view.state & STALE:
            return "book stale"
        if view.state & CROSSED:
            return "book crossed"
        if view.state & HALTED:
            return "market halted"
        return None


class MaxOrderSize:
    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        return f"size {size} > max order size {self.limit}" if size > self.limit else None


class PositionLimit:
    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        signal = scored.signal
        after = state.position.get(signal.instrument_id, 0) + signal.side * size
        return f"position {after} beyond limit {self.limit}" if abs(after) > self.limit else None


class OrderRate:
    def __init__(self, per_second: int) -> None:
        self.per_second = per_second

    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        times = state.recent.setdefault(scored.signal.instrument_id, deque())
        now = scored.signal.ts_recv
        while times and times[0] <= now - NS:
            times.popleft()
        return f"more than {self.per_second} orders/s" if len(times) >= self.per_second else None


class PriceBand:
    """The entry price lies within ``k * sigma1`` ticks of the mid (sigma1 from the signal's features)."""

    def __init__(self, k: float) -> None:
        self.k = k

    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        signal = scored.signal
        view = signal.view
        sigma = feature(signal, "sigma1")
        if view is None or not view.bid_px or not view.ask_px or sigma <= 0:
            return None
        mid = (view.bid_px[0] + view.ask_px[0]) / 2
        band = max(self.k * sigma, (view.ask_px[0] - view.bid_px[0]) / 2)
        if abs(signal.entry_price - mid) > band:
            return f"entry {signal.entry_price} outside mid {mid:g} +- {band:.1f} ticks"
        return None


class StopDistance:
    """SPEC 11 structure stops: refuse L > max_sigma * sigma1 (too wide) or L < spread + 1 tick (too tight)."""

    def __init__(self, max_sigma: float) -> None:
        self.max_sigma = max_sigma

    def check(self, scored: ScoredSignal, size: int, state: RiskState) -> str | None:
        signal = scored.signal
        distance = abs(signal.entry_price - signal.stop)
        view = signal.view
        spread = view.ask_px[0] - view.bid_px[0] if view is not None and view.bid_px and view.ask_px else 0
        if distance < spread + 1:
            return f"stop {distance} ticks away, tighter than spread + 1 ({spread + 1})"
        sigma = feature(signal, "sigma1")
        if sigma > 0 and distance > self.max_sigma * sigma:
            return f"stop {distance} ticks away, wider than {self.max_sigma:g} sigma1 ({self.max_sigma * sigma:.1f})"
        return None


def feature(signal, name: str, default: float = 0.0) -> float:
    """A named feature of the signal's vector, or ``default`` (the adapter every rule reads signals through)."""
    features = getattr(signal, "features", None)
    if features is None:
        return default
    value = features.values.get(name)
    return default if value is None or not math.isfinite(value) else float(value)


def regime_of(signal) -> str:
    """The regime a signal was taken in: the signal's own ``regime`` field when it has one, else "unknown"."""
    regime = getattr(signal, "regime", None)
    return str(regime) if regime not in (None, "") else "unknown"


class Sizing:
    """SPEC 11 sizing: ``n = min(n_stop, n_vol, n_liq, n_max) * c(p)``, at least 0.

    - ``n_stop = floor(r_trade * equity / (L * tick_value))`` with L the stop distance in ticks;
    - ``n_vol = floor(dollar_vol / (sigma1 * sqrt(H) * tick_value))`` (H the holding time, seconds;
      skipped while sigma1 is unknown);
    - ``n_liq = floor(liquidity_share * median best-queue size)`` over the last 64 signals' books, at
      least 1 (a cap, not a ban: thin simulated queues of a few lots would otherwise refuse everything);
    - ``c(p) = clip((p - p_be) / (p_hi - p_be), 0.25, 1)``.
    The scaled size is floored to whole lots but never below one lot when the caps allow one: c(p) is
    clipped at 0.25 so that confidence scales a trade down, never refuses it (the p_BE gate refuses),
    and flooring ``1 * c`` to 0 would turn the one-lot liquidity cap back into a ban.
    Equity is the configured starting equity (the risk stage does not see fills; the drawdown
    ladder in the execution stage halves sizes when equity falls).
    """

    def __init__(self, equity: float, tick_values: dict[int, float], r_trade: float, dollar_vol: float,
                 holding_s: float, liquidity_share: float, max_size: int, p_be: float, p_hi: float) -> None:
        self.equity = equity
        self.tick_values = tick_values
        self.r_trade = r_trade
        self.dollar_vol = dollar_vol
        self.holding_s = holding_s
        self.liquidity_share = liquidity_share
        self.max_size = max_size
        self.p_be = p_be
        self.p_hi = p_hi
        self.queues: dict[int, deque[int]] = {}

    def size(self, scored: ScoredSignal) -> tuple[int, dict[str, float]]:
        """The order size and its parts (for the decision row's evidence)."""
        signal = scored.signal
        tv = self.tick_values.get(signal.instrument_id, 1.0)
        distance = max(1, abs(signal.entry_price - signal.stop))
        parts: dict[str, float] = {"n_stop": math.floor(self.r_trade * self.equity / (distance * tv))}
        sigma = feature(signal, "sigma1")
        if sigma > 0:
            parts["n_vol"] = math.floor(self.dollar_vol / (sigma * math.sqrt(self.holding_s) * tv))
        view = signal.view
        if view is not None and view.bid_sz and view.ask_sz:
            seen = self.queues.setdefault(signal.instrument_id, deque(maxlen=64))
            seen.append((view.bid_sz[0] + view.ask_sz[0]) // 2)
            parts["n_liq"] = max(1, math.floor(self.liquidity_share * float(np.median(seen))))
        parts["n_max"] = self.max_size
        span = self.p_hi - self.p_be
        confidence = min(1.0, max(0.25, (scored.probability - self.p_be) / span)) if span > 0 else 1.0
        parts["confidence"] = confidence
        base = min(v for k, v in parts.items() if k != "confidence")
        if base < 1:
            return 0, parts
        return max(1, math.floor(base * confidence)), parts


class RiskManager(RecordBuffer):
    """Stage core: scored signals (canonical order) -> order intents.

    ``sizing`` None keeps the fixed ``order_size`` (tests of the checks alone).
    """

    def __init__(self, checks: list[RiskCheck], order_size: int, decision_latency_ns: int = 50_000,
                 sizing: Sizing | None = None) -> None:
        super().__init__()
        self.checks = checks
        self.order_size = order_size
        self.decision_latency_ns = decision_latency_ns
        self.sizing = sizing
        self.state = RiskState()
        self.accepted = 0
        self.rejected = 0

    def apply(self, batch: list[ScoredSignal]) -> list[OrderIntent]:
        out = []
        for scored in batch:
            signal = scored.signal
            size = self.order_size
            reason = None
            if self.sizing is not None:
                size, parts = self.sizing.size(scored)
                if size < 1:
                    reason = "size 0 after sizing (" + ", ".join(f"{k} {v:g}" for k, v in parts.items()) + ")"
            if reason is None:
                for check in self.checks:
                    reason = check.check(scored, size, self.state)
                    if reason is not None:
                        break
            self.records.append(("signals", _signal_row(scored, reason)))
            if reason is not None:
                self.rejected += 1
                continue
            self.accepted += 1
            iid = signal.instrument_id
            self.state.position[iid] = self.state.position.get(iid, 0) + signal.side * size
            self.state.recent.setdefault(iid, deque()).append(signal.ts_recv)
            order = OrderRequest(
                instrument_id=iid,
                client_id=f"o-{signal.signal_id}",
                side=signal.side,
                order_type=signal.entry_type,
                price=signal.entry_price,
                size=size,
                tif="IOC" if signal.entry_type != OrderType.LIMIT else "DAY",
                ts_local=signal.ts_recv + self.decision_latency_ns,
                strategy=signal.strategy,
                signal_id=signal.signal_id,
            )
            target = scored.target or (signal.targets[0] if signal.targets else 0)  # a live price-target model's first
            out.append(OrderIntent(order, signal.view, scored.probability, signal.stop, target, signal.time_stop_ns,
                                   regime_of(signal)))
        return out

    def flush(self) -> list:
        return []


def _signal_row(scored: ScoredSignal, reason: str | None) -> tuple:
    s = scored.signal
    features = orjson.dumps(s.features.values).decode() if s.features is not None else "null"
    return (
        s.signal_id, s.instrument_id, s.seq, s.ts_recv, s.strategy, s.side, s.entry_type, s.entry_price,
        s.stop, s.targets[0] if s.targets else None, s.time_stop_ns, s.score, scored.probability,
        scored.mode, "rejected" if reason else "accepted", reason, features, *s.detail_columns(),
    )


# ---- guards driven by the execution stage (they need fills and marks) ---------------------------------


class StopRule:
    """Structure stops only tighten (SPEC 11): to breakeven + costs at +1R, then trail at the last swing.

    ``update`` returns the new stop of a position of ``side`` entered at ``entry`` with initial stop
    ``initial``, given the current mark and the last confirmed swing on the protective side (a swing
    low for a long, 0 when none); never a looser stop than ``current``.
    """

    def __init__(self, cost_ticks: int = 1, swing_buffer: int = 1) -> None:
        self.cost_ticks = cost_ticks
        self.swing_buffer = swing_buffer

    def update(self, side: int, entry: float, initial: int, current: int, mark: float, swing: int) -> int:
        risk = abs(entry - initial)
        candidate = current
        if risk > 0 and (mark - entry) * side >= risk:
            breakeven = math.ceil(entry) + self.cost_ticks if side > 0 else math.floor(entry) - self.cost_ticks
            candidate = _tighter(side, candidate, breakeven)
            if swing:
                trail = swing - side * self.swing_buffer
                if (mark - trail) * side > 0:
                    candidate = _tighter(side, candidate, trail)
        return candidate


def _tighter(side: int, a: int, b: int) -> int:
    return max(a, b) if side > 0 else min(a, b)


class SwingTrail:
    """Last confirmed swing low and high of the mid on fixed bars (3-bar fractal, as SPEC F25 on TF2)."""

    __slots__ = ("bar_ns", "end", "high", "low", "bars", "swing_low", "swing_high")

    def __init__(self, bar_ns: int = 10 * NS) -> None:
        self.bar_ns = bar_ns
        self.end = 0
        self.high = self.low = 0.0
        self.bars: deque[tuple[float, float]] = deque(maxlen=3)
        self.swing_low = 0
        self.swing_high = 0

    def on_mid(self, ts: int, mid: float) -> None:
        if ts >= self.end:
            if self.end:
                self.bars.append((self.high, self.low))
                if len(self.bars) == 3:
                    (h0, l0), (h1, l1), (h2, l2) = self.bars
                    if l1 < l0 and l1 <= l2:
                        self.swing_low = math.floor(l1)
                    if h1 > h0 and h1 >= h2:
                        self.swing_high = math.ceil(h1)
            self.end = (ts // self.bar_ns + 1) * self.bar_ns
            self.high = self.low = mid
        else:
            self.high = max(self.high, mid)
            self.low = min(self.low, mid)

    def protective(self, side: int) -> int:
        """The swing a position of ``side`` trails behind: the last swing low for a long."""
        return self.swing_low if side > 0 else self.swing_high


class DrawdownGuard:
    """SPEC 11 drawdown ladder and kill switch, on equity marked to mid (fees included).

    - drawdown from the session high-water mark >= ``soft``: sizes x0.5 and only signals with
      ``p >= p_be + 0.1``;
    - drawdown >= ``hard``, or the day's loss >= ``daily_loss``, or ``max_losses`` consecutive losing
      trades: the kill switch latches (flatten, cancel all, block every new order) until
      ``reset()``, an explicit operator action;
    - a strategy whose own drawdown (from its own high-water mark of closed-trade PnL) reaches
      ``strategy_dd`` of equity is disabled for the session.
    """

    def __init__(self, equity0: float, soft: float, hard: float, daily_loss: float, max_losses: int,
                 strategy_dd: float, p_be: float) -> None:
        self.equity0 = equity0
        self.soft = soft
        self.hard = hard
        self.daily_loss = daily_loss
        self.max_losses = max_losses
        self.strategy_dd = strategy_dd
        self.p_be = p_be
        self.high = equity0
        self.equity = equity0
        self.killed: str | None = None
        self.losses = 0
        self.strategy_pnl: dict[str, float] = {}
        self.strategy_high: dict[str, float] = {}
        self.disabled: dict[str, str] = {}

    @property
    def drawdown(self) -> float:
        return (self.high - self.equity) / self.high if self.high > 0 else 0.0

    def on_equity(self, equity: float) -> str | None:
        """A new mark; returns the kill reason when this mark latches the switch."""
        self.equity = equity
        self.high = max(self.high, equity)
        if self.killed is None:
            if self.drawdown >= self.hard:
                return self._kill(f"drawdown {self.drawdown:.2%} >= {self.hard:.2%}")
            if self.equity0 - equity >= self.daily_loss:
                return self._kill(f"daily loss {self.equity0 - equity:,.2f} >= {self.daily_loss:,.2f}")
        return None

    def on_trade_closed(self, strategy: str, pnl: float) -> list[str]:
        """A round trip closed with ``pnl``; returns what it latched (kill switch, strategy disabled)."""
        events = []
        self.losses = self.losses + 1 if pnl < 0 else 0
        if self.killed is None and self.losses >= self.max_losses:
            events.append(self._kill(f"{self.losses} consecutive losing trades"))
        total = self.strategy_pnl.get(strategy, 0.0) + pnl
        self.strategy_pnl[strategy] = total
        high = self.strategy_high[strategy] = max(self.strategy_high.get(strategy, 0.0), total)
        if strategy not in self.disabled and high - total >= self.strategy_dd * self.equity0:
            self.disabled[strategy] = f"strategy drawdown {high - total:,.2f} >= {self.strategy_dd:.2%} of equity"
            events.append(f"disabled {strategy}: {self.disabled[strategy]}")
        return events

    def gate(self, strategy: str, probability: float) -> tuple[float, str | None]:
        """Size factor and rejection reason for a new order."""
        if self.killed is not None:
            return 0.0, f"kill switch: {self.killed}"
        if strategy in self.disabled:
            return 0.0, f"strategy disabled: {self.disabled[strategy]}"
        if self.drawdown >= self.soft:
            if probability < self.p_be + 0.1:
                return 0.0, f"drawdown {self.drawdown:.2%}: p {probability:.2f} < p_be + 0.1"
            return 0.5, None
        return 1.0, None

    def reset(self) -> None:
        """The operator's explicit reset of the kill switch (the only way it unlatches)."""
        self.killed = None
        self.losses = 0
        self.high = self.equity

    def _kill(self, reason: str) -> str:
        self.killed = reason
        return f"kill switch: {reason}"


class CorrelationCap:
    """SPEC 11 correlation cap on signed dollar exposures.

    Covariance of per-unit dollar returns sampled every ``sample_ns`` (1 min), EWMA with half-life
    ``half_life_s`` (2 h), shrunk toward its diagonal by ``shrink`` (a fixed Ledoit-Wolf-style
    intensity; the optimal one needs more samples than a session has). An order is refused when
    ``sqrt(w' S w)`` after it exceeds ``portfolio_cap``, or when, in a cluster of instruments with
    pairwise correlation > ``cluster_rho``, the net same-direction exposure exceeds
    ``cluster_factor * single_cap``. Before two returns of every instrument exist, only the
    per-instrument dollar cap (``single_cap``) applies.
    """

    def __init__(self, instruments: list[int], sample_ns: int, half_life_s: float, shrink: float,
                 portfolio_cap: float, single_cap: float, cluster_rho: float, cluster_factor: float) -> None:
        self.ids = list(instruments)
        self.index = {iid: k for k, iid in enumerate(self.ids)}
        n = len(self.ids)
        self.sample_ns = sample_ns
        self.decay = 0.5 ** (sample_ns / 1e9 / half_life_s)
        self.shrink = shrink
        self.portfolio_cap = portfolio_cap
        self.single_cap = single_cap
        self.cluster_rho = cluster_rho
        self.cluster_factor = cluster_factor
        self.cov = np.zeros((n, n))
        self.samples = 0
        self.next_sample = 0
        self.marks = np.zeros(n)
        self.last = np.zeros(n)

    def on_mark(self, ts: int, instrument_id: int, dollar_price: float) -> None:
        """The latest mid of one instrument in currency per lot; returns are sampled on the grid with the
        marks as they stood at the boundary (before this one)."""
        if ts >= self.next_sample:
            if self.next_sample and self.last.all() and self.marks.all():
                r = self.marks - self.last
                self.cov = self.decay * self.cov + (1 - self.decay) * np.outer(r, r)
                self.samples += 1
            self.last = self.marks.copy()
            self.next_sample = (ts // self.sample_ns + 1) * self.sample_ns
        self.marks[self.index[instrument_id]] = dollar_price

    def shrunk(self) -> np.ndarray:
        diagonal = np.diag(np.diag(self.cov))
        return (1 - self.shrink) * self.cov + self.shrink * diagonal

    def check(self, positions: dict[int, int], instrument_id: int, signed_size: int) -> str | None:
        """Reason to refuse adding ``signed_size`` lots of ``instrument_id`` to ``positions``, or None."""
        w = np.array([positions.get(iid, 0) for iid in self.ids], dtype=float)
        w[self.index[instrument_id]] += signed_size
        w *= self.marks
        k = self.index[instrument_id]
        if abs(w[k]) > self.single_cap:
            return f"exposure {abs(w[k]):,.0f} > single-instrument cap {self.single_cap:,.0f}"
        if self.samples < 2:
            return None
        s = self.shrunk()
        vol = math.sqrt(max(0.0, float(w @ s @ w)))
        if vol > self.portfolio_cap:
            return f"portfolio dollar vol {vol:,.0f} > cap {self.portfolio_cap:,.0f}"
        sd = np.sqrt(np.maximum(np.diag(s), 1e-300))
        rho = s / np.outer(sd, sd)
        cluster = [j for j in range(len(self.ids)) if j == k or rho[k, j] > self.cluster_rho]
        same = sum(w[j] for j in cluster if w[j] * w[k] > 0)
        if len(cluster) > 1 and abs(same) > self.cluster_factor * self.single_cap:
            return (f"correlated cluster exposure {abs(same):,.0f} > {self.cluster_factor:g} x single cap "
                    f"{self.single_cap:,.0f}")
        return None
