"""Multi-instrument L3 market simulator (SPEC section 9)."""

from feeds.simulator.flow import MetaorderRecord
from feeds.simulator.simulator import MarketSimulator

__all__ = ["MarketSimulator", "MetaorderRecord"]
