"""WatermarkMerge: released items plus the final flush are the global sort, whatever the interleaving."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.pipeline.merge import WatermarkMerge


class Item(msgspec.Struct, frozen=True):
    ts_recv: int
    lane: int
    seq: int

    def sort_key(self) -> tuple[int, int, int]:
        return (self.ts_recv, self.lane, self.seq)


def test_items_wait_for_the_slowest_lane():
    """An item is released only once every lane's watermark is strictly above its timestamp."""
    merge = WatermarkMerge([0, 1])
    a0, a1, b0 = Item(10, 0, 0), Item(20, 0, 1), Item(15, 1, 0)
    assert merge.push(0, 20, [a0, a1]) == []  # lane 1 has not reported yet
    assert merge.push(1, 10, []) == []  # 10 is not strictly above 10
    assert merge.push(1, 16, [b0]) == [a0, b0]
    assert merge.push(1, 30, []) == []  # lane 0 is still at 20, a1 may be followed by equal timestamps
    assert merge.push(0, 21, []) == [a1]
    assert merge.flush() == []


def test_end_of_stream_items_are_held_until_flush():
    """Items pushed without a watermark (a lane's flush) stay until flush, which returns all in order."""
    merge = WatermarkMerge([0, 1])
    late, early = Item(5, 1, 9), Item(3, 0, 9)
    assert merge.push(None, None, [late]) == []
    assert merge.push(0, None, [early]) == []
    assert merge.flush() == [early, late]
    assert merge.flush() == []


@st.composite
def lane_streams(draw):
    """Per-lane sorted items cut into chunks, each with a valid watermark, then randomly interleaved."""
    lanes = draw(st.integers(1, 4))
    pushes: list[list[tuple[int, int | None, list[Item]]]] = []
    everything: list[Item] = []
    for lane in range(lanes):
        times = sorted(draw(st.lists(st.integers(0, 40), max_size=25)))
        items = [Item(ts, lane, seq) for seq, ts in enumerate(times)]
        everything += items
        cuts = sorted(draw(st.lists(st.integers(0, len(items)), max_size=6)))
        chunks = [items[i:j] for i, j in zip([0, *cuts], [*cuts, len(items)], strict=True)]
        lane_pushes = []
        mark = -1
        for index, chunk in enumerate(chunks):
            nxt = next((c[0].ts_recv for c in chunks[index + 1:] if c), 50)
            low = max([mark, *(item.ts_recv for item in chunk)])
            mark = draw(st.integers(low, max(low, nxt)))  # >= every item sent, <= every item to come
            lane_pushes.append((lane, mark, chunk))
        if draw(st.booleans()):  # end of stream: the lane's flush output carries no watermark
            tail = [Item(50 + draw(st.integers(0, 5)), lane, len(items) + k) for k in range(draw(st.integers(0, 3)))]
            tail.sort(key=Item.sort_key)
            everything += tail
            lane_pushes.append((None, None, tail))
        pushes.append(lane_pushes)
    order: list[tuple[int, int | None, list[Item]]] = []
    cursors = [0] * lanes
    while any(c < len(p) for c, p in zip(cursors, pushes, strict=True)):
        ready = [i for i in range(lanes) if cursors[i] < len(pushes[i])]
        lane = draw(st.sampled_from(ready))
        order.append(pushes[lane][cursors[lane]])
        cursors[lane] += 1
    return lanes, order, everything


@settings(max_examples=300, deadline=None)
@given(case=lane_streams())
def test_released_then_flushed_items_are_the_global_sort(case):
    """For any interleaving, release order + flush is the global sort and nothing leaves before all lanes passed it."""
    lanes, order, everything = case
    merge = WatermarkMerge(list(range(lanes)))
    marks = dict.fromkeys(range(lanes), -1)
    out: list[Item] = []
    for lane, mark, chunk in order:
        if lane is not None and mark is not None:
            marks[lane] = mark
        released = merge.push(lane, mark, chunk)
        assert all(item.ts_recv < min(marks.values()) for item in released)
        out += released
    out += merge.flush()
    assert out == sorted(everything, key=Item.sort_key)
