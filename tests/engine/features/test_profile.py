"""F24 volume profile: the CBOT value area, POC ties, the node test (kernel null, quasi-Poisson z,
Benjamini-Hochberg), the causal bin width, the rolling window, naive recomputations, and the AMZN day."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import false_discovery_control, norm

from engine.book import OrderBook
from engine.events import BUY, SELL, OrderAdd, Trade
from engine.features.bars import TF2
from engine.features.profile import TF2_NS, Histogram, VolumeProfile, VolumeProfileParams, find_nodes, value_area
from engine.testing import EventBuilder, instrument, run_market
from tests.engine.features.conftest import NS

INST = instrument(1, "TEST")


def test_value_area_adds_the_larger_pair():
    """Volumes 10, 20, 50, [100], 40, 30, 5: pairs tie at 70, then 70 below beats 5 above: bins 1..5."""
    assert value_area([10, 20, 50, 100, 40, 30, 5], 3, 0.70) == (1, 5)


def test_value_area_ties_go_up():
    """Volumes 1, 30, 40, [100], 30, 40, 1: the pairs tie at 70 and one pair reaches 70 % of 242: the upper one."""
    assert value_area([1, 30, 40, 100, 30, 40, 1], 3, 0.70) == (3, 5)


def test_value_area_of_a_single_dominant_bin_is_that_bin():
    """A POC holding 80 % of the volume is the value area by itself."""
    assert value_area([5, 80, 15], 1, 0.70) == (1, 1)


def test_poc_ties_go_to_the_bin_nearest_the_range_middle():
    """Bins 0, 3 and 9 tie at 50 lots over the range 0..9: bin 3 is nearest the middle (4.5 ticks)."""
    histogram = Histogram()
    for j in (0, 9, 3):
        histogram.add(j, j, 50)
    histogram.add(5, 5, 10)
    assert histogram.poc(1) == 3


def spiky(n: int = 41, base: int = 10, spikes: dict | None = None) -> list[int]:
    counts = [base] * n
    for j, value in (spikes or {}).items():
        counts[j] = value
    return counts


def test_two_crowded_prices_are_hvns_and_the_empty_one_between_is_an_lvn():
    """Trade counts 100 everywhere, 200 at bins 10 and 30, 0 at bin 20: HVNs at 10 and 30, an LVN at 20 (z +-3.54)."""
    nodes = find_nodes(spiky(base=100, spikes={10: 200, 30: 200, 20: 0}), VolumeProfileParams())
    assert {(kind, j) for kind, j, *_ in nodes} == {("hvn", 10), ("hvn", 30), ("lvn", 20)}
    assert [round(z, 2) for *_, z in nodes] == [3.54, 3.54, -3.54]


def test_an_hvn_extends_while_the_smoothed_profile_stays_above_half_its_peak():
    """A peaked cluster 60, 200, 400, 200, 60 at bins 30..34 over a floor of 20: one HVN at 32 spanning 28..36."""
    counts = [20] * 30 + [60, 200, 400, 200, 60] + [20] * 30
    nodes = find_nodes(counts, VolumeProfileParams())
    assert [(kind, j, lo, hi) for kind, j, lo, hi, _ in nodes] == [("hvn", 32, 28, 36)]


def test_a_flat_profile_has_no_nodes():
    """Equal counts everywhere: no bin is significant."""
    assert find_nodes(spiky(), VolumeProfileParams()) == []


def test_an_lvn_needs_an_hvn_on_each_side():
    """A hole with an HVN on one side only is not an LVN."""
    nodes = find_nodes(spiky(base=100, spikes={10: 200, 20: 0}), VolumeProfileParams())
    assert "lvn" not in {kind for kind, *_ in nodes}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=3, max_size=40))
def test_node_z_and_bh_equal_a_naive_recomputation(counts):
    """Each node's z equals an explicit kernel loop, and the HVNs are exactly the local maxima that scipy's
    Benjamini-Hochberg keeps."""
    params = VolumeProfileParams()
    n = len(counts)
    reach, h = 9, 3.0
    null, smooth = [], []
    for j in range(n):
        ks = [k for k in range(max(0, j - reach), min(n, j + reach + 1))]
        w = {k: math.exp(-0.5 * ((k - j) / h) ** 2) for k in ks}
        smooth.append(sum(w[k] * counts[k] for k in ks) / sum(w.values()))
        others = [k for k in ks if k != j]
        null.append(sum(w[k] * counts[k] for k in others) / sum(w[k] for k in others) if others else 0.0)
    tested = [j for j in range(n) if null[j] > 0]
    nodes = find_nodes(counts, params)
    if not tested:
        assert nodes == []
        return
    phi = max(1.0, float(np.mean([(counts[j] - null[j]) ** 2 / null[j] for j in tested])))
    z = {j: (counts[j] - null[j]) / math.sqrt(phi * null[j]) for j in tested}
    adjusted = false_discovery_control(norm.sf([z[j] for j in tested]), method="bh")
    significant = {j for j, a in zip(tested, adjusted, strict=True) if a <= params.alpha}
    padded = [0.0, *smooth, 0.0]
    maxima = {j for j in range(n) if padded[j + 1] > padded[j] and padded[j + 1] >= padded[j + 2]}
    assert {j for kind, j, *_ in nodes if kind == "hvn"} == maxima & significant
    for _, j, _, _, value in nodes:
        assert value == pytest.approx(z[j])


def trades_at(e: EventBuilder, rows) -> list:
    return [e(Trade, price, size, BUY if k % 2 else SELL, k, k + 1) for k, (price, size) in enumerate(rows)]


def test_configured_bins_give_poc_value_area_and_distances():
    """Bin 1 tick, volumes 10 @ 1000, 30 @ 1001, 60 @ 1002, 20 @ 1003: POC 1002; the pair below (40) beats the
    one above (20) and reaches 100 of 120 lots: VA 1000..1002, mid 1001 inside it."""
    e = EventBuilder(instrument_id=1, ts=NS // 2)
    events = [e(OrderAdd, 1, BUY, 1000, 5), e(OrderAdd, 2, SELL, 1002, 5)]
    events += trades_at(e, [(1000, 10), (1001, 30), (1002, 60), (1003, 20)])
    e.ts = 10 * NS + 1
    events.append(e(OrderAdd, 3, BUY, 999, 1))
    market, samples = run_market(INST, events, lambda c: VolumeProfile(c.book, VolumeProfileParams(bin_ticks=1)))
    (close,) = [s for s in samples if s.frames & TF2]
    flow = close.flow
    assert (flow["profile_poc"], flow["profile_vah"], flow["profile_val"]) == (1002.0, 1002.0, 1000.0)
    assert (flow["profile_poc_dist"], flow["profile_val_dist"], flow["profile_in_value_area"]) == (1.0, -1.0, 1.0)
    snapshot = market.accumulators[0].snapshot()
    assert snapshot.volume == (10, 30, 60, 20) and snapshot.count == (1, 1, 1, 1) and snapshot.first_bin == 1000


def test_the_bin_width_is_fixed_by_the_first_minutes_median_spread():
    """Spread 3 ticks through the warm-up: w = 3; trades from before it are binned once it is fixed."""
    e = EventBuilder(instrument_id=1, ts=NS // 2)
    events = [e(OrderAdd, 1, BUY, 999, 5), e(OrderAdd, 2, SELL, 1002, 5)]
    events += trades_at(e, [(1000, 10), (1001, 30), (1003, 60)])
    e.ts = 31 * NS
    events.append(e(OrderAdd, 3, BUY, 998, 1))
    params = VolumeProfileParams(bin_warmup_s=20.0)
    market, samples = run_market(INST, events, lambda c: VolumeProfile(c.book, params))
    assert samples[10].flow["profile_ready"] == 0.0  # t = 11 s: still warming up
    assert samples[-1].flow["profile_bin_ticks"] == 3.0
    snapshot = market.accumulators[0].snapshot()
    assert (snapshot.first_bin, snapshot.volume) == (333, (40, 60))  # 999..1001 and 1002..1004
    assert snapshot.poc == 1003.0  # the centre of bin 334


def test_the_rolling_profile_forgets_old_trades():
    """With a 20 s rolling window, a trade 25 s old has left the rolling profile but not the session's."""
    e = EventBuilder(instrument_id=1, ts=NS // 2)
    events = [e(OrderAdd, 1, BUY, 999, 5), e(OrderAdd, 2, SELL, 1002, 5), *trades_at(e, [(1000, 90)])]
    e.ts = 25 * NS
    events += trades_at(e, [(1001, 10)])
    e.ts = 30 * NS + 1
    events.append(e(OrderAdd, 3, BUY, 998, 1))
    params = VolumeProfileParams(bin_ticks=1, rolling_s=20.0)
    _, samples = run_market(INST, events, lambda c: VolumeProfile(c.book, params))
    flow = samples[-1].flow
    assert (flow["profile_poc"], flow["profile_2h_poc"]) == (1000.0, 1001.0)


def test_the_rolling_window_holds_exactly_the_trades_of_its_last_second_across_compactions():
    """A trade a millisecond for 45 s through a 1 s rolling window: at each TF2 close the rolling profile's
    volume and count per bin are those of the trades of the last second, recounted naively, and the
    window's columns have been compacted (their dead front is never more than half of them)."""
    profile = VolumeProfile(OrderBook(1), VolumeProfileParams(bin_ticks=2, rolling_s=1.0))
    rng = np.random.default_rng(3)
    trades: list[tuple[int, int, int]] = []
    closes = 0
    for k in range(45_000):
        ts = NS // 2 + k * 1_000_000
        if ts % TF2_NS < 1_000_000 and ts >= TF2_NS:  # the first trade at or after a close: the close first
            close = ts - ts % TF2_NS
            profile.values(close)
            closes += 1
            window = [(p, q) for t, p, q in trades if t > close - NS]
            volume: dict[int, int] = {}
            count: dict[int, int] = {}
            for p, q in window:
                volume[p // 2] = volume.get(p // 2, 0) + q
                count[p // 2] = count.get(p // 2, 0) + 1
            assert {j: v for j, v in profile.rolling.volume.items() if v} == volume
            assert {j: n for j, n in profile.rolling.count.items() if n} == count
            assert len(profile.recent) == len(window)
            assert len(profile.recent.ts) <= 2 * len(window) < len(trades)
        price, size = int(rng.integers(990, 1010)), int(rng.integers(1, 40))
        profile.on_trade(Trade(1, ts, ts, k, 0, price, size, BUY))
        trades.append((ts, price, size))
    assert closes == 4


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3_000), st.integers(990, 1010), st.integers(1, 50)), min_size=1,
                max_size=60))
def test_poc_and_value_area_equal_a_naive_recomputation(rows):
    """At every TF2 close the session POC (with its tie rule) and value area equal a recomputation from the
    trades before the close."""
    e = EventBuilder(instrument_id=1, ts=NS // 2, step_ns=0)
    events = [e(OrderAdd, 1, BUY, 900, 5), e(OrderAdd, 2, SELL, 1100, 5)]
    trades = []
    for gap_ms, price, size in rows:
        e.ts += gap_ms * 1_000_000
        trades.append(e(Trade, price, size, BUY, 0, 0))
    events += trades
    e.ts += 10 * NS
    events.append(e(OrderAdd, 3, BUY, 901, 1))
    width = 2
    _, samples = run_market(INST, events, lambda c: VolumeProfile(c.book, VolumeProfileParams(bin_ticks=width)))
    for sample in samples:
        if not sample.frames & TF2:
            continue
        before = [t for t in trades if t.ts_recv < sample.ts_recv]
        if not before:
            assert sample.flow["profile_ready"] == 0.0
            continue
        volume: dict[int, int] = {}
        for t in before:
            volume[t.price // width] = volume.get(t.price // width, 0) + t.size
        lo, hi = min(volume), max(volume)
        bins = list(range(lo, hi + 1))
        v = [volume.get(j, 0) for j in bins]
        top = max(v)
        middle = (lo * width + (hi + 1) * width - 1) / 2
        vwap = sum(t.price * t.size for t in before) / sum(t.size for t in before)
        centre = {j: j * width + (width - 1) / 2 for j in bins}
        poc = min((j for j in bins if volume.get(j, 0) == top),
                  key=lambda j: (abs(centre[j] - middle), abs(centre[j] - vwap), j))
        members, total = {poc}, volume[poc]
        while total < 0.7 * sum(v):
            up = [j for j in (max(members) + 1, max(members) + 2) if j <= hi]
            down = [j for j in (min(members) - 1, min(members) - 2) if j >= lo]
            if not up and not down:
                break
            pick = down if down and (not up or sum(volume.get(j, 0) for j in down) > sum(
                volume.get(j, 0) for j in up)) else up
            members.update(pick)
            total += sum(volume.get(j, 0) for j in pick)
        assert sample.flow["profile_poc"] == centre[poc]
        assert sample.flow["profile_val"] == min(members) * width
        assert sample.flow["profile_vah"] == (max(members) + 1) * width - 1


def test_amzn_day_profile_is_finite_and_brackets_the_day(amzn_day):
    """On the AMZN day VAL <= POC <= VAH lie within the bins of the day's traded range, and the last snapshot holds
    every lot traded before it."""
    snapshot = amzn_day.profile_snapshot
    last = amzn_day.last
    width = snapshot.bin_ticks
    assert sum(snapshot.volume) == dict(amzn_day.series["volume"])[snapshot.ts_recv]
    assert last["session_low"] - width < last["profile_val"] <= last["profile_poc"] <= last["profile_vah"]
    assert last["profile_vah"] < last["session_high"] + width
