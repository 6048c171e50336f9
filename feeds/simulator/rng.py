"""Block random draws: numpy fills blocks, the per-event code pulls plain Python floats.

A numpy scalar call costs about a microsecond; a ``next()`` on a list iterator about 40 ns. Each
stream here draws ``block`` values at a time from its own ``numpy.random.Generator`` and hands them
out one by one through a bound ``__next__`` (``itertools.chain`` over the blocks, so the refill is
lazy and the hot path never tests an index).

Invariant: a stream's values depend only on its generator and on how many values were taken, so
the same seed and the same consumption give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain

import numpy as np

BLOCK = 4096


def stream(draw: Callable[[int], np.ndarray], block: int = BLOCK) -> Callable[[], float]:
    """Bound ``next`` of an endless stream whose values come ``block`` at a time from ``draw(n)``."""

    def blocks() -> Iterator[list]:
        while True:
            yield draw(block).tolist()

    return chain.from_iterable(blocks()).__next__


def tuple_stream(*draws: Callable[[int], np.ndarray], block: int = BLOCK) -> Callable[[], tuple]:
    """Bound ``next`` of an endless stream of tuples, one value from each ``draws[i]`` per tuple."""

    def blocks() -> Iterator[Iterator[tuple]]:
        while True:
            yield zip(*(draw(block).tolist() for draw in draws), strict=True)

    return chain.from_iterable(blocks()).__next__


def mixture_draw(rng: np.random.Generator, mix: tuple[tuple[int, float], ...]) -> Callable[[int], np.ndarray]:
    """``draw(n)``: n integers from a discrete mixture ``((value, probability), ...)``."""
    values = np.array([v for v, _ in mix], dtype=np.int64)
    probs = np.array([p for _, p in mix], dtype=float)
    probs = probs / probs.sum()
    return lambda n: rng.choice(values, size=n, p=probs)


def mixture_sampler(rng: np.random.Generator, mix: tuple[tuple[int, float], ...]) -> Callable[[], int]:
    """Stream of integers drawn from a discrete mixture ``((value, probability), ...)``."""
    return stream(mixture_draw(rng, mix))


def children(seed_seq: np.random.SeedSequence, n: int) -> list[np.random.Generator]:
    """``n`` independent PCG64 generators spawned from ``seed_seq``."""
    return [np.random.Generator(np.random.PCG64(s)) for s in seed_seq.spawn(n)]
