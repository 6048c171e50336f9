"""Simulator acceptance (``sim-check``): the stylized facts of SPEC section 9 on a session.

``run_sim_check`` runs one simulator session, extracts its series and computes the stylized facts
of SPEC section 9 against the simulator's own truth (metaorders, regimes). Rendering helpers turn
results into a rich table or plain JSON-ready dicts. The comparison with a real day is
``calibration``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from rich.table import Table

from engine.config import Config, InstrumentSpec
from feeds.simulator.facts import FactResult, compute_facts, regime_inputs
from feeds.simulator.series import extract_series
from ml.labels import RuleReference, fit_reference

SYNTHETIC_BETAS = (0.8, 0.6, 0.4)
REFERENCE_MINUTES = 720.0  # length of the reference (training) session of the regime rules
REFERENCE_SEED = 0  # seed of the reference session: one fixed training period per instrument class


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


# ---- rendering -------------------------------------------------------------------------------------
def render_table(results: Sequence[FactResult]) -> Table:
    """A rich table of fact results (name, value, target, pass)."""
    table = Table(title="Stylized facts")
    for column in ("check", "value", "target", "pass", "n", "note"):
        table.add_column(column, justify="right" if column in ("value", "n") else "left")
    for r in results:
        verdict = "n/a" if r.passed is None else ("[green]PASS[/]" if r.passed else "[red]FAIL[/]")
        table.add_row(r.name, _fmt(r.value), r.target, verdict, str(r.detail.get("n", "")),
                      str(r.detail.get("reason", "")))
    return table


def results_to_json(results: Sequence[FactResult]) -> list[dict[str, Any]]:
    """Plain dicts for ``--json``: name, value, target, pass."""
    return [{"name": r.name, "value": r.value, "target": r.target, "pass": r.passed, "detail": r.detail}
            for r in results]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"


__all__ = [
    "profile_config",
    "background_market",
    "simulate_series",
    "run_sim_check",
    "rule_references",
    "render_table",
    "results_to_json",
]
