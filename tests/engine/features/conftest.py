"""Shared helpers of the feature tests: random event sequences for the reference comparisons, a
driver for per-sample features, and one pass over the real AMZN level-5 day (when present)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import strategies as st

from engine.events import BUY, SELL, Clock, OrderAdd, OrderDelete, Trade
from engine.features.sample import Sample
from engine.features.sampled import SampleFeature
from engine.testing import EventBuilder

NS = 1_000_000_000
MS = 1_000_000

# one step of a random market: (gap ms, kind, side, offset ticks, size, same aggressive order as the previous trade)
STEPS = st.lists(
    st.tuples(st.integers(0, 1_500), st.sampled_from(["add", "add", "delete", "trade", "trade", "move", "clock"]),
                   st.sampled_from([BUY, SELL]), st.integers(0, 4), st.integers(1, 300), st.booleans()),
    min_size=1, max_size=150)


def market_events(steps: list[tuple], start_ns: int = 1_000 * NS + 250 * MS, hidden_every: int = 5) -> list:
    """Events of one instrument from drawn steps: adds around a drifting mid, deletes of live orders,
    trades (visible ones at the resting side's best or one tick through it, hidden ones anywhere near
    the touch; fills of one order share a match id; trades do not change the book), and clocks."""
    e = EventBuilder(instrument_id=1, ts=start_ns, step_ns=0)
    bid, ask = 1000, 1004
    events = [e(OrderAdd, 1, BUY, bid, 50, last=False), e(OrderAdd, 2, SELL, ask, 50)]
    live = [1, 2]
    sides = {1: (BUY, bid), 2: (SELL, ask)}
    oid, match = 3, 1
    for i, (gap_ms, kind, side, offset, size, same) in enumerate(steps):
        e.ts += gap_ms * MS
        if kind == "add":
            price = bid - offset if side == BUY else ask + offset
            others = [sides[o][1] for o in live if sides[o][0] == -side]
            if others:  # never cross the book (crossed books have tests of their own)
                price = min(price, min(others) - 1) if side == BUY else max(price, max(others) + 1)
            events.append(e(OrderAdd, oid, side, price, size))
            live.append(oid)
            sides[oid] = (side, price)
            oid += 1
        elif kind == "delete" and live:
            victim = live.pop(offset * 7 % len(live))
            events.append(e(OrderDelete, victim, sides[victim][0], sides[victim][1], 0))
        elif kind == "trade":  # visible prints hit the resting side's best (or walk one tick); else hidden
            match = match if same else match + 1
            resting = [sides[o][1] for o in live if sides[o][0] == -side]
            if resting and i % hidden_every:
                best = min(resting) if side == BUY else max(resting)
                events.append(e(Trade, best + side * (offset % 2), size, side, i, match, False))
            else:
                price = ask + offset % 2 if side == BUY else bid - offset % 2
                events.append(e(Trade, price, size, side, i, match, True))
        elif kind == "move":
            step = offset - 2
            bid, ask = bid + step, ask + step
        else:
            events.append(e(Clock))
    return events


def drive(feature: SampleFeature, samples: list[Sample]) -> list[dict[str, float]]:
    """The feature's values after each sample (copies)."""
    out = []
    for sample in samples:
        feature.on_sample(sample)
        out.append(dict(feature.values()))
    return out


def mid2_series(samples: list[Sample]) -> list[int | None]:
    """Naive carried usable mid (half ticks) at each sample: both sides, bid < ask, not STALE/CROSSED."""
    out: list[int | None] = []
    last = None
    for sample in samples:
        view = sample.view
        if view.bid_px and view.ask_px and view.bid_px[0] < view.ask_px[0] and not view.state & 0x3:
            last = view.bid_px[0] + view.ask_px[0]
        out.append(last)
    return out


def assert_finite(values: dict[str, float]) -> None:
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    assert not bad, bad


@dataclass
class DayRun:
    """What the regression tests need from one pass over the AMZN day."""

    samples: int = 0
    keys: set[str] = field(default_factory=set)
    non_finite: dict[str, int] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # a few values at every TF2 close
    profile_snapshot: object = None
    swings: object = None
    seconds: float = 0.0


TRACKED = ("vpin", "kyle_lambda", "t_drift_20m", "efficiency_ratio_20m", "median_trade_size", "book_slope_bid",
           "profile_poc", "profile_vah", "profile_val", "cost_1x_buy", "effective_spread", "volume")


@pytest.fixture(scope="session")
def amzn_day() -> DayRun:
    """Every feature of this package over the AMZN 2012-06-21 level-5 day, checked sample by sample."""
    import time

    from engine.features.activity import TradeIntensity, VolumeAcceleration
    from engine.features.bars import TF2
    from engine.features.flow import TradeFlow
    from engine.features.impact import PriceImpact
    from engine.features.liquidity import BookSlope, LiquidityFlow
    from engine.features.ofi import OrderFlowImbalance
    from engine.features.ofi_bias import OfiBias
    from engine.features.profile import VolumeProfile
    from engine.features.structure import SwingStructure
    from engine.features.trend import TrendStrength
    from engine.features.volatility import RealisedVolatility, VolatilityParams
    from engine.features.vpin import Vpin
    from engine.testing import run_market
    from feeds.lobster import LobsterFeed
    from feeds.lobster_files import lobster_available, locate_sample

    if not lobster_available(5):
        pytest.skip("the LOBSTER AMZN level-5 sample is not available")
    started = time.perf_counter()
    feed = LobsterFeed(locate_sample(5)[0])
    (inst,) = feed.instruments()
    market, samples = run_market(inst, feed.events(), lambda c: TradeFlow(), lambda c: OrderFlowImbalance(c.book),
                                 lambda c: Vpin(), lambda c: LiquidityFlow(c.book), lambda c: VolumeProfile(c.book),
                                 lambda c: SwingStructure(c.book), batch_size=4096)
    day_long = VolatilityParams(windows_s=(300, 3600, 23_400))  # one window spans the whole day
    features = [RealisedVolatility(day_long), OfiBias(), TradeIntensity(), VolumeAcceleration(), TrendStrength(),
                PriceImpact(), BookSlope()]
    run = DayRun(samples=len(samples))
    for sample in samples:
        values = dict(sample.flow)
        for feature in features:
            feature.on_sample(sample)
            values.update(feature.values())
        run.keys.update(values)
        for key, value in values.items():
            if not math.isfinite(value):
                run.non_finite[key] = run.non_finite.get(key, 0) + 1
        if sample.frames & TF2:
            for key in TRACKED:
                run.series.setdefault(key, []).append((sample.ts_recv, values[key]))
        run.last = values
    profile = next(a for a in market.accumulators if isinstance(a, VolumeProfile))
    swings = next(a for a in market.accumulators if isinstance(a, SwingStructure))
    run.profile_snapshot = profile.snapshot()
    run.swings = swings.swings()
    run.seconds = time.perf_counter() - started
    return run


def frames_at(ts: int) -> int:
    """The bar frames closing at boundary ``ts`` (as the bar clock sets them)."""
    from engine.features.bars import TF1, TF2, TF3

    frames = TF1
    if ts % (10 * NS) == 0:
        frames |= TF2
    if ts % (60 * NS) == 0:
        frames |= TF3
    return frames


def make_sample(t_s: float, bid: int | None = 1000, ask: int | None = 1002, flow: dict | None = None, state: int = 0,
                bids: tuple = (), asks: tuple = (), frames: int | None = None) -> Sample:
    """A bar-close sample at ``t_s`` seconds (frames from the time unless given) with a small book:
    ``bids``/``asks`` as ((price, size), ...) best first, or just the best prices (size 10)."""
    from engine.book import BookView

    ts = round(t_s * NS)
    if not bids and bid is not None:
        bids = ((bid, 10),)
    if not asks and ask is not None:
        asks = ((ask, 10),)
    view = BookView(1, ts, ts, 0, state, tuple(p for p, _ in bids), tuple(q for _, q in bids),
                    tuple(p for p, _ in asks), tuple(q for _, q in asks))
    return Sample(1, ts, 0, frames_at(ts) if frames is None else frames, view, dict(flow or {}))
