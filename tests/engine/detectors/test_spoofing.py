"""Spoofing and layering: large orders shown behind the touch and pulled before they trade are
episodes with their evidence; orders that trade, sit at the touch, are small or live long are not;
layers on adjacent prices pulled together are one episode; the planted spoofs are found."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.detectors.spoofing import SpoofDetection, SpoofDetector, SpoofParams
from engine.events import BUY, SELL, TruthKind
from tests.engine.detectors.planted import Tally, simulate
from tests.engine.detectors.tape import NS, T0, Tape, detections, finite

FIXED = {"fallback_lots": 50, "min_adds": 10**9}  # large = 50 lots throughout (a layer: 25)


def spoofs(tape: Tape, batch_size: int = 1_000_000, bin_ticks: int = 1, **params) -> list[SpoofDetection]:
    merged = {**FIXED, **params}
    return detections(tape.events, lambda c: SpoofDetector(c, SpoofParams(**merged)), batch_size=batch_size,
                      bin_ticks=bin_ticks)


def book() -> Tape:
    """Bids 100-91 and asks 101-110, 10 lots each."""
    tape = Tape()
    tape.ladder(BUY, range(100, 90, -1), 10)
    tape.ladder(SELL, range(101, 111), 10)
    return tape


def approach_and_pull(size: int = 100, price: int = 104, quiet_until: float = 1.5) -> Tape:
    """An offer of ``size`` 3 ticks above the ask at 0.5 s; buyers take 101 and 102 at 1.0 s (the ask
    comes within a tick of it); it is deleted at 1.2 s; a quiet market until ``quiet_until``."""
    tape = book()
    oid = tape.at(0.5).add(SELL, price, size)
    tape.at(1.0).market(BUY, 20)
    tape.at(1.2).delete(oid)
    tape.at(quiet_until).clock()
    return tape


def test_a_large_offer_pulled_as_the_price_comes_near_is_a_spoof():
    """Gap 3 ticks at placement, 1 at the pull, 700 ms of life, nothing executed: emitted by the first
    event 200 ms after the pull, with its evidence."""
    (spoof,) = spoofs(approach_and_pull())
    assert (spoof.side, spoof.price_lo, spoof.price_hi, spoof.t_start, spoof.ts_recv) == (
        SELL, 104, 104, T0 + NS // 2, T0 + 3 * NS // 2)
    assert spoof.evidence() == {"orders": 1, "order_ids": (21,), "total_size": 100, "levels": 1,
                                "lifetime_ms": 700.0, "gap_at_place": 3, "gap_at_cancel": 1, "approached": True,
                                "executed": 0, "layered": False, "threshold": 50}
    assert spoof.strength == 2.0 and finite(spoof)


def test_the_decision_waits_for_orders_pulled_together():
    """Nothing is emitted before 200 ms have passed since the pull; a bid spoof mirrors an ask one."""
    assert spoofs(approach_and_pull(quiet_until=1.35)) == []
    tape = book()
    oid = tape.at(0.5).add(BUY, 96, 80)
    tape.at(1.0).market(SELL, 30)
    tape.at(1.2).delete(oid)
    tape.at(1.4).clock()
    (spoof,) = spoofs(tape)
    assert (spoof.side, spoof.price_lo, spoof.gap_at_place, spoof.gap_at_cancel) == (BUY, 96, 4, 1)


def test_a_large_order_that_trades_is_no_spoof():
    """The same offer taken in full by buyers, or 40 % executed and pulled 2 s later, is not reported."""
    tape = book()
    tape.at(0.5).add(SELL, 104, 100)
    tape.at(1.0).market(BUY, 130)
    tape.at(2.0).clock()
    assert spoofs(tape) == []
    tape = book()
    oid = tape.at(0.5).add(SELL, 104, 100)
    tape.at(1.0).market(BUY, 70)
    tape.at(3.0).delete(oid)
    tape.at(4.0).clock()
    assert spoofs(tape) == []


def test_a_spoof_clipped_before_it_is_pulled_records_what_executed():
    """20 of 100 lots executed and the rest pulled in the same millisecond: a spoof with executed = 20."""
    tape = book()
    oid = tape.at(0.5).add(SELL, 104, 100)
    tape.at(1.0).market(BUY, 60)  # 101-103, the 10 lots ahead of it at 104, then 20 of its lots
    tape.at(1.0005).delete(oid)
    tape.at(1.5).clock()
    (spoof,) = spoofs(tape)
    assert spoof.executed == 20 and spoof.gap_at_cancel == 0 and spoof.approached


def test_orders_at_the_touch_small_or_long_lived_are_not_spoofs():
    """At the best ask (gap 0), 49 lots, or pulled after 100 s: no detection."""
    assert spoofs(approach_and_pull(price=101)) == []
    assert spoofs(approach_and_pull(size=49)) == []
    tape = book()
    oid = tape.at(0.5).add(SELL, 104, 100)
    tape.at(100.6).delete(oid)
    tape.at(101.0).clock()
    assert spoofs(tape) == [] and len(spoofs(tape, max_lifetime_ms=120_000)) == 1


def test_approach_is_recorded_and_can_be_required():
    """Pulled without the price coming nearer: reported with approached = False, or not at all when required."""
    tape = book()
    oid = tape.at(0.5).add(SELL, 104, 100)
    tape.at(2.0).delete(oid)
    tape.at(3.0).clock()
    (spoof,) = spoofs(tape)
    assert not spoof.approached and spoof.gap_at_place == spoof.gap_at_cancel == 3
    assert spoofs(tape, require_approach=True) == []


def layers(placed=(0.5, 0.6, 0.7), pulled=(1.2, 1.25, 1.3), prices=(104, 105, 106), size: int = 30) -> Tape:
    """Offers of ``size`` placed and pulled at the given times; buyers take the 101 ask at 0.9 s."""
    tape = book()
    steps = [(t, "add", p) for t, p in zip(placed, prices, strict=True)] + [(0.9, "buy", 0)]
    steps += [(t, "pull", p) for t, p in zip(pulled, prices, strict=True)]
    oids = {}
    for t, what, price in sorted(steps):
        tape.at(t)
        if what == "add":
            oids[price] = tape.add(SELL, price, size)
        elif what == "buy":
            tape.market(BUY, 10)
        else:
            tape.delete(oids[price])
    tape.at(max(pulled) + 1.0).clock()
    return tape


def test_layers_on_adjacent_prices_pulled_together_are_one_episode():
    """Three offers of 30 lots at 104-106, placed within 200 ms and pulled within 100 ms: one layering episode
    (the ask moved from 101 to 102 meanwhile)."""
    (episode,) = spoofs(layers())
    assert (episode.price_lo, episode.price_hi, episode.t_start) == (104, 106, T0 + NS // 2)
    assert (episode.orders, episode.order_ids, episode.total_size, episode.levels, episode.layered) == (
        3, (21, 22, 23), 90, 3, True)
    assert episode.lifetime_ms == 800.0 and episode.gap_at_place == 3 and episode.gap_at_cancel == 2
    assert episode.approached and episode.strength == 1.8


def test_layers_pulled_apart_placed_apart_too_few_or_not_adjacent_are_not_layering():
    """Pulled a second apart, placed 5 s apart, only two, or at 104/107/110: no episode (each is below 50)."""
    assert spoofs(layers(pulled=(1.2, 2.2, 3.2))) == []
    assert spoofs(layers(placed=(0.5, 0.6, 5.7), pulled=(6.0, 6.05, 6.1))) == []
    assert spoofs(layers(placed=(0.5, 0.6), pulled=(1.2, 1.25), prices=(104, 105))) == []
    assert spoofs(layers(prices=(104, 107, 110))) == []
    assert len(spoofs(layers(prices=(104, 107, 110)), bin_ticks=3)) == 1  # adjacent bins of 3 ticks


def test_the_large_order_threshold_is_a_quantile_of_recent_adds():
    """After 990 one-lot and 10 twenty-lot adds the threshold is 21 lots: a 21-lot spoof counts, 20 does not."""
    def tape_with(size: int) -> Tape:
        tape = book()
        for i in range(1_000):
            oid = tape.at(0.1 + i * 0.0005).add(BUY, 80, 20 if i % 100 == 0 else 1)
            tape.delete(oid)
        return tape_after(tape, size)

    def tape_after(tape: Tape, size: int) -> Tape:
        oid = tape.at(1.5).add(SELL, 104, size)
        tape.at(2.0).market(BUY, 20)
        tape.at(2.2).delete(oid)
        tape.at(2.5).clock()
        return tape

    params = {"fallback_lots": 0, "min_adds": 500}
    (spoof,) = spoofs(tape_with(21), **params)
    assert spoof.threshold == 21
    assert spoofs(tape_with(20), **params) == []
    assert spoofs(tape_after(book(), 1_000), **params) == []  # no baseline yet: silent (fallback 0)


def test_no_spoof_on_a_crossed_or_stale_book():
    """A gap before the pull leaves the book STALE; a crossing bid leaves it CROSSED: nothing is reported."""
    tape = book()
    oid = tape.at(0.5).add(SELL, 104, 100)
    tape.at(1.0).market(BUY, 20)
    tape.seq += 3  # events went missing
    tape.at(1.2).delete(oid)
    tape.at(1.5).clock()
    assert spoofs(tape) == []
    tape = book()
    oid = tape.at(0.5).add(SELL, 104, 100)
    tape.at(1.0).market(BUY, 20)
    tape.at(1.1).add(BUY, 105, 5)  # crosses the ask at 103
    tape.at(1.2).delete(oid)
    tape.at(1.5).clock()
    assert spoofs(tape) == []


def test_level_sizes_alone_give_no_spoof():
    """On an L2 feed (deltas, no order ids) a large level shown and removed is not reported."""
    tape = Tape()
    for p in range(101, 106):
        tape.delta(SELL, p, 10)
        tape.delta(BUY, 201 - p, 10)
    tape.at(0.5).delta(SELL, 104, 110)
    tape.at(1.2).delta(SELL, 104, 10)
    tape.at(2.0).clock()
    assert spoofs(tape) == []


def test_detections_do_not_depend_on_the_batch_size():
    """Batches of 1, 5 and everything give the same episodes."""
    tape = layers()
    oid = tape.at(3.0).add(BUY, 95, 200)
    tape.at(3.5).delete(oid)
    tape.at(4.0).clock()
    reference = spoofs(tape)
    assert len(reference) == 2 and all(spoofs(tape, batch_size=n) == reference for n in (1, 5))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 8), st.sampled_from([1, 10, 60, 300]),
                          st.integers(0, 40)), max_size=40))
def test_a_book_where_nothing_is_cancelled_has_no_spoof(orders):
    """Random adds (large ones included) and market orders, but no cancel or delete: never a spoof."""
    tape = book()
    for i, (side, gap, size, taken) in enumerate(orders):
        best = tape.best(side)
        tape.at(0.1 * (i + 1)).add(side, (best or 100 + (side < 0)) - side * gap, size)
        if taken:
            tape.market(-side, taken)
    tape.at(0.1 * len(orders) + 1.0).clock()
    assert spoofs(tape) == []


def test_the_planted_spoofs_are_found():
    """spoof_pull seeds 1-5 (one 20-mean-order offer each) and two 30-minute background sessions per profile
    at 60 episodes an hour (every kind of episode, one in six a spoof): recall and precision 1.0 measured;
    the bar is recall >= 0.8 and precision >= 0.9."""
    tally = Tally()
    runs = [simulate("spoof_pull", seed) for seed in range(1, 6)]
    runs += [simulate("background", seed, (symbol,), 1800.0, 60.0) for symbol in ("TSLA", "AAPL") for seed in (1, 2)]
    for run in runs:
        inst, market, _, w = run.single()
        found = detections(market, SpoofDetector, bin_ticks=w, instrument_def=inst)
        assert finite(*found)
        tally.add_run(run, found, (TruthKind.SPOOF,))
    assert tally.labels >= 20 and tally.recall >= 0.8 and tally.precision >= 0.9, tally.rows


def test_other_planted_episodes_are_not_spoofs():
    """The absorption, iceberg, sweep and vacuum presets (seeds 1-3) give no spoof (their large passive
    orders trade or sit at the touch). One exception, measured: in stop_run_reversal the passive seller
    above the run does not always trade (seeds 3 and 4 of 1-8 since the simulator's realism change: no
    ABSORPTION label); its one large offer, untouched and cancelled at the episode's end, is then a
    spoof by the definition, and only it is flagged."""
    for preset in ("stacked_absorption", "absorption_break", "iceberg_defense", "stop_run_reversal", "vacuum"):
        for seed in (1, 2, 3):
            inst, market, labels, w = simulate(preset, seed).single()
            found = detections(market, SpoofDetector, bin_ticks=w, instrument_def=inst)
            untraded = preset == "stop_run_reversal" and not any(
                lb.kind == TruthKind.ABSORPTION and not lb.params.get("natural") for lb in labels)
            if untraded:
                assert len(found) <= 1 and all(d.side == SELL and d.orders == 1 and d.executed == 0
                                               for d in found), (preset, seed)
            else:
                assert found == [], (preset, seed)

