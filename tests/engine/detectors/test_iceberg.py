"""F21 iceberg / hidden liquidity: the replenishment test on hand-built L3 and L2 sequences, its ends,
hidden runs, the exact tail sums, planted icebergs in the simulator and hidden executions on the
real AMZN day."""

from __future__ import annotations

import functools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import bdtrc, gammainc

from engine.detectors.iceberg import (
    IcebergDetection,
    IcebergDetector,
    IcebergEndDetection,
    IcebergParams,
    binomial_pvalue,
    poisson_tail,
)
from engine.detectors.scoring import flag_every_hidden_execution, hidden_episodes, hidden_score
from engine.events import (
    BUY,
    LAST,
    SELL,
    BookSnapshot,
    Detection,
    TruthKind,
)
from engine.testing import instrument, run_market
from tests.engine.detectors.planted import Tally, detect, simulate
from tests.engine.detectors.tape import MS, NS, Tape, finite

INST = instrument(1, "TEST")
BID = 1000  # the iceberg's price


def background(script: Tape, trials: int = 40, answered_every: int = 4, answer_sizes=(1, 2, 3)) -> int:
    """Ask levels above the bid emptied one by one, every ``answered_every``-th re-quoted 10 ms later
    by an order of another size: the null the detector learns. Returns the time after it."""
    t = script.ts
    for i in range(trials):
        price = 1010 + i % 5
        oid = script.at_ns(t).add(SELL, price, 1 + i % 4)
        script.at_ns(t + 100 * MS).hit(SELL, price, [(oid, 1 + i % 4)])
        if i % answered_every == 0:
            requote = script.at_ns(t + 110 * MS).add(SELL, price, answer_sizes[i % len(answer_sizes)])
            script.at_ns(t + 300 * MS).delete(requote)
        t += 400 * MS
    return t


def iceberg_cycles(script: Tape, t: int, refills: list[int], delay_ns: int = 2 * MS, peak: int = 10) -> int:
    """A bid iceberg at BID showing ``peak``, hit in full every 200 ms and shown again ``delay_ns``
    later with the sizes of ``refills``. Returns the time of the last hit."""
    oid, shown = script.at_ns(t).add(BUY, BID, peak), peak
    for size in refills:
        t += 200 * MS
        script.at_ns(t).hit(BUY, BID, [(oid, shown)])
        oid, shown = script.at_ns(t + delay_ns).add(BUY, BID, size), size
    t += 200 * MS
    script.at_ns(t).hit(BUY, BID, [(oid, shown)])
    return t


def detections(events, factory=IcebergDetector, **kw) -> list[Detection]:
    _, samples = run_market(INST, events, factory, **kw)
    return [d for s in samples for d in s.detections]


def icebergs(found) -> list[IcebergDetection]:
    return [d for d in found if isinstance(d, IcebergDetection)]


def ends(found) -> list[IcebergEndDetection]:
    return [d for d in found if isinstance(d, IcebergEndDetection)]


def displayed(found) -> list:
    """The detections of the displayed (synthetic, statistical) chains: the scorer scores the hidden chain
    apart (``HiddenLiquidity``), against the simulator's hidden executions, not against planted icebergs."""
    return [d for d in found if d.chain_type != "hidden"]


# ---- the tail sums ----------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2000), st.data())
def test_binomial_tail_equals_scipy(trials, data):
    """P[Binomial(n, p) >= k] by exact summation equals scipy's bdtrc within 1e-9 relative."""
    k = data.draw(st.integers(1, trials))
    p0 = data.draw(st.one_of(st.floats(1e-9, 1 - 1e-9), st.sampled_from([1e-6, 0.01, 0.5, 0.99])))
    ours, reference = binomial_pvalue(k, trials, p0), float(bdtrc(k - 1, trials, p0))
    assert ours == pytest.approx(reference, rel=1e-9, abs=1e-300)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 80), st.one_of(st.floats(1e-8, 200.0), st.sampled_from([1e-5, 0.5, 3.0])))
def test_poisson_tail_equals_scipy(k, mu):
    """P[Poisson(mu) >= k] by exact summation equals scipy's regularised gamma within 1e-9 relative."""
    assert poisson_tail(k, mu) == pytest.approx(float(gammainc(k, mu)), rel=1e-9, abs=1e-300)


def test_tails_at_their_edges():
    """No successes is certain, more successes than trials impossible, a zero chance gives zero."""
    assert binomial_pvalue(0, 5, 0.3) == 1.0 and binomial_pvalue(6, 5, 0.3) == 0.0
    assert binomial_pvalue(2, 5, 0.0) == 0.0 and poisson_tail(0, 2.0) == 1.0 and poisson_tail(3, 0.0) == 0.0


# ---- L3: the exact chain ------------------------------------------------------------------------------------
def test_l3_synthetic_iceberg_fires_at_the_third_link_and_updates_at_each_further_one():
    """Five refills of 10 lots within 2 ms of each full execution: the first detection comes with the
    third link, synthetic, peak 10; the fourth and fifth links are updates 1 and 2."""
    script = Tape()
    t = background(script)
    iceberg_cycles(script, t, [10, 10, 10, 10, 10])
    found = icebergs(detections(script.events))
    assert [d.update for d in found] == [0, 1, 2]
    first = found[0]
    assert first.chain_type == "synthetic" and first.side == BUY and first.price_lo == first.price_hi == BID
    assert first.refills == 3 and first.depletions == 3 and first.peak == 10
    assert first.pvalue < 0.01 and first.score == pytest.approx(-math.log10(first.pvalue))
    assert first.t_start == t + 200 * MS and first.ts_recv == t + 600 * MS + 2 * MS
    assert first.executed == 30 and first.hidden_volume == 0 and 0 < first.p0 < 0.05
    assert found[-1].refills == 5 and found[-1].executed == 50


def test_an_iceberg_used_up_ends_as_exhausted():
    """After the last peak is executed and nothing comes back within 50 ms, the episode ends exhausted."""
    script = Tape()
    t = iceberg_cycles(script, background(script), [10, 10, 10, 10])
    script.at_ns(t + 80 * MS).add(SELL, 1020, 5)  # any later event decides
    found = detections(script.events)
    (end,) = ends(found)
    assert end.reason == "exhausted" and end.ts_recv == t + 80 * MS and end.executed == 50
    assert end.refills == 4 and end.peak == 10 and end.chain_type == "synthetic"
    assert found.index(end) > found.index(icebergs(found)[-1])


def test_deleting_the_displayed_peak_ends_a_detected_iceberg_as_cancelled():
    """The iceberg's current peak order is deleted: the episode ends, cancelled."""
    script = Tape()
    t = iceberg_cycles(script, background(script), [10, 10, 10])
    peak = script.at_ns(t + 2 * MS).add(BUY, BID, 10)
    script.at_ns(t + 500 * MS).delete(peak)
    found = detections(script.events)
    assert len(icebergs(found)) == 2 and [e.reason for e in ends(found)] == ["cancelled"]


def test_the_opposite_best_reaching_the_price_ends_it_as_traded_through():
    """An ask quoted at the iceberg's price while its level is empty ends the episode."""
    script = Tape()
    t = iceberg_cycles(script, background(script), [10, 10, 10])
    script.at_ns(t + 1 * MS).add(SELL, BID, 4)
    found = detections(script.events)
    assert [e.reason for e in ends(found)] == ["traded_through"] and ends(found)[0].ts_recv == t + 1 * MS


def test_refills_of_scattered_sizes_are_not_an_iceberg():
    """Something comes back after every execution, but never near the size before it: no detection."""
    script = Tape()
    iceberg_cycles(script, background(script), [3, 25, 1, 17, 6])
    assert icebergs(detections(script.events)) == []


def test_refills_later_than_delta_do_not_count():
    """The same refills, 80 ms after each execution (delta is 50 ms): no detection."""
    script = Tape()
    iceberg_cycles(script, background(script), [10, 10, 10, 10, 10], delay_ns=80 * MS)
    assert detections(script.events) == []


def test_where_every_emptied_level_is_requoted_alike_a_regular_refill_is_not_significant():
    """When every emptied level in the market is re-quoted with 10 lots within 10 ms, the iceberg's
    refills are what chance gives: no detection."""
    script = Tape()
    t = background(script, answered_every=1, answer_sizes=(10,))
    iceberg_cycles(script, t, [10, 10, 10, 10, 10])
    assert icebergs(detections(script.events)) == []


def test_a_stale_book_gives_no_detection():
    """A sequence gap before the iceberg marks the book STALE: nothing is emitted."""
    script = Tape()
    t = background(script)
    script.gap()
    iceberg_cycles(script, t, [10, 10, 10, 10, 10])
    assert detections(script.events) == []


def test_one_lot_refills_are_not_tested_by_default():
    """A one-lot iceberg (one-lot orders are the commonest size) is not reported unless min_peak is 1."""
    script = Tape()
    iceberg_cycles(script, background(script), [1, 1, 1, 1, 1], peak=1)
    assert icebergs(detections(script.events)) == []
    factory = functools.partial(IcebergDetector, params=IcebergParams(min_peak=1))
    found = icebergs(detections(script.events, factory))
    assert found and found[0].peak == 1 and found[0].refills == 3


def test_a_large_min_refills_waits_for_more_links():
    """With min_refills = 5 the first detection comes with the fifth link."""
    script = Tape()
    iceberg_cycles(script, background(script), [10, 10, 10, 10, 10])
    factory = functools.partial(IcebergDetector, params=IcebergParams(min_refills=5))
    found = icebergs(detections(script.events, factory))
    assert [d.refills for d in found] == [5]


# ---- L2: the depletion/refill test ----------------------------------------------------------------------------
def test_l2_iceberg_is_found_by_the_depletion_refill_test():
    """On an L2 feed the same iceberg is found by the statistical test: refills are level increases."""
    script = Tape(l2=True)
    script.events.append(BookSnapshot(1, script.ts, script.ts, 0, LAST, ((990, 50, 1),), ((1030, 50, 1),), 10, True))
    script.seq = 1
    t = background(script)
    iceberg_cycles(script, t, [10, 10, 10, 10, 10])
    found = icebergs(detections(script.events))
    assert found and all(d.chain_type == "statistical" for d in found)
    first = found[0]
    assert first.refills == 3 and first.depletions == 3 and first.peak == 10 and first.update == 0
    assert first.ts_recv == t + 600 * MS + 2 * MS and first.pvalue < 0.01


# ---- hidden runs --------------------------------------------------------------------------------------------
def test_hidden_executions_at_one_price_form_a_run():
    """Hidden executions at one bid price 1 s apart: detections from the second on; a gap of more than
    5 s starts a new run, and another price is another run."""
    script = Tape()
    script.at_ns(10 * NS).add(BUY, 990, 100)
    script.at_ns(10 * NS + 1).add(SELL, 1010, 100)
    for i in range(3):
        script.at_ns((11 + i) * NS).hidden(BUY, 1002, 100)
    script.at_ns(19 * NS).hidden(BUY, 1002, 100)  # 6 s later: a new run of one
    script.at_ns(19 * NS + 5).hidden(BUY, 1003, 100)
    found = icebergs(detections(script.events))
    assert [(d.ts_recv, d.hidden_execs, d.update) for d in found] == [(12 * NS, 2, 0), (13 * NS, 3, 1)]
    assert all(d.chain_type == "hidden" and d.side == BUY and d.price_lo == 1002 for d in found)
    assert found[0].t_start == 11 * NS and found[1].hidden_volume == 300 and found[1].executed == 300
    assert 0 < found[1].pvalue < found[0].pvalue < 1 and found[1].peak == 0


def test_a_crossed_book_gives_no_detection():
    """A bid above the ask marks the book CROSSED: a run of hidden executions emits nothing."""
    script = Tape()
    script.at_ns(10 * NS).add(BUY, 1012, 100)
    script.at_ns(10 * NS + 1).add(SELL, 1010, 100)
    for i in range(4):
        script.at_ns((11 + i) * NS).hidden(BUY, 1002, 100)
    assert detections(script.events) == []


def test_hidden_executions_at_an_iceberg_count_as_hidden_volume():
    """A hidden execution at a detected iceberg's price adds to its executed and hidden volume."""
    script = Tape()
    t = iceberg_cycles(script, background(script), [10, 10, 10])
    script.at_ns(t + 1 * MS).hidden(BUY, BID, 7)
    peak = script.at_ns(t + 2 * MS).add(BUY, BID, 10)
    script.at_ns(t + 200 * MS).hit(BUY, BID, [(peak, 10)])
    script.at_ns(t + 202 * MS).add(BUY, BID, 10)
    last = icebergs(detections(script.events))[-1]
    assert last.chain_type == "synthetic" and last.executed == 57 and last.hidden_volume == 7


# ---- properties ---------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(0, 8), st.integers(1, 30),
                          st.integers(0, 3), st.integers(1, 60)), max_size=200))
def test_a_book_that_never_trades_gives_no_detection(steps):
    """Adds, partial cancels and deletes in any order, with no trade: no detection."""
    script = Tape()
    live: list[tuple[int, int, int, int]] = []
    t = 10 * NS
    for side, offset, size, action, gap_ms in steps:
        t += gap_ms * MS
        script.at_ns(t)
        if action == 0 or not live:
            price = (990 - offset) if side == BUY else (1010 + offset)
            live.append((script.add(side, price, size), side, price, size))
        elif action == 1:
            oid, s, price, left = live.pop(0)
            script.cancel(oid, 1) if left > 1 else script.delete(oid)
            if left > 1:
                live.append((oid, s, price, left - 1))
        else:
            oid, s, price, _ = live.pop()
            script.delete(oid)
    assert detections(script.events) == []


# ---- planted truth ------------------------------------------------------------------------------------------
SEEDS = range(1, 7)


def test_planted_icebergs_are_found():
    """iceberg_defense and iceberg_exhausted, six seeds each, the displayed chains: measured recall 0.92
    and precision 1.0 (ICEBERG labels, 61 detections, after the simulator's realism change); the bar is
    recall >= 0.66 and precision >= 0.8."""
    tally = Tally()
    for name in ("iceberg_defense", "iceberg_exhausted"):
        for seed in SEEDS:
            run = simulate(name, seed)
            found = detect(run, IcebergDetector)
            assert finite(*found)
            tally.add_run(run, displayed(icebergs(found)), (TruthKind.ICEBERG,))
    assert tally.recall >= 0.66 and tally.precision >= 0.8, tally.rows


def test_exhaustion_is_visible_in_iceberg_exhausted():
    """In iceberg_exhausted, every seed whose iceberg was detected also reports its end at that price
    (exhausted, or traded through once the level broke), after the detection and before the price
    falls for good."""
    for seed in SEEDS:
        run = simulate("iceberg_exhausted", seed)
        (label,) = [lb for lb in run.labels if lb.kind == TruthKind.ICEBERG]
        found = detect(run, IcebergDetector)
        hits = [d for d in displayed(icebergs(found)) if d.price_lo == label.price_lo and d.side == label.side]
        if not hits:
            continue
        closing = [e for e in displayed(ends(found)) if e.price_lo == label.price_lo and e.ts_recv > hits[0].ts_recv]
        assert closing and closing[0].reason in ("exhausted", "traded_through", "cancelled"), seed
        assert closing[0].ts_recv <= label.t_end + 5 * NS, seed


def test_background_sessions_give_few_false_icebergs():
    """Three 10-minute background sessions (TSLA and AAPL): measured 0, 1 and 1 detections of the
    displayed chains (the hidden chain gives 694-790 a session on the simulator's hidden prints,
    scored apart); the bar is at most 8 per session."""
    for seed in (1, 2, 3):
        run = simulate("background", seed)
        assert len(displayed(icebergs(detect(run, IcebergDetector)))) <= 8, seed


# ---- real hidden executions (LOBSTER AMZN 2012-06-21) ------------------------------------------------------
def pr(score: dict) -> tuple[float, float]:
    return score["precision"], score["recall"]


def test_hidden_liquidity_on_amzn_beats_flagging_every_hidden_execution(amzn):
    """On the AMZN day (5 and 1 levels; the same messages) the detector's hidden-liquidity detections
    hit issue 14's episodes with precision 0.50 (0.46 counting its displayed-iceberg detections too)
    at recall 1.0, where flagging every price with a hidden execution in the last 5 s has 0.19 at
    recall 1.0; the bar: precision at least twice the baseline's, recall >= 0.95."""
    inst, events = amzn
    _, samples = run_market(inst, events, IcebergDetector)
    found = [d for s in samples for d in s.detections]
    assert finite(*found)
    episodes = hidden_episodes(events)
    assert sum(len(v) for v in episodes.values()) == 195
    ours = icebergs(found)
    hidden = [(d.seq, d.side, d.price_lo) for d in ours if d.chain_type == "hidden"]
    every = [(d.seq, d.side, d.price_lo) for d in ours]
    baseline = flag_every_hidden_execution(events)
    base_p, base_r = pr(hidden_score(episodes, baseline))
    (p, r), (p_all, r_all) = pr(hidden_score(episodes, hidden)), pr(hidden_score(episodes, every))
    assert base_r == 1.0 and base_p == pytest.approx(0.19, abs=0.01)
    assert r >= 0.95 and p >= 2 * base_p and p == pytest.approx(0.50, abs=0.02)
    assert r_all >= 0.95 and p_all >= 2 * base_p
