"""Tests of feeds.simulator.calibration: statistics of a real day beside simulator seeds, verdicts, rendering."""

from __future__ import annotations

import orjson
import pytest

from engine.config import Config
from feeds.simulator.calibration import (
    CALIBRATION_STATISTICS,
    NEAR_SHARE,
    CalibrationRow,
    calibrate,
    render_calibration,
)


def test_verdict_is_inside_the_seed_range_near_its_ends_or_outside():
    """Real inside [min, max] is inside; within 15 % of the nearer end is near; beyond is outside."""
    assert CalibrationRow("x", 0.5, [0.4, None, 0.6], "t").verdict == "inside"
    assert CalibrationRow("x", 0.65, [0.4, 0.6], "t").verdict == "near"  # 0.05 < 0.15 x 0.6
    assert CalibrationRow("x", 0.35, [0.4, 0.6], "t").verdict == "near"
    assert CalibrationRow("x", 0.8, [0.4, 0.6], "t").verdict == "outside"
    assert CalibrationRow("x", None, [0.4], "t").verdict == "n/a"
    assert CalibrationRow("x", 0.4, [None, None], "t").verdict == "n/a"
    assert NEAR_SHARE == 0.15


def test_row_json_has_the_real_value_and_the_seed_median_min_max():
    """as_dict names statistic, real, sim_median, sim_min, sim_max (the median over the finite seeds)."""
    row = CalibrationRow("order-sign ACF lag 1", 0.61, [0.5, 0.7, None, 0.6], "> 0.3", True)
    d = row.as_dict()
    assert (d["statistic"], d["real"], d["sim_median"], d["sim_min"], d["sim_max"]) == (
        "order-sign ACF lag 1", 0.61, 0.6, 0.5, 0.7)
    assert d["verdict"] == "inside" and d["inside"] and d["matched"]
    orjson.dumps(d)
    assert render_calibration([row]).row_count == 1


def test_calibrate_computes_real_and_simulated_statistics_over_seeds():
    """The AMZN day's statistics (computed now) sit beside one simulator session per seed."""
    lobster = pytest.importorskip("feeds.lobster")
    if not lobster.lobster_available(5):
        pytest.skip("LOBSTER AMZN level-5 sample not found (set $CHIMERA_DATA to the data directory)")
    message = lobster.locate_sample(5)[0]
    rows = calibrate(Config(), message_path=message, seeds=[2, 3], minutes=3)
    assert [r.name for r in rows] == [name for name, _, _, _ in CALIBRATION_STATISTICS]
    by = {r.name: r for r in rows}
    assert all(len(r.sims) == 2 for r in rows)
    assert by["kurtosis 1 s returns"].real > 10 and by["metaorder impact exponent δ"].real is None
    assert 0.15 < by["hidden executions share"].real < 0.35  # AMZN: about 21 % of executions are hidden
    assert by["partial cancels per add"].real < 0.01
    assert 200 < by["price level ($)"].real < 250 and by["price level ($)"].verdict in ("inside", "near")
    assert by["first 30 min spread / day mean"].real > 1.3  # a full day: the intraday rows are computed
    assert by["first 30 min spread / day mean"].sims == [None, None]  # 3 simulated minutes: not
    assert all(v is not None for v in by["hidden executions share"].sims)
