"""Tests of the planted-episode agents: prices and sizes, latent plans, and each agent's orders and labels in a run."""

from __future__ import annotations

import math
from types import SimpleNamespace

import msgspec
import pytest

from engine.book import OrderBook
from engine.config import Config
from engine.errors import ConfigError
from engine.events import (
    BUY,
    SELL,
    OrderAdd,
    OrderDelete,
    OrderExecute,
    Outcome,
    Trade,
    TruthKind,
    TruthLabel,
)
from feeds.simulator import MarketSimulator
from feeds.simulator.agents import (
    AbsorberAgent,
    BackgroundEpisodes,
    BurstAgent,
    IcebergAgent,
    LatentAgent,
    LatentPlan,
    SpoofAgent,
    StopCluster,
    SweepAgent,
    VacuumAgent,
    parse_price,
    resolve_price,
    resolve_size,
)
from feeds.simulator.agents.base import EpisodeAgent

S = 1_000_000_000


class Planted:
    """A scenario of hand-built agents: ``(instrument_id, first_wake_s, agent)`` as given."""

    def __init__(self, *entries) -> None:
        self.entries = list(entries)
        self.background = False

    def agents(self, instruments, duration_s, rng):
        return self.entries


def run(scenario, symbols=("TSLA",), seed=3, duration=60.0):
    sim = MarketSimulator(list(symbols), Config(), seed=seed, duration_s=duration, scenario=scenario)
    events = list(sim.events())
    return sim, [e for e in events if not isinstance(e, TruthLabel)], [e for e in events if isinstance(e, TruthLabel)]


def replayed(market, iid=0) -> OrderBook:
    book = OrderBook(iid)
    for e in market:
        if e.instrument_id == iid:
            book.update(e)
    assert book.check_invariants() == [] and book.counters.unknown_orders == 0 and book.counters.crossed == 0
    return book


def planted(labels, kind):
    """The planted labels of ``kind`` (not the natural sweeps the matching labels by itself)."""
    return [lb for lb in labels if lb.kind == kind and not lb.params.get("natural")]


# ---- prices, sizes, life cycle (a fake venue) --------------------------------------------------------------
class FakeVenue:
    """Just enough of a Venue for prices, marks and latent plans."""

    def __init__(self, bid=100, ask=102, last=101, x=101.0) -> None:
        self.book = SimpleNamespace(best_bid=bid, best_ask=ask, mid2=lambda: bid + ask)
        self.instrument_id, self.now, self.last_trade_price, self.latent_price = 0, 0.0, last, x
        self.mean_order_size, self.anchor, self.woken = 5.2, 0.0, []

    @property
    def now_ns(self):
        return int(self.now * S)

    def shift_latent(self, delta, anchor=False):
        self.latent_price += delta
        self.anchor += delta if anchor else 0.0

    def wake_at(self, agent, t):
        self.woken.append((agent, t))


def test_price_expressions_resolve_against_the_book_marks_and_watch():
    """Prices are ticks or REF+-N over bid/ask/mid/last/high/low/@mark; bad ones are ConfigErrors."""
    v = FakeVenue()
    marks = {(0, "wall"): 95}
    cases = {"bid": 100, "ask+2": 104, "mid-1": 100, "last": 101, "high+1": 108, "low": 90, "@wall-3": 92, 77: 77}
    for expr, want in cases.items():
        assert resolve_price(v, expr, marks, high=107, low=90) == want
    assert parse_price("@run+12") == ("@run", 12)
    for bad in ("bid+", "top", "@Wall", "ask + 1"):
        with pytest.raises(ConfigError, match="bad price expression"):
            parse_price(bad)
    with pytest.raises(ConfigError, match="no episode named 'gone'"):
        resolve_price(v, "@gone", marks)


def test_sizes_are_lots_or_multiples_of_the_mean_market_order():
    """'2.5mo' is 2.5 mean market orders (rounded, at least one lot); ints are lots."""
    v = FakeVenue()
    assert [resolve_size(v, s) for s in (7, "2.5mo", "0.01mo", "10mo")] == [7, 13, 1, 52]


def test_episode_watches_the_high_before_it_starts_and_waits_for_its_mark():
    """An episode watches the trade high every 100 ms before its start, waits for its @marks, gives up after max_s."""
    v = FakeVenue()
    agent = StopCluster(BUY, "@top", 10, start_s=5.0)
    agent.refer("high", "@top")
    v.now = 4.0
    assert agent.on_wake(v) == pytest.approx(4.1) and agent.high == 101
    v.now, v.last_trade_price = 5.0, 104
    assert agent.on_wake(v) == pytest.approx(5.001) and agent.t0 is None  # @top not published yet
    assert agent.high == 104
    v.now = 65.0
    assert agent.on_wake(v) is None and agent.done and agent.reason == "no mark"  # gave up after max_s


def plan_path(plan, times, partner=None, x=100.0):
    """Latent price seen at ``times`` while a LatentAgent runs ``plan`` (no diffusion)."""
    v, agent, out = FakeVenue(x=x), LatentAgent(plan, partner), []
    nxt = 0.0
    for t in times:
        v.now = t
        if nxt is not None and t >= nxt - 1e-9 or (partner is not None and partner.done and agent.size is None):
            nxt = agent.on_wake(v)
        out.append(round(v.latent_price, 6))
        v.latent_price += 0.01  # noise that a pin must undo
    return out, v


def test_latent_plan_jumps_ramps_reverts_and_pins():
    """A plan moves X by `jump` over `ramp_s` at `jump_at`, glides back over `revert_s`, and pins X meanwhile."""
    times = [round(0.1 * k, 1) for k in range(0, 80)]
    path, v = plan_path(LatentPlan(jump=4.0, jump_at=1.0, ramp_s=2.0, revert_s=2.0, pin_s=6.0), times)
    at = dict(zip(times, path, strict=True))
    assert at[0.5] == 100.0 and at[2.0] == pytest.approx(102.0) and at[3.0] == pytest.approx(104.0)
    assert at[4.0] == pytest.approx(102.0) and at[5.0] == pytest.approx(100.0)  # back, noise pinned away
    assert v.anchor == pytest.approx(0.0)  # the anchor followed the move there and back
    free, _ = plan_path(LatentPlan(jump=-3.0, anchor=False), times)
    assert free[0] == 97.0 and free[-1] > 97.0  # a lasting jump without a pin: noise accumulates


def test_latent_jump_at_the_end_of_the_partner_episode():
    """A plan with jump_at='end' moves X only once its partner episode has finished."""
    partner = EpisodeAgent(BUY)
    v, agent = FakeVenue(x=50.0), LatentAgent(LatentPlan(jump=-5.0, jump_at="end"), partner)
    assert agent.on_wake(v) is None and v.latent_price == 50.0
    partner.done = True
    v.now = 3.0
    agent.on_wake(v)
    assert v.latent_price == 45.0 and v.anchor == -5.0


def test_latent_move_to_a_mark():
    """`to = "@h"` moves X to the marked price."""
    v = FakeVenue(x=130.4)
    LatentAgent(LatentPlan(to="@h"), marks={(0, "h"): 120}).on_wake(v)
    assert v.latent_price == pytest.approx(120.0)


# ---- agents in a simulated market ---------------------------------------------------------------------------
def test_iceberg_refills_with_new_ids_at_the_back_of_the_queue():
    """After each full execution of its peak the iceberg shows a new peak-size order 0.5-5 ms later, last in queue."""
    ice = IcebergAgent(BUY, "bid", total=60, peak=6, outcome=Outcome.REVERSAL, start_s=10.0, max_s=40.0)
    burst = BurstAgent(SELL, factor=6.0, duration_s=30.0)
    pinned = LatentAgent(LatentPlan(pin_s=30.0), ice)  # the latent price stays at the iceberg while it is hit
    sim, market, labels = run(Planted((0, 10.0, ice), (0, 10.0, pinned), (0, 10.0, burst)))
    book = OrderBook(0)
    ids = set(ice.by_oid)
    adds = {}
    done = {}
    queue_last = []
    left = {}
    asks = []  # (ts, best ask) after every event: a refill waits while an ask is at or through the price
    for e in market:
        book.update(e)
        asks.append((e.ts_event, book.best_ask))
        if isinstance(e, OrderAdd) and e.order_id in ids:
            adds[e.order_id] = e
            queue_last.append(book.queue(BUY, e.price)[-1][0] == e.order_id)
            left[e.order_id] = e.size
        elif isinstance(e, OrderExecute) and e.order_id in ids:
            left[e.order_id] -= e.size
            if left[e.order_id] == 0:
                done[e.order_id] = e.ts_event
    (label,) = planted(labels, TruthKind.ICEBERG)
    order = sorted(adds.values(), key=lambda a: a.order_id)
    assert all(queue_last) and {a.price for a in order} == {label.price_lo}
    assert [a.size for a in order] == [6] * len(order) and len(order) == label.params["refills"] + 1 >= 4
    prompt = 0
    for prev, nxt in zip(order, order[1:], strict=False):
        end, gap = done[prev.order_id], nxt.ts_event - done[prev.order_id]
        if 500_000 <= gap <= 5_000_000:  # refill delay U[0.5, 5] ms
            prompt += 1
            continue
        # else the price was marketable when the delay ran out (an in-spread ask at the iceberg's
        # price): the refill came at a 100 ms retry of that delay, once the ask had moved away
        assert any(ask is not None and ask <= nxt.price for ts, ask in asks if end < ts <= end + 5_000_000)
        assert (gap - 500_000) % 100_000_000 <= 4_500_000 and gap < 10_005_000_000
    assert prompt >= len(order) // 2
    executed = sum(e.size for e in market if isinstance(e, OrderExecute) and e.order_id in ids)
    assert executed == label.params["executed"] and label.params["displayed"] == 6 * len(order)
    assert label.outcome == Outcome.REVERSAL and label.t_start == sim.cfg.session_start_ns + 10 * S
    replayed(market)


def test_absorber_shows_full_size_or_peaks_per_price():
    """A plain absorber displays each level's whole size; an iceberg absorber shows one peak per level."""
    plain = AbsorberAgent(SELL, ["ask+1", "ask+2"], [40, 50], start_s=5.0, max_s=20.0)
    ice = AbsorberAgent(BUY, ["bid-1", "bid-2"], [30, 30], iceberg=True, peak=[5, 10], start_s=5.0, max_s=20.0)
    sim, market, labels = run(Planted((0, 5.0, plain), (0, 5.0, ice)), duration=30.0)
    t5 = sim.cfg.session_start_ns + 5 * S
    first = {e.order_id: e for e in market if isinstance(e, OrderAdd) and e.ts_event == t5}
    sizes = sorted((e.side, e.size) for oid, e in first.items() if oid in plain.by_oid or oid in ice.by_oid)
    assert sizes == [(SELL, 40), (SELL, 50), (BUY, 5), (BUY, 10)]
    deletes = {e.order_id for e in market if isinstance(e, OrderDelete)}
    assert {lv.oid for lv in plain.levels} <= {0} and set(plain.by_oid) & deletes  # withdrawn at max_s
    replayed(market)


def test_stop_cluster_fires_a_burst_when_a_trade_reaches_the_trigger():
    """All stops at one trigger are released as separate market orders right after the print that reaches it."""
    stops = StopCluster(BUY, "ask+1", 12, count=3, spacing=0, start_s=5.0, max_s=30.0)
    sweep = SweepAgent(BUY, levels=3, start_s=6.0)
    sim, market, labels = run(Planted((0, 5.0, stops), (0, 6.0, sweep)), duration=20.0)
    (label,) = planted(labels, TruthKind.STOP_CLUSTER)
    trades = [e for e in market if isinstance(e, Trade)]
    first = next(t for t in trades if t.ts_event >= label.t_start and t.price >= label.price_lo)
    burst = [t for t in trades if t.ts_event == first.ts_event and t.match_id > first.match_id]
    assert len({t.match_id for t in burst}) == 3 and {t.aggressor for t in burst} == {BUY}
    assert sum(t.size for t in burst) == 12 == label.params["filled"] and label.params["fired"] == 3
    assert label.t_end == first.ts_event


def test_stop_cluster_disarms_at_its_end_and_moves_a_trigger_that_is_not_beyond_the_touch():
    """A stop never reached is disarmed at max_s; a sell trigger at or above the touch moves one tick below the bid."""
    far = StopCluster(BUY, "ask+200", 5, count=2, start_s=5.0, max_s=3.0)
    inside = StopCluster(SELL, "ask", 5, count=1, start_s=5.0, max_s=3.0)
    probe = Probe(5.0)
    sim, market, labels = run(Planted((0, 5.0, probe), (0, 5.0, far), (0, 5.0, inside)), duration=20.0)
    by_trigger = {lb.price_lo: lb for lb in planted(labels, TruthKind.STOP_CLUSTER)}
    missed = by_trigger[max(by_trigger)]
    assert (missed.params["fired"], missed.params["end"], missed.params["trigger_moved"]) == (0, "timeout", 0)
    assert missed.t_end == sim.cfg.session_start_ns + 8 * S and not sim.lanes[0].stops
    moved = by_trigger[min(by_trigger)]
    assert moved.params["trigger_moved"] == 1 and moved.price_lo == probe.levels[0][0] - 1


def test_sweep_is_one_market_order_clearing_k_levels():
    """A sweep of k levels executes at exactly k prices under one match_id and empties them."""
    sweep = SweepAgent(SELL, levels=4, start_s=12.0)
    probe = Probe(12.0)
    sim, market, labels = run(Planted((0, 12.0, probe), (0, 12.0, sweep)), duration=20.0)
    (label,) = planted(labels, TruthKind.SWEEP)
    fills = [e for e in market if isinstance(e, Trade) and e.ts_event == label.t_start and e.aggressor == SELL]
    match = fills[0].match_id
    mine = [t for t in fills if t.match_id == match]
    assert sorted({t.price for t in mine}, reverse=True) == [p for p, _ in probe.levels[:4]]
    assert sum(t.size for t in mine) == sum(q for _, q in probe.levels[:4]) == label.params["volume"]
    assert (label.price_lo, label.price_hi) == (probe.levels[3][0], probe.levels[0][0])


class Probe:
    """Records the book's bid levels at one time (woken before the agents scheduled after it)."""

    def __init__(self, t: float) -> None:
        self.t, self.levels = t, []

    def on_wake(self, venue):
        self.levels = venue.book.levels(BUY)[:6]

    def on_fill(self, venue, order_id, price, size):
        pass


def test_vacuum_cancels_only_background_orders_and_suppresses_adds():
    """A vacuum deletes the side's background orders within N ticks, spares agent orders, refuses adds for T."""
    keep = AbsorberAgent(SELL, ["ask+1"], [7], start_s=4.0, max_s=30.0)
    vac = VacuumAgent(SELL, ticks=5, duration_s=2.0, start_s=5.0)
    sim, market, labels = run(Planted((0, 4.0, keep), (0, 5.0, vac)), duration=15.0)
    (label,) = planted(labels, TruthKind.VACUUM)
    t5 = sim.cfg.session_start_ns + 5 * S
    gone = [e for e in market if isinstance(e, OrderDelete) and e.ts_event == t5]
    assert len(gone) == label.params["cancelled"] > 0 and {e.side for e in gone} == {SELL}
    assert all(label.price_lo <= e.price <= label.price_hi for e in gone)
    assert keep.levels[0].oid not in {e.order_id for e in gone}
    book = OrderBook(0)
    for e in market:
        during = t5 < e.ts_event < t5 + 2 * S
        if isinstance(e, OrderAdd) and e.side == SELL and during and e.order_id not in keep.by_oid:
            assert e.price >= book.best_ask + 5  # nothing added near the best during T
        book.update(e)
    assert label.params["depth_after"] < label.params["depth_before"]


def test_spoof_is_pulled_when_the_price_comes_near():
    """A spoof order is deleted as soon as its side's best is within `within` ticks of it (or once hit)."""
    spoof = SpoofAgent(BUY, distance=2, size=40, within=1, start_s=5.0, max_s=50.0)
    sim, market, labels = run(Planted((0, 5.0, spoof)), duration=60.0, seed=5)
    (label,) = planted(labels, TruthKind.SPOOF)
    (add,) = [e for e in market if isinstance(e, OrderAdd) and e.size == 40 and e.ts_event == label.t_start]
    book = OrderBook(0)
    for e in market:
        if isinstance(e, OrderDelete) and e.order_id == add.order_id:
            assert e.ts_event == label.t_end
            assert label.params["end"] == "hit" or add.price - book.best_bid >= -1
            break
        book.update(e)
    else:
        pytest.fail("the spoof was never deleted")


def test_fills_of_one_order_from_several_market_orders_all_reach_the_agent():
    """An agent order taken by two market orders in one instant hears of both fills."""

    class Taker:
        def __init__(self, target):
            self.target = target

        def on_wake(self, venue):
            venue.market(SELL, 4)
            venue.market(SELL, 6)

        def on_fill(self, venue, order_id, price, size):
            pass

    class Maker:
        def __init__(self):
            self.fills = []

        def on_wake(self, venue):
            self.oid = venue.limit(BUY, venue.book.best_bid + 1, 10)  # alone at the new best bid

        def on_fill(self, venue, order_id, price, size):
            self.fills.append(size)

    maker = Maker()
    sim, market, labels = run(Planted((0, 5.0, maker), (0, 5.001, Taker(maker))), symbols=("AAPL",), duration=8.0)
    assert maker.fills == [4, 6]


def test_background_episodes_are_poisson_labelled_and_valid():
    """Ordinary sessions plant random labelled episodes at the configured rate; the stream stays a valid L3 stream."""
    config = msgspec.convert({"simulator": {"episodes_per_hour": 120.0}}, Config)
    sim = MarketSimulator(["TSLA", "AAPL"], config, seed=8, duration_s=600.0)
    events = list(sim.events())
    labels = [e for e in events if isinstance(e, TruthLabel) and e.params.get("scenario") == "background"]
    episodes = {(lb.instrument_id, lb.episode_id) for lb in labels}
    assert 10 <= len(episodes) <= 60  # 2 instruments x 120/h x 495 s window ~ 33
    assert {lb.kind for lb in labels} >= {TruthKind.ICEBERG, TruthKind.VACUUM, TruthKind.SPOOF, TruthKind.SWEEP}
    market = [e for e in events if not isinstance(e, TruthLabel)]
    for iid in (0, 1):
        replayed(market, iid)
    quiet = MarketSimulator(["TSLA"], msgspec.convert({"simulator": {"episodes_per_hour": 0.0}}, Config), seed=8,
                            duration_s=300.0)
    assert not [e for e in quiet.events() if isinstance(e, TruthLabel) and e.kind != TruthKind.REGIME
                and e.params.get("scenario") == "background"]


def test_background_schedule_fits_the_session():
    """Background episodes start after the warm-up and early enough to finish before the end."""
    insts = MarketSimulator(["TSLA", "AAPL"], Config(), seed=1, duration_s=10.0).instruments()
    import numpy as np

    out = BackgroundEpisodes(3600.0).agents(insts, 400.0, np.random.default_rng(3))
    starts = [t for _, t, a in out if isinstance(a, EpisodeAgent)]
    assert starts and min(starts) >= 30.0 and max(starts) <= 400.0 - 75.0
    assert BackgroundEpisodes(3600.0).agents(insts, 90.0, np.random.default_rng(3)) == []
    assert all(math.isfinite(a.deadline) for _, _, a in out)
