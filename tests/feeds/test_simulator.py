"""Tests of the market simulator: stream validity, replay, determinism, regimes, Hawkes, news, agents."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter, defaultdict

import msgspec
import numpy as np
import pytest

from engine.book import OrderBook
from engine.config import Config, InstrumentSpec
from engine.config.simulator import SimulatorConfig
from engine.errors import ConfigError
from engine.events import (
    LAST,
    SIM,
    BookDelta,
    InstrumentDef,
    MarketState,
    OrderAdd,
    Regime,
    Status,
    Trade,
    TruthKind,
    TruthLabel,
)
from feeds.base import Feed
from feeds.simulator import MarketSimulator, MetaorderRecord
from feeds.simulator.hawkes import Hawkes
from feeds.simulator.hooks import Agent, Scenario, Venue
from feeds.simulator.regimes import JUMP_CHAIN, REGIME_TABLE, RegimeChain, draw_dwell, expected_t_drift
from feeds.simulator.rng import stream
from feeds.simulator.scenarios import load_preset

SYMBOLS = ["AAPL", "TSLA"]  # one small-tick, one large-tick instrument


def make_config(**simulator) -> Config:
    return msgspec.convert({"simulator": simulator}, Config)


def run(symbols=SYMBOLS, seed=3, duration=30.0, config=None, scenario=None):
    sim = MarketSimulator(symbols, config or Config(), seed=seed, duration_s=duration, scenario=scenario)
    return sim, list(sim.events())


@pytest.fixture(scope="module")
def session():
    """One 40-second two-instrument session shared by the stream tests."""
    return run(duration=40.0)


def market(events):
    return [e for e in events if not isinstance(e, TruthLabel)]


# ---- protocol and configuration ----------------------------------------------------------------------
def test_simulator_is_a_feed_with_instruments_in_symbol_order():
    """The simulator satisfies the Feed protocol and numbers its instruments 0..n-1 in symbol order."""
    sim = MarketSimulator(["AAPL", "TSLA", "NVDA"], Config(), seed=1, duration_s=1.0)
    assert isinstance(sim, Feed)
    defs = sim.instruments()
    assert [(d.instrument_id, d.symbol, d.profile) for d in defs] == [
        (0, "AAPL", "small_tick"), (1, "TSLA", "large_tick"), (2, "NVDA", "small_tick")]
    assert defs[1].tick_size == "0.25"


def test_simulator_config_rejects_unknown_fields_and_accepts_partial_profiles():
    """Unknown simulator keys are errors; a partial profile table overrides only its own fields."""
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"latency_usec": 1}, SimulatorConfig)
    cfg = msgspec.convert({"large_tick": {"q_sat": 99}}, SimulatorConfig)
    assert cfg.large_tick.q_sat == 99 and cfg.large_tick.sigma0 == 1.0 and cfg.small_tick.sigma0 == 2.0


def test_unknown_profile_is_a_config_error_naming_it():
    """An instrument whose profile is neither large_tick nor small_tick is rejected by name."""
    config = msgspec.structs.replace(Config(), instruments={"X": InstrumentSpec(profile="mid_tick")})
    with pytest.raises(ConfigError, match="mid_tick"):
        MarketSimulator(["X"], config, seed=1, duration_s=1.0)


# ---- stream validity ----------------------------------------------------------------------------------
def test_stream_is_ordered_by_receive_time_then_instrument(session):
    """Events come in (ts_recv, instrument_id) order and receive times follow event times."""
    _, events = session
    keys = [(e.ts_recv, e.instrument_id) for e in events]
    assert keys == sorted(keys)
    assert all(e.ts_recv >= e.ts_event for e in events)


def test_sequence_numbers_are_consecutive_per_instrument_and_channel(session):
    """Market events and truth labels each number 0, 1, 2, ... per instrument."""
    _, events = session
    seqs: dict[tuple[int, bool], list[int]] = defaultdict(list)
    for e in events:
        seqs[(e.instrument_id, isinstance(e, TruthLabel))].append(e.seq)
    for seq in seqs.values():
        assert seq == list(range(len(seq)))


def test_every_event_is_flagged_sim_and_atomic_groups_end_with_last(session):
    """Every record has SIM; records of one atomic event share both times and the last has LAST."""
    _, events = session
    assert all(e.flags & SIM for e in events)
    per_instrument: dict[int, list] = defaultdict(list)
    for e in market(events):
        per_instrument[e.instrument_id].append(e)
    for evs in per_instrument.values():
        assert evs[-1].flags & LAST
        group: list = []
        for e in evs:
            group.append(e)
            if e.flags & LAST:
                assert len({(g.ts_event, g.ts_recv) for g in group}) == 1
                group = []
            # ts_event never goes backwards within an instrument
        ts = [e.ts_event for e in evs]
        assert ts == sorted(ts)


def test_session_starts_with_definition_status_open_and_regime_label(session):
    """Each instrument opens with InstrumentDef (seq 0), Status OPEN (seq 1) and a REGIME label."""
    sim, events = session
    for iid in range(len(SYMBOLS)):
        evs = [e for e in market(events) if e.instrument_id == iid]
        assert isinstance(evs[0], InstrumentDef) and evs[0].seq == 0
        assert isinstance(evs[1], Status) and evs[1].state == MarketState.OPEN
        labels = [e for e in events if isinstance(e, TruthLabel) and e.instrument_id == iid]
        assert labels[0].kind == TruthKind.REGIME and labels[0].t_end == 0
        assert labels[0].params["regime_name"] == Regime(labels[0].params["regime"]).name


def test_trades_carry_aggressor_and_match_ids_grouping_one_order(session):
    """Fills of one market order share a match_id, a sign and a time; trade ids are unique."""
    _, events = session
    trades = [e for e in events if isinstance(e, Trade)]
    assert trades
    assert len({(t.instrument_id, t.trade_id) for t in trades}) == len(trades)
    groups: dict[tuple[int, int], set] = defaultdict(set)
    for t in trades:
        groups[(t.instrument_id, t.match_id)].add((t.aggressor, t.ts_event))
    assert all(len(v) == 1 for v in groups.values())
    assert {a for v in groups.values() for a, _ in v} == {1, -1}


def test_replay_into_fresh_books_reproduces_the_simulator_books(session):
    """Replaying the emitted stream rebuilds every book exactly, with every integrity counter at zero."""
    sim, events = session
    books = {d.instrument_id: OrderBook(d.instrument_id) for d in sim.instruments()}
    for e in market(events):
        books[e.instrument_id].update(e)
    for iid, book in books.items():
        own = sim.lanes[iid].book
        assert book.check_invariants() == []
        assert msgspec.structs.asdict(book.counters) == msgspec.structs.asdict(book.counters.__class__())
        assert book.state == 0
        for side in (1, -1):
            assert book.levels(side) == own.levels(side)
            for price, _ in book.levels(side):
                assert book.queue(side, price) == own.queue(side, price)
        assert book.bid_prices[-1] < book.ask_prices[0]


def test_same_seed_gives_byte_identical_streams():
    """Two runs with the same seed and config encode to identical bytes; another seed differs."""
    a = msgspec.json.encode(run(seed=11, duration=15.0)[1])
    b = msgspec.json.encode(run(seed=11, duration=15.0)[1])
    c = msgspec.json.encode(run(seed=12, duration=15.0)[1])
    assert a == b
    assert a != c


def test_adding_a_symbol_leaves_the_other_streams_unchanged():
    """Appending an instrument does not change the events of the instruments before it."""
    _, two = run(["AAPL", "TSLA"], seed=5, duration=15.0)
    _, three = run(["AAPL", "TSLA", "NVDA"], seed=5, duration=15.0)
    for iid in (0, 1):
        assert [e for e in two if e.instrument_id == iid] == [e for e in three if e.instrument_id == iid]


def test_stats_count_the_stream_and_metaorders_are_recorded():
    """stats() counts what was emitted; metaorder records are consistent diagnostics."""
    sim, events = run(["TSLA"], seed=2, duration=120.0)
    stats = sim.stats()
    kinds = Counter(type(e).__name__ for e in events)
    assert stats["events"] == len(events)
    assert stats["events_OrderAdd"] == kinds["OrderAdd"] == stats["orders"]
    hidden = sum(1 for e in events if isinstance(e, Trade) and e.hidden)
    assert stats["events_Trade"] == kinds["Trade"] == kinds["OrderExecute"] + hidden == stats["trades"]
    assert stats["hidden_trades"] == hidden > 0
    assert stats["events_OrderDelete"] == kinds["OrderDelete"]
    assert stats["events_Clock"] == kinds["Clock"]
    assert not any(isinstance(e, BookDelta) for e in events)
    records = sim.metaorders
    assert records and all(isinstance(r, MetaorderRecord) for r in records)
    for r in records:
        assert 0 <= r.executed <= r.size and r.t_end >= r.t_start and r.side in (1, -1)
        assert r.daily_volume > 0 and 0.05 <= r.participation <= 0.2


def test_clock_events_fill_silences_of_100_ms():
    """No instrument is silent on the market channel for more than 100 ms of event time."""
    _, events = run(["AAPL"], seed=4, duration=20.0)
    ts = [e.ts_event for e in market(events)]
    assert max(np.diff(ts)) <= 100_000_000


# ---- profiles -------------------------------------------------------------------------------------------
def spread_samples(events, iid):
    book = OrderBook(iid)
    spreads = []
    next_t = None
    for e in market(events):
        if e.instrument_id != iid:
            continue
        book.update(e)
        if next_t is None:
            next_t = e.ts_event + 60_000_000_000  # skip the first minute (opening transient)
        if e.flags & LAST and e.ts_event >= next_t:
            spreads.append(book.ask_prices[0] - book.bid_prices[-1])
            next_t = e.ts_event + 1_000_000_000
    return np.array(spreads)


def test_large_tick_profile_keeps_a_one_tick_spread():
    """A large-tick instrument shows a one-tick spread at least 80% of the time."""
    _, events = run(["TSLA"], seed=8, duration=600.0)
    spreads = spread_samples(events, 0)
    assert np.mean(spreads == 1) >= 0.8


def test_small_tick_profile_has_a_wide_spread():
    """A small-tick instrument (AMZN-like) has a mean spread of several ticks, in a 8-18 tick band on 10 min."""
    _, events = run(["AMZN"], seed=8, duration=600.0)
    spreads = spread_samples(events, 0)
    assert 8.0 <= spreads.mean() <= 18.0
    assert np.mean(spreads == 1) < 0.2


# ---- regime chain ----------------------------------------------------------------------------------------
def test_regime_chain_dwell_times_and_transitions_match_the_table():
    """A long pure-chain run has the table's mean dwell per regime and the jump chain's frequencies."""
    chain = RegimeChain(np.random.default_rng(1))
    dwell: dict[Regime, list[float]] = defaultdict(list)
    moves: Counter = Counter()
    for _ in range(30_000):
        start, regime = chain.t_change, chain.regime
        chain.advance(chain.t_next)
        dwell[regime].append(chain.t_change - start)
        moves[(regime, chain.regime)] += 1
    assert Regime.SHOCK not in dwell  # entered only through news
    for regime, values in dwell.items():
        assert np.mean(values) == pytest.approx(REGIME_TABLE[regime].dwell_s, rel=0.1)
    for source in (Regime.RANGE_LOW, Regime.RANGE_HIGH, Regime.TREND_UP, Regime.BREAKOUT):
        total = sum(n for (s, _), n in moves.items() if s == source)
        expected: Counter = Counter()
        for target, prob, rule in JUMP_CHAIN[source]:
            if target == Regime.TREND_UP and rule in ("trend",):
                expected[Regime.TREND_UP] += prob / 2  # breakout directions are fair coins
                expected[Regime.TREND_DOWN] += prob / 2
            else:
                expected[target] += prob
        for target, prob in expected.items():
            assert moves[(source, target)] / total == pytest.approx(prob, abs=0.03)


def test_shock_is_entered_through_news_and_left_by_its_row():
    """force_shock enters SHOCK at once; after its dwell the chain goes to RANGE_HIGH or TREND(jump dir)."""
    outcomes: Counter = Counter()
    for seed in range(400):
        chain = RegimeChain(np.random.default_rng(seed))
        chain.force_shock(10.0, -1)
        assert chain.regime == Regime.SHOCK and chain.direction == -1
        chain.advance(chain.t_next)
        outcomes[chain.regime] += 1
    assert set(outcomes) == {Regime.RANGE_HIGH, Regime.TREND_DOWN}
    assert outcomes[Regime.RANGE_HIGH] / 400 == pytest.approx(0.6, abs=0.08)


def test_trend_drift_satisfies_the_calibration_rule():
    """The trend drift gives a nominal E[t_drift(20 min)] of 4.5 (above SPEC's 3: see docs/simulator.md)."""
    assert 3.0 <= expected_t_drift(1200.0) <= 4.6
    assert REGIME_TABLE[Regime.TREND_UP].dwell_s >= 1.5 * 1200.0  # trend dwell >= 1.5 x the label window


def test_regime_dwells_have_their_floor_and_the_table_mean():
    """Each regime's dwell is at least its floor and averages the table's mean."""
    rng = np.random.default_rng(3)
    for regime, params in REGIME_TABLE.items():
        draws = np.array([draw_dwell(rng, regime) for _ in range(4000)])
        assert draws.min() >= params.min_dwell_s
        assert draws.mean() == pytest.approx(params.dwell_s, rel=0.06)


# ---- Hawkes core ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0.5, 0.75])
def test_hawkes_thinning_matches_the_stationary_rate(n):
    """Ogata thinning reproduces the stationary rate mu / (1 - n) per side and self-excitation."""
    rng = np.random.default_rng(7)
    E, U = stream(rng.standard_exponential), stream(rng.random)
    hawkes, mu, horizon = Hawkes(), 0.5, 20_000.0
    t, counts, same, last = 0.0, Counter(), 0, 0
    while True:
        t, side = hawkes.next_event(t, horizon, mu, mu, n, E, U)
        if side == 0:
            break
        hawkes.excite(t, side)
        counts[side] += 1
        same += side == last
        last = side
    expected = mu / (1 - n) * horizon
    for side in (1, -1):
        assert counts[side] == pytest.approx(expected, rel=0.08)
    assert same / (counts[1] + counts[-1]) > 0.55  # c_self > c_cross: consecutive signs agree


def test_hawkes_intensity_decays_to_the_baseline():
    """After one event the intensity decays back to mu with the two kernel time scales."""
    hawkes = Hawkes()
    hawkes.excite(0.0, 1)
    lb0, ls0 = hawkes.intensities(0.0, 1.0, 1.0, 0.5)
    assert lb0 == pytest.approx(1.0 + 0.5 * 0.8 * (6.0 + 0.08))
    assert ls0 == pytest.approx(1.0 + 0.5 * 0.2 * (6.0 + 0.08))
    lb, _ = hawkes.intensities(60.0, 1.0, 1.0, 0.5)
    assert lb == pytest.approx(1.0, abs=1e-4)


# ---- news ---------------------------------------------------------------------------------------------------
def test_news_shock_jumps_the_price_and_labels_news_vacuum_and_shock():
    """An idiosyncratic news shock moves the mid in its direction and emits NEWS, VACUUM and SHOCK labels."""
    config = make_config(news_instrument_per_hour=3600.0 / 20.0, news_market_per_hour=0.0)
    sim, events = run(["AAPL"], seed=21, duration=200.0, config=config)
    labels = [e for e in events if isinstance(e, TruthLabel)]
    news = [e for e in labels if e.kind == TruthKind.NEWS]
    assert len(news) >= 3
    for item in news:
        kinds = {e.kind for e in labels if e.ts_event == item.ts_event}
        assert kinds >= {TruthKind.NEWS, TruthKind.VACUUM, TruthKind.REGIME}
        shock = next(e for e in labels if e.kind == TruthKind.REGIME and e.ts_event == item.ts_event)
        assert shock.params["regime"] == Regime.SHOCK
        vacuum = [e for e in labels if e.kind == TruthKind.VACUUM and e.ts_event == item.ts_event
                  and not e.params.get("natural")]
        assert {v.side for v in vacuum} == {1, -1}
        assert all(2e9 <= v.t_end - v.t_start <= 10e9 for v in vacuum)
    big = max(news, key=lambda e: abs(e.params["jump_ticks"]))
    jump = big.params["jump_ticks"]
    assert abs(jump) > 30  # several times the 10 s diffusion of the SHOCK regime
    book = OrderBook(0)
    mid_before = mid_after = None
    for e in market(events):
        book.update(e)
        if not e.flags & LAST or book.mid2() is None:
            continue
        if e.ts_event < big.ts_event:
            mid_before = book.mid2() / 2
        if e.ts_event <= big.ts_event + 10_000_000_000:
            mid_after = book.mid2() / 2
    assert (mid_after - mid_before) * math.copysign(1, jump) > 0.5 * abs(jump)


# ---- agent hook ---------------------------------------------------------------------------------------------
class TinyAgent:
    """Rests a bid, arms a buy stop above the ask, buys through it, labels the episode."""

    def __init__(self) -> None:
        self.fills: list[tuple[int, int, int]] = []
        self.order = 0
        self.steps = 0
        self.trigger = 0

    def on_wake(self, venue: Venue) -> float | None:
        self.steps += 1
        book = venue.book
        if self.steps == 1:
            self.order = venue.limit(1, book.best_bid, 5, tag="tiny")
            self.trigger = book.best_ask + 1
            venue.stop(1, self.trigger, 3, tag="tiny-stop")
            venue.suppress_adds(-1, 3, 2.0)
            venue.label(TruthKind.SWEEP, 1, book.best_ask, book.best_ask + 3, venue.now_ns, 0, {"agent": "tiny"})
            return venue.now + 1.0
        depth = sum(size for _, size in book.top(-1, 3))
        venue.market(1, depth, tag="tiny-sweep")
        return None

    def on_fill(self, venue: Venue, order_id: int, price: int, size: int) -> None:
        self.fills.append((order_id, price, size))


class TinyScenario:
    def __init__(self, agent: TinyAgent) -> None:
        self.agent = agent

    def agents(self, instruments, duration_s, rng):
        return [(0, 5.0, self.agent)]


def test_agents_act_through_the_venue_and_never_leak_tags():
    """A scheduled agent's orders, stop and label appear as ordinary events; the stream stays valid."""
    agent = TinyAgent()
    scenario = TinyScenario(agent)
    assert isinstance(agent, Agent) and isinstance(scenario, Scenario)
    sim, events = run(["TSLA"], seed=6, duration=20.0, scenario=scenario)
    assert isinstance(sim.lanes[0], Venue)
    t5 = sim.cfg.session_start_ns + 5_000_000_000
    t6 = t5 + 1_000_000_000
    adds = [e for e in events if isinstance(e, OrderAdd) and e.order_id == agent.order]
    assert len(adds) == 1 and adds[0].ts_event == t5 and adds[0].size == 5
    trades = [e for e in events if isinstance(e, Trade)]
    assert any(t.ts_event == t6 and t.aggressor == 1 for t in trades)  # the agent's sweep
    fired = next(t for t in trades if t.ts_event >= t5 and t.price >= agent.trigger)
    stop = [t for t in trades if t.ts_event == fired.ts_event and t.match_id != fired.match_id]
    assert stop and {t.aggressor for t in stop} == {1} and sum(t.size for t in stop) == 3
    labels = [e for e in events if isinstance(e, TruthLabel) and e.kind == TruthKind.SWEEP
              and not e.params.get("natural")]
    assert len(labels) == 1 and labels[0].params == {"agent": "tiny"}
    assert b"tiny" not in msgspec.json.encode(market(events))
    books = OrderBook(0)
    for e in market(events):
        books.update(e)
    assert books.check_invariants() == [] and books.counters.unknown_orders == 0


def test_instrument_spec_scales_liquidity_and_volatility():
    """A more liquid instrument rests more size near the best than the same profile at unit liquidity."""
    specs = {"THIN": InstrumentSpec(profile="large_tick", liquidity=1.0),
             "THICK": InstrumentSpec(profile="large_tick", liquidity=3.0)}
    config = msgspec.structs.replace(Config(), instruments=specs)
    sim, events = run(["THIN", "THICK"], seed=9, duration=60.0, config=config)
    depth = {iid: [] for iid in (0, 1)}
    books = {iid: OrderBook(iid) for iid in (0, 1)}
    for e in market(events):
        books[e.instrument_id].update(e)
        if e.flags & LAST:
            depth[e.instrument_id].append(books[e.instrument_id].depth_within(1, 3))
    assert np.median(depth[1]) > 1.5 * np.median(depth[0])


def test_regime_labels_follow_the_shared_chain_or_sit_out_directional_runs():
    """Each REGIME label is the shared regime, or a ranging regime while the chain is directional."""
    config = make_config(regime_dwell_scale=0.02, news_market_per_hour=0.0, news_instrument_per_hour=0.0)
    sim, events = run(["AAPL", "TSLA"], seed=13, duration=300.0, config=config)
    shared = sim.regime_path
    assert shared[0] == (sim.cfg.session_start_ns, Regime.RANGE_LOW) and len(shared) > 5
    directional = {Regime.TREND_UP, Regime.TREND_DOWN, Regime.BREAKOUT}
    for iid in (0, 1):
        labels = [e for e in events if isinstance(e, TruthLabel) and e.instrument_id == iid
                  and e.kind == TruthKind.REGIME]
        assert [(e.ts_event, e.params["regime"]) for e in labels] == sim.lane_regime_path(iid)
        times = [t for t, _ in shared]
        for label in labels:
            regime = Regime(label.params["regime"])
            current = shared[max(i for i, t in enumerate(times) if t <= label.ts_event)][1]
            assert regime == current or (current in directional and regime in (Regime.RANGE_LOW, Regime.RANGE_HIGH))
            assert label.side == label.params["direction"]


def test_directional_runs_are_joined_with_probability_beta_squared():
    """Over many runs of the shared chain an instrument joins a trend with probability beta^2."""
    specs = {"B8": InstrumentSpec(profile="large_tick", beta=0.8), "B4": InstrumentSpec(profile="large_tick", beta=0.4)}
    config = msgspec.structs.replace(Config(), instruments=specs)
    sim = MarketSimulator(["B8", "B4"], config, seed=4, duration_s=1.0)
    for lane, beta in zip(sim.lanes, (0.8, 0.4), strict=True):
        joined = 0
        for k in range(4000):
            lane._follow(2.0 * k, Regime.TREND_UP, 1)
            joined += lane.regime == Regime.TREND_UP
            lane._follow(2.0 * k + 1.0, Regime.RANGE_HIGH, 0)
        assert joined / 4000 == pytest.approx(beta**2, abs=0.03)
        assert lane.regime == Regime.RANGE_HIGH


def test_market_news_jumps_have_a_factor_structure():
    """A market-wide news jump is the common jump for beta 1 and differs from beta x it otherwise."""
    specs = {name: InstrumentSpec(profile="small_tick", beta=beta) for name, beta in
             (("ONE", 1.0), ("TWO", 1.0), ("HALF", 0.5))}
    news = make_config(news_market_per_hour=3600.0 / 30.0, news_instrument_per_hour=0.0)
    config = msgspec.structs.replace(news, instruments=specs)
    _, events = run(["ONE", "TWO", "HALF"], seed=6, duration=120.0, config=config)
    jumps: dict[int, list[float]] = defaultdict(list)
    for e in events:
        if isinstance(e, TruthLabel) and e.kind == TruthKind.NEWS:
            jumps[e.instrument_id].append(e.params["jump_ticks"])
    assert len(jumps[0]) >= 2 and jumps[0] == jumps[1]
    assert all(abs(h - 0.5 * o) > 1e-6 for h, o in zip(jumps[2], jumps[0], strict=True))


def test_each_instrument_receives_the_common_factor_after_its_own_lag():
    """Lags are whole grid steps within [0, common_lag_ms]; a zero setting disables them."""
    sim = MarketSimulator(["AAPL", "NVDA", "TSLA", "SPY"], Config(), seed=2, duration_s=1.0)
    limit = sim.cfg.common_lag_ms // sim.cfg.grid_ms
    assert all(lane.common_lag is None or 0 < len(lane.common_lag) <= limit for lane in sim.lanes)
    flat = MarketSimulator(["AAPL"], make_config(common_lag_ms=0), seed=2, duration_s=1.0)
    assert flat.lanes[0].common_lag is None


def test_metaorder_records_carry_an_exogenous_term_independent_of_their_side():
    """The latent move a metaorder did not cause averages zero given its side; its end mid is read after it."""
    sim, _ = run(["TSLA"], seed=5, duration=2400.0)
    records = sim.metaorders
    assert len(records) > 60
    signed = np.array([r.side * r.exogenous for r in records])
    assert abs(signed.mean()) < 3 * signed.std() / np.sqrt(len(signed))
    assert all(r.t_end >= r.t_start for r in records)


# ---- the matching book's view ----------------------------------------------------------------------------
def view_levels(view) -> tuple:
    """The price, size and depth parts of a ``BookView`` (sequence and times are the replaying book's)."""
    return view.bid_px, view.bid_sz, view.ask_px, view.ask_sz, view.bid_depth, view.ask_depth


class ViewProbe:
    """Wakes at random times and records the matching book's view with the next market ``seq``."""

    def __init__(self, rng: np.random.Generator, mean_gap_s: float) -> None:
        self.rng, self.mean_gap_s = rng, mean_gap_s
        self.seen: list[tuple[int, tuple, list[str]]] = []

    def on_wake(self, venue: Venue) -> float | None:
        book = venue.book
        self.seen.append((venue.ex.seq, view_levels(book.view()), book.check_invariants()))
        return venue.now + 1e-3 + float(self.rng.exponential(self.mean_gap_s))

    def on_fill(self, venue: Venue, order_id: int, price: int, size: int) -> None:
        raise AssertionError("a probe has no orders")


class ProbedScenario:
    """Another scenario's agents (if any) plus one ``ViewProbe`` per instrument."""

    def __init__(self, inner=None, mean_gap_s: float = 0.5) -> None:
        self.inner, self.mean_gap_s = inner, mean_gap_s
        self.background = getattr(inner, "background", True)
        self.probes: dict[int, ViewProbe] = {}
        if hasattr(inner, "regime_chain"):
            self.regime_chain = inner.regime_chain

    def agents(self, instruments, duration_s, rng):
        out = list(self.inner.agents(instruments, duration_s, rng)) if self.inner is not None else []
        for d in instruments:
            probe = self.probes[d.instrument_id] = ViewProbe(np.random.default_rng(rng.integers(1 << 32)),
                                                            self.mean_gap_s)
            out.append((d.instrument_id, float(rng.uniform(0.0, 1.0)), probe))
        return out


def assert_views_match_a_replayed_book(sim, events, probes: dict[int, ViewProbe]) -> int:
    """At every probe's point, rebuild a fresh book from the instrument's market events so far and
    compare its first view (nothing cached) with the one the probe saw; returns the comparisons made."""
    stream: dict[int, list] = defaultdict(list)
    for e in market(events):
        stream[e.instrument_id].append(e)
    compared = 0
    for iid, probe in probes.items():
        seqs = [e.seq for e in stream[iid]]
        assert seqs == sorted(seqs)
        for at, seen, problems in probe.seen:
            assert problems == [], f"instrument {iid}, before seq {at}: {problems[:3]}"
            fresh = OrderBook(iid)
            for e in stream[iid][:bisect_left(seqs, at)]:
                fresh.update(e)
            assert seen == view_levels(fresh.view()), f"instrument {iid}, before seq {at}"
            compared += 1
    return compared


@pytest.mark.parametrize("seed", [1, 2, 9])
def test_matching_book_view_equals_a_replayed_book_at_random_points(seed):
    """At random points of a run (both profiles), the simulator's own book view equals a fresh book's."""
    scenario = ProbedScenario(mean_gap_s=0.3)
    sim, events = run(["AAPL", "TSLA"], seed=seed, duration=60.0, scenario=scenario)
    assert assert_views_match_a_replayed_book(sim, events, scenario.probes) > 2 * 60 / 0.3 * 0.8


@pytest.mark.parametrize("preset", ["iceberg_defense", "spoof_pull", "stop_run_reversal"])
def test_matching_book_view_equals_a_replayed_book_with_scenario_agents(preset):
    """With a scenario's agents trading too, the simulator's book view equals a fresh book's at random points."""
    planned = load_preset(preset)
    scenario = ProbedScenario(planned, mean_gap_s=1.0)
    duration = float(planned.spec.duration_s)
    sim, events = run(list(planned.spec.symbols), seed=4, duration=duration, scenario=scenario)
    assert any(isinstance(e, TruthLabel) and e.kind != TruthKind.REGIME for e in events)  # the episode ran
    assert assert_views_match_a_replayed_book(sim, events, scenario.probes) > duration / 1.0 * 0.8


def test_natural_sweep_labels_name_every_order_at_two_prices_and_change_no_market_event():
    """Every aggressive order (one match id) that filled at >= 2 prices has exactly one SWEEP label of its side,
    lowest and highest price and time (natural, or the planted one of a sweep agent), and no other order has one;
    the same seed gives the byte-identical stream, and turning the labels off leaves every market event and
    every planted label as it was (only the natural labels, and hence the truth seq numbers, differ)."""
    sim, events = run(seed=5, duration=120.0)
    assert msgspec.msgpack.encode(events) == msgspec.msgpack.encode(run(seed=5, duration=120.0)[1])
    orders: dict[tuple[int, int], list[Trade]] = defaultdict(list)
    for e in events:
        if isinstance(e, Trade):
            orders[e.instrument_id, e.match_id].append(e)
    walked = sorted((iid, fills[0].aggressor, min(t.price for t in fills), max(t.price for t in fills),
                     fills[0].ts_event) for (iid, _), fills in orders.items() if len({t.price for t in fills}) >= 2)
    sweeps = [e for e in events if isinstance(e, TruthLabel) and e.kind == TruthKind.SWEEP]
    natural = [lb for lb in sweeps if lb.params.get("natural")]
    assert len(natural) >= 20 and sim.stats()["natural_sweeps"] == len(natural)
    assert sorted((lb.instrument_id, lb.side, lb.price_lo, lb.price_hi, lb.t_start) for lb in sweeps) == walked
    assert all(lb.t_end == lb.t_start and lb.episode_id == 0 for lb in natural)
    off = msgspec.structs.replace(Config(), simulator=msgspec.structs.replace(Config().simulator,
                                                                              natural_sweep_labels=False))
    _, quiet = run(seed=5, duration=120.0, config=off)
    assert msgspec.msgpack.encode(market(events)) == msgspec.msgpack.encode(market(quiet))

    def planted(stream):
        return [msgspec.structs.replace(e, seq=0) for e in stream
                if isinstance(e, TruthLabel) and not e.params.get("natural")]

    assert planted(events) == planted(quiet) and [e for e in quiet if isinstance(e, TruthLabel)]
