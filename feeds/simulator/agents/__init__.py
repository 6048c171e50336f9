"""Planted-episode agents (SPEC section 9): orders tagged inside the simulator, truth labels out.

Each agent acts on one instrument through the ``hooks.Venue`` of its lane, so everything it does is
an ordinary exchange event; what it planted goes out only as ``TruthLabel`` records (kind, side,
price range in ticks, event-time span, parameters and measured facts, outcome). Modules: ``base``
(life cycle, relative prices and sizes), ``passive`` (icebergs, absorbers), ``aggressive`` (stop
clusters, sweeps, bursts), ``withdrawal`` (vacuums, spoofs), ``latent`` (what the latent price does
during an episode), ``background`` (random labelled episodes in ordinary sessions).
"""

from feeds.simulator.agents.aggressive import BURST, BurstAgent, StopCluster, SweepAgent
from feeds.simulator.agents.background import BackgroundEpisodes
from feeds.simulator.agents.base import EpisodeAgent, parse_price, resolve_price, resolve_size
from feeds.simulator.agents.latent import LatentAgent, LatentPlan
from feeds.simulator.agents.passive import AbsorberAgent, IcebergAgent, RestingLevel
from feeds.simulator.agents.withdrawal import SpoofAgent, VacuumAgent

__all__ = [
    "BURST",
    "AbsorberAgent",
    "BackgroundEpisodes",
    "BurstAgent",
    "EpisodeAgent",
    "IcebergAgent",
    "LatentAgent",
    "LatentPlan",
    "RestingLevel",
    "SpoofAgent",
    "StopCluster",
    "SweepAgent",
    "VacuumAgent",
    "parse_price",
    "resolve_price",
    "resolve_size",
]
