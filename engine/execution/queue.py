"""Queue position of one resting order of ours at one price level (SPEC section 10).

Two trackers answer the same question, "how many of our lots does this event fill?", from the
events at our level, seen *before* the book applies them (``before``) and with the level's size
*after* (``after``):

- ``FifoQueue`` (L3 data: LOBSTER, DBN MBO, the simulator): exact FIFO. We join the back of the
  level: the orders resting there at our arrival (and any size the book knows only as L2, which
  arrived before us too) are ahead. Executions and cancels of orders ahead reduce ``ahead``; adds
  join behind us and never move us; a modify that raises an order's size or moves its price sends
  it behind us. Once nothing is ahead, an execution at our level fills us, partially if it is
  smaller than what we have left (a replay cannot let us take more than traded there).
- ``L2Queue`` (L2 data, or L3 data read as L2 for calibration): the probabilistic model of
  ``engine.execution.models`` over trades at our price and changes of the level's size.

Both ignore hidden prints at our price (hidden liquidity queues behind displayed orders on the
venues we model, and a midpoint print says nothing about our level).
"""

from __future__ import annotations

from engine.events import OrderCancel, OrderDelete, OrderExecute, OrderModify
from engine.execution.models import QueueModel, QueuePosition


class FifoQueue:
    """Exact FIFO position from order ids: ``ahead`` maps order id to lots still in front of us."""

    __slots__ = ("ahead", "anonymous")

    def __init__(self, queue: list[tuple[int, int]], level_size: int) -> None:
        self.ahead = dict(queue)
        self.anonymous = max(0, level_size - sum(self.ahead.values()))  # L2-only size: arrived before us

    @property
    def front(self) -> int:
        return self.anonymous + sum(self.ahead.values())

    def on_event(self, ev, known: bool) -> int:
        """Apply one L3 event at our level; ``known``: the book knew ``ev.order_id`` before it.

        Returns the lots this event fills of ours (before capping by what we have left).
        """
        kind = type(ev)
        oid = ev.order_id
        if kind is OrderExecute:
            if oid in self.ahead:
                self._reduce(oid, ev.size)
                return 0
            size = ev.size
            if not known:
                taken = min(self.anonymous, size)
                self.anonymous -= taken
                size -= taken
            return size if self.front == 0 else 0
        if kind is OrderCancel:
            if oid in self.ahead:
                self._reduce(oid, ev.size_cancelled)
            elif not known:
                self.anonymous = max(0, self.anonymous - ev.size_cancelled)
        elif kind is OrderDelete:
            if oid in self.ahead:
                del self.ahead[oid]
            elif not known and ev.size:
                self.anonymous = max(0, self.anonymous - ev.size)
        elif kind is OrderModify and oid in self.ahead:
            old = self.ahead[oid]
            if ev.size > old:
                del self.ahead[oid]  # loses priority: now behind us
            else:
                self.ahead[oid] = ev.size
        return 0

    def moved_away(self, oid: int) -> None:
        """An order ahead of us left our price (a modify to another price): it is no longer ahead."""
        self.ahead.pop(oid, None)

    def _reduce(self, oid: int, size: int) -> None:
        left = self.ahead[oid] - size
        if left > 0:
            self.ahead[oid] = left
        else:
            del self.ahead[oid]


class L2Queue:
    """Probabilistic position from level sizes and prints (``QueueModel`` decides what cancels do)."""

    __slots__ = ("model", "position")

    def __init__(self, model: QueueModel, level_size: int) -> None:
        self.model = model
        self.position = QueuePosition(level_size, level_size)

    @property
    def front(self) -> int:
        return max(0, round(self.position.front))

    def on_trade(self, size: int) -> int:
        """A print of ``size`` at our price; returns the lots it fills of ours (at most ``size``)."""
        self.model.on_trade(self.position, size)
        if self.position.front < 0:
            filled = min(size, int(-self.position.front + 0.5))
            self.position.front = 0.0
            return filled
        return 0

    def on_depth(self, new_size: int) -> None:
        self.model.on_depth(self.position, new_size)
