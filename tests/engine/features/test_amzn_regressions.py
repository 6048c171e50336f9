"""Real-data regressions on the AMZN 2012-06-21 LOBSTER days, recomputed at run time from the
engine's own features (SPEC F2, F5; issue 14 item 6): queue imbalance predicts the next mid move
monotonically, the OFI regression's R² rises with the horizon, and the whole pipeline (every
feature and detector) runs over both days without NaN or inf in any persisted row."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from engine.book import OrderBook
from engine.config import Config
from engine.events import LAST
from engine.features.bars import TF1
from engine.features.ofi import OrderFlowImbalance
from engine.testing import run_market
from feeds.lobster import LobsterFeed
from feeds.lobster_files import lobster_available, locate_sample


def day(level: int):
    if not lobster_available(level):
        pytest.skip(f"the LOBSTER AMZN level-{level} sample is not available")
    return LobsterFeed(locate_sample(level)[0])


@pytest.fixture(scope="module")
def seconds():
    """At every 1 s close of the level-5 day: (best bid size, best ask size, mid in half ticks, cumulative OFI);
    None where the book was not two-sided."""
    feed = day(5)
    (inst,) = feed.instruments()
    _, samples = run_market(inst, feed.events(), lambda c: OrderFlowImbalance(c.book), batch_size=4096)
    rows = []
    for s in samples:
        if not s.frames & TF1:
            continue
        v = s.view
        rows.append((v.bid_sz[0], v.ask_sz[0], v.bid_px[0] + v.ask_px[0], s.flow["ofi_cum"])
                    if v.bid_px and v.ask_px else None)
    return rows


@pytest.fixture(scope="module")
def touches():
    """The touch ``(bid size, ask size, mid in half ticks)`` of the level-5 day at every LAST where it changed
    (two-sided, uncrossed books only)."""
    feed = day(5)
    (inst,) = feed.instruments()
    book = OrderBook(inst.instrument_id)
    rows, last = [], None
    for ev in feed.events():
        book.update(ev)
        if not ev.flags & LAST:
            continue
        bids, asks = book.top(1, 1), book.top(-1, 1)
        if bids and asks and bids[0][0] < asks[0][0]:
            touch = (bids[0][1], asks[0][1], bids[0][0] + asks[0][0])
            if touch != last:
                rows.append(touch)
                last = touch
    return rows


def test_queue_imbalance_predicts_the_next_mid_move_monotonically(touches):
    """F2 on AMZN, at every change of the touch: P(the next mid change is up) rises monotonically with
    I = qb/(qb+qa) over five buckets, below 0.45 for I < 0.2 and above 0.55 for I >= 0.8 (measured 0.373,
    0.383, 0.472, 0.536, 0.610 over 55,000 changes; SPEC states 0.375 and 0.607)."""
    mids = np.array([m for _, _, m in touches])
    change = np.flatnonzero(np.diff(mids)) + 1  # indices where the mid differs from the row before
    ups, counts = np.zeros(5), np.zeros(5)
    for i, (qb, qa, mid2) in enumerate(touches):
        k = np.searchsorted(change, i + 1)
        if k == len(change):
            break
        bucket = min(int(qb / (qb + qa) * 5), 4)
        counts[bucket] += 1
        ups[bucket] += mids[change[k]] > mid2
    p_up = ups / counts
    assert counts.min() >= 1_000, counts
    assert all(np.diff(p_up) > 0), p_up
    assert p_up[0] < 0.45 and p_up[-1] > 0.55, p_up


def test_ofi_explains_more_of_the_mid_move_over_longer_horizons(seconds):
    """F5 on AMZN: R² of Δmid on OFI over non-overlapping windows rises from 1 s to 10 s to 60 s (SPEC
    states 0.16, 0.31, 0.42; measured here 0.159, 0.345, 0.438), with a positive slope."""
    r2 = {}
    for h in (1, 10, 60):
        pairs = [(b[3] - a[3], b[2] - a[2]) for a, b in zip(seconds[::h], seconds[h::h], strict=False)
                 if a is not None and b is not None]
        ofi, move = np.array(pairs, dtype=float).T
        r = np.corrcoef(ofi, move)[0, 1]
        assert r > 0, h
        r2[h] = r * r
    assert r2[1] < r2[10] < r2[60], r2
    assert r2[10] > 0.1, r2


def non_finite(value, path: str = "") -> list[str]:
    """Paths of the NaN or infinite floats anywhere in a row, JSON columns included (orjson writes NaN
    and inf as null, so a null inside a JSON column counts too)."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, str) and value.startswith("{"):
        return [p or path for p in _nulls(orjson.loads(value), path)]
    if isinstance(value, tuple | list):
        return [p for i, v in enumerate(value) for p in non_finite(v, f"{path}[{i}]")]
    return []


def _nulls(value, path: str) -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{path}[{i}]")]
    return []


@pytest.mark.parametrize("level", [1, 5])
def test_every_feature_and_detector_runs_over_the_amzn_day_without_nan_or_inf(level):
    """The reference path with every feature and detector on (the default config) over the AMZN day:
    no error, feature rows and detections stored, and no NaN or inf in any persisted row."""
    from engine.pipeline.run import run_reference

    _, records = run_reference(day(level), Config())
    tables: dict[str, int] = {}
    bad: list[str] = []
    for table, row in records:
        tables[table] = tables.get(table, 0) + 1
        bad += non_finite(row, table)[:1]
    assert bad == []
    assert tables.get("feature_samples", 0) > 20_000 and tables.get("detections", 0) > 10, tables
