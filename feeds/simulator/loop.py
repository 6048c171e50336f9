"""The event loop of one lane over one window of grid steps, by kind of event (``Kind``).

Sources: a grid tick (latent-price step, the cancel bucket of the step; every ``refresh_steps``
ticks, and whenever news or a regime change happens, a refresh: market-order baseline, best-depth
average, queue-reaction and stale-quote hazards for the next refresh interval), a limit-order
proposal, a Hawkes market order, a scheduled cancel, a metaorder child, a metaorder arrival or
agent wake, a Clock after silence. The earliest source goes next; on equal times the grid tick, the
metaorder child and the arrival/wake (in this order) go before the limit proposal, the market order
and the cancel (in this order); a Clock goes only when strictly earlier than everything else.

The limit proposal rate ``R`` depends on the best quotes (spread, in-spread rate, latent pull) and is
recomputed (``requote``), with a fresh exponential wait, whenever they change; acceptance
``exp(-q / Q_sat)`` is applied by thinning at the chosen level. The Hawkes proposal is exact while
its baseline is constant; it is re-proposed after every market order and at every refresh. Anything
that changes the lane's state behind the loop's back (refreshes after news or a regime change,
agents, stops, fills of agent orders, metaorder arrivals) restarts the loop, which re-reads all of
its state from the lane (``reload``).

Shape, for speed (the simulator's hot path; measured in benchmarks/NOTES.md): a lane's loop is built
once (``lane_loop``) as closures over its state. The four frequent kinds (limit proposal, cancel,
grid tick, Clock: about 98 % of the events) are handled in ``run``'s own frame, and there the placed
order and the full cancel do what ``Exchange.add`` / ``Exchange.delete`` do (same stamping, same
``OrderBook.rest`` / ``remove``), inlined; the rare kinds (market order, metaorder child,
arrival/wake) and the refresh are closures called from it. CPython copies every variable a closure
uses into the frame of each call, so a call per frequent event costs more than 5 % of the speed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import IntEnum
from heapq import heapify, heappop, heappush
from typing import Any

from engine.events import OrderAdd, OrderDelete
from feeds.simulator.matching import FLAG_LAST

INF = math.inf


class Kind(IntEnum):
    """The event sources of a lane's loop."""

    LIMIT = 0  # limit-order proposal (thinned: most are placed, some are rejected)
    MARKET = 1  # Hawkes market order
    CANCEL = 2  # scheduled cancel (full or partial) of a background order
    META_CHILD = 3  # metaorder child: a burst of market orders
    WAKE = 4  # metaorder arrival or agent wake
    CLOCK = 5  # Clock after ``clock_silence_ms`` without a market event
    GRID = 6  # grid tick: latent-price step, the step's cancels, periodic refresh


LIMIT, MARKET, CANCEL, META_CHILD, WAKE, CLOCK, GRID = Kind


def limit_rates(b: int, a: int, x: float, kl: float, L: float, Lin: float, floor: int = 1,
                tilt: float = 0.0, conv: float = 0.0) -> tuple:
    """Limit-order placement references and proposal rates for best quotes ``b``/``a`` and latent ``x``.

    In-spread orders arrive at ``Lin (s - floor)`` per side while the spread ``s`` exceeds ``floor``
    ticks (``in_spread_floor``; 1: any gap is closed), times ``1 + tilt`` on the bid and ``1 - tilt``
    on the ask: ``tilt = w (qb - qa) / (qb + qa)`` (``in_spread_queue_weight`` w) makes traders
    behind a long queue step in front of it, so the mid moves toward the larger queue. With a
    convexity ``conv`` (``in_spread_convexity`` per tick of gap, divided by the intraday spread
    multiplier) the rate is ``Lin g (1 + conv g)``, ``g = s - floor``: a wide spread is closed faster
    than linearly, which keeps the spread's upper tail as narrow as on a real small-tick day.

    Returns ``(bref, aref, rb_in, rb, ra_in, R)``: the prices each side places relative to (a quote
    through the latent price is stale, so the latent price replaces it), the bid in-spread rate,
    the bid total rate, the ask in-spread rate and the total rate ``R`` of both sides. The latent
    pull ``exp(+-kl (x - mid))`` is clipped at ``e^3``.
    """
    s = a - b
    d = kl * (x - (a + b) * 0.5)
    fb = math.exp(-3.0 if d < -3.0 else 3.0 if d > 3.0 else d)
    fa = 1.0 / fb
    if s > floor:
        g = s - floor
        gin = Lin * g * (1.0 + conv * g)
        rb_in = gin * fb * (1.0 + tilt)
        ra_in = gin * fa * (1.0 - tilt)
    else:
        rb_in = ra_in = 0.0
    rb = rb_in + L * fb
    return (b if b < x + 1.0 else int(x), a if a > x - 1.0 else -int(-x), rb_in, rb, ra_in, rb + ra_in + L * fa)


def lane_loop(lane: Any) -> Callable[..., bool]:
    """The event loop of ``lane``: ``run(shared)`` simulates the grid steps ``shared`` (``(k, regime,
    direction, zc, vol, news)`` each, in order) and their events."""
    # ---- constants of the lane
    ex = lane.ex
    book = ex.book
    bid_prices, ask_prices, bids, asks, orders = book.bid_prices, book.ask_prices, book.bids, book.asks, book.orders
    bid_sizes, ask_sizes = book.bid_sizes, book.ask_sizes
    E, U, Z, LO, mo_size = lane.E, lane.U, lane.Z, lane.LO, lane.mo_size
    reduce, clock, lat, iid, t0 = ex.reduce, ex.clock, ex.lat, ex.iid, ex.t0
    market = lane.take  # background market orders: hidden liquidity, sized to the best level
    rest, remove = book.rest, book.remove
    push_cancel = lane.push_cancel
    next_mo, excite = lane.hawkes.next_event, lane.hawkes.excite
    cfg, prof = lane.cfg, lane.prof
    kl, q_inv, theta, cap_in = prof.kappa_l, 1.0 / lane.q_sat, lane.theta, prof.in_spread_capped
    qw = prof.in_spread_queue_weight
    silence = cfg.clock_silence_ms / 1000.0
    partial, patient_mean = cfg.partial_cancel_share, cfg.patient_mean_s
    dt = lane.dt
    inv_dt, buckets = 1.0 / dt, lane.buckets
    vac_ticks, vac_inv = cfg.vacuum_ticks, 1.0 / cfg.vacuum_mult
    exp = math.exp
    lo_rate, in_rate = lane.lo_rate, lane.in_rate
    beta, beta_c, mean_mo = lane.beta, lane.beta_c, lane.mean_mo
    refresh_steps = lane.refresh_steps
    lag_buffer = lane.common_lag
    # ---- the window (set by run) and the loop's state (re-read from the lane by reload)
    t_win = 0.0
    ch: list = []
    t_last = t_grid = supp_b = supp_a = vac_until = t_lo = t_mo = t_meta = t_misc = t_oth = 0.0
    supp_bk = supp_ak = mo_side = b = a = s = bref = aref = 0
    mu_b = mu_s = n_r = inv_cancel = L = Lin = rb_in = rb = ra_in = R = 0.0
    floor = 1
    conv = 0.0
    meta: Any = None
    t_stop = INF  # the gate: pause before any event at or after this time (``run``)
    paused: tuple | None = None  # the run's own state at a pause, restored by the next call

    def reload(t: float) -> None:
        """Re-read everything that may have changed behind the loop; new limit and market-order proposals."""
        nonlocal ch, t_last, supp_b, supp_bk, supp_a, supp_ak, mu_b, mu_s, n_r, inv_cancel, vac_until, L, Lin
        nonlocal t_lo, t_mo, mo_side, t_meta, meta, t_misc, t_oth, floor, conv
        ch = lane.ch
        floor, conv = lane.spread_floor, lane.spread_convexity
        t_last = lane.t_last
        supp_b, supp_bk, supp_a, supp_ak = lane.supp
        mu_b, mu_s, n_r, inv_cancel = lane.mu_b, lane.mu_s, lane.hawkes_n, lane.inv_cancel
        vac_until = lane.vacuum_until
        L, Lin = lo_rate * lane.lo_mult, in_rate * lane.in_mult
        requote(bid_prices[-1], ask_prices[0], lane.X)
        t_lo = t + E() / R
        t_mo, mo_side = next_mo(t, t_win, mu_b, mu_s, n_r, E, U)
        t_meta, meta = lane.next_meta()
        t_misc = lane.t_meta_arrival
        if lane.agent_heap and lane.agent_heap[0][0] < t_misc:
            t_misc = lane.agent_heap[0][0]
        if t_stop < t_misc:
            t_misc = t_stop
        t_oth = t_grid if t_grid <= t_meta and t_grid <= t_misc else t_meta if t_meta <= t_misc else t_misc

    def requote(new_b: int, new_a: int, x: float) -> None:
        """New best quotes (or latent price): new limit-order placement references and rates."""
        nonlocal b, a, s, bref, aref, rb_in, rb, ra_in, R
        b, a, s = new_b, new_a, new_a - new_b
        qb, qa = bid_sizes[-1], ask_sizes[0]
        bref, aref, rb_in, rb, ra_in, R = limit_rates(b, a, x, kl, L, Lin, floor, qw * (qb - qa) / (qb + qa), conv)

    def after_market_orders(t: float) -> None:
        """The best quotes may have moved: if so, new rates and a fresh limit-proposal wait."""
        nonlocal t_lo
        if bid_prices[-1] != b or ask_prices[0] != a:
            requote(bid_prices[-1], ask_prices[0], lane.X)
            t_lo = t + E() / R

    def on_market(t: float) -> bool:
        """Kind.MARKET: a Hawkes market order (impact, flow imbalance, the next one); True: restart."""
        nonlocal t_last, t_mo, mo_side
        filled, _ = market(t, mo_side, mo_size())
        if filled:
            excite(t, mo_side)
            lane.X += theta * mo_side * filled / lane.dbar
            lane.record_flow(t, mo_side * filled)
            t_last = t
            if ex.tagged_fills or lane.stops:
                lane.t_last = t_last
                lane.after_trade(t)
                return True
        t_mo, mo_side = next_mo(t, t_win, mu_b, mu_s, n_r, E, U)
        after_market_orders(t)
        return False

    def on_meta_child(t: float) -> bool:
        """Kind.META_CHILD: a burst of metaorder market orders, the next market-order and child times."""
        nonlocal t_last, t_mo, mo_side, t_meta, meta, t_oth
        lane.meta_child(t, meta)
        t_last = t
        if ex.tagged_fills or lane.stops:
            lane.t_last = t_last
            lane.after_trade(t)
            return True
        t_mo, mo_side = next_mo(t, t_win, mu_b, mu_s, n_r, E, U)
        t_meta, meta = lane.next_meta()
        t_oth = t_grid if t_grid <= t_meta and t_grid <= t_misc else t_meta if t_meta <= t_misc else t_misc
        after_market_orders(t)
        return False

    def on_wake(t: float) -> None:
        """Kind.WAKE: a metaorder arrival and/or agent wakes (agents act through the lane); always a restart."""
        if lane.t_meta_arrival <= t:
            lane.meta_arrival(t)
        lane.t_last = t_last
        if lane.agent_heap and lane.agent_heap[0][0] <= t:
            lane.wake_agents(t)

    def refresh(t: float, x: float, special: bool) -> bool:
        """The grid tick's refresh: best-depth average, extra cancel hazards, market-order baseline and,
        unless a special tick restarts the loop (True), new proposals for the next interval."""
        nonlocal mu_b, mu_s, t_mo, mo_side, t_lo
        lane.dbar += 0.02 * ((bid_sizes[-1] + ask_sizes[0]) * 0.5 - lane.dbar)
        imb = lane.imb
        if imb > mean_mo or imb < -mean_mo:
            lane.queue_reaction(t, b, a)
        if a <= x - 1.0 or b >= x + 1.0:
            lane.pull_stale(t, b, a)
        lane.refresh_mu(t)
        if special:
            lane.t_last = t_last
            return True
        mu_b, mu_s = lane.mu_b, lane.mu_s
        t_mo, mo_side = next_mo(t, t_win, mu_b, mu_s, n_r, E, U)
        r_old = R
        requote(b, a, x)
        t_lo = t + (t_lo - t) * r_old / R  # memoryless: rescale the pending wait
        return False

    def run(shared: list, stop: float = INF) -> bool:
        """One window: the earliest event source goes next until the window's last grid step is done.

        The gate: with a finite ``stop`` the loop pauses before the first event at or after ``stop``
        (a grid tick or metaorder child at exactly ``stop`` goes first, as before an agent wake) and
        returns False; the next call with the same ``shared`` resumes there with every proposal
        kept (no random draw is repeated or skipped, so pausing alone changes nothing), re-reading
        only the wake times (orders may have been scheduled meanwhile). True: the window is done.
        """
        nonlocal t_win, t_grid, ch, t_last, t_lo, t_oth, b, a, s, bref, aref, rb_in, rb, ra_in, R, t_stop, paused
        nonlocal t_misc
        if not shared:
            return True
        t_stop = stop
        append = ex.out.append  # the simulator takes each window's events and gives the exchange a new list
        fresh = True
        if paused is not None and paused[0] is shared:  # resume where the gate stopped
            _, j, n_steps, cur, shared_regime, shared_dir, t = paused
            paused = None
            fresh = False
            t_misc = lane.t_meta_arrival
            if lane.agent_heap and lane.agent_heap[0][0] < t_misc:
                t_misc = lane.agent_heap[0][0]
            if t_stop < t_misc:
                t_misc = t_stop
            t_oth = t_grid if t_grid <= t_meta and t_grid <= t_misc else t_meta if t_meta <= t_misc else t_misc
        else:
            n_steps, j = len(shared), 0
            t_win = (shared[-1][0] + 1) * dt
            t = t_grid = shared[0][0] * dt
            cur = lane.k
            shared_regime, shared_dir = lane.shared_regime, lane.shared_dir
        while True:
            if fresh:
                reload(t)
            fresh = True
            drift, kappa, sig_sqdt = lane.drift, lane.kappa, lane.sig_sqdt
            while True:  # the earliest source goes next (ties: see the module docstring)
                t, kind = t_lo, LIMIT
                if t_mo < t:
                    t, kind = t_mo, MARKET
                if ch and ch[0][0] < t:
                    t, kind = ch[0][0], CANCEL
                if t_oth <= t:
                    t = t_oth
                    kind = GRID if t_grid == t else META_CHILD if t_meta == t else WAKE
                if t_last + silence < t:
                    t, kind = t_last + silence, CLOCK
                if kind is LIMIT:  # ---- limit-order proposal: side, price, acceptance; a cancel time
                    u, ua, dist, jj, size, lf, e = LO()
                    u *= R
                    if u < rb:
                        side = 1
                        if u < rb_in:
                            price = b + (jj if jj <= s - floor else s - floor)
                            if cap_in and price > lane.X - 0.5:  # never bid through the latent price
                                price = int(lane.X - 0.5)
                                if price < b:
                                    price = bref
                            dist = 0
                        else:
                            dist -= 1
                            price = bref - dist
                            lv = bids.get(price)
                            if lv is not None and ua >= exp(-lv.total * q_inv):
                                t_lo = t + e / R
                                continue
                        if supp_b > t and dist < supp_bk:
                            t_lo = t + e / R
                            continue
                    else:
                        side = -1
                        if u < rb + ra_in:
                            price = a - (jj if jj <= s - floor else s - floor)
                            if cap_in and price < lane.X + 0.5:  # never offer through the latent price
                                price = -int(-(lane.X + 0.5))
                                if price > a:
                                    price = aref
                            dist = 0
                        else:
                            dist -= 1
                            price = aref + dist
                            lv = asks.get(price)
                            if lv is not None and ua >= exp(-lv.total * q_inv):
                                t_lo = t + e / R
                                continue
                        if supp_a > t and dist < supp_ak:
                            t_lo = t + e / R
                            continue
                    # Exchange.add inlined (same stamping and book mutation; the most frequent event)
                    ts = t0 + int(t * 1e9)
                    recv = ts + lat()
                    if recv < ex.prev_recv:
                        recv = ex.prev_recv
                    ex.prev_recv = recv
                    oid = ex.next_oid
                    ex.next_oid = oid + 1
                    seq = ex.seq
                    ex.seq = seq + 1
                    append(OrderAdd(iid, ts, recv, seq, FLAG_LAST, oid, side, price, size))
                    rest(oid, side, price, size)
                    if lf > 0.0:
                        tc, key = t + lf, oid
                    else:
                        tc, key = t - lf * inv_cancel, -oid
                    if vac_until > t and dist < vac_ticks:
                        tc = t + (tc - t) * vac_inv
                    bi = int(tc * inv_dt)
                    if bi <= cur:
                        heappush(ch, (tc, key))
                    else:
                        bucket = buckets.get(bi)
                        if bucket is None:
                            buckets[bi] = [(tc, key)]
                        else:
                            bucket.append((tc, key))
                    t_last = t
                    if (side > 0 and price > b) or (side < 0 and price < a):  # a new best: new rates, same wait
                        b, a = bid_prices[-1], ask_prices[0]
                        s = a - b
                        qb, qa = bid_sizes[-1], ask_sizes[0]
                        bref, aref, rb_in, rb, ra_in, R = limit_rates(b, a, lane.X, kl, L, Lin, floor,
                                                                      qw * (qb - qa) / (qb + qa), conv)
                    t_lo = t + e / R
                elif kind is CANCEL:  # ---- scheduled cancel: skip gone orders, keep both sides, some partial
                    _, key = heappop(ch)
                    oid = key if key > 0 else -key
                    lv = orders.get(oid)
                    if lv is None:
                        continue
                    if len(lv.orders) == 1 and len(bid_prices if lv.side > 0 else ask_prices) == 1:
                        push_cancel(t + 1.0, key)  # never empty a side: try again later
                        continue
                    if key < 0 and partial > 0.0 and U() < partial:
                        size = lv.orders[oid]
                        if size > 1:
                            reduce(t, oid, 1 + int(U() * (size - 1)))
                            t_last = t
                            push_cancel(t + E() * patient_mean * inv_cancel, key)
                            continue
                    # Exchange.delete inlined (same stamping and book mutation)
                    side, price = lv.side, lv.price
                    size = remove(oid)
                    ts = t0 + int(t * 1e9)
                    recv = ts + lat()
                    if recv < ex.prev_recv:
                        recv = ex.prev_recv
                    ex.prev_recv = recv
                    seq = ex.seq
                    ex.seq = seq + 1
                    append(OrderDelete(iid, ts, recv, seq, FLAG_LAST, oid, side, price, size))
                    ex.n_deletes += 1
                    t_last = t
                    if bid_prices[-1] != b or ask_prices[0] != a:
                        b, a = bid_prices[-1], ask_prices[0]
                        s = a - b
                        qb, qa = bid_sizes[-1], ask_sizes[0]
                        bref, aref, rb_in, rb, ra_in, R = limit_rates(b, a, lane.X, kl, L, Lin, floor,
                                                                      qw * (qb - qa) / (qb + qa), conv)
                        t_lo = t + E() / R
                elif kind is GRID:  # ---- grid tick: shared state and cancels of the step, latent step
                    if j == n_steps:
                        lane.t_last = t_last
                        lane.clock = t
                        return True
                    k, regime, direction, zc, vol, news = shared[j]
                    if lag_buffer is not None:  # the common factor reaches this instrument late (Epps)
                        lag_buffer.append(zc)
                        zc = lag_buffer.popleft()
                    j += 1
                    t = t_grid = k * dt
                    lane.k = cur = k
                    new = buckets.pop(k, None)
                    if new:
                        if ch:
                            ch.extend(new)
                            heapify(ch)
                        else:
                            new.sort()
                            ch = lane.ch = new
                    special = news is not None or t >= lane.t_special or regime is not shared_regime \
                        or direction != shared_dir
                    if special:
                        lane.t_last = t_last
                        lane.grid_special(t, regime, direction, news)
                        shared_regime, shared_dir = regime, direction
                        drift, kappa, sig_sqdt = lane.drift, lane.kappa, lane.sig_sqdt
                    x = lane.X
                    lane.vol = vol
                    x += (drift - kappa * (x - lane.anchor)) * dt + sig_sqdt * vol * (beta * zc + beta_c * Z())
                    lane.X = x
                    t_grid = (k + 1) * dt if j < n_steps else t_win
                    t_oth = t_grid if t_grid <= t_meta and t_grid <= t_misc else t_meta if t_meta <= t_misc \
                        else t_misc
                    if (special or k % refresh_steps == 0) and refresh(t, x, special):
                        break
                elif kind is CLOCK:  # ---- Clock after silence
                    clock(t)
                    t_last = t
                elif kind is MARKET:
                    if on_market(t):
                        break
                elif kind is META_CHILD:
                    if on_meta_child(t):
                        break
                else:
                    if t_stop <= t:  # the gate: pause here (a wake due now runs after the resume)
                        paused = (shared, j, n_steps, cur, shared_regime, shared_dir, t)
                        lane.t_last = t_last
                        lane.now = lane.clock = t
                        return False
                    on_wake(t)
                    break

    return run
