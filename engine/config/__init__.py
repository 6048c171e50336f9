"""Configuration: ``config.toml`` read with tomllib into one frozen msgspec tree (``tree.py``), the
simulator's sections and instrument profiles (``simulator.py``).
"""

from engine.config.simulator import PROFILES, LargeTickProfile, ProfileParams, SimulatorConfig, SmallTickProfile
from engine.config.tree import (
    DEFAULT_INSTRUMENTS,
    BookConfig,
    Config,
    ExecutionConfig,
    FeatureConfig,
    InstrumentSpec,
    MlConfig,
    PipelineConfig,
    RiskConfig,
    RunConfig,
    StoreConfig,
    load_config,
    parse_override,
    with_values,
)

__all__ = [
    "DEFAULT_INSTRUMENTS", "PROFILES", "BookConfig", "Config", "ExecutionConfig", "FeatureConfig", "InstrumentSpec",
    "LargeTickProfile", "MlConfig", "PipelineConfig", "ProfileParams", "RiskConfig", "RunConfig", "SimulatorConfig",
    "SmallTickProfile", "StoreConfig", "load_config", "parse_override", "with_values",
]
