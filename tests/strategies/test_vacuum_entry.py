"""S4 Vacuum Entry on hand-built samples: SPEC's invalidation is an order, the ask depth back before +1 sigma1 of
progress; progress made while the asks were still thin counts."""

from __future__ import annotations

import pytest

from engine.book import BookView
from engine.detectors.vacuum import VacuumDetection
from engine.events import SELL
from engine.features.vector import FeatureVector
from strategies.vacuum_entry import VacuumEntry
from tests.strategies.helpers import tracker

NS = 1_000_000_000
MEDIAN = 1000.0


def sample(ts_s: float, bid: int, ask: int, depth: float, seq: int, cvd: float = 0.0, ofi_z: float = 0.0,
           vacuum: VacuumDetection | None = None) -> FeatureVector:
    values = {"has_bbo": 1.0, "best_bid": float(bid), "best_ask": float(ask), "mid": (bid + ask) / 2,
              "spread": float(ask - bid), "cvd": cvd, "micro_lean": 0.0, "ofi_z_ready": 1.0, "ofi_z_1s": ofi_z,
              "sigma1": 6.0, "void_depth_ask": depth, "void_depth_bid": MEDIAN}
    ts = int(ts_s * NS)
    view = BookView(0, ts, ts, seq, 0, (bid,), (10,), (ask,), (10,))
    return FeatureVector(0, ts, seq, 0, 0, values, view, (vacuum,) if vacuum else ())


def vacuum(ts_s: float) -> VacuumDetection:
    return VacuumDetection(
        instrument_id=0, ts_recv=int(ts_s * NS), seq=2, side=SELL, price_lo=1001, price_hi=1010, strength=1.2,
        t_start=int((ts_s - 1) * NS), depth_before=1000, depth_after=300, cancelled=700, executed=0,
        cancel_share=1.0, median_depth=MEDIAN, void=9.0, gap_max=3, window_ms=800.0)


def strategy() -> VacuumEntry:
    """S4 with every frame pointing up (the trend family's C passes)."""
    return VacuumEntry(0, confluence=tracker(0.8, 0.8, 0.8))


@pytest.mark.parametrize(("peak", "fires"), [(7, True), (5, False)])
def test_the_progress_must_come_before_the_asks_are_back_not_hold_at_that_moment(peak, fires):
    """Mid 1000.5 before the pull (sigma1 6: +6 ticks needed). The asks are thin while the mid climbs to +``peak``;
    they are back (depth at the median) with the mid at +5. Peak +7: the progress came first, long at the ask + 1,
    stop below the pre-vacuum mid. Peak +5: the depth came back before the progress, SPEC's invalidation: no
    signal."""
    s = strategy()
    path = [sample(1, 1000, 1001, MEDIAN, 0), sample(2, 1000, 1001, MEDIAN, 1),
            sample(3, 1002, 1004, 300.0, 2, cvd=40.0, ofi_z=2.0, vacuum=vacuum(3)),
            sample(4, 1000 + peak, 1001 + peak, 400.0, 3, cvd=80.0),
            sample(5, 1005, 1006, MEDIAN, 4, cvd=90.0)]
    signals = [x for x in (s.on_features(f) for f in path) if x is not None]
    if not fires:
        assert signals == []
        return
    (signal,) = signals
    assert signal.side == 1 and signal.entry_price == 1007 and signal.stop < 1000
    assert signal.evidence["progress"] == 5.0 and signal.evidence["progress_reached"] == 7.0
