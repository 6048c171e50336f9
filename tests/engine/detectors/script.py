"""A script of hand-built market events for detector tests: L3 by default, L2 on request."""

from __future__ import annotations

from engine.events import ADD, DELETE, LAST, BookDelta, OrderAdd, OrderCancel, OrderDelete, OrderExecute, Trade

NS = 1_000_000_000
MS = 1_000_000


class Script:
    """Events of one instrument at chosen times, consecutive ``seq``; L3 by default, L2 with ``l2=True``."""

    def __init__(self, l2: bool = False) -> None:
        self.events: list = []
        self.ts = 10 * NS
        self.seq = 0
        self.oid = 0
        self.l2 = l2
        self.sizes: dict[tuple[int, int], int] = {}  # L2 level sizes
        self.orders: dict[int, int] = {}  # L2: size of each order added

    def at(self, ts: int) -> Script:
        self.ts = ts
        return self

    def emit(self, cls, *args, last: bool = True, **kwargs) -> None:
        self.events.append(cls(1, self.ts, self.ts, self.seq, LAST if last else 0, *args, **kwargs))
        self.seq += 1

    def add(self, side: int, price: int, size: int) -> int:
        """A resting order (L2: the level grows by ``size``); returns its id."""
        self.oid += 1
        self.orders[self.oid] = size
        if self.l2:
            level = self.sizes.get((side, price), 0) + size
            self.sizes[side, price] = level
            self.emit(BookDelta, side, price, level, ADD)
        else:
            self.emit(OrderAdd, self.oid, side, price, size)
        return self.oid

    def hit(self, side: int, price: int, fills: list[tuple[int, int]]) -> None:
        """One aggressive order against resting ``side`` at ``price``: ``fills`` = [(order id, size)]."""
        if self.l2:
            total = sum(size for _, size in fills)
            self.emit(Trade, price, total, -side, last=False)
            level = self.sizes.get((side, price), 0) - total
            self.sizes[side, price] = level
            self.emit(BookDelta, side, price, level, ADD if level else DELETE)
            return
        for i, (oid, size) in enumerate(fills):
            self.emit(OrderExecute, oid, side, price, size, last=False)
            self.emit(Trade, price, size, -side, last=i == len(fills) - 1)

    def delete(self, oid: int, side: int, price: int) -> None:
        if self.l2:
            level = self.sizes[side, price] - self.orders[oid]
            self.sizes[side, price] = level
            self.emit(BookDelta, side, price, level, ADD if level else DELETE)
        else:
            self.emit(OrderDelete, oid, side, price)

    def hidden(self, side: int, price: int, size: int) -> None:
        """An execution of hidden liquidity resting on ``side`` (no book change)."""
        self.emit(Trade, price, size, -side, 0, 0, True)

    def cancel(self, oid: int, side: int, price: int, size: int, left: int) -> None:
        """A partial cancel leaving ``left`` lots (L3 only)."""
        self.emit(OrderCancel, oid, side, price, size, left)

    def gap(self) -> None:
        """Skip one sequence number (the book marks itself STALE)."""
        self.seq += 1
