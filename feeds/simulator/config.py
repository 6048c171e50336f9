"""Simulator configuration (``[simulator]`` in config.toml). Filled in by the simulator work."""

from __future__ import annotations

import msgspec


class SimulatorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Parameters of the market simulator (SPEC section 9); every field has a default."""

    latency_us: float = 200.0  # mean feed latency ts_recv - ts_event, microseconds
