"""MarketSimulator: the multi-instrument L3 market simulator of SPEC section 9 (a ``Feed``).

Generative model (per instrument ``i`` one ``Lane``; the shared state is built here, one simulated
second at a time):
- latent fair price on a 100 ms grid: ``dX = mu_r dt - kappa_r (X - A) dt + sigma_r v(t) (beta_i dW_c
  + sqrt(1 - beta_i^2) dW_i) + J dN_news + theta eps q / Dbar`` per market order (``Dbar``: slow average
  of the best-queue size), the anchor ``A`` reset to the mid on entering a ranging regime;
- market orders: bivariate Hawkes (two-exponential kernel, Ogata thinning, O(1) state) with baseline
  ``mu_MO m_r s(t) clip(exp(+-kappa_MO (X - m) / sigma1), 0.2, 5)``; ``s(t)`` is flat, except in
  full-day sessions, where the intraday profile (``intraday_u_shape``, on by default) makes it
  busy at the open and busier at the close (mean 1 over the day);
- metaorders: Pareto(1.5) sizes, participation 5-20 %, executed as child market orders;
- limit orders behind the own best with the hump profile ``k^0.5 exp(-k / k0)``, acceptance
  ``exp(-q / Q_sat)`` and pull ``exp(+-kappa_L (X - m))`` by thinning, in-spread orders at rate
  ``L_in (s - 1)``; two-class lifetimes (fleeting / patient) with the queue reaction; FIFO matching
  against an ``engine.book.OrderBook`` (``matching``);
- the six-state regime chain shared by all instruments (``regimes``) and news shocks (``news``).

Deliberate deviations from SPEC section 9. Each was measured with the stylized-fact checks
(``sim-check``) over several seeds; the reason given is what failed without it, the numbers are in
docs/simulator.md. Regime-table changes are listed in ``regimes``.
1. Metaorder children skip the linear ``theta q / Dbar`` term; the latent price moves by the
   increments of ``Y sigma sqrt(T_day) sqrt(executed / V_day)`` instead (efficient pricing of
   Pareto(1.5) metaorders, Farmer, Gerig, Lillo & Waelbroeck 2013), ``sigma`` the current regime
   volatility times ``v(t)`` and ``Y = meta_impact`` (0.42): with the linear term a capped metaorder
   moved the price by hundreds of ticks and the impact was linear in Q.
2. Metaorder arrivals follow from ``meta_active`` (mean number in execution, Little's law); each
   child is a burst of ``meta_burst_mean`` back-to-back market orders (per profile, geometric) and
   children arrive in proportion to the current market-order activity (participation of the
   current volume): without bursts the sign ACF at lag 1 was 0.15-0.20 (fact 4 asks > 0.3). The size
   cap is 10 % of the background daily volume (about 5 % of the total, metaorders included); the
   size floor ``meta_min_orders`` is per profile (large tick 12 mean market orders, small tick 30).
3. The latent diffusion has a shared stochastic-volatility factor ``v(t) = exp(s Y - s^2)`` (``Y`` a
   unit OU with time scale ``vol_tau_s``, ``E[v^2] = 1``, ``s = vol_of_vol``) and delivers
   ``info_share`` of its variance as compound-Poisson "information" jumps, variance and
   correlations unchanged (fact 1: heavy tails with kurtosis > 10 at 1 s).
4. Directional runs of the shared chain (TREND/BREAKOUT of one direction) are joined by each
   instrument with probability ``beta_i^2``; an instrument that sits one out stays in its last
   ranging regime (its REGIME labels say so). Drift products then average ``beta_i^2 beta_j^2``
   against drift variances ``beta_i^2``: the drift has correlation ``beta_i beta_j`` like the
   diffusion. A fully shared drift made 5-minute correlations ~0.9 in trends; drawing a direction
   against the shared one (``(1 + beta) / 2``) did too on average but produced large negative
   5-minute correlations in sessions of one or two trends.
5. In-spread orders improve the own best by a geometric number of ticks (mean ``in_spread_mean``)
   and small-tick ones never cross the latent price; their rate is scaled by ``min(1, sigma_r)``
   (the spread stays flat across volatility regimes instead of closing in RANGE_LOW) and divided by
   the cancel multiplier in SHOCK (liquidity providers step back; the spread stays wide while the
   shock lasts, which is what the SHOCK spread rule sees).
6. Quotes at least one tick through the latent price are stale: cancelled at ``stale_rate`` per order,
   and at ``NEWS_REPRICE_RATE`` (20/s) right after a news jump; new orders are placed relative to the
   latent price instead of the stale best.
7. Timing: regime changes and news act on the 100 ms grid; the market-order baseline, the queue
   reaction and stale-quote hazards are refreshed every ``flow_refresh_ms`` (500 ms); the Hawkes
   branching ratio of the current regime applies to past events too; a patient lifetime uses the
   cancel multiplier of the regime at placement.
8. Idiosyncratic news puts only its instrument into SHOCK, which rejoins the shared regime after
   the SHOCK dwell; news jumps use ``|t_3|`` truncated at 3 (see ``news``). A market-wide news jump
   is ``beta_i J + sqrt(1 - beta_i^2) J_i`` (``J_i`` an independent draw of the same law), not
   ``beta_i J``: full-size jumps on every instrument, correlation ``beta_i beta_j``.
9. Each instrument receives the common factor ``W_c`` after its own lag, uniform in
   ``[0, common_lag_ms]`` (2 s) in grid steps: asynchronous information (the Epps effect, fact 8a);
   without it the large-tick 1 s correlation was half the 60 s one and fact 8a failed in a quarter
   of the sessions.
10. The permanent impact per market order is ``theta * theta_scale`` (large-tick 0.25): with 4
    market orders/s against ~11 lots at the best, theta = 0.2 put 40 % of the latent variance into
    idiosyncratic trade impact.
11. A market order never takes the last resting order of a side and cancels never remove it, so
    both sides are always quoted and the mid is always defined.
12. Metaorder diagnostics (never on the stream) carry the latent move the metaorder did not cause
    (``exogenous``, a control variate for fact 5) and read the end mid 5 s after the last child.

Realism against a real day (``chimera calibrate --lobster``; figures in docs/simulator.md):
13. Hidden liquidity: a background market order meets a non-displayed order (``hidden_prob``, its
    size from the limit-order mixture) ``hidden_improve_mean`` ticks in front of the passive best,
    inside the spread; it fills first as a LOBSTER type-5 print (``Trade`` flagged ``HIDDEN``, no
    ``OrderExecute``, no book change). Agent orders of the scenarios never meet hidden liquidity.
14. A background market order is sized to at most what it sees at the best (visible queue plus
    the hidden order) with probability ``best_level_share``: the immediate impact is nearly flat
    in size (AMZN: about 1 tick from 4 to 300 lots), not the walk of a size drawn blind to the book.
15. In-spread quoting stops at ``in_spread_floor`` ticks and leans toward the longer best queue
    (``in_spread_queue_weight``): traders behind a long queue step in front of it, so the next mid
    move goes toward the larger queue (queue imbalance as predictive as on AMZN) and the spread is
    as narrow in distribution as AMZN's.
16. The market-order Hawkes kernel excites mostly its own side (``hawkes_c_self`` 0.9) through the
    fast kernel (``hawkes_w1`` 0.9), and metaorder children are bursts of 8 orders (small tick):
    order-sign ACF(1) ≈ 0.6 as on AMZN; metaorders already in execution at the open (Poisson with
    mean ``meta_active``) remove the warm-up ramp of the flow. Small-tick metaorders are at least 30
    mean market orders (12 before) and their bursts 8 long (6 before): the sign ACF keeps a slow
    tail to lag 100, so the power-law exponent of two-hour sessions stays below 0.9 on other seeds
    than the default (docs/simulator.md, "Other seeds").
17. Full-day sessions follow an intraday profile (see ``Lane._intraday``): activity
    ``1 + A_o e^(-t/tau_o) + A_c e^(-(T-t)/tau_c)`` normalised to mean 1, a raised in-spread floor
    and volatility at the open. Optional opening and closing auctions (``auction``, off by default).
18. In-spread quoting is convex in the gap (``in_spread_convexity``): rate ``L_in g (1 + c g)``, ``g``
    the spread above the floor, so wide spreads close faster than linearly (the spread's p90/p10
    was 3.5 against AMZN's 2.6); at the open ``c`` and the rate are divided by the spread factor,
    and in SHOCK ``c`` is divided by the cancel multiplier like the rate (the SHOCK spread signature
    stays: without it small-tick seed 7 fell to a regime macro-F1 of 0.59).

Output: per instrument ``InstrumentDef`` (seq 0), ``Status`` OPEN, the opening book (one atomic
event), then the flow; ``TruthLabel`` REGIME per instrument (``t_start`` = change time, ``t_end = 0``:
it lasts until the next REGIME label; params ``regime``, ``regime_name``, ``direction``), NEWS and
VACUUM (one per side) on the truth channel, with ``ts_recv = ts_event``. Events are produced one
simulated second (``WINDOW_STEPS`` grid steps) at a time per instrument, concatenated in instrument
order (each instrument's in emission order, which is its ``seq`` order), stably sorted by ``ts_recv``
and released up to the window boundary (later receive times wait for the next window): the stream
is ordered by ``(ts_recv, instrument_id, seq)`` and memory is constant in the session length. (A
truth label whose ``ts_recv`` equals, to the nanosecond, that of a market event of its own
instrument keeps emission order rather than comparing the two channels' independent counters.)

Our orders (``client``): ``submit`` / ``cancel`` put them into an instrument's matching engine through
its ``ClientDesk`` at their arrival time (decision time + latency); ``drain`` returns the answers. For
the arrival to be honoured the simulation must not have run past it: a gated simulator
(``gated=True``) runs only up to the watermark its consumer gives (``resume``), pausing each lane's
loop inside its window without drawing anything, so a gated run without orders is the ungated
stream event for event. An ungated simulator enters a late order at its own clock (recorded).

Determinism: ``SeedSequence(seed)`` spawns a global sequence (regime chain, common factor, volatility
factor, market-wide news, scenario) and an instrument sequence whose ``i``-th child drives
instrument ``i`` (each random stream of a lane has its own generator). Appending a symbol therefore
leaves every other instrument's stream unchanged (tested).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np

from engine.events import Event, InstrumentDef, OrderRequest, Regime
from feeds.simulator.agents import BackgroundEpisodes
from feeds.simulator.client import ClientDesk
from feeds.simulator.flow import MetaorderRecord, latent_shock_draw
from feeds.simulator.lane import Lane
from feeds.simulator.news import NewsShock, draw_shock, next_arrival
from feeds.simulator.regimes import RegimeChain
from feeds.simulator.rng import children, stream

if TYPE_CHECKING:  # engine.config imports this package
    from engine.config import Config

WINDOW_STEPS = 10
RECV = attrgetter("ts_recv")


class MarketSimulator:
    """Seeded multi-instrument L3 market simulator (implements ``feeds.base.Feed``)."""

    def __init__(self, symbols: list[str], config: Config, seed: int, duration_s: float, scenario=None,
                 gated: bool = False, gate_step_ns: int = 1_000_000, response_ns: int = 0) -> None:
        self.symbols = list(symbols)
        self.config = config
        self.cfg = config.simulator
        self.seed = seed
        self.duration_s = float(duration_s)
        self.dt = self.cfg.grid_ms / 1000.0
        global_seq, lanes_seq = np.random.SeedSequence(seed).spawn(2)
        self._chain_rng, factor_rng, self._news_rng, scenario_rng, vol_rng, background_rng = children(global_seq, 6)
        self._factor = stream(latent_shock_draw(factor_rng, self.cfg.info_rate, self.dt, self.cfg.info_share))
        self._vol_noise = stream(vol_rng.standard_normal)
        forced_chain = getattr(scenario, "regime_chain", None)  # hooks.RegimeForcing
        self.chain = (forced_chain or RegimeChain)(self._chain_rng, self.cfg.regime_dwell_scale)
        self.lanes = [Lane(i, sym, config.instrument(sym), self.cfg, s, self.dt)
                      for i, (sym, s) in enumerate(zip(self.symbols, lanes_seq.spawn(len(self.symbols)), strict=True))]
        self._defs = [lane.definition(self.duration_s) for lane in self.lanes]
        self._emitted = 0
        self._started = False
        self._finished = False
        if gate_step_ns <= 0:
            raise ValueError(f"gate_step_ns must be > 0, got {gate_step_ns}")
        self.gated = gated
        self.gate_step_ns = gate_step_ns
        self.response_ns = response_ns
        self._watermark = 0
        self._w0 = 0
        self._window: list | None = None
        self._desks: dict[int, ClientDesk] = {}
        background = BackgroundEpisodes(self.cfg.episodes_per_hour) if getattr(scenario, "background", True) else None
        for source, rng in ((scenario, scenario_rng), (background, background_rng)):
            if source is not None:
                for iid, t_first, agent in source.agents(self.instruments(), self.duration_s, rng):
                    self.lanes[iid].wake_at(agent, t_first)

    def instruments(self) -> list[InstrumentDef]:
        """Definitions of every instrument (ids 0..n-1 in symbol order)."""
        return list(self._defs)

    def events(self) -> Iterator[Event]:
        """Every market event and truth label, ordered by ``(ts_recv, instrument_id, seq)``.

        Gated (``gated=True``): the same stream, produced ``gate_step_ns`` of simulated time at a time
        (``resume``); our orders sent while iterating enter at their arrival times (``submit``).
        """
        if self._started:
            raise RuntimeError("MarketSimulator.events() can be iterated only once; build a new simulator")
        if self.gated:
            return self._gated_events()
        self._start()
        return self._ungated_events()

    def _start(self) -> None:
        """Open every lane and the shared state (once, before the first window)."""
        self._started = True
        self._n_steps = max(0, math.ceil(self.duration_s / self.dt - 1e-9))
        for lane in self.lanes:
            lane.open(self.duration_s, self.chain.regime, self.chain.direction)
        self._carry: list[list] = [[] for _ in self.lanes]
        self._decay = math.exp(-self.dt / self.cfg.vol_tau_s)
        self._shock_sd = math.sqrt(1.0 - self._decay * self._decay)
        self._y = self._vol_noise()  # stationary N(0, 1) start of the shared log-volatility factor
        self._t_news = next_arrival(self._news_rng, 0.0, self.cfg.news_market_per_hour)

    def _shared(self, w0: int, w1: int) -> list:
        """The shared state of grid steps ``w0..w1-1``: regime, common factor, volatility, market news."""
        vov, decay, shock_sd, y = self.cfg.vol_of_vol, self._decay, self._shock_sd, self._y
        shared = []
        for k in range(w0, w1):
            t = k * self.dt
            news: NewsShock | None = None
            if self._t_news < t + self.dt:
                news = draw_shock(self._news_rng, t)
                self.chain.force_shock(t, news.sign)
                self._t_news = next_arrival(self._news_rng, t, self.cfg.news_market_per_hour)
            else:
                self.chain.advance(t)
            y = y * decay + shock_sd * self._vol_noise()
            shared.append((k, self.chain.regime, self.chain.direction, self._factor(),
                           math.exp(vov * y - vov * vov), news))
        self._y = y
        return shared

    def _release(self, cut: int, final: bool = False) -> list:
        """Every event the lanes produced (and the ones held back) with ``ts_recv < cut``, in stream order
        (``final``: the session's end)."""
        out: list = []
        for lane, held in zip(self.lanes, self._carry, strict=True):
            lane.label_natural(final)
            out += held
            out += lane.ex.out
            lane.ex.out = []
        out.sort(key=RECV)  # stable: ties keep instrument order, then emission order
        i = bisect_left(out, cut, key=RECV)
        self._carry = [[] for _ in self.lanes]
        if i < len(out):
            for ev in out[i:]:
                self._carry[ev.instrument_id].append(ev)
            del out[i:]
        self._emitted += len(out)
        return out

    def _finish(self) -> list:
        """The session end: closing auctions, then everything still held back."""
        end = self._n_steps * self.dt
        for lane in self.lanes:
            lane.closing_auction(end)
        for lane in self.lanes:
            lane.close(self.duration_s)
        self._finished = True
        return self._release(1 << 62, final=True)

    def _ungated_events(self) -> Iterator[Event]:
        t0, n_steps = self.cfg.session_start_ns, self._n_steps
        for w0 in range(0, n_steps, WINDOW_STEPS):
            w1 = min(w0 + WINDOW_STEPS, n_steps)
            shared = self._shared(w0, w1)
            for lane in self.lanes:
                lane.run(shared)
            yield from self._release(t0 + int(w1 * self.dt * 1e9))
        yield from self._finish()

    # ---- the gate: the simulation waits for its consumer ------------------------------------------
    def _gated_events(self) -> Iterator[Event]:
        t0 = self.cfg.session_start_ns
        while not self._finished:
            yield from self.resume(max(self._watermark, t0) + self.gate_step_ns)

    def resume(self, until_ns: int) -> list[Event]:
        """Gated run: simulate up to ``until_ns`` and return the events not returned yet with ``ts_recv < until_ns``.

        Every lane stops before its first event at or after ``until_ns`` (inside a window if need
        be) and waits; orders sent meanwhile with an arrival at or after ``until_ns`` enter the
        matching engine exactly then. The watermark advances on time alone, so a quiet market
        cannot stall the consumer; it never goes back (an earlier ``until_ns`` returns nothing).
        Resuming at any sequence of watermarks with no orders gives the ungated stream, event for
        event (pausing draws no random number). Once the session end is reached, the closing
        auctions run and the rest of the stream is returned; then ``finished`` is True.
        """
        if not self.gated:
            raise RuntimeError("resume() drives a gated simulator (MarketSimulator(..., gated=True))")
        if not self._started:
            self._start()
        if self._finished or until_ns <= self._watermark:
            return []
        self._watermark = until_ns
        t0, dt, n_steps = self.cfg.session_start_ns, self.dt, self._n_steps
        stop = (until_ns - t0) / 1e9
        released: list = []
        while True:
            if self._window is None:
                if self._w0 >= n_steps:
                    released += self._finish()
                    return released
                if self._w0 * dt >= stop:
                    return released
                w1 = min(self._w0 + WINDOW_STEPS, n_steps)
                self._window = self._shared(self._w0, w1)
            w1 = min(self._w0 + WINDOW_STEPS, n_steps)
            done = True
            for lane in self.lanes:
                done = lane.run(self._window, stop) and done
            if not done:
                released += self._release(t0 + int(stop * 1e9))
                return released
            released += self._release(t0 + int(w1 * dt * 1e9))
            self._window = None
            self._w0 = w1

    @property
    def finished(self) -> bool:
        """The whole session has been simulated and returned."""
        return self._finished

    @property
    def watermark_ns(self) -> int:
        """How far a gated run has been allowed to simulate (0 before the first ``resume``)."""
        return self._watermark

    # ---- our orders -------------------------------------------------------------------------------
    def desk(self, instrument_id: int) -> ClientDesk:
        """Our order entry into instrument ``instrument_id``'s matching engine (one desk per instrument)."""
        desk = self._desks.get(instrument_id)
        if desk is None:
            desk = self._desks[instrument_id] = ClientDesk(self.lanes[instrument_id], self.response_ns, None)
        return desk

    def desks(self) -> list[ClientDesk]:
        """The desks opened so far, by instrument."""
        return [desk for _, desk in sorted(self._desks.items())]

    def submit(self, request: OrderRequest, latency_ns: int) -> None:
        """Send an order decided at ``request.ts_local``; it reaches the matching engine ``latency_ns`` later."""
        self.desk(request.instrument_id).submit(request, request.ts_local + latency_ns)

    def cancel(self, instrument_id: int, client_id: str, ts_local: int, latency_ns: int) -> None:
        """Ask at ``ts_local`` to cancel ``client_id``; the request arrives ``latency_ns`` later."""
        self.desk(instrument_id).cancel(client_id, ts_local + latency_ns)

    def drain(self) -> list:
        """The answers to our orders since the last call (``Ack``, ``Fill``, ``CancelAck``, ``Reject``),
        by exchange time (instrument order on ties)."""
        out = [r for desk in self.desks() for r in desk.drain()]
        out.sort(key=attrgetter("ts_exchange"))
        return out

    def stats(self) -> dict[str, int]:
        """Counters: events by type (so far), orders, trades, market orders, news, regime changes..."""
        exs = [lane.ex for lane in self.lanes]
        out = {"events": self._emitted, "events_OrderAdd": sum(e.n_adds for e in exs),
               "events_OrderDelete": sum(e.n_deletes for e in exs),
               "events_OrderCancel": sum(e.n_partial for e in exs),
               "events_OrderExecute": sum(e.n_trades for e in exs),
               "events_Trade": sum(e.n_trades + e.n_hidden for e in exs),
               "events_Clock": sum(e.n_clocks for e in exs), "events_TruthLabel": sum(e.truth_seq for e in exs)}
        out["orders"] = sum(lane.ex.n_adds for lane in self.lanes)
        out["cancels"] = sum(lane.ex.n_partial + lane.ex.n_deletes for lane in self.lanes)
        out["trades"] = sum(lane.ex.n_trades + lane.ex.n_hidden for lane in self.lanes)
        out["hidden_trades"] = sum(lane.ex.n_hidden for lane in self.lanes)
        out["market_orders"] = sum(lane.ex.n_market for lane in self.lanes)
        out["natural_sweeps"] = sum(lane.ex.n_natural for lane in self.lanes)  # natural SWEEP labels
        out["natural_vacuums"] = sum(lane.natural.n_vacuum for lane in self.lanes if lane.natural)
        out["natural_absorptions"] = sum(lane.natural.n_absorption for lane in self.lanes if lane.natural)
        out["clocks"] = sum(lane.ex.n_clocks for lane in self.lanes)
        out["news"] = sum(lane.n_news for lane in self.lanes)
        out["market_news"] = sum(1 for _, r, _ in self.chain.path if r == Regime.SHOCK)
        out["regime_changes"] = len(self.chain.path) - 1
        out["metaorders"] = sum(len(lane.records) + len(lane.settling) + len(lane.metas) for lane in self.lanes)
        return out

    @property
    def metaorders(self) -> list[MetaorderRecord]:
        """Diagnostics of every metaorder (finished ones; all of them once the stream is exhausted)."""
        return sorted((r for lane in self.lanes for r in lane.records), key=lambda r: (r.t_start, r.instrument_id))

    @property
    def regime_path(self) -> list[tuple[int, Regime]]:
        """The shared regime chain as ``(ts_ns, regime)`` (change times on the latent grid)."""
        t0 = self.cfg.session_start_ns
        return [(t0 + int(t * 1e9), regime) for t, regime, _ in self.chain.path]

    def lane_regime_path(self, instrument_id: int) -> list[tuple[int, int]]:
        """One instrument's effective regime path (shared regime or its own SHOCK) as ``(ts_ns, regime)``."""
        return list(self.lanes[instrument_id].regime_path)
