"""Scoring detections against planted truth and against real hidden executions (issue 14 items 4-5)."""

from __future__ import annotations

import ast
from pathlib import Path

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
