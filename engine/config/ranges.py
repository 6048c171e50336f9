"""The ranges of the configuration's values, as types, and the checks that involve several values.

A key's range is part of its type (``queue_size: Count`` is ``Annotated[int, Meta(ge=1)]``), so
msgspec refuses an out-of-range value with the bound and the key's path (``Expected `int` >= 1 -
at `$.pipeline.queue_size```) and ``msgspec.inspect`` shows every range (a test checks that no
numeric key lacks one). Checks across values (a ``(lo, hi)`` pair, a size mixture, two ordered keys)
run in the sections' ``__post_init__`` and raise ``FieldError``, which the loader reports at the
key's own path. Numbers must also be finite: TOML accepts ``inf`` and ``nan`` (the loader refuses
them, see ``validation``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Annotated, Literal

import msgspec

MAX_SECONDS = 366 * 86_400.0  # a year of market time: the longest duration (the --duration flag's limit too)
MAX_SPEED = 1_000_000.0  # fastest pacing multiple of real time ("max" is unpaced)
MAX_SEED = 2**63 - 1  # the largest seed a SQLite INTEGER column holds
SESSION_START_RANGE_NS = (0, 4_102_444_800 * 10**9)  # 1970-01-01 .. 2100-01-01 UTC
PROBABILITY_TOLERANCE = 1e-6  # a size mixture's probabilities sum to 1 within this

Count = Annotated[int, msgspec.Meta(ge=1)]  # a size or a count: queues, batches, levels, lots, ticks
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]  # a scale, price or rate the code divides by
NonNegative = Annotated[float, msgspec.Meta(ge=0)]  # a rate, impact or pull where 0 switches it off
AtLeastOne = Annotated[float, msgspec.Meta(ge=1)]  # a multiplier that only raises a rate, a geometric mean
Share = Annotated[float, msgspec.Meta(ge=0, le=1)]  # a probability or a share of a whole
OpenShare = Annotated[float, msgspec.Meta(gt=0, lt=1)]  # a share strictly between 0 and 1
Seconds = Annotated[float, msgspec.Meta(gt=0, le=MAX_SECONDS)]  # a duration or time constant
Seed = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEED)]
BusyTimeout = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]  # SQLite's busy_timeout is a C int
Speed = Literal["max"] | Annotated[float, msgspec.Meta(gt=0, le=MAX_SPEED)]
Feed = Literal["simulator", "zero_intelligence"]
Profile = Literal["large_tick", "small_tick"]
FeeUnit = Literal["per_lot", "bps"]
LatencyKind = Literal["lognormal", "constant"]
QueueKind = Literal["fifo", "prob", "risk_averse"]
VenueKind = Literal["book_walk", "simulator"]
SizingMode = Literal["risk", "fixed"]
FeeRate = Annotated[float, msgspec.Meta(ge=-100, le=100)]  # a fee rate, per lot or in bps; negative = rebate

SYMBOL_PATTERN = r"^\S+$"
DECIMAL_PATTERN = r"^(?=[0-9.]*[1-9])[0-9]+(\.[0-9]+)?$"  # at least one non-zero digit: "0.01", "0.25", "1"
Symbol = Annotated[str, msgspec.Meta(pattern=SYMBOL_PATTERN)]
TickSize = Annotated[str, msgspec.Meta(pattern=DECIMAL_PATTERN)]
FilePath = Annotated[str, msgspec.Meta(min_length=1)]
OPTIONAL_JSON_PATTERN = r"^(.*\.json)?$"
OptionalJsonPath = Annotated[str, msgspec.Meta(pattern=OPTIONAL_JSON_PATTERN)]  # "" = none

PATTERN_MEANINGS = {
    SYMBOL_PATTERN: "a symbol without spaces, such as \"AAPL\"",
    DECIMAL_PATTERN: "a positive decimal string, such as \"0.01\"",
    OPTIONAL_JSON_PATTERN: "a path ending in .json, or \"\" for none",
}
"""What each pattern above asks for, in words (error messages show these instead of the regex)."""

SizeMix = Annotated[tuple[tuple[Count, Share], ...], msgspec.Meta(min_length=1)]
"""A discrete size mixture ``((lots, probability), ...)``; the probabilities sum to 1 (``check_mixture``)."""


class FieldError(ValueError):
    """A check across values failed; ``fields`` are the keys involved (the first one is reported)."""

    def __init__(self, problem: str, *fields: str) -> None:
        super().__init__(problem)
        self.fields = fields


def check_ordered(name: str, pair: tuple[float, float]) -> None:
    """A ``(lo, hi)`` range: ``lo <= hi``."""
    if pair[0] > pair[1]:
        raise FieldError(f"Expected [lo, hi] with lo <= hi, got {list(pair)}", name)


def check_mixture(name: str, mix: tuple[tuple[int, float], ...]) -> None:
    """A size mixture's probabilities sum to 1."""
    total = math.fsum(p for _, p in mix)
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        raise FieldError(f"Expected [lots, probability] pairs whose probabilities sum to 1, got {total:.6g}", name)


def check_distinct(name: str, values: Sequence[Hashable]) -> None:
    """No value twice (each names a feature column or a lane)."""
    seen: set[Hashable] = set()
    for value in values:
        if value in seen:
            raise FieldError(f"Expected distinct values, got {value!r} twice", name)
        seen.add(value)
