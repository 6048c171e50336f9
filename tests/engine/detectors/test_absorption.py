"""F20 absorption and stacked absorption: SPEC's worked example, levels that break or never had the
volume, the fallback threshold, stacks, and the absorber/iceberg presets of the simulator."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.detectors.absorption import (
    AbsorptionDetection,
    AbsorptionDetector,
    AbsorptionParams,
    StackedAbsorptionDetection,
)
from engine.events import BUY, SELL, Detection, TruthKind
from engine.testing import instrument, run_market
from tests.engine.detectors.planted import Tally, detect, simulate
from tests.engine.detectors.tape import MS, NS, Tape, finite

INST = instrument(1, "TEST")
P = 1000  # the absorbing bid
T0 = 100 * NS


def primed(samples: list[float], params: AbsorptionParams | None = None, bin_ticks: int = 1):
    """A detector factory whose baseline already holds ``samples`` (as if earlier TF2 closes had)."""

    def factory(context):
        detector = AbsorptionDetector(dataclasses.replace(context, bin_ticks=bin_ticks), params)
        for x in samples:
            detector.baseline.add(x)
        return detector

    return factory


AUTO_900 = [450.0, 750.0] * 20  # mean 600, std 150: T_auto = 900, ready (40 samples)


def book(script: Tape, t: int = T0, bid: int = P, shown: int = 200) -> int:
    """A bid of ``shown`` at ``bid`` over deeper bids, an ask above; returns the bid order's id."""
    script.at_ns(t).add(BUY, bid - 2, 500)
    script.at_ns(t + 1).add(SELL, bid + 5, 300)
    return script.at_ns(t + 2).add(BUY, bid, shown)


def burst(script: Tape, oid: int, t: int, trades: int = 14, size: int = 100, peak: int = 200,
          price: int = P, every_ns: int = 300 * MS, hidden: tuple[int, ...] = ()) -> int:
    """``trades`` sells of ``size`` into the bid at ``price`` every ``every_ns`` from ``t``; the bid is
    an iceberg showing ``peak``, shown again 1 ms after each full execution. Trades whose index is
    in ``hidden`` hit hidden liquidity instead. Returns the id of the order showing at the end."""
    left = peak
    for i in range(trades):
        at = t + i * every_ns
        if i in hidden:
            script.at_ns(at).hidden(BUY, price, size)
            continue
        script.at_ns(at).hit(BUY, price, [(oid, size)])
        left -= size
        if left <= 0:
            oid, left = script.at_ns(at + 1 * MS).add(BUY, price, peak), peak
    return oid


def run(script: Tape, factory) -> list[Detection]:
    _, samples = run_market(INST, script.events, factory)
    return [d for s in samples for d in s.detections]


def events(found, kind=AbsorptionDetection) -> list:
    return [d for d in found if isinstance(d, kind)]


# ---- SPEC's worked example -------------------------------------------------------------------------
def test_spec_worked_example():
    """D0 = 200, 1,400 lots sold into the bid in 5 s, T_auto = 900, the price holds: AS = 1.56,
    refill_ratio = 7.0 (1400 / 201 here, SPEC rounds D0 + 1 to D0)."""
    script = Tape()
    oid = book(script)
    burst(script, oid, T0 + 1 * NS)  # sells at 101.0 .. 104.9 s; AS reaches 1 at the 9th (103.4 s)
    script.at_ns(T0 + 5_500 * MS).add(SELL, P + 6, 10)  # 2.1 s after the crossing: decides
    (event,) = run(script, primed(AUTO_900))
    assert isinstance(event, AbsorptionDetection)
    assert event.side == BUY and event.price_lo == event.price_hi == P
    assert event.volume == 1400 and event.d0 == 200 and event.threshold == pytest.approx(900.0)
    assert round(event.strength, 2) == 1.56 and round(event.refill_ratio, 1) == 7.0
    assert event.threshold_source == "auto" and event.hold_s == pytest.approx(2.1)
    assert event.t_start == T0 + 1 * NS and event.ts_recv == T0 + 5_500 * MS


def test_the_worked_example_on_an_l2_feed():
    """The same flow as level updates and trades (no order ids) gives the same event."""
    script = Tape(l2=True)
    burst(script, book(script), T0 + 1 * NS)
    script.at_ns(T0 + 5_500 * MS).add(SELL, P + 6, 10)
    (event,) = run(script, primed(AUTO_900))
    assert (event.volume, event.d0, round(event.strength, 2), event.ts_recv) == (1400, 200, 1.56, T0 + 5_500 * MS)


def test_a_quiet_market_decides_at_the_bar_close():
    """With no event after the burst, the decision comes at the first bar close past crossing + 2 s."""
    script = Tape()
    burst(script, book(script), T0 + 1 * NS)
    script.at_ns(T0 + 9 * NS).add(SELL, P + 6, 10)
    (event,) = run(script, primed(AUTO_900))
    assert event.ts_recv == T0 + 6 * NS and event.hold_s == pytest.approx(2.6)


# ---- negatives --------------------------------------------------------------------------------------------
def test_a_level_that_gives_way_is_not_absorption():
    """The same flow, but the iceberg is not shown again after 1,100 lots: the bid falls to the
    deeper level and stays there, so no event."""
    script = Tape()
    oid = book(script)
    burst(script, oid, T0 + 1 * NS, trades=11)
    script.at_ns(T0 + 4_400 * MS).hit(BUY, P, [(oid + 5, 100)])  # the last 100 shown: the level is gone
    script.at_ns(T0 + 5_500 * MS).add(SELL, P + 6, 10)
    assert events(run(script, primed(AUTO_900))) == []


def test_an_ask_at_the_price_breaks_it():
    """An ask quoted at p while its bid is being refilled means the price moved through: no event."""
    script = Tape()
    oid = burst(script, book(script), T0 + 1 * NS, trades=10)
    script.at_ns(T0 + 3_900 * MS).hit(BUY, P, [(oid, 200)])
    script.at_ns(T0 + 3_900 * MS + 1).add(SELL, P, 50)
    script.at_ns(T0 + 6 * NS).add(SELL, P + 6, 10)
    assert events(run(script, primed(AUTO_900))) == []


def test_a_trade_through_the_price_breaks_it_even_when_the_level_is_shown_again():
    """SPEC F20's adv = 0: one sell takes the last 100 shown at p and 1 lot of the deeper bid (the best moved
    through p); p is broken though the iceberg shows 200 again 1 ms later and trades on: no event. The same flow
    without the lot below p is the worked example's event."""
    def flow(through: bool) -> Tape:
        script = Tape()
        deeper = script.at_ns(T0).add(BUY, P - 2, 500)
        script.at_ns(T0 + 1).add(SELL, P + 5, 300)
        oid = burst(script, script.at_ns(T0 + 2).add(BUY, P, 200), T0 + 1 * NS, trades=9)  # 100 left shown
        script.at_ns(T0 + 3_800 * MS).walk(BUY, [(oid, 100), (deeper, 1)] if through else [(oid, 100)])
        oid = script.at_ns(T0 + 3_801 * MS).add(BUY, P, 200)
        burst(script, oid, T0 + 4_100 * MS, trades=4)
        script.at_ns(T0 + 6_500 * MS).add(SELL, P + 6, 10)
        return script

    assert events(run(flow(through=True), primed(AUTO_900))) == []
    (event,) = events(run(flow(through=False), primed(AUTO_900)))
    assert event.price_lo == P and event.volume >= 900


def test_volume_under_the_threshold_is_not_absorption():
    """800 lots against T_auto = 900: no event."""
    script = Tape()
    burst(script, book(script), T0 + 1 * NS, trades=8)
    script.at_ns(T0 + 6 * NS).add(SELL, P + 6, 10)
    assert events(run(script, primed(AUTO_900))) == []


def test_a_queue_that_only_traded_what_it_showed_absorbed_nothing_beyond_it():
    """2,000 lots shown and 1,400 traded (refill ratio 0.7): no event by default; with
    min_refill_ratio = 0 (SPEC's condition alone) it is one."""
    script = Tape()
    oid = book(script, shown=2000)
    burst(script, oid, T0 + 1 * NS, peak=2000)
    script.at_ns(T0 + 6 * NS).add(SELL, P + 6, 10)
    assert events(run(script, primed(AUTO_900))) == []
    (event,) = events(run(script, primed(AUTO_900, AbsorptionParams(min_refill_ratio=0.0))))
    assert event.volume == 1400 and event.d0 == 2000 and event.refill_ratio == pytest.approx(1400 / 2001)


def test_no_event_before_the_baseline_has_six_samples():
    """Five samples in the baseline: no threshold yet, no event."""
    script = Tape()
    burst(script, book(script), T0 + 1 * NS)
    script.at_ns(T0 + 6 * NS).add(SELL, P + 6, 10)
    assert run(script, primed([100.0] * 5)) == []


def test_a_stale_book_gives_no_event():
    """A sequence gap before the burst marks the book STALE: nothing is emitted."""
    script = Tape()
    oid = book(script)
    script.gap()
    burst(script, oid, T0 + 1 * NS)
    script.at_ns(T0 + 6 * NS).add(SELL, P + 6, 10)
    assert run(script, primed(AUTO_900)) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(0, 8), st.integers(1, 500),
                          st.booleans(), st.integers(1, 900)), max_size=150))
def test_a_book_that_never_trades_gives_no_event(steps):
    """Adds and deletes in any order, with no trade: no detection, whatever the baseline."""
    script = Tape()
    live: list[int] = []
    t = T0
    for side, offset, size, remove, gap_ms in steps:
        t += gap_ms * MS
        script.at_ns(t)
        if remove and live:
            script.delete(live.pop())
        else:
            price = (P - offset) if side == BUY else (P + 5 + offset)
            live.append(script.add(side, price, size))
    assert run(script, primed([1.0, 2.0] * 20)) == []


# ---- threshold sources, hidden volume ---------------------------------------------------------------------
def test_the_fallback_is_the_same_formula_over_fewer_samples():
    """Ten samples of 300 and 500 (the baseline wants 30): T = 400 + 2 x 100 = 600, marked fallback."""
    script = Tape()
    burst(script, book(script), T0 + 1 * NS, trades=7)
    script.at_ns(T0 + 6 * NS).add(SELL, P + 6, 10)
    (event,) = run(script, primed([300.0, 500.0] * 5))
    assert event.threshold_source == "fallback" and event.threshold == pytest.approx(600.0)
    assert event.volume == 700 and event.strength == pytest.approx(700 / 600)


def test_hidden_executions_count_toward_the_absorbed_volume():
    """Four of the fourteen sells hit hidden liquidity at p: still 1,400 lots absorbed."""
    script = Tape()
    burst(script, book(script), T0 + 1 * NS, hidden=(1, 4, 7, 10))
    script.at_ns(T0 + 6 * NS).add(SELL, P + 6, 10)
    (event,) = run(script, primed(AUTO_900))
    assert event.volume == 1400 and event.d0 == 200


# ---- stacked absorption -----------------------------------------------------------------------------------
def two_bursts(second_price: int, second_at: int) -> Tape:
    """The worked example at P, then the bid steps to ``second_price`` and absorbs again."""
    script = Tape()
    bid = book(script)
    burst(script, bid, T0 + 1 * NS)
    script.at_ns(second_at - 20 * MS).delete(bid - 1)  # the first ask makes way
    script.at_ns(second_at - 10 * MS).add(SELL, second_price + 5, 300)
    oid = script.at_ns(second_at - 5 * MS).add(BUY, second_price, 200)
    burst(script, oid, second_at, price=second_price)
    script.at_ns(second_at + 6 * NS).add(SELL, second_price + 7, 10)
    return script


def test_two_events_within_three_ticks_and_a_minute_stack():
    """Events at 1000 and 1002, 10 s apart: a stacked absorption naming both."""
    found = run(two_bursts(P + 2, T0 + 11 * NS), primed(AUTO_900))
    first, second = events(found)
    (stack,) = events(found, StackedAbsorptionDetection)
    assert (first.price_lo, second.price_lo) == (P, P + 2)
    assert stack.prices == (P, P + 2) and stack.count == 2 and stack.volume == 2800
    assert stack.side == BUY and (stack.price_lo, stack.price_hi) == (P, P + 2)
    assert stack.t_start == first.t_start and stack.ts_recv == second.ts_recv


def test_events_four_ticks_apart_or_a_minute_apart_do_not_stack():
    """1000 then 1004 (4 ticks), or 1000 then 1002 more than 60 s later: no stack."""
    for price, at in ((P + 4, T0 + 11 * NS), (P + 2, T0 + 70 * NS)):
        found = run(two_bursts(price, at), primed(AUTO_900))
        assert len(events(found)) == 2 and events(found, StackedAbsorptionDetection) == [], (price, at)


def test_stacking_counts_bins_on_a_small_tick_book():
    """With 10-tick bins, events 30 ticks apart stack; 31 ticks apart do not."""
    for price, stacked in ((P + 30, 1), (P + 31, 0)):
        found = run(two_bursts(price, T0 + 11 * NS), primed(AUTO_900, bin_ticks=10))
        assert len(events(found, StackedAbsorptionDetection)) == stacked, price


# ---- invariants ----------------------------------------------------------------------------------------------
# ---- planted truth ------------------------------------------------------------------------------------------
SEEDS = range(1, 7)
PASSIVE = (TruthKind.ABSORPTION, TruthKind.ICEBERG)


def test_planted_absorbers_are_found():
    """stacked_absorption, iceberg_defense and iceberg_exhausted, six seeds each, against ABSORPTION
    and ICEBERG labels, planted and natural: measured precision 1.00 and recall 0.79 (30 events, 58
    labels); stacks in stacked_absorption: precision 1.00, a true stack in 2 of the 6 seeds (1 and 4).
    Before a trade beyond p broke p (SPEC's adv = 0) the figures were 0.83 / 0.86 and stacks in 3
    seeds: the burst's larger orders walk past the absorber's synthetic iceberg peaks (its refill
    comes 0.5-5 ms after a peak is used up), so the price trades through a level and the level is
    not an absorption by F20 (the planted labels say so, ``through`` = 1). The bar: precision >= 0.45
    and recall >= 0.7; stacks precision >= 0.6 with a true stack in a third of the seeds or more."""
    tally, stacks = Tally(), Tally()
    for name in ("stacked_absorption", "iceberg_defense", "iceberg_exhausted"):
        for seed in SEEDS:
            run_ = simulate(name, seed)
            found = detect(run_, AbsorptionDetector)
            assert finite(*found)
            tally.add_run(run_, events(found), PASSIVE)
            if name == "stacked_absorption":
                stacks.add_run(run_, events(found, StackedAbsorptionDetection), (TruthKind.ABSORPTION,))
    assert tally.precision >= 0.45 and tally.recall >= 0.7, tally.rows
    assert stacks.precision >= 0.6 and stacks.runs_with_true >= len(SEEDS) // 3, stacks.rows


def test_absorption_break_absorbs_before_the_break_and_below_it():
    """absorption_break (the negative of S2): the small absorber is used up within seconds and the
    price drops. Measured over six seeds: events at the absorber's prices while it lasts in 3
    seeds, events lower down while the sell burst goes on in 5 (with stacks there in 4): it is a
    negative for the *reversal*, not for absorption. What the test holds: no event at an absorber's
    price begins after its label ends."""
    for seed in SEEDS:
        run_ = simulate("absorption_break", seed)
        labels = [lb for lb in run_.labels if lb.kind == TruthKind.ABSORPTION and not lb.params.get("natural")]
        found = detect(run_, AbsorptionDetector)
        for lb in labels:
            late = [d for d in events(found) if d.price_lo == lb.price_lo and d.t_start > lb.t_end]
            assert late == [], seed


def test_background_sessions_absorb_ordinary_flow_too():
    """Three 10-minute background sessions (TSLA and AAPL): the definition fires on ordinary flow
    (measured 16, 20 and 18 events, nine in ten on TSLA); the bar is at most 40, so a change
    that floods the output is seen."""
    for seed in (1, 2, 3):
        found = events(detect(simulate("background", seed), AbsorptionDetector))
        assert len(found) <= 40, seed


def test_the_amzn_day_runs_clean(amzn):
    """Both AMZN days (5 and 1 levels): no error, every evidence value finite, a selective output
    (measured 13 and 12 events with 4 and 3 stacks, all on the auto threshold)."""
    inst, events_ = amzn
    _, samples = run_market(inst, events_, AbsorptionDetector)
    found = [d for s in samples for d in s.detections]
    assert finite(*found)
    assert 5 <= len(events(found)) <= 40 and all(d.threshold_source == "auto" for d in events(found))
    assert all(d.refill_ratio >= 1.0 and d.hold_s >= 2.0 for d in events(found))
