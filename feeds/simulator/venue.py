"""The ``Venue`` side of a lane: order entry, stops, suppression and labels for agents (see hooks).

Mixed into ``Lane``; every operation acts at ``self.now`` (the lane's current simulation time, set
before each agent call) through the lane's ``Exchange``, so agent orders are ordinary exchange
events. Agent-owned order ids are kept in ``owner`` (never emitted); background cancellation
clocks never target them. The lane's event loop refreshes all its cached state after any agent
call, stop trigger or agent fill.

Guard rail: no operation removes the last resting order of a side (a side of the book is never
empty), so ``cancel`` refuses it and ``cancel_background`` leaves it.
"""

from __future__ import annotations

import math
from heapq import heappop, heappush
from typing import Any

from engine.events import Trade, TruthKind

INF = math.inf


class VenueMixin:
    """Agent-facing operations of a lane (implements ``hooks.Venue``)."""

    def _init_venue(self: Any) -> None:
        self.owner: dict[int, Any] = {}  # order id -> agent
        self.agent_heap: list[tuple[float, int, Any]] = []
        self.agent_count = 0
        self.stops: dict[int, tuple[int, int, int, int, Any]] = {}  # side, trigger, size, next trade id, agent
        self.stop_count = 0
        self.current_agent: Any = None
        self.now = 0.0
        self.clock = 0.0  # how far the lane has simulated (its window's end, or where the gate paused it)
        self.supp = [-INF, 0, -INF, 0]  # bid until, bid ticks, ask until, ask ticks
        self.boost_b = self.boost_s = 1.0
        self.boost_b_until = self.boost_s_until = -INF

    # ---- properties of hooks.Venue -------------------------------------------------------------
    @property
    def instrument_id(self: Any) -> int:
        return self.iid

    @property
    def now_ns(self: Any) -> int:
        return self.ex.ns(self.now)

    @property
    def last_trade_price(self: Any) -> int:
        return self.ex.last_trade

    @property
    def latent_price(self: Any) -> float:
        return self.X

    @property
    def mean_order_size(self: Any) -> float:
        return self.mean_mo

    # ---- scheduling ------------------------------------------------------------------------------
    def wake_at(self: Any, agent: Any, t: float) -> None:
        """Schedule a wake of ``agent`` at ``t`` seconds since the open."""
        self.agent_count += 1
        heappush(self.agent_heap, (max(t, self.now), self.agent_count, agent))

    def agent_next(self: Any) -> float:
        return self.agent_heap[0][0] if self.agent_heap else INF

    def wake_agents(self: Any, t: float) -> None:
        """Wake every agent due by ``t`` (the loop calls it; so may a test driving a lane by hand)."""
        self.now = t
        while self.agent_heap and self.agent_heap[0][0] <= t:
            _, _, agent = heappop(self.agent_heap)
            self.current_agent = agent
            nxt = agent.on_wake(self)
            self.current_agent = None
            if nxt is not None:
                self.wake_at(agent, nxt)
        self.after_trade(t)

    def after_trade(self: Any, t: float) -> None:
        """Release triggered stops, then tell agents about fills of their orders."""
        self.now = t
        ex = self.ex
        fired = True
        while fired and self.stops:
            fired = False
            last = ex.last_trade
            for sid, (side, trigger, size, armed, agent) in list(self.stops.items()):
                if ex.next_trade > armed and (last - trigger) * side >= 0:
                    del self.stops[sid]
                    self.current_agent = agent
                    filled, price = self._market(t, side, size)
                    fired = True
                    on_stop = getattr(agent, "on_stop", None)
                    if on_stop is not None:
                        on_stop(self, sid, filled, price)
        self.current_agent = None
        while ex.tagged_fills:
            fills, ex.tagged_fills = ex.tagged_fills, []
            for oid, _tag, price, size in fills:
                agent = self.owner.get(oid)
                if agent is not None:
                    self.current_agent = agent
                    agent.on_fill(self, oid, price, size)
                    self.current_agent = None
            for oid, _tag, _price, _size in fills:  # after all of them: one order may fill several times
                if oid not in self.book.orders:
                    self.owner.pop(oid, None)

    # ---- order entry -----------------------------------------------------------------------------
    def _market(self: Any, t: float, side: int, size: int, limit: int | None = None) -> tuple[int, int]:
        # an agent that plants SWEEP labels names its own order; every other order that walks is a natural sweep
        natural = getattr(self.current_agent, "kind", None) != TruthKind.SWEEP
        filled, price = self.ex.market(t, side, size, limit, natural=natural)
        if filled:
            self.hawkes.excite(t, side)
            self.X += self.theta * side * filled / self.dbar
            self.record_flow(t, side * filled)
            self.t_last = t
        return filled, price

    def execute(self: Any, t: float, side: int, size: int, limit: int | None = None) -> list[tuple[int, int]]:
        """A client's aggressive order at ``t``: up to ``size`` lots against the real book (up to ``limit``).

        Same matching and the same reaction of the simulation as any market order (Hawkes
        excitation, latent impact, flow imbalance); returns its fills ``(price, size)`` in walk order.
        """
        out = self.ex.out
        n0 = len(out)
        filled, _ = self._market(t, side, size, limit)
        if not filled:
            return []
        return [(ev.price, ev.size) for ev in out[n0:] if type(ev) is Trade]

    def rest_order(self: Any, t: float, side: int, price: int, size: int, owner: Any, oid: int, tag: str) -> int:
        """Rest a client limit order with its own order id at the back of its level; ``owner`` gets its fills."""
        oid = self.ex.add(t, side, price, size, tag, oid)
        self.owner[oid] = owner
        self.t_last = t
        return oid

    def market(self: Any, side: int, size: int, tag: str = "agent") -> tuple[int, int]:
        """Execute an agent market order now."""
        return self._market(self.now, side, size)

    def limit(self: Any, side: int, price: int, size: int, tag: str = "agent") -> int:
        """Rest an agent limit order (marketable part executes first); returns the resting order id."""
        book, t = self.book, self.now
        opposite = book.best_ask if side > 0 else book.best_bid
        if opposite is not None and (price - opposite) * side >= 0:
            filled, _ = self._market(t, side, size, price)
            size -= filled
        if size <= 0:
            return 0
        oid = self.ex.add(t, side, price, size, tag)
        self.owner[oid] = self.current_agent
        self.t_last = t
        return oid

    def cancel(self: Any, order_id: int) -> bool:
        """Cancel an order unless it is the last one of its side."""
        lv = self.book.orders.get(order_id)
        if lv is None:
            return False
        prices = self.book.bid_prices if lv.side > 0 else self.book.ask_prices
        if len(prices) == 1 and len(lv.orders) == 1:
            return False
        self.owner.pop(order_id, None)
        self.t_last = self.now
        return self.ex.delete(self.now, order_id)

    def cancel_background(self: Any, side: int, ticks: int) -> int:
        """Cancel the untagged orders of ``side`` within ``ticks`` of its best; returns how many."""
        book = self.book
        prices = book.bid_prices if side > 0 else book.ask_prices
        levels = book.bids if side > 0 else book.asks
        best = prices[-1] if side > 0 else prices[0]
        victims = []
        for k in range(ticks):
            lv = levels.get(best - side * k)
            if lv is not None:
                victims.extend(oid for oid in lv.orders if oid not in self.owner)
        done = 0
        for oid in victims:
            lv = book.orders[oid]
            if len(prices) == 1 and len(lv.orders) == 1:
                break
            self.ex.delete(self.now, oid)
            done += 1
        if done:
            self.t_last = self.now
        return done

    def suppress_adds(self: Any, side: int, ticks: int, duration_s: float) -> None:
        """Reject background limit orders of ``side`` within ``ticks`` of its best for a while."""
        i = 0 if side > 0 else 2
        self.supp[i] = self.now + duration_s
        self.supp[i + 1] = ticks

    def boost_market_orders(self: Any, side: int, factor: float, duration_s: float) -> None:
        """Multiply one side's market-order baseline by ``factor`` (from the next grid step)."""
        if side > 0:
            self.boost_b, self.boost_b_until = factor, self.now + duration_s
        else:
            self.boost_s, self.boost_s_until = factor, self.now + duration_s

    def stop(self: Any, side: int, trigger: int, size: int, tag: str = "agent") -> int:
        """Arm a stop market order released when a later trade reaches ``trigger``."""
        self.stop_count += 1
        self.stops[self.stop_count] = (side, trigger, size, self.ex.next_trade, self.current_agent)
        return self.stop_count

    def cancel_stop(self: Any, stop_id: int) -> bool:
        """Disarm a stop; False when it already fired."""
        return self.stops.pop(stop_id, None) is not None

    def shift_latent(self: Any, delta_ticks: float, anchor: bool = False) -> None:
        """Move the latent fair price by ``delta_ticks`` (with ``anchor``, the ranging regimes' anchor too)."""
        self.X += delta_ticks
        if anchor:
            self.anchor += delta_ticks

    def label(self: Any, kind: int, side: int, price_lo: int, price_hi: int, t_start_ns: int, t_end_ns: int,
              params: dict | None = None, outcome: int = 0, episode: int = 0) -> int:
        """Emit a truth label now; returns its episode id."""
        return self.ex.label(self.now, kind, side, price_lo, price_hi, t_start_ns, t_end_ns, params or {},
                             outcome, episode)
