"""RiskManager and its pre-trade checks: one decision row per signal, first rejection wins, order intents."""

from __future__ import annotations

from collections import deque

import orjson
import pytest

from engine.book import CROSSED, HALTED, STALE, BookView
from engine.events import BUY, SELL, OrderType
from engine.features.vector import FeatureVector
from engine.records import TABLES
from engine.risk import (
    MaxOrderSize,
    OrderIntent,
    OrderRate,
    PositionLimit,
    RiskManager,
    RiskState,
    UsableBook,
)
from ml.scoring import ScoredSignal
from strategies.base import Signal

NS = 1_000_000_000


def book(state: int = 0, iid: int = 0) -> BookView:
    return BookView(iid, 0, 0, 1, state, (100,), (10,), (101,), (10,))


def scored(seq: int = 1, ts: int = NS, side: int = BUY, iid: int = 0, view: BookView | None = None,
           entry_type: int = OrderType.IOC, features: FeatureVector | None = None,
           targets: tuple[int, ...] = (110,)) -> ScoredSignal:
    signal = Signal(
        signal_id=f"{iid}:{seq}:qi", instrument_id=iid, ts_recv=ts, seq=seq, strategy="qi", side=side,
        entry_type=entry_type, entry_price=101 if side == BUY else 100, stop=95, targets=targets,
        time_stop_ns=30 * NS, score=0.8, confluence=0.5, features=features,
        view=book(iid=iid) if view is None else view,
    )
    return ScoredSignal(signal, 0.4, "untrained")


def decisions(manager: RiskManager) -> list[tuple[str, str | None]]:
    columns = TABLES["signals"]
    rows = [row for table, row in manager.take_records() if table == "signals"]
    return [(row[columns.index("decision")], row[columns.index("reason")]) for row in rows]


@pytest.mark.parametrize(
    ("state", "reason"),
    [(0, None), (STALE, "book stale"), (CROSSED, "book crossed"), (HALTED, "market halted"),
     (STALE | CROSSED, "book stale")],
)
def test_usable_book(state, reason):
    """A signal on a STALE, CROSSED or HALTED book is rejected with the reason named."""
    assert UsableBook().check(scored(view=book(state)), 1, RiskState()) == reason


def test_usable_book_needs_a_view():
    """A signal without a book view is rejected."""
    s = scored()
    signal = Signal(**{f: getattr(s.signal, f) for f in s.signal.__struct_fields__ if f != "view"})
    assert UsableBook().check(ScoredSignal(signal, 0.4, "untrained"), 1, RiskState()) == "no book view"


def test_max_order_size():
    """Sizes above the limit are rejected, the limit itself is accepted."""
    check = MaxOrderSize(100)
    assert check.check(scored(), 100, RiskState()) is None
    assert check.check(scored(), 101, RiskState()) == "size 101 > max order size 100"


def test_position_limit_uses_the_position_after_the_order():
    """The limit applies to |position + side * size|, in both directions."""
    check, state = PositionLimit(150), RiskState()
    state.position[0] = 100
    assert check.check(scored(side=BUY), 50, state) is None
    assert check.check(scored(side=BUY), 51, state) == "position 151 beyond limit 150"
    assert check.check(scored(side=SELL), 250, state) is None
    assert check.check(scored(side=SELL), 251, state) == "position -151 beyond limit 150"
    assert check.check(scored(side=BUY, iid=1), 150, state) is None  # other instrument starts flat


def test_order_rate_counts_the_last_second_per_instrument():
    """At most N accepted orders per instrument in any (t - 1 s, t] window."""
    check, state = OrderRate(2), RiskState()
    state.recent[0] = deque([NS, NS + 10])
    assert check.check(scored(ts=NS + 20), 1, state) == "more than 2 orders/s"
    assert check.check(scored(ts=2 * NS, iid=1), 1, state) is None
    assert check.check(scored(ts=2 * NS), 1, state) is None  # the order at exactly t - 1 s has left
    assert list(state.recent[0]) == [NS + 10]


def manager(order_size: int = 100, max_position: int = 250, rate: int = 20) -> RiskManager:
    checks = [UsableBook(), MaxOrderSize(500), PositionLimit(max_position), OrderRate(rate)]
    return RiskManager(checks, order_size=order_size, decision_latency_ns=50_000)


def test_accepted_signal_becomes_an_order_intent():
    """An accepted signal gives an OrderRequest stamped after the decision latency, with its view."""
    rm = manager()
    s = scored(seq=4, ts=5 * NS)
    [intent] = rm.apply([s])
    assert isinstance(intent, OrderIntent) and intent.view is s.signal.view
    order = intent.order
    assert (order.instrument_id, order.client_id, order.side, order.order_type, order.price, order.size) == (
        0, "o-0:4:qi", BUY, OrderType.IOC, 101, 100)
    assert (order.tif, order.ts_local, order.strategy, order.signal_id) == ("IOC", 5 * NS + 50_000, "qi", "0:4:qi")
    assert intent.sort_key() == (5 * NS + 50_000, 0, "o-0:4:qi")
    assert rm.flush() == []


def test_limit_entries_rest_for_the_day():
    """A LIMIT entry is sent with tif DAY, anything else as IOC."""
    [intent] = manager().apply([scored(entry_type=OrderType.LIMIT)])
    assert intent.order.tif == "DAY"
    [intent] = manager().apply([scored(entry_type=OrderType.MARKET)])
    assert intent.order.tif == "IOC"


def test_every_signal_gets_one_decision_row_and_positions_accumulate():
    """Accepted orders move the intended position; the third buy breaks the limit, the sell is accepted."""
    rm = manager(order_size=100, max_position=250)
    batch = [scored(seq=1, ts=NS), scored(seq=2, ts=NS + 1), scored(seq=3, ts=NS + 2),
             scored(seq=4, ts=NS + 3, side=SELL), scored(seq=5, ts=NS + 4, view=book(STALE))]
    intents = rm.apply(batch)
    assert [i.order.client_id for i in intents] == ["o-0:1:qi", "o-0:2:qi", "o-0:4:qi"]
    assert decisions(rm) == [
        ("accepted", None), ("accepted", None), ("rejected", "position 300 beyond limit 250"),
        ("accepted", None), ("rejected", "book stale"),
    ]
    assert rm.state.position == {0: 100}
    assert (rm.accepted, rm.rejected) == (3, 2)
    assert rm.take_records() == []


def test_first_rejection_wins_and_rejections_do_not_count_towards_the_rate():
    """Checks run in order; a rejected signal neither moves the position nor uses the order rate."""
    rm = manager(order_size=600, rate=1)  # every order is too large
    rm.apply([scored(seq=1), scored(seq=2)])
    assert decisions(rm) == [("rejected", "size 600 > max order size 500")] * 2
    assert rm.state.position == {} and rm.state.recent.get(0, []) == []
    rm = manager(rate=1)
    rm.apply([scored(seq=1, ts=NS), scored(seq=2, ts=NS + 5), scored(seq=3, ts=2 * NS + 1)])
    assert decisions(rm) == [("accepted", None), ("rejected", "more than 1 orders/s"), ("accepted", None)]


def test_signal_row_columns():
    """The signals row follows TABLES['signals'] and carries the feature values as JSON."""
    vector = FeatureVector(0, 3 * NS, 9, 0, 1, {"spread": 1.0, "queue_imbalance": 0.0}, book())
    rm = manager()
    rm.apply([scored(seq=9, ts=3 * NS, features=vector, targets=())])
    [(table, row)] = rm.take_records()
    assert table == "signals" and len(row) == len(TABLES["signals"])
    named = dict(zip(TABLES["signals"], row, strict=True))
    assert {k: named[k] for k in ("signal_id", "instrument_id", "seq", "ts_recv", "strategy", "side", "entry_type",
                                  "entry_price", "stop", "target", "time_stop_ns", "score", "probability",
                                  "score_mode", "decision", "reason")} == {
        "signal_id": "0:9:qi", "instrument_id": 0, "seq": 9, "ts_recv": 3 * NS, "strategy": "qi", "side": BUY,
        "entry_type": OrderType.IOC, "entry_price": 101, "stop": 95, "target": None, "time_stop_ns": 30 * NS,
        "score": 0.8, "probability": 0.4, "score_mode": "untrained", "decision": "accepted", "reason": None,
    }
    assert orjson.loads(named["features"]) == {"spread": 1.0, "queue_imbalance": 0.0}
    rm.apply([scored(seq=10)])
    assert dict(zip(TABLES["signals"], rm.take_records()[0][1], strict=True))["features"] == "null"


# ---- SPEC 11 sizing, pre-trade bands and the guards ---------------------------------------------------
from engine.risk import (  # noqa: E402
    CorrelationCap,
    DrawdownGuard,
    PriceBand,
    Sizing,
    StopDistance,
    StopRule,
    SwingTrail,
)


def with_sigma(sigma: float, stop: int = 95, entry_view: BookView | None = None, p: float = 0.8) -> ScoredSignal:
    names = {"sigma1": sigma}
    view = entry_view or book()
    features = FeatureVector(0, NS, 1, 0, 0, names, view)
    s = scored(features=features, view=view)
    signal = s.signal.__class__(**{**{f: getattr(s.signal, f) for f in s.signal.__struct_fields__}, "stop": stop})
    return ScoredSignal(signal, p, "untrained")


def test_sizing_takes_the_smallest_cap_and_scales_by_confidence():
    """n = min(n_stop, n_vol, n_liq, n_max) * c(p): here n_stop = 0.0025*1e5/(6*0.01) = 4166,
    n_vol = 1000/(2*sqrt(100)*0.01) = 5000, n_liq = 0.2*10 = 2; c(0.65) = (0.65-0.5)/(0.8-0.5) = 0.5 -> 1 lot."""
    sizing = Sizing(1e5, {0: 0.01}, 0.0025, 1000.0, 100.0, 0.2, 500, 0.5, 0.8)
    size, parts = sizing.size(with_sigma(2.0, p=0.65))
    assert parts == {"n_stop": 4166, "n_vol": 5000, "n_liq": 2, "n_max": 500, "confidence": pytest.approx(0.5)}
    assert size == 1
    sizing.liquidity_share = 1.0
    assert sizing.size(with_sigma(2.0, p=0.9))[0] == 10  # confidence clipped at 1, n_liq = 10


def test_confidence_floor_is_a_quarter():
    """Below break-even the size is a quarter of the cap, not zero."""
    sizing = Sizing(1e5, {0: 0.01}, 0.0025, 1e9, 100.0, 1.0, 8, 0.5, 0.8)
    assert sizing.size(with_sigma(2.0, p=0.1))[0] == 2


def test_price_band_refuses_an_entry_far_from_the_mid():
    """Entry 101 vs mid 100.5 with sigma1 0.1 and k 4 (band max(0.4, half spread 0.5)) passes; mid 90 fails."""
    assert PriceBand(4.0).check(with_sigma(0.1), 1, RiskState()) is None
    far = BookView(0, 0, 0, 1, 0, (89,), (10,), (91,), (10,))
    assert PriceBand(4.0).check(with_sigma(0.1, entry_view=far), 1, RiskState()).startswith("entry 101 outside mid 90")


def test_stop_distance_refuses_too_wide_and_too_tight_stops():
    """L = 6 ticks: refused when > 3 sigma1 (sigma1 = 1), accepted at sigma1 = 3; L = 1 < spread + 1 = 2 refused."""
    assert StopDistance(3.0).check(with_sigma(1.0), 1, RiskState()).startswith("stop 6 ticks away, wider")
    assert StopDistance(3.0).check(with_sigma(3.0), 1, RiskState()) is None
    assert StopDistance(3.0).check(with_sigma(3.0, stop=100), 1, RiskState()).startswith("stop 1 ticks away, tighter")


def test_stops_only_tighten_breakeven_at_one_r_then_trail_the_swing():
    """Long from 100, stop 96 (R = 4): below +1R unchanged; at +1R to breakeven 101; a swing low at 103 trails to 102;
    a later lower swing never loosens it."""
    rule = StopRule(cost_ticks=1, swing_buffer=1)
    assert rule.update(BUY, 100.0, 96, 96, 103.0, 0) == 96
    assert rule.update(BUY, 100.0, 96, 96, 104.0, 0) == 101
    assert rule.update(BUY, 100.0, 96, 101, 106.0, 103) == 102
    assert rule.update(BUY, 100.0, 96, 102, 106.0, 99) == 102
    assert rule.update(SELL, 100.0, 104, 104, 96.0, 98) == 99  # short: breakeven 99, swing high 98 + 1 = 99


def test_swing_trail_finds_a_three_bar_fractal_low():
    """Bars with lows 100, 98, 99: the middle bar is a swing low at 98 once the third bar closes."""
    trail = SwingTrail(bar_ns=NS)
    for k, mid in enumerate([100.0, 98.0, 99.0, 99.5]):
        trail.on_mid(k * NS + 1, mid)
    assert trail.protective(BUY) == 98


def guard(**kw) -> DrawdownGuard:
    args = {"equity0": 100_000.0, "soft": 0.015, "hard": 0.03, "daily_loss": 2_500.0, "max_losses": 5,
            "strategy_dd": 0.02, "p_be": 0.5} | kw
    return DrawdownGuard(**args)


def test_soft_drawdown_halves_sizes_and_raises_the_probability_bar():
    """At 1.5% drawdown: size x0.5, and a signal with p < p_be + 0.1 is refused."""
    g = guard()
    g.on_equity(101_000.0)
    g.on_equity(101_000.0 * (1 - 0.016))
    assert g.gate("s", 0.7) == (0.5, None)
    factor, reason = g.gate("s", 0.55)
    assert factor == 0.0 and reason.startswith("drawdown 1.60%")


def test_hard_drawdown_latches_the_kill_switch_until_reset():
    """3% drawdown latches; recovering equity does not unlatch; only reset() does."""
    g = guard(daily_loss=1e9)
    assert g.on_equity(96_900.0) == "kill switch: drawdown 3.10% >= 3.00%"
    g.on_equity(120_000.0)
    assert g.gate("s", 0.99)[1] == "kill switch: drawdown 3.10% >= 3.00%"
    g.reset()
    assert g.gate("s", 0.99) == (1.0, None)


def test_daily_loss_limit_latches_the_kill_switch():
    """A loss of the daily limit from the session start latches even below the drawdown threshold."""
    g = guard(daily_loss=1_000.0)
    assert g.on_equity(98_999.0) == "kill switch: daily loss 1,001.00 >= 1,000.00"


def test_consecutive_losses_latch_and_a_win_resets_the_count():
    """Four losses, a win, then five losses: the switch latches at the fifth in a row."""
    g = guard(strategy_dd=1.0)
    for pnl in (-1, -1, -1, -1, 2, -1, -1, -1, -1):
        assert g.on_trade_closed("s", pnl) == []
    assert g.on_trade_closed("s", -1) == ["kill switch: 5 consecutive losing trades"]


def test_strategy_drawdown_disables_that_strategy_only():
    """A strategy losing 2% of equity from its own high is disabled; another keeps trading."""
    g = guard(max_losses=100)
    g.on_trade_closed("a", 500.0)
    assert g.on_trade_closed("a", -2_500.0) == ["disabled a: strategy drawdown 2,500.00 >= 2.00% of equity"]
    assert g.gate("a", 0.9)[1].startswith("strategy disabled")
    assert g.gate("b", 0.9) == (1.0, None)


def correlated(portfolio_cap: float = 1e9, single: float = 1e9) -> CorrelationCap:
    cap = CorrelationCap([0, 1], NS, 3600.0, 0.0, portfolio_cap, single, 0.7, 1.5)
    prices = [100.0, 101.0, 99.5, 102.0, 100.0, 103.0]
    for k, p in enumerate(prices):
        cap.on_mark(k * NS, 0, p)
        cap.on_mark(k * NS, 1, 2 * p)  # perfectly correlated
    return cap


def test_correlated_cluster_exposure_is_capped():
    """Two instruments with rho = 1: long 10 of each exceeds 1.5 x the single cap of 2,500 in one direction."""
    cap = correlated(single=2_500.0)
    assert cap.check({0: 10}, 1, 5) is None  # 1,030 + 1,030
    reason = cap.check({0: 20}, 1, 10)
    assert reason is not None and reason.startswith("correlated cluster exposure")
    assert cap.check({0: 20}, 1, -10) is None  # opposite directions net out


def test_portfolio_dollar_vol_cap():
    """sqrt(w' S w) above the cap refuses the order."""
    cap = correlated(portfolio_cap=1.0)
    assert cap.check({}, 0, 10).startswith("portfolio dollar vol")


def test_liquidity_cap_is_at_least_one_lot():
    """A median best queue of 2 lots gives floor(0.2 * 2) = 0, raised to 1: thin queues cap the size, never ban it."""
    sizing = Sizing(1e5, {0: 0.01}, 0.0025, 1e9, 100.0, 0.2, 500, 0.5, 0.8)
    thin = BookView(0, 0, 0, 1, 0, (100,), (2,), (101,), (2,))
    size, parts = sizing.size(with_sigma(2.0, entry_view=thin, p=0.9))
    assert (size, parts["n_liq"]) == (1, 1)


def test_confidence_scaling_never_refuses_a_one_lot_cap():
    """A one-lot liquidity cap at confidence c(0.65) = 0.5: floor(1 * 0.5) = 0 would refuse the trade that the
    cap allows; the size stays one lot. A cap of 0 (a stop too wide for the risk budget) still refuses."""
    sizing = Sizing(1e5, {0: 0.01}, 0.0025, 1e9, 100.0, 0.2, 500, 0.5, 0.8)
    thin = BookView(0, 0, 0, 1, 0, (100,), (2,), (101,), (2,))
    size, parts = sizing.size(with_sigma(2.0, entry_view=thin, p=0.65))
    assert (size, parts["n_liq"], parts["confidence"]) == (1, 1, pytest.approx(0.5))
    broke = Sizing(1.0, {0: 0.01}, 0.0025, 1e9, 100.0, 0.2, 500, 0.5, 0.8)  # n_stop = floor(0.0025 / 0.06) = 0
    size, parts = broke.size(with_sigma(2.0, entry_view=thin, p=0.9))
    assert (size, parts["n_stop"]) == (0, 0)
