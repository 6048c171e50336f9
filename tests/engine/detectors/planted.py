"""Planted truth for detector tests: simulator sessions split into market events and truth labels, and
detections scored against the labels by the scorer itself (engine/detectors/scoring.py: same side,
price within one bin, overlapping spans)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, partial

import msgspec

from engine.config import Config
from engine.detectors.base import profile_bin
from engine.detectors.scoring import DetectorScore
from engine.events import Detection, Event, InstrumentDef, TruthLabel
from engine.testing import run_market
from feeds.simulator import MarketSimulator
from feeds.simulator.scenarios import load_preset

BACKGROUND = ("TSLA", "AAPL")


@dataclass(frozen=True)
class Run:
    """One simulator session: its instruments, market events per instrument, and truth labels."""

    name: str
    seed: int
    instruments: tuple[InstrumentDef, ...]
    events: dict[int, list[Event]]
    labels: tuple[TruthLabel, ...]

    def bin(self, instrument_id: int) -> int:
        """The bin the simulator plants this instrument's episodes on, which its detectors use too."""
        return profile_bin(next(i for i in self.instruments if i.instrument_id == instrument_id))

    def single(self) -> tuple[InstrumentDef, list[Event], tuple[TruthLabel, ...], int]:
        """``(instrument, market events, its truth labels, its bin)`` of the session's first instrument."""
        inst = self.instruments[0]
        iid = inst.instrument_id
        return inst, self.events.get(iid, []), tuple(lb for lb in self.labels if lb.instrument_id == iid), \
            self.bin(iid)


@cache
def simulate(name: str, seed: int, symbols: tuple[str, ...] = (), duration_s: float | None = None,
             episodes_per_hour: float | None = None) -> Run:
    """A preset (its symbols and duration unless given), or ``"background"``: ``symbols`` (TSLA and
    AAPL) for ``duration_s`` (600 s) with the simulator's random episodes; cached for the test session."""
    simulator: dict = {"natural_vacuum_labels": True, "natural_absorption_labels": True}  # complete truth, as
    if episodes_per_hour is not None:  # score-detectors simulates it
        simulator["episodes_per_hour"] = episodes_per_hour
    config = msgspec.convert({"simulator": simulator}, Config)
    if name == "background":
        sim = MarketSimulator(list(symbols or BACKGROUND), config, seed=seed, duration_s=duration_s or 600.0)
    else:
        scenario = load_preset(name)
        sim = MarketSimulator(list(symbols or scenario.spec.symbols), config, seed=seed,
                              duration_s=duration_s or scenario.spec.duration_s, scenario=scenario)
    events: dict[int, list[Event]] = {}
    labels = []
    for ev in sim.events():
        if isinstance(ev, TruthLabel):
            labels.append(ev)
        else:
            events.setdefault(ev.instrument_id, []).append(ev)
    return Run(name, seed, tuple(sim.instruments()), events, tuple(labels))


def detect(run: Run, *factories: Callable, batch_size: int = 1_000_000) -> list[Detection]:
    """Every detection of the factories' detectors over each instrument of ``run`` (on the
    instrument's bin, as the pipeline runs them)."""
    found: list[Detection] = []
    for inst in run.instruments:
        binned = [partial(_binned, factory, run.bin(inst.instrument_id)) for factory in factories]
        _, samples = run_market(inst, run.events.get(inst.instrument_id, []), *binned, batch_size=batch_size)
        found += [d for s in samples for d in s.detections]
    return found


def _binned(factory: Callable, bin_ticks: int, context):
    return factory(dataclasses.replace(context, bin_ticks=bin_ticks))


@dataclass
class Tally(DetectorScore):
    """A detector's score over several runs, with one line per run for assertion messages."""

    detector: str = "test"
    rows: list[str] = field(default_factory=list)
    runs_with_true: int = 0  # runs with at least one true detection

    def add_run(self, run: Run, detections: Iterable[Detection], kinds: tuple[int, ...]) -> None:
        """Score ``run``'s detections against its labels of ``kinds``."""
        true, matched = self.true, self.matched
        dets = list(detections)
        labels = [lb for lb in run.labels if lb.kind in kinds]
        self.add(dets, labels, run.bin)
        self.runs_with_true += self.true > true
        self.rows.append(f"{run.name} seed {run.seed}: {len(dets)} detections ({self.true - true} true), "
                         f"{len(labels)} labels ({self.matched - matched} found)")

    @property
    def precision(self) -> float:
        return self.true / self.detections if self.detections else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.labels if self.labels else 1.0
