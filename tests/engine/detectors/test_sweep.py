"""F22 sweep detector: bursts of same-sign aggressive fills, completion timing, the level and volume
rules, the auto threshold, and the planted sweeps of the simulator presets."""

from __future__ import annotations

import ast
import inspect
import math
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.detectors import sweep, trapped, vacuum
from engine.detectors.sweep import BurstVolumes, SweepDetection, SweepDetector, SweepParams
from engine.events import BUY, SELL, Trade, TruthKind
from engine.testing import run_market
from tests.engine.detectors.planted import simulate
from tests.engine.detectors.tape import INST, MS, T0, Tape, book_around, of_kind


def sweeps(tape: Tape, **params) -> list[SweepDetection]:
    _, samples = run_market(INST, tape.events, partial(SweepDetector, params=SweepParams(**params)))
    return of_kind(samples, SweepDetection)


def test_one_market_order_through_three_levels_is_one_sweep_with_its_evidence():
    """A 25-lot buy through asks of 10 at 1000, 1001, 1002 is one buy sweep: 3 levels, VWAP 1000.8."""
    tape = Tape()
    book_around(tape, size=10)
    tape.at(1.0).market(BUY, 25)
    tape.at(1.1).clock()
    (found,) = sweeps(tape)
    assert (found.side, found.price_lo, found.price_hi, found.start_price, found.end_price) == (BUY, 1000, 1002,
                                                                                                 1000, 1002)
    assert (found.levels, found.volume, found.orders, found.hidden) == (3, 25, 1, 0)
    assert found.vwap == pytest.approx(1000.8) and found.duration_ms == 0.0 and found.strength == 1.5
    assert found.t_start == T0 + 1 * 10**9 and found.ts_recv == T0 + 1_100 * MS and found.threshold == 0.0


def test_a_sell_sweep_names_the_aggressor_side():
    """A market sell through two bid levels is a sweep with side SELL, from the best bid down."""
    tape = Tape()
    book_around(tape, size=10)
    tape.at(1.0).market(SELL, 15)
    tape.at(2.0).clock()
    (found,) = sweeps(tape)
    assert (found.side, found.start_price, found.end_price, found.levels) == (SELL, 999, 998, 2)


def test_the_sweep_is_emitted_by_the_first_event_that_cannot_belong_to_it():
    """Nothing at the last fill; an add 30 ms later is still inside the window; a sell print closes it."""
    tape = Tape()
    book_around(tape, size=10)
    tape.at(1.0).market(BUY, 15)
    tape.at(1.03).add(BUY, 990, 5)
    tape.at(1.04).market(SELL, 1)
    _, samples = run_market(INST, tape.events, SweepDetector)
    (sample,) = [s for s in samples if s.detections]
    assert sample.ts_recv == T0 + 1_040 * MS and sample.seq == tape.seq - 1  # the sell print's event
    assert sample.detections[0].levels == 2


def test_a_quiet_market_closes_the_sweep_at_the_next_bar_close():
    """With no later event, the bar close at the next second completes the sweep."""
    tape = Tape()
    book_around(tape, size=10)
    tape.at(1.5).market(BUY, 15)
    tape.at(3.2).add(BUY, 990, 5)
    _, samples = run_market(INST, tape.events, SweepDetector)
    (sample,) = [s for s in samples if s.detections]
    assert sample.ts_recv == T0 + 2 * 10**9 and sample.frames == 0


def test_orders_with_match_ids_are_grouped_by_order_not_by_time():
    """Two one-level buys 20 ms apart with different match ids are two one-level orders, no sweep (SPEC F22:
    match_id when available); with ``group_by_match`` off the window makes them one sweep of two orders."""
    tape = Tape()
    book_around(tape, size=10)
    tape.at(1.0).market(BUY, 10)
    tape.at(1.02).market(BUY, 10)
    tape.at(2.0).clock()
    assert sweeps(tape) == []
    (found,) = sweeps(tape, group_by_match=False)
    assert (found.levels, found.volume, found.orders, found.duration_ms) == (2, 20, 2, 20.0)


def test_same_sign_orders_without_ids_within_the_window_form_one_sweep():
    """Without match ids, two one-level buys 20 ms apart are one sweep of two orders."""
    tape = Tape()
    book_around(tape, size=10)
    tape.at(1.0).market(BUY, 10, match=False)
    tape.at(1.02).market(BUY, 10, match=False)
    tape.at(2.0).clock()
    (found,) = sweeps(tape)
    assert (found.levels, found.volume, found.orders, found.duration_ms) == (2, 20, 2, 20.0)


def test_the_window_is_counted_from_the_first_fill():
    """Buys at 0, 40 and 80 ms: the third is outside the first fill's 50 ms and starts a new burst."""
    tape = Tape()
    book_around(tape, size=10)
    for t in (1.0, 1.04, 1.08):
        tape.at(t).market(BUY, 10, match=False)
    tape.at(2.0).clock()
    (found,) = sweeps(tape)
    assert (found.start_price, found.end_price, found.orders) == (1000, 1001, 2)


def test_fills_of_one_order_belong_together_and_orders_without_ids_group_by_time():
    """Without match ids, two orders at the same time count as two orders of one burst."""
    tape = Tape()
    book_around(tape, size=10)
    tape.at(1.0).market(BUY, 5, match=False)
    tape.market(BUY, 10, match=False)
    tape.at(1.001).market(BUY, 10, match=False)
    tape.at(2.0).clock()
    (found,) = sweeps(tape)
    assert (found.levels, found.volume, found.orders) == (3, 25, 2)


def test_one_level_bursts_and_slow_flow_are_not_sweeps():
    """A large order at one price, and one-level buys 60 ms apart walking up, are no sweeps."""
    tape = Tape()
    book_around(tape, size=10)
    tape.add(-BUY, 1000, 500)
    tape.at(1.0).market(BUY, 300)
    tape.at(2.0).market(SELL, 10)
    for i in range(4):
        tape.at(3.0 + 0.06 * i).market(SELL, 10)
    tape.at(5.0).clock()
    assert sweeps(tape) == []


def test_prints_without_an_aggressor_are_ignored_and_hidden_fills_count():
    """A NO_SIDE print does not break a burst; a hidden execution adds to volume and hidden."""
    tape = Tape()
    book_around(tape, size=10)
    tape.at(1.0).market(BUY, 10)
    tape.trade(1000, 7, 0)
    tape.at(1.01).trade(1001, 4, BUY, hidden=True)
    tape.at(2.0).clock()
    (found,) = sweeps(tape)
    assert (found.levels, found.volume, found.hidden, found.orders) == (2, 14, 4, 2)


def burst_history(tape: Tape, sizes: list[int], bars: int) -> None:
    """One-level sell bursts of ``sizes`` (one every second), spread over ``bars`` TF2 bars."""
    tape.ladder(BUY, [900], 100_000)
    for i in range(bars * 10):
        tape.at(i + 0.5).market(SELL, sizes[i % len(sizes)])


def test_the_volume_clause_uses_the_auto_threshold_of_past_bursts():
    """Bursts of 1 and 3 lots give T_auto = 2 + 2*1 = 4: with k_lv = 3, a two-level burst of 5 lots exceeds it,
    one of 4 does not."""
    found = {}
    for volume in (5, 4):
        tape = Tape()
        burst_history(tape, [1, 3], bars=3)
        tape.ladder(-BUY, [1000], 1)
        tape.ladder(-BUY, [1001], 100)
        tape.at(30.5).market(BUY, volume)
        tape.at(31.0).clock()
        found[volume] = sweeps(tape, min_levels=3)
    assert found[4] == []
    (hit,) = found[5]
    assert (hit.levels, hit.volume) == (2, 5)
    assert hit.threshold == pytest.approx(4.0) and hit.strength == pytest.approx(5 / 4)


def test_volume_above_the_threshold_and_levels_are_both_needed_with_require_volume():
    """With require_volume, a 2-level burst of 3 lots (below T_auto = 4) is not a sweep; of 9 lots it is."""
    results = {}
    for volume in (3, 9):
        tape = Tape()
        burst_history(tape, [1, 3], bars=3)
        tape.ladder(-BUY, [1000], 1)
        tape.ladder(-BUY, [1001], 100)
        tape.at(30.5).market(BUY, volume)
        tape.at(31.0).clock()
        results[volume] = sweeps(tape, require_volume=True)
    assert results[3] == []
    (found,) = results[9]
    assert found.threshold == pytest.approx(4.0) and found.strength == pytest.approx(1.0)  # min(2/2, 9/4)


def test_there_is_no_threshold_before_min_bursts():
    """Before 20 bursts have completed in closed TF2 bars, the threshold is 0 in the evidence."""
    tape = Tape()
    burst_history(tape, [2], bars=1)
    tape.ladder(-BUY, [1000, 1001], 10)
    tape.at(10.5).market(BUY, 15)
    tape.at(11.0).clock()
    (found,) = sweeps(tape)
    assert found.threshold == 0.0 and found.strength == 1.0


@settings(max_examples=60, deadline=None)
@given(bars=st.lists(st.lists(st.integers(1, 500), max_size=6), min_size=1, max_size=12),
       window=st.integers(1, 6), k=st.sampled_from([0.0, 1.0, 2.0, 3.5]))
def test_the_burst_baseline_equals_a_recompute_over_the_last_bars(bars, window, k):
    """mean + k*std of the bursts of the last ``window`` closed bars, as numpy computes it."""
    volumes = BurstVolumes(window, min_bursts=2)
    for bar in bars:
        for v in bar:
            volumes.add(v)
        volumes.close_bar()
    recent = [v for bar in bars[-window:] for v in bar]
    got = volumes.threshold(k)
    if len(recent) < 2:
        assert got is None
    else:
        assert got == pytest.approx(float(np.mean(recent) + k * np.std(recent)), rel=1e-9, abs=1e-9)


TRADES = st.lists(st.tuples(st.sampled_from([BUY, SELL, BUY, SELL, 0]), st.integers(995, 1005), st.integers(1, 30),
                            st.sampled_from([0, 0, 1, 5, 20, 45, 49, 50, 51, 80, 400, 1500]),
                            st.sampled_from(["same", "new", "none"])), max_size=60)


@settings(max_examples=120, deadline=None)
@given(TRADES)
def test_sweeps_equal_an_offline_grouping_of_the_whole_tape(trades):
    """The streaming detector (closing bursts on later trades, LASTs and bar closes) reports exactly the bursts
    with two or more prices that grouping the finished tape offline finds (fills with a match id by order,
    fills without one by the 50 ms window)."""
    tape = Tape()
    fills: list[tuple[int, int, int, int, int]] = []  # ts, side, price, size, match_id
    match = fresh = 0
    for side, price, size, gap_ms, ids in trades:
        tape.at((tape.ts - T0) / 1e9 + gap_ms / 1000)
        if not (ids == "same" and match and gap_ms == 0):  # one order's fills come in one atomic event
            fresh += 1
            match = fresh if ids != "none" else 0
        tape.trade(price, size, side, match_id=match)
        if side:
            fills.append((tape.ts, side, price, size, match))
    tape.at((tape.ts - T0) / 1e9 + 1).clock()
    groups: list[list[tuple[int, int, int, int, int]]] = []
    for fill in fills:
        head = groups[-1][0] if groups else None
        joins = head is not None and fill[1] == head[1] and (
            fill[4] == groups[-1][-1][4] if fill[4] != 0 else fill[0] - head[0] <= 50 * MS)
        if joins:
            groups[-1].append(fill)
        else:
            groups.append([fill])
    expected = sorted((g[0][0], g[0][1], len({f[2] for f in g}), sum(f[3] for f in g)) for g in groups
                      if len({f[2] for f in g}) >= 2)
    found = sorted((d.t_start, d.side, d.levels, d.volume) for d in sweeps(tape))
    assert found == expected


def test_no_sweep_on_a_crossed_book():
    """A sweep completing while the book is crossed is not reported."""
    tape = Tape()
    book_around(tape, size=10)
    tape.at(1.0).market(BUY, 15)
    tape.at(1.01).add(BUY, 1005, 1)  # bid above the ask: CROSSED until a snapshot
    tape.at(2.0).clock()
    assert sweeps(tape) == []


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(990, 1010), st.integers(1, 50),
                          st.integers(0, 200)), max_size=60))
def test_a_book_that_never_trades_has_no_sweep(adds):
    """Adds alone, however placed, never make a sweep."""
    tape = Tape()
    for side, price, size, gap_ms in adds:
        tape.at((tape.ts - T0) / 1e9 + gap_ms / 1000)
        tape.add(side, price, size)
    tape.at((tape.ts - T0) / 1e9 + 1).clock()
    assert sweeps(tape) == []


def planted_match(found: list[SweepDetection], label, slack_ns: int = 100 * MS) -> list[SweepDetection]:
    """Detections of the label's side that overlap its prices and start within ``slack`` of it."""
    return [d for d in found if d.side == label.side and d.price_lo <= label.price_hi and d.price_hi >= label.price_lo
            and label.t_start - slack_ns <= d.t_start <= label.t_end + slack_ns]


@pytest.mark.parametrize("preset", ["stop_run_reversal", "breakout_sweep"])
def test_the_planted_sweep_is_found_and_ranks_first_by_strength(preset):
    """Seeds 1-5: the planted buy sweep is detected (recall 1) with at least its levels and volume, and it is
    the strongest sweep of its run in at least 4 of 5 seeds. Measured: first in seeds 1, 2, 4, 5; in seed 3
    the planted order is 47 lots through 6 prices (strength 3.53) and one of the simulator's own 50-lot
    orders walks 4 prices (3.71): a real, unlabelled sweep (precision against labels is reported)."""
    first = 0
    for seed in range(1, 6):
        inst, market, labels, _ = simulate(preset, seed).single()
        found = of_kind(run_market(inst, market, SweepDetector)[1], SweepDetection)
        (label,) = [lb for lb in labels if lb.kind == TruthKind.SWEEP and not lb.params.get("natural")]
        hit = planted_match(found, label)[0]  # the stop orders it sets off may follow as a second sweep
        assert hit.levels >= label.params["levels"] and hit.volume >= label.params["volume"]
        assert hit.strength >= 2.0 and hit.orders == 1
        first += max(d.strength for d in found) == hit.strength
    assert first >= 4


def test_detector_modules_read_no_truth():
    """The flow detectors import nothing from the simulator and never name a truth label."""
    for module in (sweep, trapped, vacuum):
        source = inspect.getsource(module)
        imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
        assert not any(name and name.startswith(("feeds", "strategies", "ml")) for name in imported)
        assert "TruthLabel" not in source and "TruthKind" not in source


def test_evidence_is_finite():
    """Every numeric evidence field of every sweep of a preset run is finite."""
    inst, market, _, _ = simulate("breakout_sweep", 2).single()
    for d in of_kind(run_market(inst, market, SweepDetector)[1], SweepDetection):
        assert all(math.isfinite(v) for v in d.evidence().values()) and math.isfinite(d.strength)


def test_the_detector_reads_trades_only():
    """It subscribes to trades alone, so it works unchanged on L2 feeds."""
    market, _ = run_market(INST, [], SweepDetector)
    assert set(market.listeners[0].handlers()) == {Trade}
