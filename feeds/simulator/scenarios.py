"""Scenario files: planted episodes and forced regimes for the simulator, read from TOML (SPEC 9).

A scenario file lists episodes (start time, instrument, kind, side, parameters, outcome and what the
latent price does) and optional forced regimes; ``load_scenario(path)`` validates it with msgspec
(frozen Structs, unknown keys rejected) and returns a ``PlannedScenario``, which the simulator takes
as ``MarketSimulator(..., scenario=...)``. Presets for the strategy scenarios of SPEC section 3 ship
in ``feeds/simulator/scenarios/*.toml``: ``list_presets()``, ``load_preset(name)``. Every error names
the file and the key path (``$.episodes[2].peek``).

Format (one episode, see the presets for each kind)::

    name = "iceberg_defense"
    duration_s = 180.0          # recommended session length
    symbols = ["TSLA"]          # recommended instruments (the profile the sizes were tuned on)
    background = false          # plant no random background episodes in this run

    [[regimes]]                 # forced shared regime from t for hold_s seconds
    t = 0.0
    regime = "RANGE_LOW"
    hold_s = 600.0

    [[episodes]]
    kind = "iceberg"            # iceberg | absorber | stop_cluster | sweep | vacuum | spoof | burst | latent
    t = 60.0                    # seconds after the open
    instrument = 0              # index in the run's symbols, or a symbol
    side = "buy"
    outcome = "reversal"        # reversal | continuation | none
    price = "bid"               # ticks, or bid/ask/mid/last/high/low/@name with +-N ticks
    total = "20mo"              # lots, or multiples of the mean market order ("mo")
    peak = "1mo"
    latent = { pin_s = 25.0, jump = 6, jump_at = 25.0 }

Semantics checked on load: a ``@name`` price refers to an episode of that name on the same
instrument that starts no later (an episode's latent plan may also use its own name); a latent jump
agrees with the outcome (CONTINUATION moves the latent price for good in the episode's push
direction; REVERSAL moves it against it, or only for a while with ``revert_s``); forced regimes
are in time order and BREAKOUT/SHOCK carry a direction. The push direction of an episode: its side
for stop clusters, sweeps and bursts (aggressors), the opposite side for icebergs, absorbers and
vacuums (the flow they meet, the side pulled).

Runtime: ``PlannedScenario.agents`` builds fresh agents for each run (one loaded scenario serves
many seeds); episodes starting after the end of the run are dropped; every agent ends, withdraws
and labels by the session's end at the latest. Forced regimes go through ``ForcedChain``; a news
shock can still interrupt a forced regime (the chain then resumes its own dynamics).
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from msgspec import Meta

from engine.errors import ConfigError
from engine.events import InstrumentDef, Outcome, Regime
from feeds.simulator.agents import (
    AbsorberAgent,
    BurstAgent,
    EpisodeAgent,
    IcebergAgent,
    LatentAgent,
    LatentPlan,
    SpoofAgent,
    StopCluster,
    SweepAgent,
    VacuumAgent,
)
from feeds.simulator.agents.base import PRICE_PATTERN, SIZE_PATTERN, parse_price
from feeds.simulator.agents.latent import LATENT_TO
from feeds.simulator.regimes import RegimeChain

PriceExpr = int | Annotated[str, Meta(pattern=PRICE_PATTERN)]
SizeExpr = Annotated[int, Meta(gt=0)] | Annotated[str, Meta(pattern=SIZE_PATTERN)]
Seconds = Annotated[float, Meta(ge=0.0)]
Name = Annotated[str, Meta(pattern=r"^([a-z][a-z0-9_]*)?$")]
SIDES = {"buy": 1, "sell": -1}
OUTCOMES = {"none": Outcome.NONE, "reversal": Outcome.REVERSAL, "continuation": Outcome.CONTINUATION}
DIRECTIONAL = ("TREND_UP", "TREND_DOWN", "BREAKOUT", "SHOCK")


class _Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class _Episode(_Struct, frozen=True, kw_only=True, tag_field="kind"):
    t: Seconds  # start, seconds after the open
    instrument: Annotated[int, Meta(ge=0)] | str = 0  # index in the run's symbols, or a symbol
    name: Name = ""  # publishes the episode's main price as @name
    max_s: Annotated[float, Meta(gt=0.0)] | None = None  # lifetime cap (default per kind)
    lookback_s: Seconds = 0.0  # watch the last trade this long before t (for high/low prices)


class _Planted(_Episode, frozen=True, kw_only=True):
    side: Literal["buy", "sell"]
    outcome: Literal["reversal", "continuation", "none"] = "none"
    latent: LatentPlan | None = None


class Iceberg(_Planted, frozen=True, kw_only=True, tag="iceberg"):
    """Synthetic iceberg: ``total`` lots at ``price`` shown ``peak`` at a time."""

    price: PriceExpr
    total: SizeExpr
    peak: SizeExpr
    refill_delay_ms: tuple[Seconds, Seconds] = (0.5, 5.0)


class Absorber(_Planted, frozen=True, kw_only=True, tag="absorber"):
    """Passive size at one or more (stacked) prices."""

    prices: Annotated[list[PriceExpr], Meta(min_length=1, max_length=5)]
    sizes: Annotated[list[SizeExpr], Meta(min_length=1, max_length=5)]
    iceberg: bool = False
    peak: SizeExpr | Annotated[list[SizeExpr], Meta(min_length=1, max_length=5)] = "1mo"  # one, or one per price


class Stops(_Planted, frozen=True, kw_only=True, tag="stop_cluster"):
    """Stop market orders at ``trigger`` and beyond."""

    trigger: PriceExpr
    size: SizeExpr
    count: Annotated[int, Meta(ge=1, le=20)] = 3
    spacing: Annotated[int, Meta(ge=0)] = 1


class Sweep(_Planted, frozen=True, kw_only=True, tag="sweep"):
    """One market order clearing ``levels`` levels, or up to ``through``, or of ``size`` lots."""

    levels: Annotated[int, Meta(ge=1)] = 3
    through: PriceExpr | None = None
    size: SizeExpr | None = None
    wait_within: Annotated[int, Meta(ge=0)] | None = None  # first wait until the touch is this close to through


class Vacuum(_Planted, frozen=True, kw_only=True, tag="vacuum"):
    """Background liquidity of ``side`` within ``ticks`` of its best pulled for ``duration_s``."""

    ticks: Annotated[int, Meta(ge=1)] = 10
    duration_s: Seconds = 3.0


class Spoof(_Planted, frozen=True, kw_only=True, tag="spoof"):
    """A large order ``distance`` ticks behind the best, pulled when the best comes ``within``."""

    distance: Annotated[int, Meta(ge=1)]
    size: SizeExpr
    within: Annotated[int, Meta(ge=0)] | None = None


class Burst(_Planted, frozen=True, kw_only=True, tag="burst"):
    """The side's market-order baseline times ``factor`` for ``duration_s``."""

    factor: Annotated[float, Meta(gt=0.0)] = 5.0
    duration_s: Seconds = 20.0


class Latent(_Episode, frozen=True, kw_only=True, tag="latent"):
    """A latent-price move on its own (no label); ``name`` marks the mid at its start (fields: ``LatentPlan``)."""

    pin_s: Seconds = 0.0
    jump: float = 0.0
    to: Annotated[str, Meta(pattern=LATENT_TO)] = ""
    jump_at: Seconds | Literal["end"] = 0.0
    ramp_s: Seconds = 0.0
    revert_s: Seconds = 0.0
    anchor: bool = True

    def plan(self) -> LatentPlan:
        """The ``LatentPlan`` of this move."""
        return LatentPlan(**{f: getattr(self, f) for f in LatentPlan.__struct_fields__})


Episode = Iceberg | Absorber | Stops | Sweep | Vacuum | Spoof | Burst | Latent


class RegimeForce(_Struct, frozen=True, kw_only=True):
    """The shared regime forced to ``regime`` at ``t`` for ``hold_s`` (then the chain resumes)."""

    t: Seconds
    regime: Literal["RANGE_LOW", "RANGE_HIGH", "TREND_UP", "TREND_DOWN", "BREAKOUT", "SHOCK"]
    hold_s: Annotated[float, Meta(gt=0.0)]
    direction: Literal[-1, 0, 1] = 0


class ScenarioFile(_Struct, frozen=True, kw_only=True):
    """One scenario file."""

    name: Name
    description: str = ""
    strategy: str = ""  # the SPEC section 3 strategy it exercises, e.g. "S3"
    role: Literal["positive", "negative", ""] = ""  # must produce the strategy's signal / must not
    symbols: list[str] = []  # recommended instruments
    duration_s: Annotated[float, Meta(gt=0.0)] = 300.0  # recommended session length
    background: bool = False  # also plant the configured random background episodes
    regimes: list[RegimeForce] = []
    episodes: list[Episode] = []


class ForcedChain(RegimeChain):
    """A ``RegimeChain`` that enters the forced regimes at their times and holds them ``hold_s``."""

    def __init__(self, rng: np.random.Generator, dwell_scale: float, forced: list[RegimeForce]) -> None:
        pending = sorted(forced, key=lambda f: f.t)
        first = pending.pop(0) if pending and pending[0].t <= 0.0 else None
        super().__init__(rng, dwell_scale, Regime[first.regime] if first else Regime.RANGE_LOW)
        if first is not None:
            self.direction = _direction(first)
            self.path[0] = (0.0, self.regime, self.direction)
            self.t_next = first.hold_s
        self.pending = pending

    def advance(self, t: float) -> bool:
        """Enter a forced regime when due, else the chain's own scheduled change."""
        if self.pending and self.pending[0].t <= t:
            force = self.pending.pop(0)
            self._enter(t, Regime[force.regime], _direction(force))
            self.t_next = t + force.hold_s
            return True
        return super().advance(t)


def _direction(force: RegimeForce) -> int:
    return {"TREND_UP": 1, "TREND_DOWN": -1}.get(force.regime, force.direction)


class PlannedScenario:
    """A validated scenario file, runnable by the simulator (``hooks.Scenario`` + ``RegimeForcing``)."""

    def __init__(self, spec: ScenarioFile, source: str = "") -> None:
        self.spec, self.source = spec, source or spec.name

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def background(self) -> bool:
        """Whether the run also plants the configured background episodes."""
        return self.spec.background

    def regime_chain(self, rng: np.random.Generator, dwell_scale: float) -> RegimeChain:
        """The shared regime chain, with this scenario's forced regimes."""
        return ForcedChain(rng, dwell_scale, list(self.spec.regimes))

    def agents(self, instruments: list[InstrumentDef], duration_s: float,
               rng: np.random.Generator) -> list[tuple[int, float, Any]]:
        """Fresh agents for one run: ``(instrument_id, first_wake_s, agent)``; episodes past the end are dropped."""
        marks: dict[tuple[int, str], int] = {}
        deadline = duration_s - 1e-3
        out: list[tuple[int, float, Any]] = []
        for i, ep in enumerate(self.spec.episodes):
            if ep.t >= deadline:
                continue
            iid = self._instrument(ep, i, instruments)
            first = max(0.0, ep.t - ep.lookback_s)
            if isinstance(ep, Latent):
                out.append((iid, ep.t, LatentAgent(ep.plan(), None, marks, deadline, ep.name)))
                continue
            agent = build_agent(ep, marks=marks, start_s=ep.t, deadline=deadline, scenario=self.name)
            out.append((iid, first, agent))
            if ep.latent is not None:
                latent = LatentAgent(ep.latent, agent, marks, deadline)
                agent.partner = latent if ep.latent.jump_at == "end" else None
                out.append((iid, ep.t, latent))
        return out

    def _instrument(self, ep: _Episode, i: int, instruments: list[InstrumentDef]) -> int:
        if isinstance(ep.instrument, int):
            if ep.instrument >= len(instruments):
                raise ConfigError(f"scenario {self.source}: instrument {ep.instrument} at $.episodes[{i}].instrument"
                                  f" but the run has {len(instruments)} instrument(s)")
            return ep.instrument
        for inst in instruments:
            if inst.symbol == ep.instrument:
                return inst.instrument_id
        raise ConfigError(f"scenario {self.source}: symbol {ep.instrument!r} at $.episodes[{i}].instrument is not "
                          f"in the run's symbols {[inst.symbol for inst in instruments]}")


def build_agent(ep: Episode, **kw: Any) -> EpisodeAgent:
    """The agent of one planted episode (``kw``: marks, start_s, deadline, scenario)."""
    side = SIDES[ep.side]
    kw.update(outcome=OUTCOMES[ep.outcome], name=ep.name, lookback_s=ep.lookback_s)
    if ep.max_s is not None:
        kw["max_s"] = ep.max_s
    if isinstance(ep, Iceberg):
        delay = (ep.refill_delay_ms[0] / 1e3, ep.refill_delay_ms[1] / 1e3)
        return IcebergAgent(side, ep.price, ep.total, ep.peak, delay, **kw)
    if isinstance(ep, Absorber):
        return AbsorberAgent(side, list(ep.prices), list(ep.sizes), ep.iceberg,
                             list(ep.peak) if isinstance(ep.peak, list) else ep.peak, **kw)
    if isinstance(ep, Stops):
        return StopCluster(side, ep.trigger, ep.size, ep.count, ep.spacing, **kw)
    if isinstance(ep, Sweep):
        return SweepAgent(side, ep.size, ep.levels, ep.through, ep.wait_within, **kw)
    if isinstance(ep, Vacuum):
        return VacuumAgent(side, ep.ticks, ep.duration_s, **kw)
    if isinstance(ep, Spoof):
        return SpoofAgent(side, ep.distance, ep.size, ep.within, **kw)
    assert isinstance(ep, Burst)
    return BurstAgent(side, ep.factor, ep.duration_s, **kw)


# ---- loading and validation -------------------------------------------------------------------------
def load_scenario(path: str | Path) -> PlannedScenario:
    """Read and validate a scenario TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"scenario {path}: cannot read: {exc.strerror or exc}") from exc
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str = "<scenario>") -> PlannedScenario:
    """Validate scenario TOML text (``source`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scenario {source}: invalid TOML: {exc}") from exc
    try:
        spec = msgspec.convert(data, ScenarioFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"scenario {source}: {exc}") from exc
    problems = validate(spec)
    if problems:
        raise ConfigError(f"scenario {source}: {problems[0]}")
    return PlannedScenario(spec, source)


def validate(spec: ScenarioFile) -> list[str]:
    """Problems a schema cannot express (marks, outcome vs latent jump, lengths, regimes), in file order."""
    problems: list[str] = []
    named: dict[tuple[int | str, str], float] = {}
    for i, ep in enumerate(spec.episodes):
        at = f"$.episodes[{i}]"
        for key, expr in _prices(ep):
            ref, _ = parse_price(expr)
            own = key.startswith("latent") and ref[1:] == ep.name  # the latent plan may use its own mark
            if ref.startswith("@") and not own and named.get((ep.instrument, ref[1:]), float("inf")) > ep.t:
                problems.append(f"{expr!r} refers to no earlier episode named {ref[1:]!r} on instrument "
                                f"{ep.instrument!r} - at `{at}.{key}`")
        if isinstance(ep, Absorber) and len(ep.prices) != len(ep.sizes):
            problems.append(f"{len(ep.prices)} prices but {len(ep.sizes)} sizes - at `{at}.sizes`")
        if isinstance(ep, Absorber) and isinstance(ep.peak, list) and len(ep.peak) != len(ep.prices):
            problems.append(f"{len(ep.prices)} prices but {len(ep.peak)} peaks - at `{at}.peak`")
        if isinstance(ep, Sweep) and ep.wait_within is not None and ep.through is None:
            problems.append(f"wait_within needs a through price - at `{at}.wait_within`")
        if isinstance(ep, Spoof) and ep.within is not None and ep.within >= ep.distance:
            problems.append(f"within ({ep.within}) must be less than distance ({ep.distance}) - at `{at}.within`")
        problems += _latent_problems(ep, at)
        if ep.name:
            named.setdefault((ep.instrument, ep.name), ep.t)
    for i, force in enumerate(spec.regimes):
        if i and force.t < spec.regimes[i - 1].t:
            problems.append(f"forced regimes must be in time order - at `$.regimes[{i}].t`")
        if force.regime in ("BREAKOUT", "SHOCK") and force.direction == 0:
            problems.append(f"{force.regime} needs direction = 1 or -1 - at `$.regimes[{i}].direction`")
    return problems


def _prices(ep: Episode) -> list[tuple[str, int | str]]:
    """``(key, expression)`` of every price of an episode."""
    out: list[tuple[str, int | str]] = []
    for key in ("price", "trigger", "through"):
        value = getattr(ep, key, None)
        if value is not None:
            out.append((key, value))
    out += [(f"prices[{j}]", p) for j, p in enumerate(getattr(ep, "prices", ()))]
    plan = ep if isinstance(ep, Latent) else getattr(ep, "latent", None)
    if plan is not None and plan.to:
        out.append(("latent.to" if plan is not ep else "to", plan.to))
    return out


def _latent_problems(ep: Episode, at: str) -> list[str]:
    plan = ep if isinstance(ep, Latent) else ep.latent
    if plan is None:
        return []
    where = at if isinstance(ep, Latent) else f"{at}.latent"
    out = []
    if plan.jump and plan.to:
        out.append(f"give either jump or to, not both - at `{where}`")
    if isinstance(ep, Latent | Spoof) or not plan.jump:
        return out
    direction = SIDES[ep.side] * _PUSH[type(ep)]
    sign = 0 if plan.revert_s > 0 else 1 if plan.jump > 0 else -1  # sign of the lasting move
    if ep.outcome == "continuation" and sign != direction:
        out.append(f"a continuation moves the latent price {'up' if direction > 0 else 'down'} for good "
                   f"(jump sign, no revert) - at `{where}.jump`")
    if ep.outcome == "reversal" and sign == direction:
        out.append(f"a reversal moves the latent price {'down' if direction > 0 else 'up'}, not at all, or "
                   f"only for a while (revert_s) - at `{where}.jump`")
    return out


_PUSH = {Iceberg: -1, Absorber: -1, Stops: 1, Sweep: 1, Vacuum: -1, Spoof: -1, Burst: 1}


# ---- presets ----------------------------------------------------------------------------------------------
def _preset_dir() -> Any:
    return files("feeds.simulator").joinpath("scenarios")


def list_presets() -> list[str]:
    """Names of the shipped scenario presets."""
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> PlannedScenario:
    """The shipped scenario preset ``name`` (see ``list_presets``)."""
    resource = _preset_dir().joinpath(f"{name}.toml")
    if not resource.is_file():
        raise ConfigError(f"unknown scenario preset {name!r} (known: {', '.join(list_presets())})")
    return parse_scenario(resource.read_text(encoding="utf-8"), f"preset {name}")
