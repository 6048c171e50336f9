"""Shared set-ups of the strategy tests."""

from __future__ import annotations

from engine.config.strategies import ConfluenceParams
from strategies.confluence import Confluence


def tracker(d1: float, d10: float, d60: float, ready=(True, True, True)) -> Confluence:
    """A confluence tracker whose 1 s, 10 s and 60 s frames read ``d1``, ``d10``, ``d60`` (z-scores in use
    where ``ready``), each with that one close in its history."""
    c = Confluence(ConfluenceParams(z_min_samples=2))
    for frame, d, on in zip(c.frames.values(), (d1, d10, d60), ready, strict=True):
        frame.d = d
        frame.ofi.n = 10 if on else 0
        frame.history.extend([d])
    return c
