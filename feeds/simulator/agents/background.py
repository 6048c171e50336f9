"""Random labelled episodes in ordinary sessions, so every run carries some microstructure truth.

``BackgroundEpisodes(per_hour)`` is a ``hooks.Scenario``: per instrument, episode start times are
Poisson at ``per_hour`` between ``WARMUP_S`` after the open and ``TAIL_S`` before the end (so each
episode can finish and be labelled), each a random kind among iceberg, absorber, stop cluster,
sweep, vacuum and spoof, on a random side, with modest sizes relative to the instrument (mean
market-order units, ticks scaled by the profile's bin: 1 tick large-tick, ``SMALL_TICK_BIN``
small-tick). Outcomes: spoofs NONE; the others REVERSAL (the latent price is pinned for
``PIN_S``) or CONTINUATION (a jump of a couple of bins in the episode's push direction), equally
likely. Labels carry ``params["scenario"] = "background"``.

Every random choice comes from the generator passed to ``agents`` (the simulator's own child), and
agents draw only from their venue's generator, so a seed gives the same episodes every time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.events import InstrumentDef, Outcome
from feeds.simulator.agents.aggressive import StopCluster, SweepAgent
from feeds.simulator.agents.base import EpisodeAgent, Marks
from feeds.simulator.agents.latent import LatentAgent, LatentPlan
from feeds.simulator.agents.passive import AbsorberAgent, IcebergAgent
from feeds.simulator.agents.withdrawal import SpoofAgent, VacuumAgent

WARMUP_S = 30.0
TAIL_S = 75.0  # an episode lasts at most 60 s; the rest is margin for its latent plan
MAX_S = 60.0
PIN_S = 20.0
SMALL_TICK_BIN = 10
KINDS = ("iceberg", "absorber", "stop_cluster", "sweep", "vacuum", "spoof")
NAME = "background"


class BackgroundEpisodes:
    """A Poisson stream of random, labelled episodes on every instrument (a ``hooks.Scenario``)."""

    def __init__(self, per_hour: float) -> None:
        self.per_hour = per_hour

    def agents(self, instruments: list[InstrumentDef], duration_s: float,
               rng: np.random.Generator) -> list[tuple[int, float, Any]]:
        """``(instrument_id, first_wake_s, agent)`` of every background episode of the run."""
        out: list[tuple[int, float, Any]] = []
        hi = duration_s - TAIL_S
        if self.per_hour <= 0 or hi <= WARMUP_S:
            return out
        deadline = duration_s - 1e-3
        for inst in instruments:
            marks: Marks = {}
            n = int(rng.poisson(self.per_hour * (hi - WARMUP_S) / 3600.0))
            for t in np.sort(rng.uniform(WARMUP_S, hi, n)).tolist():
                agent = self._episode(inst, rng, t, deadline, marks)
                out.append((inst.instrument_id, t, agent))
                latent = self._latent(agent, rng, 1 if inst.profile == "large_tick" else SMALL_TICK_BIN)
                if latent is not None:
                    latent.deadline = deadline
                    agent.partner = latent if latent.plan.jump_at == "end" else None
                    out.append((inst.instrument_id, t, latent))
        return out

    @staticmethod
    def _episode(inst: InstrumentDef, rng: np.random.Generator, t: float, deadline: float,
                 marks: Marks) -> EpisodeAgent:
        kind = KINDS[int(rng.integers(len(KINDS)))]
        side = 1 if rng.random() < 0.5 else -1
        w = 1 if inst.profile == "large_tick" else SMALL_TICK_BIN
        touch = "bid" if side > 0 else "ask"
        outcome = Outcome.NONE if kind == "spoof" else Outcome.REVERSAL if rng.random() < 0.5 else Outcome.CONTINUATION
        kw = {"outcome": outcome, "max_s": MAX_S, "marks": marks, "start_s": t, "deadline": deadline,
              "scenario": NAME}
        if kind == "iceberg":
            return IcebergAgent(side, touch, f"{rng.uniform(4.0, 12.0):.1f}mo", "1mo", **kw)
        if kind == "absorber":
            n = int(rng.integers(1, 4))
            prices = [f"{touch}{-side * i * w:+d}" if i else touch for i in range(n)]
            return AbsorberAgent(side, prices, [f"{rng.uniform(2.0, 6.0):.1f}mo"] * n,
                                 iceberg=bool(rng.random() < 0.5), **kw)
        if kind == "stop_cluster":
            trigger = f"{'ask' if side > 0 else 'bid'}{side * 2 * w:+d}"
            return StopCluster(side, trigger, f"{rng.uniform(2.0, 5.0):.1f}mo", count=3, spacing=w, **kw)
        if kind == "sweep":
            return SweepAgent(side, levels=int(rng.integers(2, 5)), **kw)
        if kind == "vacuum":
            return VacuumAgent(side, ticks=10 * w, duration_s=float(rng.uniform(2.0, 4.0)), **kw)
        return SpoofAgent(side, int(rng.integers(2, 4)) * w, f"{rng.uniform(10.0, 20.0):.1f}mo",
                          within=w - 1 if w > 1 else 1, **kw)

    @staticmethod
    def _latent(agent: EpisodeAgent, rng: np.random.Generator, w: int) -> LatentAgent | None:
        if agent.outcome == Outcome.REVERSAL:
            return LatentAgent(LatentPlan(pin_s=PIN_S), agent)
        if agent.outcome == Outcome.CONTINUATION:
            jump = agent.direction * w * float(rng.uniform(2.0, 4.0))
            passive = isinstance(agent, IcebergAgent | AbsorberAgent)
            return LatentAgent(LatentPlan(jump=round(jump, 2), jump_at="end" if passive else 0.0), agent)
        return None
