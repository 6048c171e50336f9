"""The market stage's optional L2-versus-L3 check (``book.check_l3``)."""

from __future__ import annotations

from engine.book import OrderBook
from engine.config import load_config
from engine.events import BUY, SELL, OrderAdd, TruthLabel
from engine.pipeline import RunOptions, run_reference
from engine.pipeline.lanes import MarketStage
from engine.pipeline.wiring import build_lane
from engine.testing import EventBuilder, instrument
from feeds.simulator import MarketSimulator


def integrity(records: list, counter: str) -> list[tuple]:
    return [row for table, row in records if table == "integrity" and row[2] == counter]


def corrupted(check_l3: bool) -> tuple[MarketStage, EventBuilder]:
    """A market stage whose bid level at 100 claims 3 lots more than its orders hold."""
    e = EventBuilder()
    stage = MarketStage(instrument(0, "X"), OrderBook(0), 1_000_000_000, 5, check_l3=check_l3)
    stage.apply([e(OrderAdd, 1, BUY, 100, 5), e(OrderAdd, 2, SELL, 102, 5)])
    stage.book.bids[100].total += 3  # a deliberate inconsistency: L2 no longer equals the sum of L3
    return stage, e


def test_check_l3_counts_every_last_boundary_where_l2_differs_from_the_orders():
    """With check_l3 on, each LAST boundary after the corruption counts once and the count is persisted."""
    stage, e = corrupted(check_l3=True)
    assert stage.l3_check.mismatches == 0
    stage.apply([e(OrderAdd, 3, SELL, 103, 1, last=False), e(OrderAdd, 4, SELL, 104, 1),
                 e(OrderAdd, 5, BUY, 99, 2), e(OrderAdd, 6, BUY, 98, 2, last=False)])
    assert stage.l3_check.mismatches == 2  # two LAST boundaries; the unfinished event is not checked
    stage.flush()
    assert integrity(stage.take_records(), "l3_mismatches") == [(0, "book", "l3_mismatches", 2)]


def test_check_l3_off_does_not_check_or_persist_the_counter():
    """With check_l3 off (the default), the same corruption is not looked for and no counter row is written."""
    stage, e = corrupted(check_l3=False)
    stage.apply([e(OrderAdd, 3, SELL, 103, 1), e(OrderAdd, 4, BUY, 99, 2)])
    assert stage.l3_check is None
    stage.flush()
    records = stage.take_records()
    assert integrity(records, "l3_mismatches") == []
    assert integrity(records, "gaps") == [(0, "book", "gaps", 0)]


def test_wiring_passes_book_check_l3_from_the_config():
    """build_lane gives the market stage the config's book.check_l3 (false unless set)."""
    on = build_lane(instrument(0, "X"), load_config(overrides=["book.check_l3=true"]), lambda d: [])
    off = build_lane(instrument(0, "X"), load_config(), lambda d: [])
    assert dict(on.stages)["market"].l3_check is not None
    assert dict(off.stages)["market"].l3_check is None


def test_simulated_run_with_check_l3_has_no_mismatch():
    """A simulated run checked at every LAST boundary persists l3_mismatches = 0 for each instrument."""
    config = load_config(overrides=["book.check_l3=true"])
    feed = MarketSimulator(["AAPL", "TSLA"], config, seed=5, duration_s=20.0)
    _, records = run_reference(feed, config, RunOptions())
    assert sorted(integrity(records, "l3_mismatches")) == [(0, "book", "l3_mismatches", 0),
                                                           (1, "book", "l3_mismatches", 0)]


def test_every_value_the_market_stage_samples_is_a_float():
    """The accumulators' and detectors' values (``Sample.flow``) are floats, as declared, never ints: the
    feature rows persist them as JSON, so a compiled market stage giving float rows persists the same text."""
    config = load_config()
    sim = MarketSimulator(["AAPL", "TSLA"], config, seed=2, duration_s=300)
    markets = {d.instrument_id: dict(build_lane(d, config, lambda d: []).stages)["market"] for d in sim.instruments()}
    types: dict[str, set[str]] = {}
    for ev in sim.events():
        if type(ev) is TruthLabel:
            continue
        for sample in markets[ev.instrument_id].apply([ev]):
            for name, value in sample.flow.items():
                types.setdefault(name, set()).add(type(value).__name__)
    assert len(types) > 100
    assert {name: kinds for name, kinds in types.items() if kinds != {"float"}} == {}
