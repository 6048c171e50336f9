"""Opening and closing auctions (call phase and uncrossing) of one simulated instrument.

Optional (``simulator.auctions``, off by default). At the open (after the seeded opening book, the
instrument in ``PRE_OPEN``) and at the close (the session end), call-phase limit orders arrive on both
sides at prices uniform within ``auction_width_ticks`` of the latent price, so bids and asks cross;
the uncrossing then executes the largest volume possible at one price and the instrument goes
``OPEN`` (at the open) or ``CLOSED`` (at the close).

The uncrossing price maximises the executable volume ``min(D(p), S(p))`` (``D``: bid volume at ``p``
or higher, ``S``: ask volume at ``p`` or lower); ties go to the smaller imbalance ``|D(p) - S(p)|``,
then to the price nearest the reference (the latent price), then to the lower price. The executed
orders are the best-priced ones of each side, time priority within a price (price-time priority), so
the book left behind is uncrossed. As in continuous trading the last resting order of a side is never
taken (the volume is capped so that one order stays on each side).

Events: the call-phase ``OrderAdd`` records, one ``OrderExecute`` per filled order (both sides, at the
uncrossing price) and ONE ``Trade`` print of the whole volume (aggressor ``NO_SIDE``; LOBSTER's type 6
"cross trade"), all in one atomic event (only its last record carries ``LAST``): the book is crossed
inside the event and never at an event boundary, where a consumer checks it.
"""

from __future__ import annotations

import msgspec

from engine.events import LAST, NO_SIDE, SIM, OrderAdd, OrderExecute, Trade


def uncrossing_price(bids: list[tuple[int, int]], asks: list[tuple[int, int]],
                     reference: float) -> tuple[int, int] | None:
    """``(price, volume)`` of the uncrossing of ``(price, size)`` bids and asks; None when they do not cross."""
    if not bids or not asks or max(p for p, _ in bids) < min(p for p, _ in asks):
        return None
    best: tuple | None = None
    for p in sorted({p for p, _ in bids} | {p for p, _ in asks}):
        demand = sum(q for price, q in bids if price >= p)
        supply = sum(q for price, q in asks if price <= p)
        volume = min(demand, supply)
        key = (-volume, abs(demand - supply), abs(p - reference), p)
        if best is None or key < best[0]:
            best = (key, p, volume)
    assert best is not None
    return (best[1], best[2]) if best[2] > 0 else None


def uncross(ex, t: float, reference: float, call: list[tuple[int, int, int]]) -> list[int]:
    """Add the call-phase ``(side, price, size)`` orders to ``ex``'s book and uncross it (one atomic event).

    Returns the ids of the call-phase orders (some are filled, some rest afterwards).
    """
    book = ex.book
    ts, recv = ex.stamp(t)
    out, iid = ex.out, ex.iid
    oids = []
    for side, price, size in call:
        oid = ex.next_oid
        ex.next_oid = oid + 1
        out.append(OrderAdd(iid, ts, recv, ex.seq, SIM, oid, side, price, size))
        ex.seq += 1
        book.rest(oid, side, price, size)
        oids.append(oid)
    crossing = uncrossing_price(book.levels(1), book.levels(-1), reference)
    if crossing is not None:
        price, volume = crossing
        for side, prices in ((1, book.bid_prices), (-1, book.ask_prices)):  # keep one order on each side
            worst = book.queue(side, prices[0] if side > 0 else prices[-1])[-1][1]
            total = sum(size for _, size in book.levels(side))
            volume = min(volume, total - worst)
    if crossing is not None and volume > 0:
        trade = ex.next_trade
        for side, prices in ((1, book.bid_prices), (-1, book.ask_prices)):
            left = volume
            while left > 0:
                for oid, size in book.queue(side, prices[-1] if side > 0 else prices[0]):  # front first
                    take = left if left < size else size
                    out.append(OrderExecute(iid, ts, recv, ex.seq, SIM, oid, side, price, take, trade))
                    ex.seq += 1
                    book.take(oid, take)
                    left -= take
                    if left == 0:
                        break
        out.append(Trade(iid, ts, recv, ex.seq, SIM, price, volume, NO_SIDE, trade, ex.next_match))
        ex.seq += 1
        ex.next_trade, ex.next_match = trade + 1, ex.next_match + 1
        ex.last_trade = price
        ex.n_auctions += 1
    if out and out[-1].ts_event == ts and not out[-1].flags & LAST:
        out[-1] = msgspec.structs.replace(out[-1], flags=out[-1].flags | LAST)
    return oids
