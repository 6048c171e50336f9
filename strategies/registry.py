"""Builds each lane's strategies from the configuration: the built-ins by name, user strategies by
``package.module:Class``, narrowed per instrument by ``[instruments.SYMBOL] strategies``.

A user strategy is a class taking ``(instrument, config)`` (``InstrumentDef`` and the whole
``Config``; a class whose constructor takes only the instrument id, or nothing, works too) whose
instances have a ``name`` (str) and an ``on_features(features)`` method returning a ``Signal`` or
None. ``load_user_strategy`` imports it and checks exactly that, raising ``ConfigError`` naming the
entry and what is missing. The module is imported from ``sys.path`` (the current directory
included), so a strategy runs from its own folder.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable

from engine.config import Config
from engine.errors import ConfigError
from engine.events import InstrumentDef
from strategies.base import Strategy
from strategies.confluence import Confluence
from strategies.hvn_bounce import HvnBounce
from strategies.iceberg_defense import IcebergDefense
from strategies.mean_reversion import MeanReversion
from strategies.queue_imbalance import QueueImbalanceProbe
from strategies.stacked_absorption import StackedAbsorption
from strategies.sweep_reversal import SweepReversal
from strategies.vacuum_entry import VacuumEntry

SMALL_TICK_BIN = 10  # ticks of a per-price bin on small-tick instruments (the detectors' default)


def _builtin(name: str, instrument: InstrumentDef, config: Config, confluence: Confluence) -> Strategy:
    s = config.strategies
    iid, common = instrument.instrument_id, s.common
    if name == "sweep_reversal":
        return SweepReversal(iid, s.sweep_reversal, confluence, common)
    if name == "stacked_absorption":
        return StackedAbsorption(iid, s.stacked_absorption, confluence, common)
    if name == "iceberg_defense":
        bin_ticks = 1 if instrument.profile == "large_tick" else SMALL_TICK_BIN
        return IcebergDefense(iid, s.iceberg_defense, confluence, common, bin_ticks)
    if name == "vacuum_entry":
        return VacuumEntry(iid, s.vacuum_entry, confluence, common)
    if name == "mean_reversion":
        return MeanReversion(iid, s.mean_reversion, confluence, common)
    if name == "hvn_bounce":
        return HvnBounce(iid, s.hvn_bounce, confluence, common)
    q = s.queue_imbalance
    return QueueImbalanceProbe(iid, q.threshold, q.max_spread, q.stop_ticks, q.reward_ratio, q.cooldown_s,
                               q.time_stop_s)


def names_for(symbol: str, config: Config) -> list[str]:
    """The strategy entries one instrument runs: ``[strategies] enabled`` narrowed by its own list."""
    enabled = list(config.strategies.enabled)
    own = config.instrument(symbol).strategies
    if "all" in own:
        return enabled
    unknown = [name for name in own if name not in enabled]
    if unknown:
        raise ConfigError(f"instruments.{symbol}.strategies: {', '.join(map(repr, unknown))} not in "
                          f"strategies.enabled ({', '.join(enabled) or 'empty'}); enable it there first")
    return [name for name in enabled if name in own]


def strategy_factory(config: Config) -> Callable[[InstrumentDef], list[Strategy]]:
    """The lanes' factory: every entry is checked (user classes imported) before any lane is built."""
    classes = {name: load_user_strategy(name) for name in config.strategies.enabled if ":" in name}
    for symbol in config.instruments:
        names_for(symbol, config)

    def build(instrument: InstrumentDef) -> list[Strategy]:
        confluence = Confluence(config.strategies.confluence)
        out: list[Strategy] = []
        for name in names_for(instrument.symbol, config):
            if name in classes:
                out.append(instantiate(name, classes[name], instrument, config))
            else:
                out.append(_builtin(name, instrument, config, confluence))
        return out

    return build


def load_user_strategy(entry: str) -> type:
    """Import ``package.module:Class`` and check it against the Strategy protocol.

    Raises:
        ConfigError: naming the entry and what is missing (module, class, ``name``, ``on_features``).
    """
    module_name, _, class_name = entry.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"strategies.enabled: {entry!r}: cannot import module {module_name!r} ({exc}); "
                          "run from the folder that holds it or add it to PYTHONPATH") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"strategies.enabled: {entry!r}: module {module_name!r} has no {class_name!r}")
    if not inspect.isclass(cls):
        raise ConfigError(f"strategies.enabled: {entry!r}: {class_name!r} is not a class")
    missing = []
    if not isinstance(getattr(cls, "name", None), str):
        missing.append("a 'name' attribute (str)")
    method = getattr(cls, "on_features", None)
    if not callable(method):
        missing.append("an 'on_features(self, features)' method")
    elif len(inspect.signature(method).parameters) != 2:
        missing.append("an 'on_features(self, features)' method taking one argument besides self")
    if missing:
        raise ConfigError(f"strategies.enabled: {entry!r} is not a Strategy: it lacks {' and '.join(missing)} "
                          "(see docs/strategies.md)")
    return cls


def instantiate(entry: str, cls: type, instrument: InstrumentDef, config: Config) -> Strategy:
    """A user strategy for one instrument: ``cls(instrument, config)``, ``cls(instrument_id)`` or ``cls()``."""
    params = [p for p in inspect.signature(cls).parameters.values()
              if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    try:
        if len(params) >= 2:
            return cls(instrument, config)
        if len(params) == 1:
            return cls(instrument.instrument_id)
        return cls()
    except Exception as exc:  # noqa: BLE001 - the user's constructor: report it in one line
        raise ConfigError(f"strategies.enabled: {entry!r}: constructing it failed: {type(exc).__name__}: {exc}")\
            from None
