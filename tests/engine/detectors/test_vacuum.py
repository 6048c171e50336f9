"""F18 liquidity void and vacuum: the fall, the cancel share, the median, what must not be a vacuum,
L2 feeds, the per-sample void values, and the planted vacuums of the simulator presets."""

from __future__ import annotations

import dataclasses
import math
import statistics
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import OrderBook
from engine.detectors.scoring import matches
from engine.detectors.vacuum import (
    RunningMedian,
    VacuumDetection,
    VacuumDetector,
    VacuumParams,
    VoidAccumulator,
    gap_max,
)
from engine.events import BUY, SELL, OrderCancel, OrderDelete, OrderExecute, OrderModify, TruthKind
from engine.testing import run_market
from tests.engine.detectors.planted import simulate
from tests.engine.detectors.tape import INST, MS, NS, T0, Tape, of_kind

ASKS = range(1001, 1011)  # ten asks of 100: D_N(ask) = 1000
BIDS = range(990, 980, -1)


def base(tape: Tape, l2: bool = False) -> None:
    """Bids 990..981 and asks 1001..1010, 100 lots each; TF2 closes at 10, 20 and 30 s: median 1000."""
    for side, prices in ((BUY, BIDS), (SELL, ASKS)):
        for p in prices:
            if l2:
                tape.delta(side, p, 100)
            else:
                tape.add(side, p, 100)
    for t in (10.0, 20.0, 30.0):
        tape.at(t).clock()


def pull(tape: Tape, prices, t: float, step: float = 0.01, l2: bool = False) -> None:
    for i, p in enumerate(prices):
        tape.at(t + i * step)
        if l2:
            tape.delta(SELL, p, 0)
        else:
            tape.delete(tape.order_at(SELL, p))


def vacuums(tape: Tape, factory=VacuumDetector) -> list[VacuumDetection]:
    _, samples = run_market(INST, tape.events, factory)
    return of_kind(samples, VacuumDetection)


def vacuums_of(inst, market) -> list[VacuumDetection]:
    return of_kind(run_market(inst, market, partial(VacuumDetector, params=VacuumParams()))[1], VacuumDetection)


def test_asks_pulled_within_a_second_are_a_vacuum_with_its_evidence():
    """Seven ask levels deleted 10 ms apart: at the sixth, D_N = 400 = 0.4 x median after a 60% fall, all cancels."""
    tape = Tape()
    base(tape)
    pull(tape, range(1010, 1003, -1), 35.0)
    (found,) = vacuums(tape)
    assert (found.side, found.price_lo, found.price_hi, found.depth_before, found.depth_after) == (SELL, 1001, 1010,
                                                                                                   1000, 400)
    assert (found.cancelled, found.executed, found.cancel_share, found.median_depth) == (600, 0, 1.0, 1000.0)
    assert found.void == pytest.approx(0.6) and found.gap_max == 6 and found.window_ms == 50.0
    assert found.ts_recv == T0 + 35_050 * MS and found.t_start == T0 + 35 * NS and found.strength == pytest.approx(1.0)


def test_asks_eaten_by_a_buyer_are_not_a_vacuum():
    """A 600-lot buy through six ask levels leaves D_N = 400, but by trades: cancel share 0."""
    tape = Tape()
    base(tape)
    tape.at(35.0).market(BUY, 600)
    tape.at(36.0).clock()
    assert vacuums(tape) == []


def test_a_slow_retreat_is_not_a_vacuum():
    """The same seven levels deleted 1.2 s apart never fall by half within 2 s."""
    tape = Tape()
    base(tape)
    pull(tape, range(1010, 1003, -1), 35.0, step=1.2)
    tape.at(45.0).clock()
    assert vacuums(tape) == []


def test_a_pulled_wall_that_leaves_normal_depth_is_not_a_vacuum():
    """A 1000-lot offer added then pulled halves D_N, but D_N is back at its median (the spoof case)."""
    tape = Tape()
    base(tape)
    tape.at(31.0).add(SELL, 1003, 1000)
    tape.at(33.0).delete(tape.order_at(SELL, 1003, -1))
    assert vacuums(tape) == []


def test_cancels_must_explain_seventy_percent_of_the_fall():
    """500 cancelled then 150 bought: share 0.77, a vacuum at the trade; 400 cancelled then 300 bought: 0.57, none."""
    tape = Tape()
    base(tape)
    pull(tape, range(1010, 1005, -1), 35.0)
    tape.at(35.1).market(BUY, 150)
    (found,) = vacuums(tape)
    assert (found.cancelled, found.executed, found.depth_after) == (500, 150, 350)
    assert found.cancel_share == pytest.approx(500 / 650) and found.ts_recv == T0 + 35_100 * MS

    tape = Tape()
    base(tape)
    pull(tape, range(1010, 1006, -1), 35.0)
    tape.at(35.1).market(BUY, 300)
    tape.at(36.0).clock()
    assert vacuums(tape) == []


def test_a_zone_that_shifts_inward_is_not_a_vacuum():
    """A new best ask 7 ticks lower shrinks the zone to 994..1003 (D_N 400), but nothing was cancelled."""
    tape = Tape()
    base(tape)
    tape.at(35.0).add(SELL, 994, 100)
    tape.at(36.0).clock()
    assert vacuums(tape) == []


def test_one_pull_is_one_vacuum_and_a_later_pull_is_another():
    """Deleting on inside the 2 s after a vacuum adds none; a pull after the refill 5 s later is a second one."""
    tape = Tape()
    base(tape)
    pull(tape, range(1010, 1004, -1), 35.0)  # D_N 400 at 35.05: the vacuum
    pull(tape, range(1004, 1001, -1), 35.5)  # D_N 100: a further 75% fall, within the quiet time
    tape.at(36.0).clock()
    assert len(vacuums(tape)) == 1
    tape.at(37.0)
    for p in range(1010, 1003, -1):
        tape.add(SELL, p, 100)  # D_N 800
    pull(tape, range(1010, 1004, -1), 40.0)  # fires at D_N 400: half of 800, 0.4 x median
    found = vacuums(tape)
    assert len(found) == 2 and (found[1].depth_before, found[1].depth_after) == (800, 400)


def test_no_vacuum_before_the_median_exists_nor_on_a_stale_book():
    """Without three TF2 samples there is no median; after a sequence gap the book is STALE: no vacuum."""
    tape = Tape()
    for p in ASKS:
        tape.add(SELL, p, 100)
    tape.add(BUY, 990, 100)
    tape.at(21.0).clock()  # closes two TF2 bars only
    pull(tape, range(1010, 1003, -1), 22.0)
    assert vacuums(tape) == []

    tape = Tape()
    base(tape)
    tape.seq += 1  # a gap
    pull(tape, range(1010, 1003, -1), 35.0)
    assert vacuums(tape) == []


def test_on_l2_feeds_unexplained_decreases_are_cancels_and_traded_ones_are_not():
    """BookDelta removals without trades are a vacuum; the same removals after prints of that size are not."""
    tape = Tape()
    base(tape, l2=True)
    pull(tape, range(1010, 1003, -1), 35.0, l2=True)
    (found,) = vacuums(tape)
    assert (found.side, found.cancelled, found.executed, found.depth_after) == (SELL, 600, 0, 400)

    tape = Tape()
    base(tape, l2=True)
    tape.at(35.0)
    for p in range(1001, 1008):
        tape.trade(p, 100, BUY)
    for p in range(1001, 1008):
        tape.delta(SELL, p, 0)
    tape.at(36.0).clock()
    assert vacuums(tape) == []


def test_bins_widen_the_zone_and_gap_max_counts_bins():
    """With bins of 2 ticks, the zone is 20 ticks; pulling its far 12 ticks leaves 4 occupied bins, a gap of 6."""
    tape = Tape()
    for p in range(1001, 1021):
        tape.add(SELL, p, 50)
    tape.add(BUY, 990, 100)
    for t in (10.0, 20.0, 30.0):
        tape.at(t).clock()
    pull(tape, range(1020, 1008, -1), 35.0)
    (found,) = vacuums(tape, lambda c: VacuumDetector(dataclasses.replace(c, bin_ticks=2)))
    assert (found.price_lo, found.price_hi, found.depth_before, found.depth_after, found.gap_max) == (
        1001, 1020, 1000, 400, 6)


def test_the_void_accumulator_gives_every_sample_its_values():
    """Stable names; D_N, median, void and gap_max per side; finite values on an empty book."""
    tape = Tape()
    base(tape)
    tape.at(35.0)
    for p in (1003, 1004, 1005):
        tape.delete(tape.order_at(SELL, p))
    tape.at(36.0).clock()
    _, samples = run_market(INST, tape.events, VoidAccumulator)
    flow = samples[-1].flow
    assert set(flow) == {f"{k}_{s}" for k in ("void_depth", "void_median", "void", "gap_max") for s in ("bid", "ask")}
    assert (flow["void_depth_ask"], flow["void_median_ask"], flow["gap_max_ask"]) == (700.0, 1000.0, 3.0)
    assert flow["void_ask"] == pytest.approx(0.3) and flow["void_bid"] == 0.0 and flow["gap_max_bid"] == 0.0
    market, _ = run_market(INST, [], VoidAccumulator)
    empty = market.accumulators[0].values(0)
    assert empty["gap_max_bid"] == 10.0 and all(math.isfinite(v) for v in empty.values())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10_000), max_size=60), st.integers(1, 12))
def test_the_running_median_equals_the_median_of_the_last_values(values, window):
    """The median of the last ``window`` values, as ``statistics.median`` gives it."""
    median = RunningMedian(window)
    for i, x in enumerate(values):
        median.add(x)
        assert median.value() == statistics.median(values[max(0, i + 1 - window): i + 1])
    if not values:
        assert median.value() is None


@settings(max_examples=100, deadline=None)
@given(st.sets(st.integers(0, 40), min_size=1, max_size=25), st.sampled_from([BUY, SELL]), st.integers(1, 12),
       st.integers(1, 4))
def test_gap_max_equals_a_scan_of_every_bin(offsets, side, bins, width):
    """Longest run of empty bins from the best, as a bin-by-bin scan finds it."""
    book = OrderBook(1)
    best = 1000
    for i, k in enumerate(sorted(offsets)):
        book.set_level(side, best - side * (k - min(offsets)), 10 + i)
    occupied = {(k - min(offsets)) // width for k in offsets}
    longest = run = 0
    for b in range(bins):
        run = 0 if b in occupied else run + 1
        longest = max(longest, run)
    assert gap_max(book, side, bins, width) == longest


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_planted_vacuum_is_found(seed):
    """The vacuum preset: an ask vacuum (side SELL) inside the planted zone during the planted episode."""
    inst, market, labels, _ = simulate("vacuum", seed).single()
    (label,) = [lb for lb in labels if lb.kind == TruthKind.VACUUM and not lb.params.get("natural")]
    found = vacuums_of(inst, market)
    assert [d for d in found if matches(d, label, 1)]


def test_spoof_pull_gives_a_vacuum_for_its_pull():
    """spoof_pull, seeds 1-5: the market makers' pull at 110 s is a vacuum on the ask (the detector's job: SPEC
    makes spoof_pull the negative of the S4 *strategy*, which also needs buying); a vacuum when the spoof wall is
    pulled (seed 5: the wall was most of the depth left) covers the wall's price."""
    for seed in range(1, 6):
        inst, market, labels, _ = simulate("spoof_pull", seed).single()
        (pulled,) = [lb for lb in labels if lb.kind == TruthKind.VACUUM and not lb.params.get("natural")]
        (spoof,) = [lb for lb in labels if lb.kind == TruthKind.SPOOF]
        found = vacuums_of(inst, market)
        assert [d for d in found if matches(d, pulled, 1)], seed
        at_spoof = [d for d in found if d.side == SELL and abs(d.ts_recv - spoof.t_end) <= 2 * NS]
        assert all(d.price_lo <= spoof.price_lo <= d.price_hi for d in at_spoof), seed


def test_detections_do_not_depend_on_the_batch_size():
    """A preset run gives the same samples (detections and void values) in batches of 1, 41 and everything."""
    inst, market, _, _ = simulate("vacuum", 1).single()
    factories = (VacuumDetector, VoidAccumulator)
    reference = run_market(inst, market, *factories)[1]
    assert of_kind(reference, VacuumDetection)
    for size in (1, 41):
        assert run_market(inst, market, *factories, batch_size=size)[1] == reference
    for s in reference:
        assert all(math.isfinite(v) for v in s.flow.values())
        for d in s.detections:
            assert all(math.isfinite(v) for v in d.evidence().values())


class Checked(VacuumDetector):
    """The detector, checking its D_N against a fresh read of the book at every LAST."""

    def on_last(self, ts: int) -> None:
        super().on_last(ts)
        for state in (self.bid, self.ask):
            if not state.dirty:
                assert state.depth == self.book.depth_within(state.side, self.zone)


OPS = st.lists(st.tuples(st.sampled_from(["add", "add", "cancel", "delete", "execute", "modify", "ghost"]),
                         st.sampled_from([BUY, SELL]), st.integers(0, 14), st.integers(1, 60), st.integers(0, 30)),
               max_size=80)


@settings(max_examples=80, deadline=None)
@given(OPS, st.integers(1, 3))
def test_depth_and_classification_equal_a_naive_replay(ops, width):
    """At every LAST the kept D_N equals the book's; the cancelled and executed volumes equal a replay that
    classifies each event against the best just before it (modifies aside, whose decrease is reconciled)."""
    tape = Tape()
    reference = OrderBook(1)
    naive = {BUY: [0, 0], SELL: [0, 0]}  # side -> [cancelled, executed]
    orders: dict[int, list[int]] = {}  # oid -> [side, price, size]
    for op, side, offset, size, gap in ops:
        tape.at((tape.ts - T0) / 1e9 + gap / 1000)
        if op == "add" or not orders:
            price = (990 - offset) if side == BUY else (1001 + offset)
            orders[tape.add(side, price, size)] = [side, price, size]
        elif op == "ghost":  # an order the book never saw (added before the data started)
            price = (990 - offset) if side == BUY else (1001 + offset)
            tape.emit(OrderDelete, 10_000 + offset, side, price, size)
            naive[side][0] += size * in_zone(reference, side, price, width)
        else:
            oid = sorted(orders)[size % len(orders)]
            side, price, left = orders[oid]
            zone = in_zone(reference, side, price, width)
            take = min(size, left)
            if op == "cancel" and take < left:
                tape.emit(OrderCancel, oid, side, price, take, left - take)
                naive[side][0] += take * zone
            elif op in ("delete", "cancel"):
                tape.emit(OrderDelete, oid, side, price, left)
                naive[side][0] += left * zone
                take = left
            elif op == "execute":
                tape.emit(OrderExecute, oid, side, price, take)
                naive[side][1] += take * zone
            else:
                take = left - max(1, left // 2)
                tape.emit(OrderModify, oid, side, price, left - take)
            orders[oid][2] -= take
            if orders[oid][2] == 0:
                del orders[oid]
        reference.update(tape.events[-1])
    market, _ = run_market(INST, tape.events, lambda c: Checked(dataclasses.replace(c, bin_ticks=width)))
    detector = market.listeners[0]
    if not any(op == "modify" for op, *_ in ops):
        assert [detector.bid.cancelled, detector.bid.executed] == naive[BUY]
        assert [detector.ask.cancelled, detector.ask.executed] == naive[SELL]


def in_zone(book: OrderBook, side: int, price: int, width: int) -> bool:
    best = book.best_bid if side == BUY else book.best_ask
    return best is None or (best - price) * side < 10 * width
