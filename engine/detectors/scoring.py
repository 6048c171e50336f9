"""How often the detectors are right: detections matched to planted truth, and the hidden-liquidity
detector scored against real hidden executions (issue 14, items 4 and 5).

This module reads truth labels; no detector imports it (tests/engine/detectors check that).

Planted truth (simulator): a detection *matches* a label when it names the same instrument and side,
its price range is within one bin of the label's, and its span ``[t_start, ts_recv]`` overlaps the
label's ``[t_start, t_end + SLACK_NS]`` (labels are stamped in event time and may be instants, such
as a planted sweep; detections in receive time, after the events that completed them). Per detector:
a label is *matched* when at least one detection matches it (else *missed*); a detection is *false*
when it matches no label of its kinds; precision = true detections / detections, recall = matched
labels / labels; the delay is from the label's start to its first matching detection. A session is scored
for a detector only when it plants at least one label of that detector's kinds: the simulator's own
flow makes real sweeps, pulls and absorptions that no label names (a market order that walks two
levels is a sweep by SPEC F22), so a session that plants none of a kind has no truth to judge that
kind's detections by; they are counted apart (``unscored``) and ``precision_all`` counts them as
false. Sides: the
liquidity's side for icebergs, absorption, vacuums and spoofs, the aggressor's for sweeps and
trapped volume — the same convention as the labels.

Natural sweeps: the simulator labels every aggressive order that executes at two or more prices (SPEC
F22 with k_lv = 2) as a SWEEP with param ``natural`` = 1 (feeds/simulator/matching.py), so the sweep
detector is scored against complete truth in every session. Trapped volume is scored against the
planted labels only (``PLANTED_ONLY``): a sweep that traps nobody is no missed trap.

Natural vacuums and absorptions: likewise the simulator labels every F18 vacuum and F20 absorption
of its own flow (VACUUM / ABSORPTION with ``natural`` = 1, feeds/simulator/natural.py, read from its
own record of the events, not from any detector), so the vacuum and absorption detectors are scored
against complete truth in every session that has such an event (``NATURAL_RECALL``): their recall
counts the natural labels, which name every F18 vacuum and F20 absorption, a planted episode's
included, and a detection matching a planted label is true too. The planted labels of those kinds
are kept out of the recall because they say what an agent did, not that an F20 or F18 event
happened: an absorber used up and traded through (``through`` = 1, the absorption_break and
iceberg_exhausted presets), one that traded less than it showed, or one hit too slowly to reach
the volume threshold in 5 s is no absorption by F20. The recall against the planted labels alone
is reported beside (``recall_planted``). Stacked absorption and quote
withdrawal keep their recall on the planted labels (``NATURAL_PRECISION_ONLY``: a single natural
absorption is no missed stack, a natural vacuum no missed withdrawal ahead of flow), and a detection
of theirs that matches a natural label is true.

Spoof pulls read as vacuums (``ALSO_TRUE``): SPEC F18's vacuum is depth within N ticks of the best
falling by half within 2 s, mostly through cancels, to 40% of its median or less; a planted spoof
pulled when the price comes near it removes a large order within N ticks through one cancel, which
is such a fall when the spoof is a large share of the depth there. A vacuum detection that matches a
planted SPOOF label at its pull (the label's ``t_end``, its side and price) is therefore true. It
counts for precision only: a spoof pull too small to halve the depth is no vacuum, so SPOOF labels
are not in the vacuum's recall.

The iceberg detector's *hidden* chain (runs of hidden executions at one price) is scored apart, as
``HiddenLiquidity``, against the session's hidden-liquidity episodes by the definition below (the
simulator's background market orders meet non-displayed orders, 25-30% of them: real hidden
liquidity that no ICEBERG label names, and the definition issue 14 uses on real data); its other
chains (synthetic, native, statistical) are scored against the planted ICEBERG labels.

Real hidden executions (LOBSTER type 5): a *hidden-liquidity episode* is a maximal run of hidden
executions on one side at one price with gaps <= 5 s and at least 3 executions; a detection *hits*
when it names that side and price and comes after the episode's first execution and before its last
(in stream order); recall = episodes hit / episodes, precision = detections that hit / detections.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from engine.events import Detection, Trade, TruthKind, TruthLabel

NS = 1_000_000_000
SLACK_NS = NS  # a detection may complete up to 1 s after an instant label (latency, the events after it)

# detection class -> the truth kinds it is scored against
SCORED: dict[str, tuple[int, ...]] = {
    "IcebergDetection": (TruthKind.ICEBERG,),
    "AbsorptionDetection": (TruthKind.ABSORPTION, TruthKind.ICEBERG),
    "StackedAbsorptionDetection": (TruthKind.ABSORPTION, TruthKind.ICEBERG),
    "SweepDetection": (TruthKind.SWEEP, TruthKind.STOP_CLUSTER),
    "TrappedDetection": (TruthKind.STOP_CLUSTER, TruthKind.SWEEP),
    "VacuumDetection": (TruthKind.VACUUM,),
    "SpoofDetection": (TruthKind.SPOOF,),
    "WithdrawalDetection": (TruthKind.VACUUM,),
}
# detection class -> kinds whose labels also make a detection true, at the label's end (not in recall)
ALSO_TRUE: dict[str, tuple[int, ...]] = {
    "VacuumDetection": (TruthKind.SPOOF,),
}
# detection classes scored against planted labels only (natural ones left out)
PLANTED_ONLY = frozenset({"TrappedDetection"})
# detection classes scored against complete truth: their recall counts the natural labels, which name every
# event of the definition (a planted episode's included); a planted label of their kinds makes a detection
# true, and the recall against the planted labels alone is reported beside (``recall_planted``)
NATURAL_RECALL = frozenset({"AbsorptionDetection", "VacuumDetection"})
# detection classes whose recall counts planted labels only; a natural label of their kinds makes a
# detection true (a stack over natural absorptions, a withdrawal that is a natural vacuum)
NATURAL_PRECISION_ONLY = frozenset({"StackedAbsorptionDetection", "WithdrawalDetection"})
# issue 14's targets on the standard pack: (recall, precision)
TARGETS: dict[str, tuple[float, float]] = {
    "IcebergDetection": (0.8, 0.7),
    "AbsorptionDetection": (0.8, 0.7),
    "SweepDetection": (0.8, 0.7),
    "VacuumDetection": (0.8, 0.7),
}


HIDDEN_ROW = "HiddenLiquidity"


def scored_name(detection: Detection) -> str:
    """The row a detection is scored in: its class, or ``HiddenLiquidity`` for the iceberg detector's
    hidden chain."""
    name = type(detection).__name__
    return HIDDEN_ROW if getattr(detection, "chain_type", "") == "hidden" else name


def matches(detection: Detection, label: TruthLabel, bin_ticks: int) -> bool:
    """Same instrument and side, prices within one bin, and overlapping spans."""
    return (detection.instrument_id == label.instrument_id and detection.side == label.side
            and detection.price_lo - bin_ticks <= label.price_hi and detection.price_hi + bin_ticks >= label.price_lo
            and detection.ts_recv >= label.t_start and detection.t_start <= label.t_end + SLACK_NS)


@dataclass
class DetectorScore:
    """One detector's counts over every session scored."""

    detector: str
    detections: int = 0
    true: int = 0
    labels: int = 0
    matched: int = 0
    unscored: int = 0  # detections in sessions that plant no label of the detector's kinds
    planted: int = 0  # NATURAL_RECALL: planted labels of the detector's kinds...
    planted_matched: int = 0  # ...and how many of them a detection matched
    delays_ms: list[float] = field(default_factory=list)

    def add(self, detections: list[Detection], labels: list[TruthLabel], bin_of,
            also: Iterable[TruthLabel] = (), planted: list[TruthLabel] | None = None) -> None:
        """Score one session's detections of this detector against its labels of the scored kinds
        (none planted: the detections are only counted as unscored); a detection that matches one of
        ``also`` is true too, but ``also`` is not in the recall."""
        if not labels and not planted:
            self.unscored += len(detections)
            return
        for label in planted or ():
            self.planted += 1
            self.planted_matched += any(matches(d, label, bin_of(label.instrument_id)) for d in detections)
        self.detections += len(detections)
        self.labels += len(labels)
        judge = [*labels, *also]
        self.true += sum(any(matches(d, lb, bin_of(d.instrument_id)) for lb in judge) for d in detections)
        for label in labels:
            hits = [d.ts_recv for d in detections if matches(d, label, bin_of(label.instrument_id))]
            if hits:
                self.matched += 1
                self.delays_ms.append(max(0.0, (min(hits) - label.t_start) / 1e6))

    def as_dict(self) -> dict:
        target = TARGETS.get(self.detector)
        return {
            "detector": self.detector,
            "precision": round(self.true / self.detections, 4) if self.detections else None,
            "recall": round(self.matched / self.labels, 4) if self.labels else None,
            "recall_planted": round(self.planted_matched / self.planted, 4) if self.planted else None,
            "matched": self.matched, "missed": self.labels - self.matched, "false": self.detections - self.true,
            "detections": self.detections, "labels": self.labels, "unscored": self.unscored,
            "precision_all": round(self.true / (self.detections + self.unscored), 4)
            if self.detections + self.unscored else None,
            "delay_ms_p50": round(statistics.median(self.delays_ms), 1) if self.delays_ms else None,
            "target_recall": target[0] if target else None, "target_precision": target[1] if target else None,
        }


def score_session(scores: dict[str, DetectorScore], detections: Iterable[Detection], labels: Iterable[TruthLabel],
                  bin_of, hidden_prints: Iterable[Trade] = ()) -> None:
    """Add one session: every scored detector's detections against the labels of its kinds, and the
    hidden chain's against the hidden-liquidity episodes of ``hidden_prints`` (the session's hidden
    executions, any instrument)."""
    by_kind: dict[str, list[Detection]] = defaultdict(list)
    for d in detections:
        by_kind[scored_name(d)].append(d)
    labels = list(labels)
    for name, kinds in SCORED.items():
        score = scores.setdefault(name, DetectorScore(name))
        planted_only = name in PLANTED_ONLY or name in NATURAL_PRECISION_ONLY
        judged = [lb for lb in labels if lb.kind in kinds and not (planted_only and lb.params.get("natural"))]
        also = [at_end(lb) for lb in labels if lb.kind in ALSO_TRUE.get(name, ())]
        planted = None
        if name in NATURAL_PRECISION_ONLY:
            also += [lb for lb in labels if lb.kind in kinds and lb.params.get("natural")]
        elif name in NATURAL_RECALL:
            planted = [lb for lb in judged if not lb.params.get("natural")]
            judged = [lb for lb in judged if lb.params.get("natural")]
            also += planted
        score.add(by_kind.get(name, []), judged, bin_of, also, planted)
    hidden = scores.setdefault(HIDDEN_ROW, DetectorScore(HIDDEN_ROW))
    prints: dict[int, list[Trade]] = defaultdict(list)
    for ev in hidden_prints:
        prints[ev.instrument_id].append(ev)
    found: dict[int, list[Detection]] = defaultdict(list)
    for d in by_kind.get(HIDDEN_ROW, []):
        found[d.instrument_id].append(d)
    for iid in set(prints) | set(found):
        hits, hit, episodes = hidden_counts(hidden_episodes(prints.get(iid, ())),
                                            [(d.seq, d.side, d.price_lo) for d in found.get(iid, ())])
        hidden.detections += len(found.get(iid, ()))
        hidden.true += hits
        hidden.labels += episodes
        hidden.matched += hit


def at_end(label: TruthLabel) -> TruthLabel:
    """The label narrowed to its end (``t_start = t_end``): a spoof's pull, not its life."""
    return msgspec.structs.replace(label, t_start=label.t_end)


# ---- real hidden executions ---------------------------------------------------------------------------
def hidden_episodes(events: Iterable, gap_s: float = 5.0, min_executions: int = 3) -> dict[tuple[int, int], list]:
    """Episodes by (passive side, price): runs of hidden executions (lists of their ``seq``)."""
    gap = int(gap_s * NS)
    runs: list[list[tuple[int, int]]] = []  # (seq, ts) per execution
    open_runs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    keys: list[tuple[int, int]] = []
    for ev in events:
        if type(ev) is Trade and ev.hidden:
            key = (-ev.aggressor, ev.price)
            run = open_runs.get(key)
            if run is not None and ev.ts_recv - run[-1][1] <= gap:
                run.append((ev.seq, ev.ts_recv))
            else:
                open_runs[key] = [(ev.seq, ev.ts_recv)]
                runs.append(open_runs[key])
                keys.append(key)
    episodes: dict[tuple[int, int], list] = defaultdict(list)
    for key, run in zip(keys, runs, strict=True):
        if len(run) >= min_executions:
            episodes[key].append([seq for seq, _ in run])
    return episodes


def hidden_counts(episodes: dict[tuple[int, int], list], named: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """``(detections that hit, episodes hit, episodes)`` of detections ``(seq, side, price)``."""
    hit: set[int] = set()
    hits = 0
    for seq, side, price in named:
        inside = [id(ep) for ep in episodes.get((side, price), ()) if ep[0] < seq < ep[-1]]
        hits += bool(inside)
        hit.update(inside)
    return hits, len(hit), sum(len(v) for v in episodes.values())


def hidden_score(episodes: dict[tuple[int, int], list], named: list[tuple[int, int, int]]) -> dict:
    """Precision and recall of detections ``(seq, side, price)`` against ``episodes``."""
    hits, hit, total = hidden_counts(episodes, named)
    return {"precision": round(hits / len(named), 4) if named else None,
            "recall": round(hit / total, 4) if total else None, "episodes": total, "detections": len(named)}


def flag_every_hidden_execution(events: Iterable) -> list[tuple[int, int, int]]:
    """The trivial baseline: flag the side and price of every hidden execution when it happens."""
    return [(ev.seq, -ev.aggressor, ev.price) for ev in events if type(ev) is Trade and ev.hidden]
