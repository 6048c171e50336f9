"""One instrument's simulation: latent price, regime effects, news, metaorders and the event loop.

A ``Lane`` runs its instrument one window of grid steps at a time (``run``, the hot loop lives in
``loop``). Per grid step it applies the shared state of that step (regime, common-factor shock,
volatility factor, market-wide news) and its own news, then advances the latent price ``X``; every
``flow_refresh_ms`` it refreshes the market-order baselines (``refresh_mu``) and the extra cancel
hazards (queue reaction, stale quotes). Between grid ticks the loop runs the order flow: limit-order
proposals, Hawkes market orders, scheduled cancels, metaorder children, agent wakes, Clock events.

Cancellations are scheduled, never polled: each order gets a lifetime at placement and its cancel
time goes into a per-grid-step bucket (``buckets``), merged into the current step's heap (``ch``)
when the step starts; extra hazards (queue reaction, stale quotes, news vacuum) add competing
exponential clocks for the orders in their zone, which is exact for exponential hazards. A cancel of
an order that is already gone is skipped.

The lane is also the agents' ``Venue`` (``venue.VenueMixin``). The model and its deliberate
deviations from SPEC section 9 are listed in ``simulator``.
"""

from __future__ import annotations

import math
from collections import deque
from decimal import Decimal
from heapq import heappush
from operator import attrgetter
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from engine.config.simulator import SimulatorConfig
from engine.events import BUY, LAST, SELL, SIM, InstrumentDef, MarketState, Regime, TruthKind, TruthLabel
from feeds.simulator.agents.background import SMALL_TICK_BIN
from feeds.simulator.auction import uncross
from feeds.simulator.flow import (
    Metaorder,
    MetaorderRecord,
    improvement_draw,
    latency_sampler,
    latent_shock_draw,
    lifetime_draw,
    mean_size,
    metaorder_size,
    placement_draw,
)
from feeds.simulator.hawkes import Hawkes
from feeds.simulator.loop import lane_loop
from feeds.simulator.matching import Exchange
from feeds.simulator.natural import NaturalTruth
from feeds.simulator.news import NewsShock, draw_shock, jump_ticks, next_arrival
from feeds.simulator.regimes import DIRECTIONAL, RANGES, REGIME_TABLE, SH, draw_dwell, drift_of
from feeds.simulator.rng import children, mixture_draw, mixture_sampler, stream, tuple_stream
from feeds.simulator.venue import VenueMixin

if TYPE_CHECKING:  # engine.config imports this package
    from engine.config import InstrumentSpec

INF = math.inf
RECV = attrgetter("ts_recv")
TYPICAL_N = 0.6  # branching ratio used for the daily-volume estimate
META_SETTLE_S = 5.0  # a metaorder's end mid is read this long after its last child
FULL_DAY = 0.99  # a session this share of session_length_s long or longer is a full trading day
NEWS_REPRICE_RATE = 20.0  # cancel hazard (1/s) of the quotes a news jump leaves through the latent price


class Lane(VenueMixin):
    """Simulation state and event loop of one instrument."""

    def __init__(self, iid: int, symbol: str, spec: InstrumentSpec, cfg: SimulatorConfig,
                 seed: np.random.SeedSequence, dt: float) -> None:
        prof = cfg.profile(spec.profile)
        g = children(seed, 17)
        self.iid, self.symbol, self.spec, self.cfg, self.prof, self.dt = iid, symbol, spec, cfg, prof, dt
        self.E = stream(g[0].standard_exponential)
        self.U = stream(g[1].random)
        self.Z = stream(latent_shock_draw(g[2], cfg.info_rate, dt, cfg.info_share))
        self.mo_size = mixture_sampler(g[5], prof.mo_sizes)
        # one tuple per limit-order proposal: side/type uniform, acceptance uniform, placement distance,
        # in-spread improvement, size, signed lifetime, exponential wait to the next proposal
        self.LO = tuple_stream(g[12].random, g[13].random, placement_draw(g[3], prof.k0, prof.levels),
                               improvement_draw(g[11], prof.in_spread_mean), mixture_draw(g[4], prof.lo_sizes),
                               lifetime_draw(g[6], cfg.fleeting_share, cfg.fleeting_mean_s, cfg.patient_mean_s),
                               g[0].standard_exponential)
        # one tuple per background market order: hidden-liquidity uniform, best-level-cap uniform, the
        # hidden order's size and its improvement inside the spread
        self.HID = tuple_stream(g[15].random, g[15].random, mixture_draw(g[15], prof.lo_sizes),
                                improvement_draw(g[15], prof.hidden_improve_mean))
        self.news_rng, self.meta_rng, self.rng, self.dir_rng = g[8], g[9], g[10], g[14]
        self.auction_rng, self.auction_size = g[16], mixture_sampler(g[16], prof.lo_sizes)
        self.ex = Exchange(iid, cfg.session_start_ns, latency_sampler(g[7], cfg.latency_us, cfg.latency_jitter_us))
        self.ex.natural_sweeps = cfg.natural_sweep_labels
        self.natural = NaturalTruth(self.ex, 1 if spec.profile == "large_tick" else SMALL_TICK_BIN,
                                    cfg.natural_vacuum_labels, cfg.natural_absorption_labels) \
            if cfg.natural_vacuum_labels or cfg.natural_absorption_labels else None
        self.book = self.ex.book
        self.tick = Decimal(spec.tick_size)
        self.sigma0 = prof.sigma0 * spec.volatility
        self.sigma1 = self.sigma0 * math.sqrt(60.0)
        self.q_sat = prof.q_sat * spec.liquidity
        self.lo_rate = prof.lo_rate * spec.liquidity
        self.in_rate = prof.in_spread_rate * spec.liquidity
        self.mo_rate = prof.mo_rate
        self.theta = cfg.theta * prof.theta_scale  # permanent impact per market order (per lot / mean best depth)
        self.beta = spec.beta
        self.mean_mo = mean_size(prof.mo_sizes)
        self.daily_volume = 2 * self.mo_rate / (1 - TYPICAL_N) * self.mean_mo * cfg.session_length_s
        self.day_steps = math.sqrt(cfg.session_length_s / dt)  # sigma_day = sigma per grid step x this
        self.vol = 1.0  # shared volatility factor of the current grid step
        self.hawkes = Hawkes(cfg.hawkes_beta1, cfg.hawkes_beta2, cfg.hawkes_w1, cfg.hawkes_c_self,
                             cfg.hawkes_c_cross)
        self.X = float(Decimal(str(spec.start_price)) / self.tick)
        self.anchor = self.X
        self.regime, self.direction = Regime.RANGE_LOW, 0  # this instrument's effective regime
        self.shared_regime, self.shared_dir = Regime.RANGE_LOW, 0  # last shared state seen
        self.joins = True  # taking part in the current directional run of the shared chain
        self.last_range = Regime.RANGE_LOW  # ranging regime kept while sitting a run out
        self.shock_t0 = -INF
        self.shock_until = -INF  # idiosyncratic SHOCK override
        self.vacuum_until = -INF
        self.imb = 0.0
        self.imb_t = 0.0
        self.dbar = self.q_sat
        self.t_last = 0.0
        self.k = 0
        self.ch: list[tuple[float, int]] = []  # cancel heap of the current step: (time, +-order id)
        self.buckets: dict[int, list[tuple[float, int]]] = {}  # later steps' cancels by step index
        self.metas: list[Metaorder] = []
        self.records: list[MetaorderRecord] = []
        self.settling: list[tuple[float, Metaorder]] = []  # finished metaorders waiting to be recorded
        self.meta_active = cfg.meta_active * prof.meta_active_scale  # mean metaorders in execution
        self.meta_per_hour = self._meta_arrival_rate()
        self.beta_c = math.sqrt(max(0.0, 1.0 - spec.beta**2))
        # the common factor reaches this instrument after its own lag (a few 100 ms grid steps)
        lag_steps = int(self.dir_rng.integers(0, cfg.common_lag_ms // cfg.grid_ms + 1)) if cfg.common_lag_ms > 0 else 0
        self.common_lag = deque([0.0] * lag_steps) if lag_steps else None
        self.t_meta_arrival = next_arrival(self.meta_rng, 0.0, self.meta_per_hour)
        self.t_news = next_arrival(self.news_rng, 0.0, cfg.news_instrument_per_hour)
        self.kappa_mo = prof.kappa_mo / self.sigma1
        self.pull_lo, self.pull_hi = cfg.mo_pull_min, cfg.mo_pull_max
        self.u_shape = False  # the intraday profile, on in full-day sessions (set by ``open``)
        self.u_next = INF  # next refresh of the intraday profile
        self.u_spread = self.u_vol = 1.0  # intraday spread and volatility multipliers
        self.spread_floor = prof.in_spread_floor  # in-spread quoting stops at this spread (ticks)
        self.refresh_steps = max(1, round(cfg.flow_refresh_ms / cfg.grid_ms))
        self.burst_continue = 1.0 - 1.0 / max(1.0, prof.meta_burst_mean)  # geometric burst length
        self.u_level = 1.0  # intraday activity level s(t), refreshed every simulated minute
        self.u_norm = self._intraday_norm()
        self.mu_b = self.mu_s = 0.0
        self.meta_mult = 1.0
        self._regime_constants()
        self.n_news = 0
        self.n_regime_changes = 0
        self.regime_path: list[tuple[int, int]] = []
        self._init_venue()
        self._run = lane_loop(self)

    # ---- start ------------------------------------------------------------------------------------
    def definition(self, duration_s: float, ts_recv: int = 0) -> InstrumentDef:
        """The instrument's ``InstrumentDef`` (seq 0 of its market channel)."""
        t0 = self.cfg.session_start_ns
        return InstrumentDef(self.iid, t0, ts_recv or t0, 0, SIM | LAST, self.symbol, "SIM", self.spec.tick_size, 1,
                             self.spec.lot_size, "1", "USD", t0, t0 + int(duration_s * 1e9), "default",
                             self.spec.profile)

    def open(self, duration_s: float, regime: Regime, direction: int) -> None:
        """Emit the InstrumentDef, Status OPEN, the seeded opening book and the first REGIME label.

        With ``auctions`` the instrument starts in ``PRE_OPEN``: the seeded book, the opening auction
        (``auction``), then ``OPEN``.
        """
        ex = self.ex
        _, recv = ex.stamp(0.0)
        ex.out.append(self.definition(duration_s, recv))
        ex.seq = 1
        cfg = self.cfg
        if cfg.auctions:
            ex.status(0.0, MarketState.PRE_OPEN, "opening auction: call phase")
            self._seed_book()
            self.auction(0.0)
            ex.status(0.0, MarketState.OPEN, "opening auction uncrossed")
        else:
            ex.status(0.0, MarketState.OPEN, "simulated session open")
            self._seed_book()
        if cfg.intraday_u_shape and duration_s >= FULL_DAY * cfg.session_length_s:
            self.u_shape = True
            self._intraday(0.0)
        if self.meta_active > 0:  # metaorders in execution at the open: no warm-up ramp of the order flow
            for _ in range(int(self.meta_rng.poisson(self.meta_active))):
                self.meta_arrival(0.0)
        self.regime = None  # type: ignore[assignment] - forces the first REGIME label
        self._follow(0.0, regime, direction)
        self._next_special(0.0)

    def _seed_book(self) -> None:
        """Place a stationary-looking opening book (one atomic event) and schedule its lifetimes."""
        prof, LO, exp = self.prof, self.LO, math.exp
        b0 = math.floor(self.X - prof.start_spread / 2)
        a0 = b0 + prof.start_spread
        per_side = max(2, int(self.lo_rate * 7.0))
        orders: list[tuple[int, int, int]] = []
        lives: list[float] = []
        depth: dict[tuple[int, int], int] = {}
        for side, best in ((BUY, b0), (SELL, a0)):
            for i in range(per_side):
                _, ua, k, _, size, lf, _ = LO()
                price = best - side * (k - 1) if i else best
                q = depth.get((side, price), 0)
                if not i or ua < exp(-q / self.q_sat):
                    orders.append((side, price, size))
                    lives.append(lf)
                    depth[(side, price)] = q + size
        oids = self.ex.seed(0.0, orders)
        for oid, lf in zip(oids, lives, strict=True):
            self._schedule(0.0, oid, lf, 1.0)

    def auction(self, t: float) -> None:
        """An auction at ``t`` (``auction``): crossing call-phase orders around the latent price, uncrossed.

        The call-phase orders that stay in the book get patient lifetimes.
        """
        cfg, rng, x = self.cfg, self.auction_rng, self.X
        w = cfg.auction_width_ticks
        call = [(side, round(x + float(rng.uniform(-w, w))), self.auction_size())
                for _ in range(cfg.auction_orders) for side in (BUY, SELL)]
        for oid in uncross(self.ex, t, x, call):
            if oid in self.book.orders:
                self._schedule(t, oid, -float(rng.standard_exponential()) * cfg.patient_mean_s, 1.0)

    def closing_auction(self, t: float) -> None:
        """The closing auction at the session end (``simulator.auctions``), then ``CLOSED``."""
        if self.cfg.auctions:
            self.ex.status(t, MarketState.QUOTE_ONLY, "closing auction: call phase")
            self.auction(t)
            self.ex.status(t, MarketState.CLOSED, "closing auction uncrossed")

    def label_natural(self, final: bool = False) -> None:
        """Natural VACUUM and ABSORPTION labels of the events emitted since the last call (``natural``;
        ``final``: the session's last events), the window's truth labels then renumbered in time order
        (their channel's ``seq`` follows the stream)."""
        natural = self.natural
        if natural is None:
            return
        out = self.ex.out
        n = len(out)
        natural.observe(out, final)
        if len(out) == n:
            return
        where = [i for i, ev in enumerate(out) if type(ev) is TruthLabel]
        labels = sorted((out[i] for i in where), key=RECV)  # stable: emission order on ties
        first = min(lb.seq for lb in labels)
        for k, (i, lb) in enumerate(zip(where, labels, strict=True)):
            out[i] = lb if lb.seq == first + k else msgspec.structs.replace(lb, seq=first + k)

    # ---- scheduling helpers ----------------------------------------------------------------------
    def _schedule(self, t: float, oid: int, life: float, inv_cancel: float) -> None:
        """Schedule the cancellation of ``oid`` after a signed lifetime from the lifetime stream."""
        if life > 0.0:
            tc, key = t + life, oid
        else:
            tc, key = t - life * inv_cancel, -oid
        self.push_cancel(tc, key)

    def push_cancel(self, tc: float, key: int) -> None:
        """Schedule a cancel at ``tc`` (the next bucket's heap when it is near, a later bucket otherwise)."""
        b = int(tc / self.dt)
        if b <= self.k:
            heappush(self.ch, (tc, key))
        else:
            bucket = self.buckets.get(b)
            if bucket is None:
                self.buckets[b] = [(tc, key)]
            else:
                bucket.append((tc, key))

    # ---- per-step state ----------------------------------------------------------------------------
    def run(self, shared: list[tuple[int, Regime, int, float, float, NewsShock | None]], stop: float = INF) -> bool:
        """Simulate the grid steps of ``shared`` (``(k, regime, direction, zc, vol, news)`` each, in order).

        With a finite ``stop`` (seconds) the lane pauses before its first event at or after ``stop``
        and returns False; calling again with the same ``shared`` resumes exactly there (the gate of
        ``MarketSimulator.resume``). True once the window is done.
        """
        return self._run(shared, stop)

    def refresh_mu(self, t: float) -> None:
        """Market-order baselines of both sides now: regime, SHOCK decay, latent pull, bursts."""
        if self.settling:
            self._settle(t)
        book = self.book
        dev = self.kappa_mo * (self.X - (book.bid_prices[-1] + book.ask_prices[0]) * 0.5)
        dev = -30.0 if dev < -30.0 else 30.0 if dev > 30.0 else dev
        e = math.exp(dev)
        lo, hi = self.pull_lo, self.pull_hi
        pb = lo if e < lo else hi if e > hi else e
        e = 1.0 / e
        ps = lo if e < lo else hi if e > hi else e
        base = self.mo_base
        if self.regime is SH:
            cfg = self.cfg
            base = self.mo_rate * self.u_level * (
                1.0 + (cfg.shock_mo_mult - 1.0) * math.exp(-(t - self.shock_t0) / cfg.shock_tau_s))
        if self.boost_b_until > t:
            pb *= self.boost_b
        if self.boost_s_until > t:
            ps *= self.boost_s
        self.mu_b, self.mu_s = base * pb, base * ps
        self.meta_mult = base / self.mo_rate  # metaorder children keep their share of the current activity
        if self.u_shape and t >= self.u_next:
            self._intraday(t)

    def grid_special(self, t: float, regime: Regime, direction: int, news: NewsShock | None) -> None:
        """Slow path of a step: news shocks, idiosyncratic SHOCK override, regime change."""
        dt = self.dt
        if news is not None:
            self._news(t, news, self.beta, "market")
        if self.t_news < t + dt:
            shock = draw_shock(self.news_rng, t)
            self.shock_until = t + draw_dwell(self.news_rng, SH, self.cfg.regime_dwell_scale)
            self._news(t, shock, 1.0, "instrument")
            self.t_news = next_arrival(self.news_rng, t, self.cfg.news_instrument_per_hour)
        self._follow(t, regime, direction)
        self._next_special(t)

    def _next_special(self, t: float) -> None:
        """First grid time needing the slow path for this lane's own reasons (news, SHOCK)."""
        in_shock = self.regime is SH or self.shock_until > t
        self.t_special = t + self.dt if in_shock else self.t_news - self.dt

    def _follow(self, t: float, regime: Regime, direction: int) -> None:
        """Adopt the shared regime: trend participation, idiosyncratic SHOCK override, label on change.

        A directional run of the shared chain (TREND/BREAKOUT states of one direction) is joined
        with probability ``beta^2``; an instrument that sits it out keeps its last ranging regime.
        Drift products then average ``beta_i^2 beta_j^2`` against drift variances ``beta_i^2``: the
        drift, like the diffusion, has correlation ``beta_i beta_j``.
        """
        if (regime, direction) != (self.shared_regime, self.shared_dir):
            run = regime in DIRECTIONAL and self.shared_regime in DIRECTIONAL and direction == self.shared_dir
            self.shared_regime, self.shared_dir = regime, direction
            if regime in DIRECTIONAL and not run:
                self.joins = self.dir_rng.random() < self.beta * self.beta
        regime, direction = self.shared_regime, self.shared_dir
        if regime in DIRECTIONAL and not self.joins:
            regime, direction = self.last_range, 0
        if self.shock_until > t:
            regime, direction = SH, self.direction if self.regime == SH else direction
        if regime != self.regime or direction != self.direction:
            self._set_regime(t, regime, direction)

    def _set_regime(self, t: float, regime: Regime, direction: int) -> None:
        entering_range = regime in RANGES and self.regime not in RANGES
        if regime in RANGES:
            self.last_range = regime
        if regime == SH and self.regime != SH:
            self.shock_t0 = t
        self.regime, self.direction = regime, direction
        self._regime_constants()
        mid2 = self.book.mid2()
        if entering_range and mid2 is not None:
            self.anchor = mid2 / 2
        ts = self.ex.ns(t)
        self.regime_path.append((ts, int(regime)))
        self.n_regime_changes += 1
        self.ex.label(t, TruthKind.REGIME, direction, 0, 0, ts, 0,
                      {"regime": int(regime), "regime_name": regime.name, "direction": direction})

    def _regime_constants(self) -> None:
        """Cache the current regime's latent and flow parameters (read by every step)."""
        p = REGIME_TABLE[self.regime]
        self.drift = drift_of(self.regime, self.direction) * self.sigma0
        self.kappa = p.ou_kappa
        self.sig_sqdt = p.sigma * self.sigma0 * math.sqrt(self.dt) * self.u_vol
        self.mo_base = self.mo_rate * p.mo_mult * self.u_level
        self.hawkes_n = p.hawkes_n
        self.lo_mult = p.lo_mult * self.u_level
        # in-spread quoting: slower in low volatility (the spread stays ~flat across regimes); in SHOCK
        # liquidity providers step back (the spread stays wide while the shock lasts)
        self.in_mult = self.lo_mult * (1.0 / p.cancel_mult if self.regime is SH else min(1.0, p.sigma)) / self.u_spread
        # convex in-spread quoting; wider apart at the open, and in SHOCK liquidity providers step back
        step_back = p.cancel_mult if self.regime is SH else 1.0
        self.spread_convexity = self.prof.in_spread_convexity / self.u_spread / step_back
        self.inv_cancel = 1.0 / p.cancel_mult

    def _intraday_norm(self) -> float:
        """Day mean of the raw intraday activity ``1 + A_o e^(-t/tau_o) + A_c e^(-(T - t)/tau_c)``."""
        cfg = self.cfg
        day = cfg.session_length_s
        tau_o, tau_c = cfg.intraday_open_tau_s, cfg.intraday_close_tau_s
        return (1.0 + cfg.intraday_open_activity * tau_o / day * (1.0 - math.exp(-day / tau_o))
                + cfg.intraday_close_activity * tau_c / day * (1.0 - math.exp(-day / tau_c)))

    def _intraday(self, t: float) -> None:
        """Refresh the intraday profile (every simulated minute of a full-day session).

        Activity ``s(t)`` (market and limit-order rates, mean 1 over the day) is raised at the open
        and, more, toward the close; at the open the volatility is ``1 + V_o e^(-t/tau_o)`` times
        its level and liquidity providers stay ``1 + S_o e^(-t/tau_o)`` times further apart (the
        in-spread floor is raised and the in-spread rate divided by it): a wide, volatile, busy
        open, a quiet midday, a busy close. The loop re-reads its rates at the next grid step.
        """
        cfg = self.cfg
        day = cfg.session_length_s
        t = min(t, day)
        w_open = math.exp(-t / cfg.intraday_open_tau_s)
        w_close = math.exp(-(day - t) / cfg.intraday_close_tau_s)
        self.u_level = (1.0 + cfg.intraday_open_activity * w_open + cfg.intraday_close_activity * w_close) / self.u_norm
        self.u_spread = 1.0 + cfg.intraday_open_spread * w_open
        self.u_vol = 1.0 + cfg.intraday_open_volatility * w_open
        self.spread_floor = max(1, round(self.prof.in_spread_floor * self.u_spread))
        self.u_next = t + 60.0
        self._regime_constants()
        self.t_special = t + self.dt

    def _news(self, t: float, shock: NewsShock, scale: float, scope: str) -> None:
        """Apply a news shock: latent jump, SHOCK regime entry, vacuum, NEWS and VACUUM labels."""
        cfg = self.cfg
        jump = jump_ticks(shock, cfg.news_kj, self.sigma0, scale)
        if scope == "market":  # factor structure of the jump: beta_i J_common + sqrt(1 - beta_i^2) J_own
            own = draw_shock(self.news_rng, t)
            jump += jump_ticks(own, cfg.news_kj, self.sigma0, math.sqrt(max(0.0, 1.0 - scale * scale)))
        x0 = self.X
        self.X += jump
        self.n_news += 1
        side = BUY if jump >= 0 else SELL
        ts = self.ex.ns(t)
        duration = float(self.news_rng.uniform(*cfg.vacuum_s))
        self.ex.label(t, TruthKind.NEWS, side, math.floor(min(x0, self.X)), math.ceil(max(x0, self.X)), ts,
                      ts + int(duration * 1e9), {"jump_ticks": round(jump, 3), "scope": scope})
        if scope == "instrument":
            self.shock_t0 = t
            self._set_regime(t, SH, side)
        self._vacuum(t, duration)
        book = self.book
        self.pull_stale(t, book.bid_prices[-1], book.ask_prices[0], NEWS_REPRICE_RATE)  # quotes the news made stale go

    def _vacuum(self, t: float, duration: float) -> None:
        """Cancel hazard x vacuum_mult within vacuum_ticks of both bests for ``duration`` seconds."""
        cfg, book = self.cfg, self.book
        self.vacuum_until = t + duration
        rate = (cfg.vacuum_mult - 1.0) * REGIME_TABLE[self.regime].cancel_mult / cfg.patient_mean_s
        b, a = book.bid_prices[-1], book.ask_prices[0]
        ts = self.ex.ns(t)
        for side, levels, lo, hi in ((BUY, book.bids, b - cfg.vacuum_ticks + 1, b),
                                     (SELL, book.asks, a, a + cfg.vacuum_ticks - 1)):
            for price in range(lo, hi + 1):
                lv = levels.get(price)
                if lv is None:
                    continue
                for oid in lv.orders:
                    if oid in self.owner:
                        continue
                    wait = self.E() / rate
                    if wait < duration:
                        self.push_cancel(t + wait, oid)
            self.ex.label(t, TruthKind.VACUUM, side, lo, hi, ts, ts + int(duration * 1e9),
                          {"cause": "news", "cancel_mult": cfg.vacuum_mult})

    def queue_reaction(self, t: float, b: int, a: int) -> None:
        """Queue reaction: patient hazard x reaction_mult near the best of the side the flow hits."""
        cfg = self.cfg
        self.imb *= math.exp(-(t - self.imb_t) / cfg.reaction_tau_s)
        self.imb_t = t
        h = (cfg.reaction_mult - 1.0) / (cfg.patient_mean_s * self.inv_cancel)
        if self.imb < -self.mean_mo:
            self._zone_cancels(t, self.book.bids, b - cfg.reaction_ticks + 1, b, h)
        elif self.imb > self.mean_mo:
            self._zone_cancels(t, self.book.asks, a, a + cfg.reaction_ticks - 1, h)

    def pull_stale(self, t: float, b: int, a: int, rate: float | None = None) -> None:
        """Quotes through the latent price are cancelled at ``stale_rate`` per order (this step)."""
        x, rate = self.X, self.prof.stale_rate if rate is None else rate
        if rate <= 0.0:
            return
        if a <= x - 1.0:
            self._zone_cancels(t, self.book.asks, a, math.floor(x - 1.0), rate)
        if b >= x + 1.0:
            self._zone_cancels(t, self.book.bids, math.ceil(x + 1.0), b, rate)

    def _zone_cancels(self, t: float, levels: dict, lo: int, hi: int, rate: float) -> None:
        dt = self.dt * self.refresh_steps
        p = 1.0 - math.exp(-rate * dt)
        U, owner = self.U, self.owner
        for price in range(lo, hi + 1):
            lv = levels.get(price)
            if lv is None:
                continue
            for oid in lv.orders:
                if U() < p and oid not in owner:
                    self.push_cancel(t + U() * dt, oid)

    # ---- metaorders ---------------------------------------------------------------------------------
    def _meta_arrival_rate(self) -> float:
        """Arrivals per hour giving ``meta_active`` concurrent metaorders (Little's law, cap ignored)."""
        cfg = self.cfg
        lo, hi = cfg.meta_participation
        # E[(1 - p) / p] for p uniform on [lo, hi]
        inv_part = (math.log(hi / lo) - (hi - lo)) / (hi - lo) if hi > lo else (1 - lo) / lo
        mean_q = self.prof.meta_min_orders * self.mean_mo * cfg.meta_alpha / (cfg.meta_alpha - 1.0)
        volume_rate = self.daily_volume / cfg.session_length_s
        return 3600.0 * self.meta_active / (mean_q * inv_part / volume_rate)

    def meta_arrival(self, t: float) -> None:
        cfg, rng = self.cfg, self.meta_rng
        side = BUY if rng.random() < 0.5 else SELL
        q = metaorder_size(rng, self.prof.meta_min_orders * self.mean_mo, cfg.meta_alpha,
                           cfg.meta_cap * self.daily_volume)
        p = float(rng.uniform(*cfg.meta_participation))
        bg_volume_rate = self.daily_volume / cfg.session_length_s
        rate = p / (1.0 - p) * bg_volume_rate / (self.mean_mo * self.prof.meta_burst_mean)
        mo = Metaorder(side, q, t, self.book.mid2() or 0, rate, p)
        mo.x_start = self.X
        mo.t_next = t + self.E() / (rate * self.meta_mult)
        self.metas.append(mo)
        self.t_meta_arrival = next_arrival(rng, t, self.meta_per_hour * self.u_level)  # intraday activity too

    def take(self, t: float, side: int, size: int) -> tuple[int, int]:
        """A background market order: hidden liquidity first (``hidden_prob``), at most the best level.

        With probability ``best_level_share`` the order is no larger than what it can see and meet
        at the best (the visible best queue plus the hidden order): traders size aggressive orders
        to the liquidity on offer, so most take at most the best level and the immediate impact is
        nearly flat in size. Returns ``(filled, last price)`` as ``Exchange.market``.
        """
        u, uc, q, j = self.HID()
        prof = self.prof
        hidden = q if u < prof.hidden_prob else 0
        if uc < prof.best_level_share:
            book = self.book
            cap = (book.ask_sizes[0] if side > 0 else book.bid_sizes[-1]) + hidden
            if size > cap:
                size = cap
        return self.ex.market(t, side, size, None, hidden, j)

    def meta_child(self, t: float, mo: Metaorder) -> None:
        """One child: a burst of back-to-back market orders (separate aggressive orders, same time)."""
        U = self.U
        while True:
            size = min(self.mo_size(), mo.size - mo.executed)
            filled, _ = self.take(t, mo.side, size)
            mo.children += 1
            if filled:
                self.hawkes.excite(t, mo.side)
                v = self.daily_volume
                x0 = mo.executed
                mo.executed = x0 + filled
                sigma_day = self.sig_sqdt * self.vol * self.day_steps  # at the current local volatility
                d = mo.side * self.cfg.meta_impact * sigma_day * (math.sqrt(mo.executed / v) - math.sqrt(x0 / v))
                self.X += d
                mo.own += d
                self.record_flow(t, mo.side * filled)
            if mo.executed >= mo.size or not filled or U() >= self.burst_continue:
                break
        if mo.executed >= mo.size:
            self._finish_meta(t, mo)
        else:
            mo.t_next = t + self.E() / (mo.rate * self.meta_mult)

    def _finish_meta(self, t: float, mo: Metaorder) -> None:
        """Execution done: the impact is read ``META_SETTLE_S`` later, once the last child's bounce is gone."""
        self.metas.remove(mo)
        mo.t_next = t  # execution end
        self.settling.append((t + META_SETTLE_S, mo))

    def _settle(self, t: float) -> None:
        """Record the metaorders whose settling time has come (called at every flow refresh)."""
        while self.settling and self.settling[0][0] <= t:
            _, mo = self.settling.pop(0)
            self.records.append(self._record(mo))

    def _record(self, mo: Metaorder) -> MetaorderRecord:
        ex = self.ex
        return MetaorderRecord(instrument_id=self.iid, side=mo.side, size=mo.size, executed=mo.executed,
                               t_start=ex.ns(mo.t_start), t_end=ex.ns(mo.t_next), mid2_start=mo.mid2_start,
                               mid2_end=self.book.mid2() or 0, daily_volume=self.daily_volume,
                               participation=mo.participation, children=mo.children,
                               exogenous=self.X - mo.x_start - mo.own)

    def close(self, t: float) -> None:
        """End of the run: record the settling and the unfinished metaorders."""
        for mo in list(self.metas):
            self.metas.remove(mo)
            mo.t_next = t
            self.settling.append((t, mo))
        self._settle(math.inf)

    def record_flow(self, t: float, signed: float) -> None:
        """Update the ~1 s market-order imbalance (queue reaction trigger) and the trade impact."""
        tau = self.cfg.reaction_tau_s
        self.imb = self.imb * math.exp(-(t - self.imb_t) / tau) + signed
        self.imb_t = t

    def next_meta(self) -> tuple[float, Metaorder | None]:
        """The metaorder in execution whose next child is due first, and that time (INF when none)."""
        best, t_best = None, INF
        for mo in self.metas:
            if mo.t_next < t_best:
                best, t_best = mo, mo.t_next
        return t_best, best

