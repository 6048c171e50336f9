"""Planted truth for detector tests: simulator runs split into market events and truth labels, and
detections matched to labels (same side, price within one bin, time overlap)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache

from engine.config import Config
from engine.events import Detection, Event, InstrumentDef, TruthLabel
from engine.testing import run_market
from feeds.simulator import MarketSimulator
from feeds.simulator.scenarios import load_preset

SMALL_TICK_BIN = 10  # the bin the simulator plants small-tick episodes with (ticks)


@dataclass(frozen=True)
class Run:
    """One simulator session: its instruments, market events per instrument, and truth labels."""

    name: str
    seed: int
    instruments: tuple[InstrumentDef, ...]
    events: dict[int, list[Event]]
    labels: tuple[TruthLabel, ...]

    def bin(self, instrument_id: int) -> int:
        inst = next(i for i in self.instruments if i.instrument_id == instrument_id)
        return 1 if inst.profile == "large_tick" else SMALL_TICK_BIN


@cache
def simulate(name: str, seed: int, duration_s: float = 600.0) -> Run:
    """A preset (its symbols and duration), or ``"background"``: TSLA and AAPL for ``duration_s``."""
    if name == "background":
        sim = MarketSimulator(["TSLA", "AAPL"], Config(), seed=seed, duration_s=duration_s)
    else:
        scenario = load_preset(name)
        sim = MarketSimulator(scenario.spec.symbols, Config(), seed=seed, duration_s=scenario.spec.duration_s,
                              scenario=scenario)
    events: dict[int, list[Event]] = {}
    labels = []
    for ev in sim.events():
        if isinstance(ev, TruthLabel):
            labels.append(ev)
        else:
            events.setdefault(ev.instrument_id, []).append(ev)
    return Run(name, seed, tuple(sim.instruments()), events, tuple(labels))


def detect(run: Run, *factories: Callable, batch_size: int = 1_000_000) -> list[Detection]:
    """Every detection of the factories' detectors over each instrument of ``run``."""
    found: list[Detection] = []
    for inst in run.instruments:
        _, samples = run_market(inst, run.events.get(inst.instrument_id, []), *factories, batch_size=batch_size)
        found += [d for s in samples for d in s.detections]
    return found


def matches(detection: Detection, label: TruthLabel, bin_ticks: int) -> bool:
    """Same instrument and side, prices within one bin, and the detection's span overlaps the label's."""
    return (detection.instrument_id == label.instrument_id and detection.side == label.side
            and detection.price_lo - bin_ticks <= label.price_hi and detection.price_hi + bin_ticks >= label.price_lo
            and detection.ts_recv >= label.t_start and detection.t_start <= label.t_end)


@dataclass
class Tally:
    """Detections and labels counted over several runs."""

    detections: int = 0
    true: int = 0
    labels: int = 0
    found: int = 0
    rows: list[str] = field(default_factory=list)
    runs_with_true: int = 0  # runs with at least one true detection

    def add(self, run: Run, detections: Iterable[Detection], kinds: tuple[int, ...]) -> None:
        dets = list(detections)
        labels = [lb for lb in run.labels if lb.kind in kinds]
        true = sum(any(matches(d, lb, run.bin(d.instrument_id)) for lb in labels) for d in dets)
        found = sum(any(matches(d, lb, run.bin(lb.instrument_id)) for d in dets) for lb in labels)
        self.detections += len(dets)
        self.true += true
        self.labels += len(labels)
        self.found += found
        self.runs_with_true += true > 0
        self.rows.append(f"{run.name} seed {run.seed}: {len(dets)} detections ({true} true), "
                         f"{len(labels)} labels ({found} found)")

    @property
    def precision(self) -> float:
        return self.true / self.detections if self.detections else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.labels if self.labels else 1.0
