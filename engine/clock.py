"""Injected wall clock: the only place the engine reads real time.

Market logic uses event timestamps; the wall clock only paces live/replay speed, closes persistence
batches by age and measures throughput. Tests pass ``VirtualClock``, which never sleeps.
"""

from __future__ import annotations

import asyncio
import time


class WallClock:
    def now(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class VirtualClock:
    """A clock that jumps forward instead of sleeping."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start
        self.slept = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.t += seconds
            self.slept += seconds
        await asyncio.sleep(0)


class Pacer:
    """Maps event time to wall time at ``speed`` x real time (``speed=None`` means as fast as possible)."""

    def __init__(self, clock: WallClock | VirtualClock, speed: float | None) -> None:
        self.clock = clock
        self.speed = speed
        self.ts0: int | None = None
        self.wall0 = 0.0

    def due(self, ts_recv: int) -> float:
        """Wall-clock time (``clock.now()`` scale) at which an event stamped ``ts_recv`` is due."""
        if self.speed is None:
            return 0.0
        if self.ts0 is None:
            self.ts0 = ts_recv
            self.wall0 = self.clock.now()
        return self.wall0 + (ts_recv - self.ts0) / 1e9 / self.speed

    def delay(self, ts_recv: int) -> float:
        """Seconds to wait before releasing an event stamped ``ts_recv`` (0 when due or unpaced)."""
        if self.speed is None:
            return 0.0
        return max(0.0, self.due(ts_recv) - self.clock.now())
