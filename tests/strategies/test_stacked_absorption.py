"""S2 Stacked Absorption Reversal on hand-built samples: the divergence counts the zone's width as the zone, not as
progress (the members held at their prices, so the best moved from one to the next)."""

from __future__ import annotations

import pytest

from engine.book import BookView
from engine.detectors.absorption import StackedAbsorptionDetection
from engine.features.vector import FeatureVector
from strategies.stacked_absorption import StackedAbsorption
from tests.strategies.helpers import tracker

NS = 1_000_000_000


def sample(ts_s: float, bid: int, ask: int, cvd: float, seq: int, stack: StackedAbsorptionDetection | None = None
           ) -> FeatureVector:
    values = {"has_bbo": 1.0, "best_bid": float(bid), "best_ask": float(ask), "mid": (bid + ask) / 2,
              "spread": float(ask - bid), "cvd": cvd, "micro_lean": 0.0, "ofi_z_ready": 1.0, "ofi_z_1s": 0.0,
              "sigma1": 0.0}
    ts = int(ts_s * NS)
    view = BookView(0, ts, ts, seq, 0, (bid,), (10,), (ask,), (10,))
    return FeatureVector(0, ts, seq, 0, 0, values, view, (stack,) if stack else ())


def stack(prices: tuple[int, ...], ts_s: float) -> StackedAbsorptionDetection:
    return StackedAbsorptionDetection(
        instrument_id=0, ts_recv=int(ts_s * NS), seq=3, side=1, price_lo=min(prices), price_hi=max(prices),
        strength=float(len(prices)), t_start=1 * NS, prices=prices, count=len(prices), volume=150 * len(prices))


def strategy() -> StackedAbsorption:
    """S2 with the 1 s frame turned up and the slower frames quiet (a reversal's shape)."""
    return StackedAbsorption(0, confluence=tracker(0.8, 0.1, -0.1))


@pytest.mark.parametrize(("prices", "fires"), [((1000, 998), True), ((999, 998), False)])
def test_the_mid_may_fall_through_the_zone_and_one_tick_beyond_it(prices, fires):
    """Sellers hit the bid from 1000 (mid 1001) down to 998 (mid 998.5, -2.5 ticks, CVD -250); the stack's members
    held at their prices. Members at 1000 and 998: 2 ticks of the fall are the zone, 0.5 beyond it, the lifted ask
    confirms: long at the ask, stop below the zone. Members at 999 and 998: 1.5 ticks beyond the zone, more than
    ``max_adverse_ticks`` (1): the price progressed, no divergence, no signal."""
    s = strategy()
    path = [sample(1, 1000, 1002, 0.0, 0), sample(10, 999, 1000, -100.0, 1),
            sample(20, 998, 999, -250.0, 2, stack(prices, 20)), sample(21, 998, 1000, -240.0, 3)]
    signals = [x for x in (s.on_features(f) for f in path) if x is not None]
    if not fires:
        assert signals == []
        return
    (signal,) = signals
    assert signal.side == 1 and signal.entry_price == 1000
    assert signal.stop < 998 and signal.evidence["zone_lo"] == 998 and signal.evidence["ask_lifted"] == 1.0
