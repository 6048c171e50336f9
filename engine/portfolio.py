"""Positions, cash and P&L per instrument, in currency units (``ticks * tick_size * multiplier``).

Deterministic and event-time only: equity is recorded after every fill, marked to the mid of the
book view the order was decided on (the exact mark-to-mid on every book update arrives with the
risk manager's drawdown monitor).
"""

from __future__ import annotations

from decimal import Decimal

from engine.events import Fill, InstrumentDef


class Position:
    __slots__ = ("qty", "cash", "realized", "avg_price")

    def __init__(self) -> None:
        self.qty = 0
        self.cash = 0.0
        self.realized = 0.0
        self.avg_price = 0.0  # ticks


class Portfolio:
    def __init__(self, instruments: list[InstrumentDef]) -> None:
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
        return pos

    def unrealized(self, instrument_id: int, mark: float) -> float:
        pos = self.positions[instrument_id]
        return pos.qty * (mark - pos.avg_price) * self.tick_value[instrument_id]
