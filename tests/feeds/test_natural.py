"""Natural VACUUM and ABSORPTION labels (SPEC F18, F20) read from the generator's own flow: hand-built books
below and at the threshold, and the simulator's stream with and without them."""

from __future__ import annotations

import msgspec
import pytest

from engine.config import Config
from engine.events import BUY, SELL, TruthKind, TruthLabel
from feeds.simulator import MarketSimulator
from feeds.simulator.matching import Exchange
from feeds.simulator.natural import NaturalTruth
from feeds.simulator.scenarios import load_preset

T0 = 1_000_000_000_000
NS = 1_000_000_000


def ns(t: float) -> int:
    return T0 + int(t * 1e9)


def natural(ex: Exchange) -> list[TruthLabel]:
    """The exchange's VACUUM and ABSORPTION labels (its natural sweeps left out)."""
    return [ev for ev in ex.out if isinstance(ev, TruthLabel) and ev.kind in (TruthKind.VACUUM, TruthKind.ABSORPTION)]


def observe(ex: Exchange, truth: NaturalTruth, final: bool = False) -> list[TruthLabel]:
    """Feed the exchange's records to the labeller (as the simulator does at each window); its labels."""
    truth.observe(ex.out, final)
    return natural(ex)


# ---- vacuum ------------------------------------------------------------------------------------------------
def ask_book() -> tuple[Exchange, list[int]]:
    """Bids 100 (20) and 95 (20); asks 102-106, 10 lots each (D_N = 50 within 10 ticks) and 130 (far away).
    D_N is sampled at 10, 20 and 30 s (Clock events): the median is 50. Returns the ask ids near the best."""
    ex = Exchange(0, T0, lambda: 0)
    ex.seed(0.0, [(BUY, 100, 20), (BUY, 95, 20), (SELL, 130, 5)])
    asks = [ex.add(0.001 * (i + 1), SELL, 102 + i, 10) for i in range(5)]
    for t in (10.0, 20.0, 30.0):
        ex.clock(t)
    return ex, asks


@pytest.mark.parametrize("left", [21, 20])
def test_a_vacuum_needs_the_depth_halved_to_forty_percent_of_its_median_by_cancels(left):
    """Asks pulled by cancels within 0.2 s from D_N = 50 to ``left``: 21 lots left (> 0.4 x median 50) is no
    vacuum; 20 is one: one label, SELL, zone 102-111 (10 ticks from the best at the peak), from the last moment
    at the peak (35.0 s) to the fall (35.2 s), stamped once the run has been quiet for 2 s."""
    ex, asks = ask_book()
    ex.delete(35.0, asks[0])
    ex.delete(35.1, asks[1])
    ex.reduce(35.2, asks[2], 10 - (left - 20))
    ex.clock(36.0)
    truth = NaturalTruth(ex, 1)
    assert observe(ex, truth) == []  # a run is labelled once it is over
    ex.clock(37.3)
    labels = observe(ex, truth)
    if left > 20:
        assert labels == []
        return
    (label,) = labels
    assert (label.kind, label.side, label.price_lo, label.price_hi) == (TruthKind.VACUUM, SELL, 102, 111)
    assert (label.t_start, label.t_end, label.ts_event, label.episode_id) == (ns(35.0), ns(35.2), ns(37.3), 0)
    assert label.params == {"natural": 1, "depth_before": 50, "depth_after": 20, "cancelled": 30, "executed": 0,
                            "median": 50.0, "falls": 1}
    assert truth.n_vacuum == 1


def test_a_fall_eaten_by_market_orders_is_no_vacuum():
    """The same 30 lots taken by buy market orders (executions, not cancels): no label."""
    ex, _ = ask_book()
    ex.market(35.0, BUY, 20)
    ex.market(35.1, BUY, 10)
    ex.clock(40.0)
    assert observe(ex, NaturalTruth(ex, 1), final=True) == []


def test_a_cascade_of_falls_is_one_vacuum_and_the_session_end_labels_an_open_one():
    """50 -> 20 at 35.0 s, then what is left halves again (20 -> 10) 1 s later: one label with two falls; with
    no event after, the session's end labels it."""
    ex, asks = ask_book()
    for oid in asks[:3]:
        ex.delete(35.0, oid)
    ex.delete(36.0, asks[3])
    (label,) = observe(ex, NaturalTruth(ex, 1), final=True)
    assert (label.t_start, label.t_end) == (ns(35.0), ns(36.0))
    assert (label.params["depth_before"], label.params["depth_after"], label.params["falls"]) == (50, 10, 2)


def test_no_vacuum_before_the_median_has_three_samples():
    """The same pull at 25 s (two samples of D_N so far): no label."""
    ex = Exchange(0, T0, lambda: 0)
    ex.seed(0.0, [(BUY, 100, 20), (SELL, 130, 5)])
    asks = [ex.add(0.001 * (i + 1), SELL, 102 + i, 10) for i in range(5)]
    ex.clock(10.0)
    ex.clock(20.0)
    for oid in asks[:4]:
        ex.delete(25.0, oid)
    assert observe(ex, NaturalTruth(ex, 1), final=True) == []


def test_the_zone_is_ten_bins_on_a_small_tick_book():
    """With 10-tick bins the zone is 100 ticks: the ask 28 ticks from the best is inside it (D_N = 55)."""
    ex, asks = ask_book()
    truth = NaturalTruth(ex, 10)
    assert truth.zone == 100
    observe(ex, truth)
    assert truth.sides[SELL].depth == 50 + 5  # the far ask at 130 is within 100 ticks of 102


# ---- absorption ----------------------------------------------------------------------------------------------
def bid_book() -> Exchange:
    """Bids 100 (5 lots) over 98 (50) and 97 (50), asks 103 (50) and 110 (50). The per-level volume baseline:
    10 lots sold into the bid and 10 bought from the ask 4 s before each of the 10, 20, 30 s samples (six samples of 10:
    T_auto = 10), each side's level restored after."""
    ex = Exchange(0, T0, lambda: 0)
    ex.seed(0.0, [(BUY, 98, 50), (BUY, 97, 50), (SELL, 103, 50), (SELL, 110, 50)])
    for t in (6.0, 16.0, 26.0):
        ex.add(t, BUY, 100, 10)
        ex.market(t + 0.001, SELL, 10)
        ex.market(t + 0.002, BUY, 10)
        ex.add(t + 0.003, SELL, 103, 10)
        ex.clock(t + 4.0)
    ex.add(31.0, BUY, 100, 5)
    return ex


def absorb(ex: Exchange, sells: list[int], refill: int = 10) -> None:
    """Sells into the bid at 100 from 32.0 s, 0.1 s apart; the bid is replenished with ``refill`` lots after
    the first; a Clock at 35 s."""
    for i, size in enumerate(sells):
        ex.market(32.0 + 0.1 * i, SELL, size, limit=100)
        if i == 0:
            ex.add(32.05, BUY, 100, refill)
    ex.clock(35.0)


@pytest.mark.parametrize("third", [1, 2])
def test_an_absorption_takes_the_threshold_more_than_shown_and_holds_two_seconds(third):
    """4 + 4 + ``third`` lots sold into the bid at 100 (5 shown, 10 more added after the first sell): 9 < T_auto
    = 10 is nothing; 10 crosses at 32.2 s: one label, BUY, 100, from the first sell (32.0 s) to the hold's
    end (34.2 s), stamped at the first event after it (35.0 s)."""
    ex = bid_book()
    absorb(ex, [4, 4, third])
    truth = NaturalTruth(ex, 1)
    labels = observe(ex, truth)
    assert truth.threshold() == pytest.approx(10.0)
    if third == 1:
        assert labels == []
        return
    (label,) = labels
    assert (label.kind, label.side, label.price_lo, label.price_hi) == (TruthKind.ABSORPTION, BUY, 100, 100)
    assert (label.t_start, label.t_end, label.ts_event, label.episode_id) == (ns(32.0), ns(34.2), ns(35.0), 0)
    assert label.params == {"natural": 1, "volume": 10, "d0": 5, "threshold": 10.0, "hidden": 0}


def test_a_level_that_traded_only_what_it_showed_absorbed_nothing():
    """5 + 40 lots shown when the first sell comes and 10 traded (no more than shown): no label."""
    ex = bid_book()
    ex.add(31.5, BUY, 100, 40)
    absorb(ex, [4, 4, 2], refill=1)
    assert observe(ex, NaturalTruth(ex, 1)) == []


def test_a_trade_through_the_price_breaks_it():
    """The same absorption, then a sell that takes the 5 lots left at 100 and 1 lot at 98 before the hold ends
    (the bid refilled right after): no label."""
    ex = bid_book()
    for i, size in enumerate([4, 4, 2]):
        ex.market(32.0 + 0.1 * i, SELL, size, limit=100)
        if i == 0:
            ex.add(32.05, BUY, 100, 10)
    ex.market(33.0, SELL, 6)
    ex.add(33.001, BUY, 100, 20)
    ex.clock(35.0)
    assert observe(ex, NaturalTruth(ex, 1)) == []


def test_hidden_fills_count_toward_the_absorbed_volume():
    """4 visible lots, then 6 lots of hidden liquidity at the bid (inside the spread at 100 + 0): volume 10,
    hidden 6: one label."""
    ex = bid_book()
    ex.market(32.0, SELL, 4, limit=100)
    ex.add(32.05, BUY, 100, 10)
    ex.market(32.1, SELL, 6, hidden=6, improve=0)
    ex.clock(35.0)
    (label,) = observe(ex, NaturalTruth(ex, 1))
    assert (label.params["volume"], label.params["hidden"], label.params["d0"]) == (10, 6, 5)


# ---- the simulator's stream ------------------------------------------------------------------------------------
LABELS_ON = msgspec.structs.replace(Config(), simulator=msgspec.structs.replace(
    Config().simulator, natural_vacuum_labels=True, natural_absorption_labels=True))


def stream(seed: int, config: Config | None = None) -> list:
    scenario = load_preset("vacuum")
    sim = MarketSimulator(scenario.spec.symbols, config or LABELS_ON, seed=seed, duration_s=scenario.spec.duration_s,
                          scenario=scenario)
    return list(sim.events())


def market(events: list) -> list:
    return [e for e in events if not isinstance(e, TruthLabel)]


def test_natural_labels_are_deterministic_and_change_no_market_event():
    """Same seed, byte-identical stream with natural VACUUM and ABSORPTION labels in it; with both keys off the
    market events and the planted labels are the same (only the natural labels, and the truth seq numbers,
    differ); the truth channel stays numbered 0, 1, 2, ... in stream order."""
    events = stream(2)
    assert msgspec.msgpack.encode(events) == msgspec.msgpack.encode(stream(2))
    kinds = {(e.kind, bool(e.params.get("natural"))) for e in events if isinstance(e, TruthLabel)}
    assert {(TruthKind.VACUUM, True), (TruthKind.ABSORPTION, True)} <= kinds
    assert not Config().simulator.natural_vacuum_labels and not Config().simulator.natural_absorption_labels
    quiet = stream(2, Config())  # the default: off
    assert msgspec.msgpack.encode(market(events)) == msgspec.msgpack.encode(market(quiet))

    def planted(evs: list) -> list:
        return [msgspec.structs.replace(e, seq=0) for e in evs if isinstance(e, TruthLabel)
                and not (e.kind in (TruthKind.VACUUM, TruthKind.ABSORPTION) and e.params.get("natural"))]

    assert planted(events) == planted(quiet)
    for evs in (events, quiet):
        assert [e.seq for e in evs if isinstance(e, TruthLabel)] == list(range(sum(isinstance(e, TruthLabel)
                                                                                   for e in evs)))


def test_the_labeller_reads_no_detector():
    """The natural labels come from the generator's own record: feeds/simulator/natural.py imports no detector,
    no detector parameters and no feature code."""
    import ast
    from pathlib import Path

    import feeds.simulator.natural as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith(("engine.detectors", "engine.config", "engine.features"))}
