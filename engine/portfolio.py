"""Positions, cash and P&L per instrument, in currency units (``ticks * tick_size * multiplier``).

Deterministic and event-time only. Invariants (tested): ``cash`` includes every fee paid (a rebate
adds to it); equity is ``equity0 + sum(cash) + sum(qty * mark * tick_value)`` with each instrument
marked to its latest mid; when every position is flat, the realised P&L (fees included) equals the
change in equity.
"""

from __future__ import annotations

from decimal import Decimal

from engine.events import Fill, InstrumentDef


class Position:
    __slots__ = ("qty", "cash", "realized", "avg_price", "fees", "mark")

    def __init__(self) -> None:
        self.qty = 0
        self.cash = 0.0
        self.realized = 0.0
        self.avg_price = 0.0  # ticks
        self.fees = 0.0
        self.mark = 0.0  # ticks: the latest mid (0 before the first)


class Portfolio:
    def __init__(self, instruments: list[InstrumentDef], equity0: float = 0.0) -> None:
        self.equity0 = equity0
        self.tick_value = {
            d.instrument_id: float(Decimal(d.tick_size) * Decimal(d.multiplier)) for d in instruments
        }
        self.positions = {d.instrument_id: Position() for d in instruments}

    def on_fill(self, fill: Fill) -> Position:
        """Apply one fill (fees included); return the updated position."""
        pos = self.positions[fill.instrument_id]
        value = self.tick_value[fill.instrument_id]
        signed = fill.side * fill.size
        pos.cash -= signed * fill.price * value + fill.fee
        pos.fees += fill.fee
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            total = pos.qty + signed
            pos.avg_price = (pos.avg_price * pos.qty + fill.price * signed) / total
            pos.qty = total
        else:
            closed = min(abs(signed), abs(pos.qty))
            direction = 1 if pos.qty > 0 else -1
            pos.realized += closed * direction * (fill.price - pos.avg_price) * value
            pos.qty += signed
            if pos.qty == 0:
                pos.avg_price = 0.0
            elif (pos.qty > 0) != (direction > 0):
                pos.avg_price = float(fill.price)
        pos.realized -= fill.fee
        if not pos.mark:
            pos.mark = float(fill.price)
        return pos

    def unrealized(self, instrument_id: int, mark: float) -> float:
        pos = self.positions[instrument_id]
        return pos.qty * (mark - pos.avg_price) * self.tick_value[instrument_id]

    def mark(self, instrument_id: int, mid: float) -> None:
        """Mark one instrument to its mid (ticks)."""
        self.positions[instrument_id].mark = mid

    def value(self, instrument_id: int) -> float:
        """Marked value of one position: ``qty * mark * tick_value``."""
        pos = self.positions[instrument_id]
        return pos.qty * pos.mark * self.tick_value[instrument_id]

    def equity(self) -> float:
        """``equity0 + cash + marked positions`` over every instrument."""
        return self.equity0 + sum(p.cash for p in self.positions.values()) + sum(
            self.value(iid) for iid in self.positions)

    def exposures(self) -> dict[int, int]:
        return {iid: p.qty for iid, p in self.positions.items() if p.qty}
