"""The event vocabulary every stage speaks (SPEC section 1).

Invariants:
- prices are ``int`` ticks, sizes ``int`` lots, times ``int`` ns since the Unix epoch (UTC);
- every market event carries the header ``instrument_id, ts_event, ts_recv, seq, flags``;
- ``seq`` is consecutive per instrument and channel (market data and truth labels are separate
  channels), so a missing number is a gap;
- events are immutable ``msgspec.Struct`` values (``frozen=True, gc=False``) and encode as tagged
  JSON arrays (``array_like``), which is the tape format.

Sides use the sign convention ``BUY = +1`` (bid) and ``SELL = -1`` (ask); a trade's sign is its
aggressor's sign, ``NO_SIDE = 0`` when unknown.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

import msgspec

# ---- flags (bitset on every event) ---------------------------------------------------------------
LAST = 0x80  # last record of one atomic exchange event
SNAPSHOT = 0x20  # part of a snapshot / resync
BAD_TS = 0x08  # timestamp known to be unreliable
HIDDEN = 0x02  # hidden (non-displayed) liquidity involved
SIM = 0x01  # produced by the simulator

# ---- sides ----------------------------------------------------------------------------------------
BUY = 1
SELL = -1
NO_SIDE = 0

# ---- book delta actions ---------------------------------------------------------------------------
ADD = 1
UPDATE = 2
DELETE = 3
CLEAR = 4


class Side(IntEnum):
    """Readable names for the side sign convention."""

    BUY = BUY
    SELL = SELL
    NONE = NO_SIDE


class DeltaAction(IntEnum):
    ADD = ADD
    UPDATE = UPDATE
    DELETE = DELETE
    CLEAR = CLEAR


class MarketState(IntEnum):
    PRE_OPEN = 0
    OPEN = 1
    HALTED = 2
    QUOTE_ONLY = 3
    CLOSED = 4


class TruthKind(IntEnum):
    REGIME = 0
    NEWS = 1
    ICEBERG = 2
    ABSORPTION = 3
    STOP_CLUSTER = 4
    SWEEP = 5
    VACUUM = 6
    SPOOF = 7
    BURST = 8  # a transient burst of aggressive flow (simulator scenarios, e.g. range overextension)


class Outcome(IntEnum):
    NONE = 0
    REVERSAL = 1
    CONTINUATION = 2


class Regime(IntEnum):
    """The six market regimes of SPEC section 5 (truth labels carry these in ``params``)."""

    RANGE_LOW = 0
    RANGE_HIGH = 1
    TREND_UP = 2
    TREND_DOWN = 3
    BREAKOUT = 4
    SHOCK = 5


class OrderType(IntEnum):
    LIMIT = 0
    MARKET = 1
    IOC = 2
    STOP = 3


class Liquidity(IntEnum):
    MAKER = 0
    TAKER = 1


def flag_names(flags: int) -> list[str]:
    """Names of the bits set in ``flags`` (for display and error messages)."""
    names = {LAST: "LAST", SNAPSHOT: "SNAPSHOT", BAD_TS: "BAD_TS", HIDDEN: "HIDDEN", SIM: "SIM"}
    return [name for bit, name in names.items() if flags & bit]


# ---- market events --------------------------------------------------------------------------------
class Event(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """Common header of every market event."""

    instrument_id: int
    ts_event: int
    ts_recv: int
    seq: int
    flags: int

    channel: ClassVar[str] = "market"


class InstrumentDef(Event, frozen=True, tag="def"):
    """Static description of one instrument; ``tick_value = tick_size * multiplier``."""

    symbol: str
    venue: str
    tick_size: str  # decimal string, e.g. "0.01"
    price_scale: int  # raw source units per tick (LOBSTER: 100 for $0.01)
    lot_size: int = 1
    multiplier: str = "1"
    currency: str = "USD"
    session_open: int = 0
    session_close: int = 0
    fee_schedule_id: str = "default"
    profile: str = ""  # simulator profile name, empty for real data


class BookSnapshot(Event, frozen=True, tag="snap"):
    """Replaces one side-complete view of the book; levels are ``(price, size, count)`` best first."""

    bids: tuple[tuple[int, int, int], ...]
    asks: tuple[tuple[int, int, int], ...]
    n_levels: int
    complete: bool


class BookDelta(Event, frozen=True, tag="delta"):
    """L2 update: ``size`` is the absolute new level size (0 removes the level)."""

    side: int
    price: int
    size: int
    action: int
    count: int = 0


class OrderAdd(Event, frozen=True, tag="add"):
    """L3: a new resting order joins the back of its price level's queue."""

    order_id: int
    side: int
    price: int
    size: int


class OrderCancel(Event, frozen=True, tag="cxl"):
    """L3: partial cancel; the order keeps its queue priority.

    ``side`` and ``price`` are carried so that orders unknown to the book (added before the data
    starts) can still be applied to their L2 level. ``size_remaining`` is -1 when the source does
    not say.
    """

    order_id: int
    side: int
    price: int
    size_cancelled: int
    size_remaining: int = -1


class OrderDelete(Event, frozen=True, tag="del"):
    """L3: full removal of a resting order (``size`` = size removed, 0 if unknown)."""

    order_id: int
    side: int
    price: int
    size: int = 0


class OrderModify(Event, frozen=True, tag="mod"):
    """L3: new price/size; the order loses priority if the price changes or the size increases."""

    order_id: int
    side: int
    price: int
    size: int


class OrderExecute(Event, frozen=True, tag="exe"):
    """L3: a resting order of ``side`` executed ``size`` lots; the aggressor is ``-side``."""

    order_id: int
    side: int
    price: int
    size: int
    trade_id: int = 0


class Trade(Event, frozen=True, tag="trd"):
    """A print; ``aggressor`` is BUY/SELL/NO_SIDE, ``match_id`` groups one aggressive order's fills."""

    price: int
    size: int
    aggressor: int
    trade_id: int = 0
    match_id: int = 0
    hidden: bool = False


class Status(Event, frozen=True, tag="status"):
    """Market state change; halts pause strategies."""

    state: int
    reason: str = ""


class Clock(Event, frozen=True, tag="clk"):
    """Emitted after 100 ms of silence so quiet markets still close bars and fire timeouts."""


class TruthLabel(Event, frozen=True, tag="truth"):
    """Simulator ground truth; travels on its own channel, only to scorers and tests."""

    episode_id: int
    kind: int
    side: int
    price_lo: int
    price_hi: int
    t_start: int
    t_end: int
    params: dict[str, float | int | str] = {}
    outcome: int = 0

    channel: ClassVar[str] = "truth"


MARKET_EVENT_TYPES: tuple[type[Event], ...] = (
    InstrumentDef,
    BookSnapshot,
    BookDelta,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderModify,
    OrderExecute,
    Trade,
    Status,
    Clock,
)
ALL_EVENT_TYPES: tuple[type[Event], ...] = (*MARKET_EVENT_TYPES, TruthLabel)
AnyEvent = (
    InstrumentDef
    | BookSnapshot
    | BookDelta
    | OrderAdd
    | OrderCancel
    | OrderDelete
    | OrderModify
    | OrderExecute
    | Trade
    | Status
    | Clock
    | TruthLabel
)


# ---- detections -------------------------------------------------------------------------------------
class Detection(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag=True):
    """What a detector (engine/detectors/) found, where and when, with the evidence behind it.

    ``ts_recv``/``seq`` are those of the event that completed the detection (nothing after it was
    read; a bar-close decision carries the boundary and the last applied ``seq``); ``side`` is the
    side of the liquidity involved (``BUY`` = bid) unless a subclass says otherwise; prices in ticks;
    ``strength`` a detector-specific score (documented per kind) where larger means more certain;
    ``t_start`` the event time the episode began. Subclasses (one per kind, tagged by class name)
    add their typed evidence fields.
    """

    instrument_id: int
    ts_recv: int
    seq: int
    side: int
    price_lo: int
    price_hi: int
    strength: float
    t_start: int

    def detection_id(self) -> str:
        """Deterministic id: the same input always names its detections the same way."""
        return f"{self.instrument_id}:{self.seq}:{type(self).__name__}:{self.side}:{self.price_lo}"

    def evidence(self) -> dict:
        """The subclass's own fields (everything beyond the common header), for persistence."""
        common = set(Detection.__struct_fields__)
        return {f: getattr(self, f) for f in self.__struct_fields__ if f not in common}

    def sort_key(self) -> tuple[int, int, int, str]:
        return (self.ts_recv, self.instrument_id, self.seq, type(self).__name__)


# ---- own-order events -----------------------------------------------------------------------------
class OrderRequest(msgspec.Struct, frozen=True, gc=False, array_like=True, tag="req"):
    """An order the engine wants to send; ``ts_local`` is when it was decided."""

    instrument_id: int
    client_id: str
    side: int
    order_type: int
    price: int
    size: int
    tif: str
    ts_local: int
    strategy: str = ""
    signal_id: str = ""


class Ack(msgspec.Struct, frozen=True, gc=False, array_like=True, tag="ack"):
    instrument_id: int
    client_id: str
    ts_exchange: int
    ts_local: int


class Reject(msgspec.Struct, frozen=True, gc=False, array_like=True, tag="rej"):
    instrument_id: int
    client_id: str
    reason: str
    ts_exchange: int
    ts_local: int


class Fill(msgspec.Struct, frozen=True, gc=False, array_like=True, tag="fill"):
    """One execution of our order; ``fee`` in currency units, negative for a rebate."""

    instrument_id: int
    client_id: str
    side: int
    price: int
    size: int
    liquidity: int
    fee: float
    ts_exchange: int
    ts_local: int


class CancelAck(msgspec.Struct, frozen=True, gc=False, array_like=True, tag="cxlack"):
    instrument_id: int
    client_id: str
    ts_exchange: int
    ts_local: int


def sort_key(event: Event) -> tuple[int, int, int]:
    """Canonical replay order: ``(ts_recv, instrument_id, seq)``."""
    return (event.ts_recv, event.instrument_id, event.seq)
