"""Scoring detections against planted truth and against real hidden executions (issue 14 items 4-5)."""

from __future__ import annotations

import ast
from pathlib import Path

import msgspec

from engine.detectors.scoring import (
    SLACK_NS,
    DetectorScore,
    hidden_episodes,
    hidden_score,
    matches,
    score_session,
)
from engine.detectors.spoofing import SpoofDetection
from engine.events import BUY, LAST, SELL, Trade, TruthKind, TruthLabel

NS = 1_000_000_000
DETECTORS = Path(__file__).resolve().parents[3] / "engine" / "detectors"


def spoof(side=SELL, price=105, t0=10 * NS, t1=12 * NS, iid=0) -> SpoofDetection:
    return SpoofDetection(instrument_id=iid, ts_recv=t1, seq=1, side=side, price_lo=price, price_hi=price,
                          strength=1.0, t_start=t0, orders=1, order_ids=(1,), total_size=50, levels=1,
                          lifetime_ms=2000.0, gap_at_place=3, gap_at_cancel=1, approached=True, executed=0,
                          layered=False, threshold=40.0)


def label(kind=TruthKind.SPOOF, side=SELL, lo=105, hi=105, t0=9 * NS, t1=11 * NS, iid=0) -> TruthLabel:
    return TruthLabel(iid, t0, t0, 0, LAST, 1, kind, side, lo, hi, t0, t1)


def test_a_match_needs_side_price_within_a_bin_and_overlapping_time():
    """Side, price within the bin and time overlap (with the slack after instant labels) must all hold."""
    assert matches(spoof(), label(), 1)
    assert not matches(spoof(side=BUY), label(), 1)
    assert matches(spoof(price=106), label(), 1) and not matches(spoof(price=107), label(), 1)
    assert matches(spoof(price=115), label(), 10)
    assert not matches(spoof(t0=11 * NS + SLACK_NS + 1, t1=13 * NS + SLACK_NS), label(), 1)
    assert not matches(spoof(t0=5 * NS, t1=8 * NS), label(), 1)
    assert not matches(spoof(iid=1), label(), 1)


def test_precision_recall_false_missed_and_delay():
    """Two detections, one true; two labels, one found 1 s after its start: P 0.5, R 0.5, delay 1000 ms."""
    scores: dict[str, DetectorScore] = {}
    found = [spoof(), spoof(price=200)]
    labels = [label(t0=11 * NS, t1=13 * NS), label(lo=300, hi=300), label(kind=TruthKind.ICEBERG, lo=200, hi=200)]
    score_session(scores, found, labels, lambda iid: 1)
    row = scores["SpoofDetection"].as_dict()
    assert (row["precision"], row["recall"], row["matched"], row["missed"], row["false"]) == (0.5, 0.5, 1, 1, 1)
    assert row["delay_ms_p50"] == 1000.0
    assert scores["IcebergDetection"].as_dict()["recall"] == 0.0  # its label went unmatched


def trade(seq: int, t_s: float, price: int, aggressor: int = BUY, hidden: bool = True) -> Trade:
    ts = int(t_s * NS)
    return Trade(0, ts, ts, seq, LAST, price, 10, aggressor, hidden=hidden)


def test_hidden_episodes_are_runs_of_three_with_gaps_up_to_five_seconds():
    """Runs at one side and price split where the gap exceeds 5 s; runs of fewer than 3 are no episode."""
    events = [trade(1, 0, 100), trade(2, 4, 100), trade(3, 8, 100), trade(4, 20, 100), trade(5, 21, 100),
              trade(6, 1, 101), trade(7, 2, 100, aggressor=SELL, hidden=False)]
    assert dict(hidden_episodes(events)) == {(SELL, 100): [[1, 2, 3]]}


def test_a_hit_falls_strictly_between_the_first_and_last_execution():
    """A detection at the first execution is not a hit; one inside the run is; recall counts episodes."""
    episodes = {(SELL, 100): [[1, 2, 3]], (SELL, 101): [[10, 11, 12]]}
    result = hidden_score(episodes, [(1, SELL, 100), (2, SELL, 100), (2, SELL, 101), (11, BUY, 101)])
    assert result == {"precision": 0.25, "recall": 0.5, "episodes": 2, "detections": 4}


def test_no_detector_module_reads_truth():
    """No detector module but the scorer imports the simulator, the scorer, ML or strategies, or names
    the truth labels or their kinds: detectors see only market events."""
    for path in DETECTORS.glob("*.py"):
        if path.name == "scoring.py":
            continue
        source = path.read_text()
        tree = ast.parse(source)
        modules = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in modules if m.startswith(("feeds", "ml", "strategies", "engine.detectors.scoring"))}, \
            path.name
        assert "TruthLabel" not in source and "TruthKind" not in source, path.name


def test_the_hidden_chain_is_scored_against_hidden_episodes_not_iceberg_labels():
    """An iceberg detection of the hidden chain inside a run of three hidden prints is a true HiddenLiquidity
    detection and no IcebergDetection at all; one outside any run is false."""
    from engine.detectors.iceberg import IcebergDetection

    def iceberg(seq: int, price: int, chain: str) -> IcebergDetection:
        return IcebergDetection(instrument_id=0, ts_recv=seq * NS, seq=seq, side=SELL, price_lo=price, price_hi=price,
                                strength=3.0, t_start=NS, pvalue=1e-3, score=3.0, depletions=0, refills=0, peak=0,
                                hidden_volume=30, executed=30, chain_type=chain, hidden_execs=3, p0=0.1, update=0)

    prints = [trade(1, 1, 100), trade(2, 2, 100), trade(3, 3, 100)]
    scores: dict[str, DetectorScore] = {}
    score_session(scores, [iceberg(2, 100, "hidden"), iceberg(5, 200, "hidden")], [], lambda iid: 1, prints)
    row = scores["HiddenLiquidity"].as_dict()
    assert (row["precision"], row["recall"], row["matched"], row["false"]) == (0.5, 1.0, 1, 1)
    assert scores["IcebergDetection"].as_dict()["unscored"] == 0


def vacuum(t0: int, t1: int, side=SELL, lo=101, hi=110):
    from engine.detectors.vacuum import VacuumDetection

    return VacuumDetection(instrument_id=0, ts_recv=t1, seq=1, side=side, price_lo=lo, price_hi=hi, strength=1.2,
                           t_start=t0, depth_before=200, depth_after=60, cancelled=140, executed=0, cancel_share=1.0,
                           median_depth=180.0, void=0.67, gap_max=2, window_ms=(t1 - t0) / 1e6)


def test_a_vacuum_at_a_planted_spoof_pull_is_true_but_the_spoof_is_not_in_the_recall():
    """SPOOF label at ask 105, placed at 10 s and pulled at 20 s: a vacuum detection over the asks at 20.0-20.1 s is
    true; one at 15 s (during the spoof's life, not at its pull) is false; the vacuum's recall counts the (natural)
    VACUUM label only."""
    pull = label(lo=105, hi=105, t0=10 * NS, t1=20 * NS)
    planted = msgspec.structs.replace(label(kind=TruthKind.VACUUM, lo=101, hi=110, t0=60 * NS, t1=63 * NS),
                                      params={"natural": 1})
    found = [vacuum(20 * NS, 20 * NS + NS // 10), vacuum(15 * NS, 15 * NS + NS // 10), vacuum(60 * NS, 60 * NS + 1)]
    scores: dict[str, DetectorScore] = {}
    score_session(scores, found, [pull, planted], lambda iid: 1)
    row = scores["VacuumDetection"].as_dict()
    assert (row["detections"], row["false"], row["labels"], row["matched"]) == (3, 1, 1, 1)


def test_trapped_volume_is_scored_against_planted_labels_only():
    """A natural SWEEP label (params natural) is truth for the sweep detector but not for trapped volume: with
    only natural labels the trapped detections of the session are unscored."""
    from engine.detectors.sweep import SweepDetection
    from engine.detectors.trapped import TrappedDetection

    natural = TruthLabel(0, 5 * NS, 5 * NS, 0, LAST, 0, TruthKind.SWEEP, BUY, 100, 102, 5 * NS, 5 * NS, {"natural": 1})
    sweep = SweepDetection(instrument_id=0, ts_recv=5 * NS + 1, seq=1, side=BUY, price_lo=100, price_hi=102,
                           strength=1.5, t_start=5 * NS, start_price=100, end_price=102, levels=3, volume=30, hidden=0,
                           vwap=101.0, duration_ms=0.0, orders=1, threshold=0.0)
    trap = TrappedDetection(instrument_id=0, ts_recv=9 * NS, seq=2, side=BUY, price_lo=100, price_hi=102, strength=1.0,
                            t_start=5 * NS, volume=30, vwap=101.0, pain=-1.0, reference=99, mid=98.5, delay_ms=4000.0,
                            sweep_id="s", sweep_volume=30, sweep_extreme=102, sweeps=1)
    scores: dict[str, DetectorScore] = {}
    score_session(scores, [sweep, trap], [natural], lambda iid: 1)
    assert (scores["SweepDetection"].true, scores["SweepDetection"].matched) == (1, 1)
    assert (scores["TrappedDetection"].detections, scores["TrappedDetection"].unscored) == (0, 1)


def test_absorption_recall_counts_the_natural_labels_and_planted_ones_are_reported_beside():
    """Complete truth (NATURAL_RECALL): a natural ABSORPTION label found and one missed give recall 0.5; the planted
    ABSORPTION label is not in that recall (a planted absorber that traded through is no F20 event) but in
    ``recall_planted``, and the detection that matches only it is true: precision 1.0, recall_planted 1.0."""
    from engine.detectors.absorption import AbsorptionDetection

    def absorption(price: int, t1: int) -> AbsorptionDetection:
        return AbsorptionDetection(instrument_id=0, ts_recv=t1, seq=1, side=BUY, price_lo=price, price_hi=price,
                                   strength=1.2, t_start=t1 - 3 * NS, volume=60, d0=20, refill_ratio=2.9,
                                   threshold=50.0, threshold_source="auto", hold_s=2.0)

    def natural(price: int, t0: int) -> TruthLabel:
        return TruthLabel(0, t0, t0, 0, LAST, 0, TruthKind.ABSORPTION, BUY, price, price, t0, t0 + 2 * NS,
                          {"natural": 1})

    planted = TruthLabel(0, NS, NS, 0, LAST, 1, TruthKind.ABSORPTION, BUY, 300, 300, 100 * NS, 150 * NS, {})
    found = [absorption(100, 12 * NS), absorption(300, 120 * NS)]
    scores: dict[str, DetectorScore] = {}
    score_session(scores, found, [natural(100, 10 * NS), natural(200, 40 * NS), planted], lambda iid: 1)
    row = scores["AbsorptionDetection"].as_dict()
    assert (row["precision"], row["recall"], row["labels"], row["recall_planted"]) == (1.0, 0.5, 2, 1.0)
