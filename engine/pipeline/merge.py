"""Canonical merge of the lanes' outputs in front of the portfolio-level stages.

Lanes run concurrently, so their outputs reach the shared queue in an order that depends on
scheduling. The merge holds items until every lane has advanced past them (each lane reports a
watermark: the largest ``ts_recv`` it has fully processed) and releases them sorted by their
``sort_key()``. Scoring, risk and execution therefore see the same sequence for any queue size,
batch size or schedule, and the same sequence as the synchronous reference path.
"""

from __future__ import annotations

import heapq
from itertools import count


class WatermarkMerge:
    def __init__(self, lanes: list[int]) -> None:
        self.marks = dict.fromkeys(lanes, -1)
        self.heap: list = []
        self._tiebreak = count()

    def push(self, lane: int | None, watermark: int | None, items: list) -> list:
        """Add one lane's items; return every item that can no longer be preceded, in order.

        ``watermark`` None (a lane's end-of-stream flush) holds the items until ``flush``.
        """
        for item in items:
            heapq.heappush(self.heap, (item.sort_key(), next(self._tiebreak), item))
        if watermark is not None and lane is not None:
            self.marks[lane] = watermark
        low = self.low
        released = []
        heap = self.heap
        while heap and heap[0][0][0] < low:  # strictly below: equal timestamps may still arrive
            released.append(heapq.heappop(heap)[2])
        return released

    @property
    def low(self) -> int:
        """The lowest lane watermark: every item below it has been released."""
        return min(self.marks.values())

    def flush(self) -> list:
        """End of stream: everything left, in order."""
        heap = self.heap
        return [heapq.heappop(heap)[2] for _ in range(len(heap))]
