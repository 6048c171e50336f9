"""Simulator acceptance (``sim-check``) and comparison with the LOBSTER AMZN day (``calibrate``).

``run_sim_check`` runs one simulator session, extracts its series and computes the stylized facts
of SPEC section 9 against the simulator's own truth (metaorders, regimes). ``calibrate`` computes
the same statistics on the real AMZN sample and on a small-tick simulator session side by side.
Real figures are computed at run time from the data, never stored. Rendering helpers turn results
into a rich table or plain JSON-ready dicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np
from rich.table import Table

from engine.config import Config, InstrumentSpec
from engine.events import Regime
from feeds.simulator.facts import FactResult, compute_facts, regime_inputs, returns
from feeds.simulator.series import MarketSeries, extract_series, market_orders
from ml.labels import RuleReference, fit_reference

SYNTHETIC_BETAS = (0.8, 0.6, 0.4)
REFERENCE_MINUTES = 720.0  # length of the reference (training) session of the regime rules
REFERENCE_SEED = 0  # seed of the reference session: one fixed training period per instrument class


class CalibrationRow(msgspec.Struct, frozen=True):
    """One statistic on the real day beside the simulator session."""

    name: str
    real_value: float | None
    sim_value: float | None
    target: str

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output: name, real, sim, target."""
        return {"name": self.name, "real": self.real_value, "sim": self.sim_value, "target": self.target}


def profile_config(config: Config, profile: str, start_price: float | None = None) -> Config:
    """``config`` with three synthetic instruments SIM1..3 of ``profile`` (betas 0.8/0.6/0.4) as symbols.

    Their price level and tick are the profile's ``start_price`` and ``tick_size`` (``start_price``
    overrides the price, e.g. with a real day's opening price).
    """
    symbols = [f"SIM{i + 1}" for i in range(len(SYNTHETIC_BETAS))]
    params = config.simulator.profile(profile)
    price = params.start_price if start_price is None else start_price
    specs = {sym: InstrumentSpec(profile=profile, beta=beta, start_price=price, tick_size=params.tick_size)
             for sym, beta in zip(symbols, SYNTHETIC_BETAS, strict=True)}
    run = msgspec.structs.replace(config.run, symbols=symbols)
    return msgspec.structs.replace(config, run=run, instruments={**config.instruments, **specs})


def background_market(config: Config) -> Config:
    """``config`` without planted background episodes: the stylized facts are the background market's.

    Planted episodes (iceberg, sweep, vacuum... with their latent jumps) are fact 10's subject and
    carry their own labels; the regime rules would read their latent jumps as SHOCKs.
    """
    return msgspec.structs.replace(config, simulator=msgspec.structs.replace(config.simulator, episodes_per_hour=0.0))


def simulate_series(config: Config, *, minutes: float, seed: int):
    """Run the simulator over ``config.run.symbols``; return (series, simulator, definitions)."""
    from feeds.simulator import MarketSimulator  # the simulator package exports its session class

    sim = MarketSimulator(list(config.run.symbols), config, seed, minutes * 60.0)
    definitions = sim.instruments()
    return extract_series(sim.events(), definitions), sim, definitions


def rule_references(config: Config, *, minutes: float, seed: int) -> dict[int, RuleReference]:
    """Regime-rule thresholds fitted on a separate session (the training period), per instrument id.

    Instruments with the same profile, volatility and liquidity (their betas may differ) share one
    fit: the thresholds are properties of the instrument class. Its training session simulates one
    instrument of the class for ``minutes``: the regime chain is shared by all instruments, so
    more instruments would not add regime episodes, a longer session does (both ranging regimes
    must be in it for the RANGE_HIGH split).
    """
    groups: dict[tuple, list[int]] = {}
    symbols = list(config.run.symbols)
    for iid, sym in enumerate(symbols):
        spec = config.instrument(sym)
        groups.setdefault((spec.profile, spec.volatility, spec.liquidity), []).append(iid)
    references: dict[int, RuleReference] = {}
    for members in groups.values():
        single = msgspec.structs.replace(config, run=msgspec.structs.replace(config.run, symbols=[symbols[members[0]]]))
        series, _, _ = simulate_series(single, minutes=minutes, seed=seed)
        inputs = [x for x in (regime_inputs(s)[0] for s in series.values()) if x is not None]
        if inputs:
            references.update(dict.fromkeys(members, fit_reference(inputs)))
    return references


def run_sim_check(config: Config, *, minutes: float, profile: str | None, seed: int,
                  spread_band: tuple[float, float] = (10, 16),
                  reference_minutes: float = REFERENCE_MINUTES) -> list[FactResult]:
    """Simulate ``minutes`` and check every SPEC section 9 stylized fact on the session.

    The regime rules (check 9) use thresholds fitted on a reference session of the same instrument
    classes (``reference_minutes`` long, seed ``REFERENCE_SEED``, the same for every session): SPEC
    section 5 takes its quantiles "from the training period", and a session is too short to hold
    its own.
    """
    if profile is not None:
        config = profile_config(config, profile)
    config = background_market(config)
    series, sim, definitions = simulate_series(config, minutes=minutes, seed=seed)
    references = rule_references(config, minutes=reference_minutes, seed=REFERENCE_SEED)
    symbols = {d.instrument_id: d.symbol for d in definitions}
    return compute_facts(
        series,
        profile={iid: config.instrument(sym).profile for iid, sym in symbols.items()},
        betas={iid: config.instrument(sym).beta for iid, sym in symbols.items()},
        metaorders=getattr(sim, "metaorders", None),
        regime_truth=None,  # the REGIME truth labels of the stream itself
        spread_band=spread_band,
        rule_reference=references,
    )


def real_series(level: int = 5) -> dict[int, MarketSeries]:
    """Series of the LOBSTER AMZN sample day with ``level`` levels (extracted at run time)."""
    from feeds.lobster import LobsterFeed, locate_sample

    feed = LobsterFeed(locate_sample(level)[0])
    return extract_series(feed.events(), feed.instruments())


def calibrate(level: int = 5, config: Config | None = None, seed: int = 7,
              minutes: float = 120.0) -> list[CalibrationRow]:
    """The stylized-fact statistics on the AMZN day beside a small-tick simulator session."""
    config = config or Config()
    real = real_series(level)
    real_facts = compute_facts(real, profile="small_tick", betas=None)
    sim_config = background_market(profile_config(config, "small_tick"))
    sim, simulator, _ = simulate_series(sim_config, minutes=minutes, seed=seed)
    sim_facts = compute_facts(sim, profile="small_tick", betas=None,
                              metaorders=getattr(simulator, "metaorders", None))
    return [CalibrationRow(name, _num(fn(real_facts, real)), _num(fn(sim_facts, sim)), target)
            for name, target, fn in CALIBRATION_STATISTICS]


# ---- calibration statistics ------------------------------------------------------------------------
def _fact(prefix: str, key: str | None = None, index: int | None = None) -> Callable:
    def pick(facts: Sequence[FactResult], _series: dict[int, MarketSeries]) -> Any:
        fact = next(f for f in facts if f.name.startswith(prefix))
        value = fact.value if key is None else fact.detail.get(key)
        return value[index] if index is not None and value is not None else value

    return pick


def _qi(bucket: int) -> Callable:
    def pick(facts: Sequence[FactResult], _series: dict[int, MarketSeries]) -> Any:
        table = next(f for f in facts if f.name.startswith("7 ")).detail.get("table", [])
        return table[bucket]["p_up"] if table else None

    return pick


def _single_order_exponent(facts: Sequence[FactResult], _series: dict[int, MarketSeries]) -> Any:
    single = next(f for f in facts if f.name.startswith("5 ")).detail.get("single_order", {})
    values = [v["exponent"] for v in single.values() if v.get("exponent") is not None]
    return float(np.mean(values)) if values else None


def _per_series(fn: Callable[[MarketSeries], float]) -> Callable:
    def pick(_facts: Sequence[FactResult], series: dict[int, MarketSeries]) -> Any:
        values = [fn(s) for s in series.values()]
        values = [v for v in values if v is not None and math.isfinite(v)]
        return float(np.mean(values)) if values else None

    return pick


def _std_60s(s: MarketSeries) -> float:
    r = returns(s, 60)[1]
    return float(r.std()) if len(r) > 1 else math.nan


def _noise_ratio(s: MarketSeries) -> float:
    """Volatility per sqrt(second) at 1 s over that at 60 s: 1 for a martingale mid, > 1 with bounce."""
    r1, r60 = returns(s, 1)[1], returns(s, 60)[1]
    if len(r1) < 2 or len(r60) < 2 or r60.std() <= 0:
        return math.nan
    return float(r1.std() / (r60.std() / math.sqrt(60.0)))


def _rule_share(label: str) -> Callable:
    def pick(facts: Sequence[FactResult], _series: dict[int, MarketSeries]) -> Any:
        counts = next(f for f in facts if f.name.startswith("9 ")).detail.get("rule_label_counts", {})
        total = sum(sum(c) for c in counts.values())
        return sum(c[int(Regime[label])] for c in counts.values()) / total if total else None

    return pick


def _orders_per_minute(s: MarketSeries) -> float:
    span = (s.grid_ts[-1] - s.grid_ts[0]) / 60e9 if len(s.grid_ts) > 1 else 0.0
    return len(market_orders(s).ts) / span if span > 0 else math.nan


def _median_order_size(s: MarketSeries) -> float:
    sizes = market_orders(s).size
    return float(np.median(sizes)) if len(sizes) else math.nan


def _median_best_queue(s: MarketSeries) -> float:
    sizes = np.concatenate([s.bid_size, s.ask_size])
    sizes = sizes[sizes > 0]
    return float(np.median(sizes)) if len(sizes) else math.nan


CALIBRATION_STATISTICS: tuple[tuple[str, str, Callable], ...] = (
    ("kurtosis 1 s returns", "> 10", _fact("1 ", "kurtosis_1s")),
    ("kurtosis 10 s returns", "> 5", _fact("1 ", "kurtosis_10s")),
    ("Hill index |r 10 s| top 5%", "[2, 6]", _fact("1 ", "hill_10s")),
    ("ACF |r 10 s| lag 1", "> 0.1", _fact("2 ", "acf_abs", 0)),
    ("ACF |r 10 s| lag 10", "> 0", _fact("2 ", "acf_abs", 9)),
    ("ACF r 10 s lag 2", "|.| < 0.05", _fact("2 ", "acf_ret", 1)),
    ("mean spread (ticks)", "[10, 16]", _fact("3 ")),
    ("std of 60 s mid change (ticks)", "orientation", _per_series(_std_60s)),
    ("volatility 1 s / 60 s (per sqrt s)", "orientation", _per_series(_noise_ratio)),
    ("median best-queue size (lots)", "orientation", _per_series(_median_best_queue)),
    ("market orders per minute", "orientation", _per_series(_orders_per_minute)),
    ("median market-order size (lots)", "orientation", _per_series(_median_order_size)),
    ("order-sign ACF lag 1", "> 0.3", _fact("4 ", "acf_1")),
    ("order-sign ACF lag 10", "> 0", _fact("4 ", "acf_10")),
    ("order-sign ACF power-law exponent", "(0.2, 0.9)", _fact("4 ", "exponent")),
    ("single-order impact exponent", "< 1 (concave)", _single_order_exponent),
    ("metaorder impact exponent δ", "[0.3, 0.8]", _fact("5 ")),
    ("OFI R² 1 s", "orientation", _fact("6 ", "r2_1s")),
    ("OFI R² 10 s", ">= 0.2", _fact("6 ", "r2_10s")),
    ("OFI R² 60 s", "orientation", _fact("6 ", "r2_60s")),
    ("P(up | I < 0.2)", "< 0.5", _qi(0)),
    ("P(up | I >= 0.8)", "> 0.5", _qi(-1)),
    ("rule labels: SHOCK share", "orientation", _rule_share("SHOCK")),
    ("rule labels: TREND share", "orientation",
     lambda f, s: _sum_or_none(_rule_share("TREND_UP")(f, s), _rule_share("TREND_DOWN")(f, s))),
    ("rule labels: RANGE_HIGH share", "orientation", _rule_share("RANGE_HIGH")),
)


def _sum_or_none(*values: float | None) -> float | None:
    return None if any(v is None for v in values) else float(sum(values))


# ---- rendering -------------------------------------------------------------------------------------
def render_table(results: Sequence[FactResult] | Sequence[CalibrationRow]) -> Table:
    """A rich table of fact results (name, value, target, pass) or calibration rows."""
    if results and isinstance(results[0], CalibrationRow):
        return render_calibration(results)
    table = Table(title="Stylized facts")
    for column in ("check", "value", "target", "pass", "n", "note"):
        table.add_column(column, justify="right" if column in ("value", "n") else "left")
    for r in results:
        verdict = "n/a" if r.passed is None else ("[green]PASS[/]" if r.passed else "[red]FAIL[/]")
        table.add_row(r.name, _fmt(r.value), r.target, verdict, str(r.detail.get("n", "")),
                      str(r.detail.get("reason", "")))
    return table


def render_calibration(rows: Sequence[CalibrationRow]) -> Table:
    """A rich table of calibration rows: statistic, AMZN value, simulator value, target."""
    table = Table(title="Calibration: AMZN sample vs simulator (small_tick)")
    for column in ("statistic", "AMZN", "simulator", "target"):
        table.add_column(column, justify="right" if column in ("AMZN", "simulator") else "left")
    for row in rows:
        table.add_row(row.name, _fmt(row.real_value), _fmt(row.sim_value), row.target)
    return table


def results_to_json(results: Sequence[FactResult] | Sequence[CalibrationRow]) -> list[dict[str, Any]]:
    """Plain dicts for ``--json``: name, value, target, pass (calibration rows: real, sim, target)."""
    if results and isinstance(results[0], CalibrationRow):
        return [r.as_dict() for r in results]
    return [{"name": r.name, "value": r.value, "target": r.target, "pass": r.passed, "detail": r.detail}
            for r in results]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


__all__ = [
    "CalibrationRow",
    "CALIBRATION_STATISTICS",
    "profile_config",
    "background_market",
    "simulate_series",
    "run_sim_check",
    "rule_references",
    "real_series",
    "calibrate",
    "render_table",
    "render_calibration",
    "results_to_json",
]
