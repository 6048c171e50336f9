"""``calibrate``: the stylized-fact statistics of a real LOBSTER day beside simulator sessions.

``calibrate`` reads any LOBSTER message file (its orderbook file beside it, by name), computes each
statistic of ``CALIBRATION_STATISTICS`` on it, runs one background-market session of three
synthetic instruments of a profile per seed (their price level that of the real day, their tick
the profile's), and reports for each statistic the real value beside the median, minimum and
maximum over the seeds, with a verdict: ``inside`` the simulated range, ``near`` (outside, but
within ``NEAR_SHARE`` of the nearer end) or ``outside``. Real figures are computed at run time from
the data, never stored.

Statistics marked ``matched`` are the ones the simulator is calibrated to reproduce (the real value
inside the range over five seeds, or near it); the others are shown for orientation. The
intraday ones need sessions of at least ``INTRADAY_MIN_HOURS`` (a trading day: ``--minutes`` defaults
to the length of the real day).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from rich.table import Table

from engine.config import Config
from engine.events import Regime
from feeds.simulator.check import background_market, profile_config, simulate_series
from feeds.simulator.facts import FactResult, compute_facts, returns
from feeds.simulator.series import MarketSeries, extract_series, market_orders

NEAR_SHARE = 0.15  # "near": within this share of the nearer end of the simulated range
INTRADAY_MIN_HOURS = 5.0  # intraday statistics need sessions at least this long
EDGE_S = 1800.0  # the first and last 30 minutes
NS = 1_000_000_000


class CalibrationRow(msgspec.Struct, frozen=True):
    """One statistic on the real day beside its values over the simulator's seeds."""

    name: str
    real: float | None
    sims: list[float | None]
    target: str
    matched: bool = False  # a statistic the simulator is calibrated to reproduce

    @property
    def values(self) -> list[float]:
        """The finite simulated values."""
        return [v for v in self.sims if v is not None]

    @property
    def sim_median(self) -> float | None:
        return float(np.median(self.values)) if self.values else None

    @property
    def sim_min(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def sim_max(self) -> float | None:
        return max(self.values) if self.values else None

    @property
    def verdict(self) -> str:
        """``inside``, ``near`` (within ``NEAR_SHARE`` of the nearer end), ``outside`` or ``n/a``."""
        lo, hi = self.sim_min, self.sim_max
        if self.real is None or lo is None or hi is None:
            return "n/a"
        if lo <= self.real <= hi:
            return "inside"
        end = lo if self.real < lo else hi
        return "near" if abs(self.real - end) <= NEAR_SHARE * abs(end) else "outside"

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"statistic": self.name, "real": self.real, "sim_median": self.sim_median, "sim_min": self.sim_min,
                "sim_max": self.sim_max, "verdict": self.verdict, "inside": self.verdict == "inside",
                "matched": self.matched, "target": self.target, "sims": self.sims}


def real_series(message_path: str | Path | None = None, level: int = 5) -> dict[int, MarketSeries]:
    """Series of a LOBSTER day (default: the bundled AMZN sample with ``level`` levels)."""
    from feeds.lobster import LobsterFeed, locate_sample

    feed = LobsterFeed(message_path if message_path is not None else locate_sample(level)[0])
    return extract_series(feed.events(), feed.instruments())


def session_minutes(series: dict[int, MarketSeries]) -> float:
    """Length of the longest series, minutes."""
    spans = [(s.grid_ts[-1] - s.grid_ts[0]) / 60e9 for s in series.values() if len(s.grid_ts) > 1]
    return max(spans) if spans else 0.0


def price_level(series: dict[int, MarketSeries]) -> float:
    """Mean mid price of the series, currency units."""
    return float(np.mean([_price(s) for s in series.values()]))


def calibrate(config: Config, *, message_path: str | Path | None = None, level: int = 5,
              profile: str = "small_tick", seeds: Sequence[int] = (1, 2, 3, 4, 5),
              minutes: float | None = None) -> list[CalibrationRow]:
    """Every statistic on the real day beside its values over one simulator session per seed.

    ``minutes`` defaults to the real day's length; the synthetic instruments open at its price level.
    """
    real = real_series(message_path, level)
    real_facts = compute_facts(real, profile=profile, betas=None)
    minutes = session_minutes(real) if minutes is None else minutes
    sim_config = background_market(profile_config(config, profile, start_price=round(price_level(real), 2)))
    sims = []
    for seed in seeds:
        series, simulator, _ = simulate_series(sim_config, minutes=minutes, seed=seed)
        facts = compute_facts(series, profile=profile, betas=None, metaorders=getattr(simulator, "metaorders", None))
        sims.append([_num(fn(facts, series)) for _, _, fn, _ in CALIBRATION_STATISTICS])
    return [CalibrationRow(name, _num(fn(real_facts, real)), [values[i] for values in sims], target, matched)
            for i, (name, target, fn, matched) in enumerate(CALIBRATION_STATISTICS)]


# ---- statistics ------------------------------------------------------------------------------------
Pick = Callable[[Sequence[FactResult], dict[int, MarketSeries]], Any]


def _fact(prefix: str, key: str | None = None, index: int | None = None) -> Pick:
    def pick(facts: Sequence[FactResult], _series: dict[int, MarketSeries]) -> Any:
        fact = next(f for f in facts if f.name.startswith(prefix))
        value = fact.value if key is None else fact.detail.get(key)
        return value[index] if index is not None and value is not None else value

    return pick


def _qi(bucket: int) -> Pick:
    def pick(facts: Sequence[FactResult], _series: dict[int, MarketSeries]) -> Any:
        table = next(f for f in facts if f.name.startswith("7 ")).detail.get("table", [])
        return table[bucket]["p_up"] if table else None

    return pick


def _qi_gap(facts: Sequence[FactResult], series: dict[int, MarketSeries]) -> Any:
    top, bottom = _qi(-1)(facts, series), _qi(0)(facts, series)
    return None if top is None or bottom is None else top - bottom


def _single_order_exponent(facts: Sequence[FactResult], _series: dict[int, MarketSeries]) -> Any:
    single = next(f for f in facts if f.name.startswith("5 ")).detail.get("single_order", {})
    values = [v["exponent"] for v in single.values() if v.get("exponent") is not None]
    return float(np.mean(values)) if values else None


def _per_series(fn: Callable[[MarketSeries], float | None]) -> Pick:
    def pick(_facts: Sequence[FactResult], series: dict[int, MarketSeries]) -> Any:
        values = [fn(s) for s in series.values()]
        values = [v for v in values if v is not None and math.isfinite(v)]
        return float(np.mean(values)) if values else None

    return pick


def _pooled(numerator: Callable[[MarketSeries], float], denominator: Callable[[MarketSeries], float]) -> Pick:
    def pick(_facts: Sequence[FactResult], series: dict[int, MarketSeries]) -> Any:
        den = sum(denominator(s) for s in series.values())
        return sum(numerator(s) for s in series.values()) / den if den else None

    return pick


def _open_spread(s: MarketSeries) -> np.ndarray:
    return s.spread[np.isfinite(s.spread) & s.is_open]


def _spread_quantile(q: float) -> Callable[[MarketSeries], float | None]:
    def fn(s: MarketSeries) -> float | None:
        sp = _open_spread(s)
        return float(np.quantile(sp, q)) if len(sp) else None

    return fn


def _spread_ratio(s: MarketSeries) -> float | None:
    sp = _open_spread(s)
    if not len(sp):
        return None
    lo = float(np.quantile(sp, 0.1))
    return float(np.quantile(sp, 0.9)) / lo if lo > 0 else None


def _std_60s(s: MarketSeries) -> float:
    r = returns(s, 60)[1]
    return float(r.std()) if len(r) > 1 else math.nan


def _noise_ratio(s: MarketSeries) -> float:
    """Volatility per sqrt(second) at 1 s over that at 60 s: 1 for a martingale mid, > 1 with bounce."""
    r1, r60 = returns(s, 1)[1], returns(s, 60)[1]
    if len(r1) < 2 or len(r60) < 2 or r60.std() <= 0:
        return math.nan
    return float(r1.std() / (r60.std() / math.sqrt(60.0)))


def _span_s(s: MarketSeries) -> float:
    return (s.grid_ts[-1] - s.grid_ts[0]) / NS if len(s.grid_ts) > 1 else 0.0


def _orders_per_minute(s: MarketSeries) -> float:
    span = _span_s(s) / 60.0
    return len(market_orders(s).ts) / span if span > 0 else math.nan


def _median_order_size(s: MarketSeries) -> float:
    sizes = market_orders(s).size
    return float(np.median(sizes)) if len(sizes) else math.nan


def _median_best_queue(s: MarketSeries) -> float:
    sizes = np.concatenate([s.bid_size, s.ask_size])
    sizes = sizes[sizes > 0]
    return float(np.median(sizes)) if len(sizes) else math.nan


def _price(s: MarketSeries) -> float:
    mid = s.mid2[np.isfinite(s.mid2)] / 2.0
    return float(np.mean(mid)) * s.tick_size if len(mid) else math.nan


def _tick_bp(s: MarketSeries) -> float:
    return s.tick_size / _price(s) * 1e4


def _edge_window(s: MarketSeries, last: bool) -> tuple[int, int] | None:
    """``(t0, t1)`` ns of the first (or last) 30 minutes; None for a session shorter than a trading day."""
    if _span_s(s) < INTRADAY_MIN_HOURS * 3600.0:
        return None
    t0, t1 = int(s.grid_ts[0]), int(s.grid_ts[-1])
    return (t1 - int(EDGE_S * NS), t1) if last else (t0, t0 + int(EDGE_S * NS))


def _edge_spread_ratio(s: MarketSeries) -> float | None:
    window = _edge_window(s, last=False)
    if window is None:
        return None
    ok = np.isfinite(s.spread) & s.is_open
    edge = ok & (s.grid_ts >= window[0]) & (s.grid_ts < window[1])
    return float(np.mean(s.spread[edge]) / np.mean(s.spread[ok])) if edge.any() else None


def _edge_rate_ratio(last: bool) -> Callable[[MarketSeries], float | None]:
    def fn(s: MarketSeries) -> float | None:
        window = _edge_window(s, last)
        if window is None:
            return None
        ts = market_orders(s).ts
        inside = np.count_nonzero((ts >= window[0]) & (ts <= window[1]))
        return inside / EDGE_S / (len(ts) / _span_s(s)) if len(ts) else None

    return fn


def _rule_share(label: str) -> Pick:
    def pick(facts: Sequence[FactResult], _series: dict[int, MarketSeries]) -> Any:
        counts = next(f for f in facts if f.name.startswith("9 ")).detail.get("rule_label_counts", {})
        total = sum(sum(c) for c in counts.values())
        return sum(c[int(Regime[label])] for c in counts.values()) / total if total else None

    return pick


def _trend_share(facts: Sequence[FactResult], series: dict[int, MarketSeries]) -> Any:
    up, down = _rule_share("TREND_UP")(facts, series), _rule_share("TREND_DOWN")(facts, series)
    return None if up is None or down is None else float(up + down)


def _count(kind: str) -> Callable[[MarketSeries], float]:
    return lambda s: s.event_counts.get(kind, 0)


CALIBRATION_STATISTICS: tuple[tuple[str, str, Pick, bool], ...] = (
    # (name, sim-check target or "orientation", statistic, matched: calibrated to the real day)
    ("price level ($)", "from the real day", _per_series(_price), True),
    ("tick (bp of price)", "from config", _per_series(_tick_bp), True),
    ("kurtosis 1 s returns", "> 10", _fact("1 ", "kurtosis_1s"), False),
    ("kurtosis 10 s returns", "> 5", _fact("1 ", "kurtosis_10s"), False),
    ("Hill index |r 10 s| top 5%", "[2, 6]", _fact("1 ", "hill_10s"), False),
    ("ACF |r 10 s| lag 1", "> 0.1", _fact("2 ", "acf_abs", 0), True),
    ("ACF |r 10 s| lag 10", "> 0", _fact("2 ", "acf_abs", 9), True),
    ("ACF r 10 s lag 2", "|.| < 0.05", _fact("2 ", "acf_ret", 1), False),
    ("mean spread (ticks)", "[10, 16]", _fact("3 "), False),
    ("spread median (ticks)", "orientation", _per_series(_spread_quantile(0.5)), True),
    ("spread p10 (ticks)", "orientation", _per_series(_spread_quantile(0.1)), True),
    ("spread p90 / p10", "orientation", _per_series(_spread_ratio), True),
    ("std of 60 s mid change (ticks)", "orientation", _per_series(_std_60s), False),
    ("volatility 1 s / 60 s (per sqrt s)", "orientation", _per_series(_noise_ratio), False),
    ("median best-queue size (lots)", "orientation", _per_series(_median_best_queue), False),
    ("market orders per minute", "orientation", _per_series(_orders_per_minute), False),
    ("median market-order size (lots)", "orientation", _per_series(_median_order_size), False),
    ("hidden executions share", "orientation",
     _pooled(lambda s: int(np.count_nonzero(s.trade_hidden)), lambda s: len(s.trade_hidden)), True),
    ("partial cancels per add", "orientation", _pooled(_count("OrderCancel"), _count("OrderAdd")), True),
    ("order-sign ACF lag 1", "> 0.3", _fact("4 ", "acf_1"), True),
    ("order-sign ACF lag 10", "> 0", _fact("4 ", "acf_10"), False),
    ("order-sign ACF power-law exponent", "(0.2, 0.9)", _fact("4 ", "exponent"), False),
    ("single-order impact exponent", "< 1 (concave)", _single_order_exponent, True),
    ("metaorder impact exponent δ", "[0.3, 0.8]", _fact("5 "), False),
    ("OFI R² 1 s", "orientation", _fact("6 ", "r2_1s"), False),
    ("OFI R² 10 s", ">= 0.2", _fact("6 ", "r2_10s"), False),
    ("OFI R² 60 s", "orientation", _fact("6 ", "r2_60s"), False),
    ("P(up | I < 0.2)", "< 0.5", _qi(0), True),
    ("P(up | I >= 0.8)", "> 0.5", _qi(-1), False),
    ("P(up) top - bottom I bucket", "orientation", _qi_gap, True),
    ("first 30 min spread / day mean", ">= 1.3", _per_series(_edge_spread_ratio), True),
    ("first 30 min market-order rate / day mean", "orientation", _per_series(_edge_rate_ratio(last=False)), True),
    ("last 30 min market-order rate / day mean", ">= 2", _per_series(_edge_rate_ratio(last=True)), True),
    ("rule labels: SHOCK share", "orientation", _rule_share("SHOCK"), False),
    ("rule labels: TREND share", "orientation", _trend_share, False),
    ("rule labels: RANGE_HIGH share", "orientation", _rule_share("RANGE_HIGH"), False),
)


# ---- rendering -------------------------------------------------------------------------------------
VERDICT_STYLE = {"inside": "[green]inside[/]", "near": "[yellow]near[/]", "outside": "[red]outside[/]", "n/a": "n/a"}


def render_calibration(rows: Sequence[CalibrationRow], title: str = "Calibration: real day vs simulator") -> Table:
    """A rich table: statistic, real value, simulator median and [min, max] over the seeds, verdict."""
    table = Table(title=title)
    for column in ("statistic", "real", "sim median", "sim min", "sim max", "verdict", "sim-check target"):
        table.add_column(column, justify="right" if column.startswith(("real", "sim ")) else "left")
    for row in rows:
        name = f"{row.name} *" if row.matched else row.name
        table.add_row(name, _fmt(row.real), _fmt(row.sim_median), _fmt(row.sim_min), _fmt(row.sim_max),
                      VERDICT_STYLE[row.verdict], row.target)
    table.caption = f"* calibrated: real inside [min, max] over the seeds or within {NEAR_SHARE:.0%} of the nearer end"
    return table


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
