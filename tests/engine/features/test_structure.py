"""F25 swing structure and the session extremes: hand-built bars and a naive recount of the fractal rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import BUY, SELL, OrderAdd, Trade
from engine.features.bars import TF2
from engine.features.structure import StructureParams, SwingStructure
from engine.testing import EventBuilder, instrument, run_market
from tests.engine.features.conftest import NS

INST = instrument(1, "TEST")


def bars_of(prices_per_bar: list[list[int]], tail_s: int = 1) -> list:
    """Trades inside consecutive 10 s bars (from 10 s on), then one event to close the last bar."""
    e = EventBuilder(instrument_id=1, ts=5 * NS)
    events = [e(OrderAdd, 1, BUY, 900, 5), e(OrderAdd, 2, SELL, 1100, 5)]
    for k, prices in enumerate(prices_per_bar):
        e.ts = (10 * (k + 1) + 1) * NS
        events += [e(Trade, p, 1, BUY, 0, 0) for p in prices]
    e.ts = (10 * (len(prices_per_bar) + 1) + tail_s) * NS
    events.append(e(OrderAdd, 3, BUY, 901, 1))
    return events


def run(events, params: StructureParams | None = None):
    market, samples = run_market(INST, events, lambda c: SwingStructure(c.book, params))
    return market.accumulators[0], samples


def test_a_higher_bar_between_two_lower_ones_is_a_swing_high():
    """Bar highs 1010, 1012, 1011: a swing high at 1012, known at the third bar's close; lows rise, no swing low."""
    structure, samples = run(bars_of([[1005, 1010], [1007, 1012], [1008, 1011]]))
    highs, lows = structure.swings()
    assert [s.price for s in highs] == [1012] and lows == ()
    assert highs[0].ts_bar == 30 * NS and highs[0].ts_confirmed == 40 * NS
    last = samples[-1].flow
    assert (last["swing_high_1"], last["swing_high_dist"], last["swing_high_count"]) == (1012.0, 12.0, 1.0)
    assert last["swing_high_1_age_s"] == 11.0  # sample at 41 s, swing bar ended at 30 s


def test_a_plateau_gives_one_swing_at_its_first_bar():
    """Bar highs 1010, 1012, 1012, 1011: one swing high, the first 1012 bar."""
    structure, _ = run(bars_of([[1010], [1012], [1012], [1011]]))
    (swing,), _ = structure.swings()
    assert swing.ts_bar == 30 * NS


def test_a_bar_without_trades_is_flat_at_the_last_price():
    """Lows 1005, (no trades: 1008 carried), 1009 after a bar closing at 1008: no swing low at the silent bar."""
    structure, _ = run(bars_of([[1005], [1008], [], [1009]]))
    _, lows = structure.swings()
    assert lows == ()
    structure, _ = run(bars_of([[1009], [1004], [], [1010]]))
    _, lows = structure.swings()
    assert [s.price for s in lows] == [1004]  # the silent bar at 1004 equals it: the first bar is the swing


def test_only_the_last_k_swings_are_kept_most_recent_first():
    """Seven alternating swing highs with K = 5: the last five, newest first."""
    bars = []
    for k in range(7):
        bars += [[1000], [1010 + k]]
    bars.append([1000])
    structure, samples = run(bars_of(bars), StructureParams(swings_kept=5))
    highs, _ = structure.swings()
    assert [s.price for s in highs] == [1016, 1015, 1014, 1013, 1012]
    assert samples[-1].flow["swing_high_5"] == 1012.0


def test_session_extremes_and_the_prior_day_placeholder():
    """Session high and low follow every trade; the prior day's levels are 0 until multi-day replay exists."""
    _, samples = run(bars_of([[1005, 1010], [999, 1012]]))
    last = samples[-1].flow
    assert (last["session_high"], last["session_low"]) == (1012.0, 999.0)
    assert (last["prior_day_high"], last["prior_day_low"]) == (0.0, 0.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(990, 1010), max_size=3), min_size=1, max_size=30))
def test_swings_equal_a_naive_fractal_recount(per_bar):
    """At every TF2 close the kept swings equal a recount of the 3-bar rule over the bars closed so far."""
    events = bars_of(per_bar)
    structure, samples = run(events)
    params = StructureParams()
    trades = [ev for ev in events if type(ev) is Trade]
    for sample in samples:
        if not sample.frames & TF2:
            continue
        bars, last = [], None
        for end in range(20 * NS, sample.ts_recv + 1, 10 * NS):
            prices = [t.price for t in trades if end - 10 * NS <= t.ts_recv < end]
            last = prices[-1] if prices else last
            if last is not None:
                bars.append((max(prices) if prices else last, min(prices) if prices else last))
        highs = [bars[i][0] for i in range(1, len(bars) - 1) if bars[i - 1][0] < bars[i][0] >= bars[i + 1][0]]
        lows = [bars[i][1] for i in range(1, len(bars) - 1) if bars[i - 1][1] > bars[i][1] <= bars[i + 1][1]]
        for name, expected in (("swing_high", highs), ("swing_low", lows)):
            kept = expected[::-1][: params.swings_kept]
            got = [sample.flow[f"{name}_{k}"] for k in range(1, len(kept) + 1)]
            assert got == kept and sample.flow[f"{name}_count"] == len(kept)


def test_amzn_day_swings_lie_inside_the_session_range(amzn_day):
    """On the AMZN day five swings per side are kept and all lie inside the session's range."""
    highs, lows = amzn_day.swings
    last = amzn_day.last
    assert len(highs) == len(lows) == 5
    assert all(last["session_low"] <= s.price <= last["session_high"] for s in (*highs, *lows))
