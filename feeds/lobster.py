"""NASDAQ LOBSTER message/orderbook files -> Chimera events, the book reconciled after every message.

A LOBSTER day is two CSV files with one line per message: the *message* file (time, type, order
id, size, price, direction) and the *orderbook* file whose row k is the top ``W`` levels per side
*after* message k (ask price, ask size, bid price, bid size, level by level). A line such as::

    34200.190226476,4,11885113,21,2238100,1

(09:30:00.190226476 New York, a visible buy order executed 21 @ $223.81) becomes
``OrderExecute(order_id=11885113, side=BUY, price=22381, size=21)`` followed by
``Trade(price=22381, size=21, aggressor=SELL)``, both sharing one timestamp, LAST on the second.

Mapping (SPEC section 1): type 1 OrderAdd, 2 OrderCancel, 3 OrderDelete, 4 OrderExecute + Trade,
5 Trade(hidden, no book change), 7 Status (price -1 HALTED, 0 QUOTE_ONLY, 1 OPEN). Prices are
dollars x 10000, so ticks of $0.01 are ``price // 100`` (divisibility checked). Times are seconds
after midnight America/New_York, parsed exactly from the text into int ns since the epoch (digits
beyond the nanosecond, a float-printing artefact on one line of the AMZN sample, are rounded to
the nearest ns and counted).

Invariants of the stream ``LobsterFeed.events()`` yields:
- it opens with a ``BookSnapshot`` (SNAPSHOT|LAST) of orderbook row 0 at message 0's time; message
  0's book change is inside it, its trade (if any) follows;
- every event of one message shares its ``ts_event == ts_recv``; ``seq`` counts events from 0
  without holes; LAST marks the final event of each message's group;
- with reconciliation on, an ``OrderBook`` applying the stream holds exactly the file's top ``W``
  levels per side after every LAST.

Reconciliation. The message file only holds messages that touch the visible window, so a rebuilt
book is exact inside the window and blind beyond it. After each message the rebuilt window is
compared with the file's row (directly when the message touched that side or the file's side
changed; otherwise equality carries over from the previous row). A differing price that lay
strictly beyond the previous row's window edge (the ``W``-th level, when the side had ``W``
levels) is a window *entry*: its truth becomes visible only now, so the file's size is adopted
through ``BookDelta`` events (UPDATE with the size, or DELETE for a level that vanished out of
view) appended to that message's group. Any other difference is an *unexplained mismatch*: it is
recorded with its line, then repaired the same way so later rows stay comparable. With
``reconcile=False`` no corrections are made and the book drifts at the window edge (levels that
enter the window keep whatever size the book guessed, levels that vanished out of view linger).
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import msgspec
import numpy as np

from engine.book import BookCounters, OrderBook
from engine.errors import InputError, UsageError
from engine.events import (
    BUY,
    DELETE,
    HIDDEN,
    LAST,
    SELL,
    SNAPSHOT,
    UPDATE,
    BookDelta,
    BookSnapshot,
    Event,
    InstrumentDef,
    MarketState,
    OrderAdd,
    OrderCancel,
    OrderDelete,
    OrderExecute,
    Status,
    Trade,
)

TICK_SIZE = "0.01"
PRICE_SCALE = 100  # LOBSTER price units ($ x 10000) per $0.01 tick
VENUE = "NASDAQ"
TIMEZONE = "America/New_York"
DUMMY_PRICE = 9_999_999_999  # asks +, bids -: an empty level in the orderbook file
SAMPLE_SYMBOL = "AMZN"
SAMPLE_DATE = "2012-06-21"
REGULAR_SESSION_MS = (34_200_000, 57_600_000)  # 09:30-16:00, when the file name does not say
CHUNK = 8192  # messages mapped per batch
MAX_MISMATCH_DETAILS = 20
MESSAGE_FIELDS = ("time", "type", "order_id", "size", "price", "direction")
STATUS_OF_PRICE = {-1: MarketState.HALTED, 0: MarketState.QUOTE_ONLY, 1: MarketState.OPEN}
_NAME = re.compile(
    r"^(?P<symbol>[^_]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
    r"(?P<kind>message|orderbook)_(?P<levels>\d+)\.csv$"
)
_TIME = re.compile(r"^\d+(\.\d+)?$")
_INT = re.compile(r"^-?\d+$")
_ASK_SIDE, _BID_SIDE = 1, 2  # bits of the per-row "side changed" mask


# ---- file names -----------------------------------------------------------------------------------
class LobsterName(NamedTuple):
    """What a LOBSTER file name says: ``TICKER_YYYY-MM-DD_start_end_{message|orderbook}_N.csv``."""

    symbol: str
    date: date
    start_ms: int
    end_ms: int
    kind: str
    levels: int


def parse_file_name(path: str | Path) -> LobsterName | None:
    """Parse a LOBSTER file name; None when it does not follow the naming scheme."""
    match = _NAME.match(Path(path).name)
    if match is None:
        return None
    try:
        day = date.fromisoformat(match["date"])
    except ValueError:
        return None
    return LobsterName(match["symbol"], day, int(match["start"]), int(match["end"]), match["kind"],
                       int(match["levels"]))


def orderbook_path_for(message_path: str | Path) -> Path:
    """The orderbook file beside a message file (``..._message_5.csv`` -> ``..._orderbook_5.csv``)."""
    path = Path(message_path)
    name = parse_file_name(path)
    if name is None or name.kind != "message":
        raise UsageError(f"{path}: not a LOBSTER message file name (TICKER_YYYY-MM-DD_start_end_message_N.csv)")
    return path.with_name(path.name.replace("_message_", "_orderbook_"))


# ---- locating the sample data ---------------------------------------------------------------------
def _data_roots() -> list[Path]:
    """Where data may live: ``$CHIMERA_DATA``, then ``<repo root>/../shared/data``."""
    roots = []
    if os.environ.get("CHIMERA_DATA"):
        roots.append(Path(os.environ["CHIMERA_DATA"]))
    roots.append(Path(__file__).resolve().parent.parent.parent / "shared" / "data")
    return roots


def _cache_root() -> Path:
    """Extraction cache: ``$CHIMERA_CACHE/lobster``, else ``~/.cache/chimera/lobster``."""
    base = os.environ.get("CHIMERA_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "chimera") / "lobster"


def _sample_zip(level: int) -> Path | None:
    name = f"LOBSTER_SampleFile_{SAMPLE_SYMBOL}_{SAMPLE_DATE}_{level}.zip"
    for root in _data_roots():
        if (root / "lobster" / name).is_file():
            return root / "lobster" / name
    return None


def lobster_available(level: int) -> bool:
    """True when the AMZN 2012-06-21 sample zip for ``level`` levels can be found."""
    return _sample_zip(level) is not None


def locate_sample(level: int, cache_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Find the AMZN sample zip for ``level``, extract it once, return (message_csv, orderbook_csv).

    Raises:
        UsageError: the zip is in none of the data roots, or lacks the two CSV files.
    """
    archive = _sample_zip(level)
    if archive is None:
        where = " or ".join(str(root / "lobster") for root in _data_roots())
        raise UsageError(f"LOBSTER sample for {level} level(s) not found under {where} (set $CHIMERA_DATA)")
    target = Path(cache_dir) if cache_dir is not None else _cache_root()
    with zipfile.ZipFile(archive) as zf:
        members = {kind: _member(zf, archive, kind, level) for kind in ("message", "orderbook")}
        for info in members.values():
            _extract_once(zf, info, target)
    return target / Path(members["message"].filename).name, target / Path(members["orderbook"].filename).name


def _member(zf: zipfile.ZipFile, archive: Path, kind: str, level: int) -> zipfile.ZipInfo:
    for info in zf.infolist():
        name = parse_file_name(info.filename)
        if name is not None and name.kind == kind and name.levels == level:
            return info
    raise UsageError(f"{archive}: holds no LOBSTER {kind} file for {level} level(s)")


def _extract_once(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """Extract one member unless a file of the same size is already there (atomic rename)."""
    dest = target / Path(info.filename).name
    if dest.is_file() and dest.stat().st_size == info.file_size:
        return
    target.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    with zf.open(info) as src, partial.open("wb") as out:
        while block := src.read(1 << 20):
            out.write(block)
    os.replace(partial, dest)


# ---- time -----------------------------------------------------------------------------------------
def midnight_ns(day: date) -> int:
    """Epoch ns of the New York midnight that LOBSTER times count from (the day's trading offset).

    The UTC offset is taken at local noon, so a daylight-saving switch at 02:00 cannot shift a
    trading session (the exchange is closed on those Sundays anyway).
    """
    offset = datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(TIMEZONE)).utcoffset()
    assert offset is not None
    utc_midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (int(utc_midnight.timestamp()) - int(offset.total_seconds())) * 1_000_000_000


def parse_time_ns(text: str, base_ns: int) -> int:
    """Exact ns since the epoch of ``text`` seconds after ``base_ns`` (digits beyond 1 ns rounded).

    ``parse_time_ns("34200.017459617", midnight_ns(date(2012, 6, 21)))`` is
    ``1340285400017459617`` (13:30:00.017459617 UTC).
    """
    if not _TIME.match(text):
        raise ValueError(f"not a decimal number of seconds: {text!r}")
    seconds, _, fraction = text.partition(".")
    return base_ns + int(seconds) * 1_000_000_000 + _fraction_ns(int(fraction or "0"), len(fraction))


def _fraction_ns(value: int, digits: int) -> int:
    """ns of the decimal fraction ``0.<value>`` written with ``digits`` digits (half up beyond 9)."""
    if digits <= 9:
        return value * 10 ** (9 - digits)
    unit = 10 ** (digits - 9)
    return (value + unit // 2) // unit


# ---- reading the message file ---------------------------------------------------------------------
class _Fallback(Exception):
    """The vectorised reader met something unusual; the line-by-line reader decides."""


class Messages(NamedTuple):
    """Columns of a message file (numpy int64); ``price`` is in ticks, raw for status messages."""

    ts: np.ndarray
    type: np.ndarray
    order_id: np.ndarray
    size: np.ndarray
    price: np.ndarray
    direction: np.ndarray
    rounded: int  # timestamps with digits beyond the nanosecond (rounded)


def _read_text(path: Path, what: str) -> bytes:
    """File bytes with LF line ends and exactly one final newline; empty files are an error."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: cannot read LOBSTER {what} file: {error.strerror}") from error
    data = data.replace(b"\r\n", b"\n").rstrip(b"\n")
    if not data:
        raise InputError(path, 1, "line", f"empty {what} file")
    return data + b"\n"


def _loadtxt(lines: list[str], columns: int) -> np.ndarray:
    """Strict integer table (any warning, bad token or ragged row -> ``_Fallback``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            table = np.loadtxt(lines, delimiter=",", dtype=np.int64, comments=None, ndmin=2)
    except (ValueError, Warning) as error:
        raise _Fallback from error
    if table.shape != (len(lines), columns):
        raise _Fallback
    return table


def _messages_fast(data: bytes, base_ns: int) -> tuple[np.ndarray, ...]:
    """Vectorised parse: seconds and fraction become two integer columns, digit counts from bytes."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as error:
        raise _Fallback from error
    lines = text.replace(".", ",").splitlines()
    table = _loadtxt(lines, 7)
    raw = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(raw == 10)
    dots = np.flatnonzero(raw == 46)
    if len(dots) != len(lines):
        raise _Fallback
    starts = np.concatenate(([0], ends[:-1] + 1))
    if not ((dots > starts).all() and (dots < ends).all()):
        raise _Fallback
    first_commas = np.flatnonzero(raw == 44)[::5]  # exactly 5 commas per line once each has one dot
    digits = first_commas - dots - 1
    seconds, fraction = table[:, 0], table[:, 1]
    if (digits < 1).any() or (digits > 18).any() or (seconds < 0).any() or (fraction < 0).any():
        raise _Fallback
    short = digits <= 9
    ts = base_ns + seconds * 1_000_000_000 + np.where(short, fraction * 10 ** (9 - np.minimum(digits, 9)), 0)
    for i in np.flatnonzero(~short).tolist():
        ts[i] += _fraction_ns(int(fraction[i]), int(digits[i]))
    return ts, table[:, 2], table[:, 3], table[:, 4], table[:, 5], table[:, 6], int((~short).sum())


def _messages_slow(path: Path, data: bytes, base_ns: int) -> tuple[np.ndarray, ...]:
    """Line-by-line parse; raises ``InputError`` at the first malformed line."""
    columns: list[list[int]] = [[] for _ in MESSAGE_FIELDS]
    rounded = 0
    for number, line in enumerate(data.decode("ascii", errors="replace").split("\n")[:-1], start=1):
        fields = line.split(",")
        if len(fields) != len(MESSAGE_FIELDS):
            problem = "blank line" if not line.strip() else f"expected 6 comma-separated fields, found {len(fields)}"
            raise InputError(path, number, "line", problem)
        try:
            columns[0].append(parse_time_ns(fields[0], base_ns))
        except ValueError:
            raise InputError(path, number, "time", f"not a decimal number of seconds: {fields[0]!r}") from None
        rounded += len(fields[0].partition(".")[2]) > 9
        for column, name, text in zip(columns[1:], MESSAGE_FIELDS[1:], fields[1:], strict=True):
            if not _INT.match(text):
                raise InputError(path, number, name, f"not an integer: {text!r}")
            column.append(int(text))
    return (*(np.array(column, dtype=np.int64) for column in columns), rounded)


def read_messages(path: str | Path, base_ns: int, price_scale: int = PRICE_SCALE) -> Messages:
    """Parse and validate a message file into columns (times in epoch ns, prices in ticks).

    Raises:
        InputError: naming file, line and field: wrong column count, non-numeric field, unknown type,
            bad direction, price off the tick grid, non-positive size, decreasing timestamps.
    """
    path = Path(path)
    data = _read_text(path, "message")
    try:
        columns = _messages_fast(data, base_ns)
    except _Fallback:
        columns = _messages_slow(path, data, base_ns)
    ts, kind, order_id, size, price, direction, rounded = columns
    _check_messages(path, ts, kind, order_id, size, price, direction, base_ns, price_scale)
    ticks = np.where(kind == 7, price, price // price_scale)
    return Messages(ts, kind, order_id, size, ticks, direction, rounded)


def _first(mask: np.ndarray) -> int | None:
    """Index of the first True, or None."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _check_messages(path: Path, ts, kind, order_id, size, price, direction, base_ns: int, scale: int) -> None:
    """Vectorised semantic checks; the first offending line becomes an ``InputError``."""
    book = (kind >= 1) & (kind <= 5)
    checks = (
        (~(book | (kind == 7)), "type", lambda i: f"unknown message type {kind[i]} (expected 1-5 or 7)"),
        ((direction != 1) & (direction != -1), "direction", lambda i: f"must be 1 or -1, got {direction[i]}"),
        (order_id < 0, "order_id", lambda i: f"negative order id {order_id[i]}"),
        (book & (size <= 0), "size", lambda i: f"must be positive, got {size[i]}"),
        (book & (price <= 0), "price", lambda i: f"must be positive, got {price[i]}"),
        (book & (price % scale != 0), "price",
         lambda i: f"{price[i]} is not a multiple of {scale} (one ${TICK_SIZE} tick in $ x 10000)"),
        ((kind == 7) & ((price < -1) | (price > 1)), "price",
         lambda i: f"a status message (type 7) needs price -1, 0 or 1, got {price[i]}"),
    )
    for mask, field, problem in checks:
        if (i := _first(mask)) is not None:
            raise InputError(path, i + 1, field, problem(i))
    if (i := _first(np.diff(ts) < 0)) is not None:
        earlier, later = _seconds_text(ts[i + 1], base_ns), _seconds_text(ts[i], base_ns)
        raise InputError(path, i + 2, "time", f"out of order: {earlier} s is earlier than {later} s on line "
                         f"{i + 1} (timestamps must not decrease)")


def _seconds_text(ts: int, base_ns: int) -> str:
    seconds, ns = divmod(int(ts) - base_ns, 1_000_000_000)
    return f"{seconds}.{ns:09d}"


# ---- reading the orderbook file -------------------------------------------------------------------
def _orderbook_field(column: int) -> str:
    """Column name of the orderbook file: ask_price_1, ask_size_1, bid_price_1, bid_size_1, ..."""
    level, kind = divmod(column, 4)
    return ("ask_price", "ask_size", "bid_price", "bid_size")[kind] + f"_{level + 1}"


class BookRows(NamedTuple):
    """An orderbook file in ticks: per side ``(rows, W)`` prices and sizes, bids in ascending order.

    ``ask_n``/``bid_n`` count real levels per row (dummies are the trailing ask slots and the
    leading ascending-bid slots); ``ask_edge``/``bid_edge`` are the W-th price, or +/-``DUMMY_PRICE``
    when the side holds fewer than W levels (then nothing of that side lies beyond the window);
    ``changed`` has bit 1 (asks) / 2 (bids) set when that side differs from the previous row.
    """

    levels: int
    ask_px: np.ndarray
    ask_sz: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_n: np.ndarray
    bid_n: np.ndarray
    ask_edge: np.ndarray
    bid_edge: np.ndarray
    changed: np.ndarray


def read_orderbook(path: str | Path, levels: int, price_scale: int = PRICE_SCALE) -> BookRows:
    """Parse and validate an orderbook file of ``levels`` levels per side.

    Raises:
        InputError: naming file, line and column (``ask_price_3``...): wrong column count, non-numeric
            value, price off the tick grid, unsorted levels, dummy levels not at the end, sizes <= 0.
    """
    path = Path(path)
    data = _read_text(path, "orderbook")
    lines = data.decode("ascii", errors="replace").splitlines()
    try:
        table = _loadtxt(lines, 4 * levels)
    except _Fallback:
        _diagnose_orderbook(path, lines, levels)
        raise InputError(path, 1, "line", "unreadable orderbook file") from None
    table = table.reshape(len(lines), levels, 4)
    _check_orderbook(path, table, price_scale)
    return _book_rows(table, price_scale)


def _diagnose_orderbook(path: Path, lines: list[str], levels: int) -> None:
    """Raise ``InputError`` at the first malformed orderbook line."""
    for number, line in enumerate(lines, start=1):
        fields = line.split(",")
        if len(fields) != 4 * levels:
            problem = "blank line" if not line.strip() else (
                f"expected {4 * levels} comma-separated fields ({levels} levels x 4), found {len(fields)}")
            raise InputError(path, number, "line", problem)
        for column, text in enumerate(fields):
            if not _INT.match(text):
                raise InputError(path, number, _orderbook_field(column), f"not an integer: {text!r}")


def _check_orderbook(path: Path, table: np.ndarray, scale: int) -> None:
    """Vectorised checks of an ``(rows, W, 4)`` orderbook table; the first offence in file order."""
    rows, levels, _ = table.shape
    offences = []
    for mask, column, problem in _orderbook_checks(table, scale):
        if (hit := _first(mask.ravel())) is not None:
            row, level = divmod(hit, levels)
            offences.append((row, 4 * level + column, problem))
    if offences:
        row, column, problem = min(offences)
        value = table[row].ravel()[column]
        raise InputError(path, row + 1, _orderbook_field(column), f"{value}: {problem}")


def _orderbook_checks(table: np.ndarray, scale: int) -> Iterator[tuple[np.ndarray, int, str]]:
    """``(mask over (rows, W), column 0-3 within a level, problem)`` for every orderbook rule."""
    for side, column, dummy, sign in (("ask", 0, DUMMY_PRICE, 1), ("bid", 2, -DUMMY_PRICE, -1)):
        price, size = table[:, :, column], table[:, :, column + 1]
        empty = price == dummy
        yield ~empty & ((price <= 0) | (price % scale != 0)), column, f"price not a positive multiple of {scale}"
        yield empty & (size != 0), column + 1, "an empty (dummy) level must have size 0"
        yield ~empty & (size <= 0), column + 1, "an occupied level must have a positive size"
        disorder = np.zeros_like(empty)
        disorder[:, 1:] = (empty[:, :-1] & ~empty[:, 1:]) | (
            ~empty[:, 1:] & (sign * (price[:, 1:] - price[:, :-1]) <= 0))
        order = "increasing" if sign > 0 else "decreasing"
        yield disorder, column, f"{side} prices must be strictly {order} with dummy levels last"


def _book_rows(table: np.ndarray, scale: int) -> BookRows:
    levels = table.shape[1]
    ask_raw, bid_raw = table[:, :, 0], table[:, ::-1, 2]
    ask_real, bid_real = ask_raw != DUMMY_PRICE, bid_raw != -DUMMY_PRICE
    ask_px = np.where(ask_real, ask_raw // scale, 0)
    bid_px = np.where(bid_real, bid_raw // scale, 0)
    ask_n, bid_n = ask_real.sum(axis=1), bid_real.sum(axis=1)
    changed = np.full(len(table), _ASK_SIDE | _BID_SIDE, dtype=np.int64)
    changed[1:] = (np.where((table[1:, :, :2] != table[:-1, :, :2]).any(axis=(1, 2)), _ASK_SIDE, 0)
                   | np.where((table[1:, :, 2:] != table[:-1, :, 2:]).any(axis=(1, 2)), _BID_SIDE, 0))
    return BookRows(
        levels, ask_px, table[:, :, 1].copy(), bid_px, table[:, ::-1, 3].copy(), ask_n, bid_n,
        np.where(ask_n == levels, ask_px[:, -1], DUMMY_PRICE),
        np.where(bid_n == levels, bid_px[:, 0], -DUMMY_PRICE),
        changed,
    )


# ---- mapping and reconciliation -------------------------------------------------------------------
class Mismatch(msgspec.Struct, frozen=True):
    """One level where the rebuilt book and the orderbook file disagree without explanation."""

    line: int  # 1-based line in both files
    message_type: int
    side: int
    price: int  # ticks
    ours: int  # size in the rebuilt book (0: absent)
    file: int  # size in the orderbook file (0: absent)


class ReconcileReport(msgspec.Struct, frozen=True):
    """Outcome of rebuilding a LOBSTER day and checking it against the orderbook file every row."""

    rows: int  # orderbook rows verified (= messages)
    events: int  # events emitted, snapshot and adoptions included
    levels: int  # W, levels per side in the file
    levels_checked: int  # (row, side, level) triples verified: row 0 is the seed, later rows are
    # compared element by element or, when neither the file nor the book changed a side, carried over
    sides_compared: int  # (row, side) pairs of rows 1.. compared element by element
    window_entries_adopted: int  # levels set to the file's truth when they entered the window
    unexplained_mismatches: int
    mismatches: list[Mismatch]  # the first few unexplained ones
    timestamps_rounded: int
    book: BookCounters


class _Replay:
    """One pass over a day: maps messages to events in batches and keeps the book reconciled."""

    def __init__(self, messages: Messages, rows: BookRows | None, instrument_id: int, reconcile: bool) -> None:
        self.messages = messages
        self.rows = rows
        self.instrument_id = instrument_id
        self.reconcile = reconcile and rows is not None
        self.levels = rows.levels if rows is not None else 10
        self.book = OrderBook(instrument_id, view_levels=self.levels)
        self.seq = 0
        self.events = 0
        self.adopted = 0
        self.unexplained = 0
        self.details: list[Mismatch] = []
        self.window: tuple[list, list, list, list] = ([], [], [], [])

    def batches(self) -> Iterator[list[Event]]:
        """Event lists of up to ``CHUNK`` messages each, in stream order."""
        total = len(self.messages.ts)
        first = 0
        if self.rows is not None:
            yield self._count(self._seed())
            first = 1
        for lo in range(first, total, CHUNK):
            yield self._count(self._chunk(lo, min(total, lo + CHUNK)))

    def _count(self, batch: list[Event]) -> list[Event]:
        self.events += len(batch)
        return batch

    def _emit(self, out: list[Event], ev: Event) -> None:
        self.book.update(ev)
        out.append(ev)
        self.seq += 1

    def _seed(self) -> list[Event]:
        """Orderbook row 0 as a snapshot at message 0's time, then message 0's trade or status."""
        rows, m, iid = self.rows, self.messages, self.instrument_id
        assert rows is not None
        ts, kind = int(m.ts[0]), int(m.type[0])
        na, nb, w = int(rows.ask_n[0]), int(rows.bid_n[0]), self.levels
        asks = tuple((p, s, 0) for p, s in zip(rows.ask_px[0, :na].tolist(), rows.ask_sz[0, :na].tolist(),
                                               strict=True))
        bids = tuple((p, s, 0) for p, s in zip(rows.bid_px[0, w - nb:].tolist()[::-1],
                                               rows.bid_sz[0, w - nb:].tolist()[::-1], strict=True))
        out: list[Event] = []
        self._emit(out, BookSnapshot(iid, ts, ts, self.seq, SNAPSHOT | LAST, bids, asks, w, na < w and nb < w))
        price, size, side = int(m.price[0]), int(m.size[0]), int(m.direction[0])
        if kind in (4, 5):
            hidden = kind == 5
            self._emit(out, Trade(iid, ts, ts, self.seq, LAST | (HIDDEN if hidden else 0), price, size, -side,
                                  0, 0, hidden))
        elif kind == 7:
            self._emit(out, Status(iid, ts, ts, self.seq, LAST, STATUS_OF_PRICE[price]))
        return out

    def _load_window(self, lo: int, hi: int) -> list[int]:
        """File rows ``lo..hi`` as per-row lists (dummies stripped); returns the side-check masks."""
        rows, w = self.rows, self.levels
        assert rows is not None
        ask_px, ask_sz = rows.ask_px[lo:hi].tolist(), rows.ask_sz[lo:hi].tolist()
        bid_px, bid_sz = rows.bid_px[lo:hi].tolist(), rows.bid_sz[lo:hi].tolist()
        for j in np.flatnonzero(rows.ask_n[lo:hi] < w).tolist():
            n = int(rows.ask_n[lo + j])
            ask_px[j], ask_sz[j] = ask_px[j][:n], ask_sz[j][:n]
        for j in np.flatnonzero(rows.bid_n[lo:hi] < w).tolist():
            n = int(rows.bid_n[lo + j])
            bid_px[j], bid_sz[j] = bid_px[j][w - n:], bid_sz[j][w - n:]
        self.window = (ask_px, ask_sz, bid_px, bid_sz)
        return rows.changed[lo:hi].tolist()

    def _chunk(self, lo: int, hi: int) -> list[Event]:  # noqa: C901 - the hot loop, kept in one piece
        """Events of messages ``lo..hi``; with reconciliation, each row checked and repaired."""
        m, iid, book, w = self.messages, self.instrument_id, self.book, self.levels
        ts_l, kind_l, oid_l = m.ts[lo:hi].tolist(), m.type[lo:hi].tolist(), m.order_id[lo:hi].tolist()
        size_l, price_l, side_l = m.size[lo:hi].tolist(), m.price[lo:hi].tolist(), m.direction[lo:hi].tolist()
        reconcile = self.reconcile
        changed = self._load_window(lo, hi) if reconcile else []
        ask_px, ask_sz, bid_px, bid_sz = self.window
        # OrderBook keeps these list objects for its whole life (it clears, never rebinds them)
        book_ask_px, book_ask_sz, book_bid_px, book_bid_sz = book.ask_prices, book.ask_sizes, book.bid_prices, \
            book.bid_sizes
        update = book.update
        out: list[Event] = []
        append = out.append
        seq = self.seq
        for j in range(hi - lo):
            kind, ts, side = kind_l[j], ts_l[j], side_l[j]
            if kind == 1:
                ev = OrderAdd(iid, ts, ts, seq, LAST, oid_l[j], side, price_l[j], size_l[j])
            elif kind == 3:
                ev = OrderDelete(iid, ts, ts, seq, LAST, oid_l[j], side, price_l[j], size_l[j])
            elif kind == 4:
                ex = OrderExecute(iid, ts, ts, seq, 0, oid_l[j], side, price_l[j], size_l[j], 0)
                update(ex)
                append(ex)
                seq += 1
                ev = Trade(iid, ts, ts, seq, LAST, price_l[j], size_l[j], -side)
            elif kind == 2:
                ev = OrderCancel(iid, ts, ts, seq, LAST, oid_l[j], side, price_l[j], size_l[j], -1)
            elif kind == 5:
                ev = Trade(iid, ts, ts, seq, LAST | HIDDEN, price_l[j], size_l[j], -side, 0, 0, True)
                side = 0
            else:
                ev = Status(iid, ts, ts, seq, LAST, STATUS_OF_PRICE[price_l[j]])
                side = 0
            update(ev)
            append(ev)
            seq += 1
            if not reconcile:
                continue
            check = changed[j] | (_BID_SIDE if side == BUY else _ASK_SIDE if side == SELL else 0)
            if (check & _ASK_SIDE and (book_ask_px[:w] != ask_px[j] or book_ask_sz[:w] != ask_sz[j])) or (
                    check & _BID_SIDE and (book_bid_px[-w:] != bid_px[j] or book_bid_sz[-w:] != bid_sz[j])):
                self.seq = seq
                self._repair(out, lo + j, j, kind, ts)
                seq = self.seq
        self.seq = seq
        return out

    def _repair(self, out: list[Event], k: int, j: int, kind: int, ts: int) -> None:
        """Bring both sides' windows to row ``k``'s truth with ``BookDelta`` events; classify each fix."""
        fixes = self._fixes(SELL, k, j, kind) + self._fixes(BUY, k, j, kind)
        if not fixes:
            return
        last = out.pop()
        out.append(msgspec.structs.replace(last, flags=last.flags & ~LAST))
        for i, (side, price, size) in enumerate(fixes):
            flags = LAST if i == len(fixes) - 1 else 0
            action = UPDATE if size else DELETE
            self._emit(out, BookDelta(self.instrument_id, ts, ts, self.seq, flags, side, price, size, action, 0))

    def _fixes(self, side: int, k: int, j: int, kind: int) -> list[tuple[int, int, int]]:
        """``(side, price, size)`` fixes that make one side's window equal row ``k``.

        The window is the file's W levels, or the whole side when the file shows fewer. A price
        strictly beyond row ``k - 1``'s W-th level is an entry (adopted); anything else is unexplained.
        """
        rows, book, w = self.rows, self.book, self.levels
        assert rows is not None
        ask_px, ask_sz, bid_px, bid_sz = self.window
        if side == SELL:
            truth = dict(zip(ask_px[j], ask_sz[j], strict=True))
            prices, sizes = book.ask_prices, book.ask_sizes
            lo, hi = 0, bisect_right(prices, ask_px[j][-1]) if len(truth) == w else len(prices)
            edge = int(rows.ask_edge[k - 1])
        else:
            truth = dict(zip(bid_px[j], bid_sz[j], strict=True))
            prices, sizes = book.bid_prices, book.bid_sizes
            lo, hi = bisect_left(prices, bid_px[j][0]) if len(truth) == w else 0, len(prices)
            edge = int(rows.bid_edge[k - 1])
        ours = dict(zip(prices[lo:hi], sizes[lo:hi], strict=True))
        fixes = []
        for price in sorted(truth.keys() | ours.keys()):
            want, have = truth.get(price, 0), ours.get(price, 0)
            if want == have:
                continue
            if (price > edge) if side == SELL else (price < edge):
                self.adopted += 1
            else:
                self.unexplained += 1
                if len(self.details) < MAX_MISMATCH_DETAILS:
                    self.details.append(Mismatch(k + 1, kind, side, price, have, want))
            fixes.append((side, price, want))
        return fixes

    def sides_compared(self) -> int:
        """(row, side) pairs compared directly: the side a message touched plus every side the file changed."""
        if not self.reconcile:
            return 0
        assert self.rows is not None
        m = self.messages
        touched = np.where((m.type <= 4) & (m.direction == BUY), _BID_SIDE,
                           np.where((m.type <= 4) & (m.direction == SELL), _ASK_SIDE, 0))
        check = (self.rows.changed | touched)[1:]
        return int(((check & _ASK_SIDE) > 0).sum() + ((check & _BID_SIDE) > 0).sum())

    def report(self) -> ReconcileReport:
        rows = len(self.messages.ts) if self.reconcile else 0
        return ReconcileReport(
            rows=rows,
            events=self.events,
            levels=self.levels,
            levels_checked=rows * 2 * self.levels,
            sides_compared=self.sides_compared(),
            window_entries_adopted=self.adopted,
            unexplained_mismatches=self.unexplained,
            mismatches=list(self.details),
            timestamps_rounded=self.messages.rounded,
            book=msgspec.structs.replace(self.book.counters),
        )


# ---- the feed -------------------------------------------------------------------------------------
class LobsterFeed:
    """A LOBSTER day as a ``Feed``: one instrument, events in replay order, reconciled by default.

    Args:
        message_path: the ``..._message_N.csv`` file.
        orderbook_path: the matching orderbook file; default: beside the message file by name.
        instrument_id: id carried by every event.
        symbol: overrides the ticker of the file name.
        day: overrides the date of the file name (needed when the name does not follow the scheme).
        reconcile: check and repair the book against the orderbook file after every message.

    Raises:
        UsageError: a file is missing (the orderbook only when ``reconcile``), or symbol/date are
            neither in the file name nor given.
    """

    def __init__(
        self,
        message_path: str | Path,
        orderbook_path: str | Path | None = None,
        *,
        instrument_id: int = 0,
        symbol: str | None = None,
        day: date | str | None = None,
        reconcile: bool = True,
    ) -> None:
        self.message_path = Path(message_path)
        if not self.message_path.is_file():
            raise UsageError(f"{self.message_path}: LOBSTER message file not found")
        name = parse_file_name(self.message_path)
        if orderbook_path is None and name is not None and name.kind == "message":
            orderbook_path = orderbook_path_for(self.message_path)
        self.orderbook_path = Path(orderbook_path) if orderbook_path is not None else None
        if self.orderbook_path is not None and not self.orderbook_path.is_file():
            if reconcile:
                raise UsageError(f"{self.orderbook_path}: LOBSTER orderbook file not found; reconciliation "
                                 "needs it (reconcile=False replays without it)")
            self.orderbook_path = None
        if reconcile and self.orderbook_path is None:
            raise UsageError(f"{self.message_path}: no orderbook file given and none can be derived from the "
                             "name; reconciliation needs it (reconcile=False replays without it)")
        self.reconcile = reconcile
        self.symbol = symbol or (name.symbol if name else None)
        day = date.fromisoformat(day) if isinstance(day, str) else day or (name.date if name else None)
        if self.symbol is None or day is None:
            raise UsageError(f"{self.message_path}: symbol and date are not in the file name "
                             "(TICKER_YYYY-MM-DD_start_end_message_N.csv); pass symbol= and day=")
        self.day = day
        self.base_ns = midnight_ns(day)
        self.levels = name.levels if name else None
        start_ms, end_ms = (name.start_ms, name.end_ms) if name else REGULAR_SESSION_MS
        opens, closes = self.base_ns + start_ms * 1_000_000, self.base_ns + end_ms * 1_000_000
        self._definition = InstrumentDef(instrument_id, opens, opens, 0, LAST, self.symbol, VENUE, TICK_SIZE,
                                         PRICE_SCALE, session_open=opens, session_close=closes)
        self._replay: _Replay | None = None

    def instruments(self) -> list[InstrumentDef]:
        """The single instrument of the file."""
        return [self._definition]

    def events(self) -> Iterator[Event]:
        """Every event of the day in replay order (each call replays from the start)."""
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Event]]:
        """The same events in lists (one list per few thousand messages)."""
        messages = read_messages(self.message_path, self.base_ns)
        rows = self._read_rows(len(messages.ts)) if self.orderbook_path is not None else None
        self._replay = _Replay(messages, rows, self._definition.instrument_id, self.reconcile)
        yield from self._replay.batches()

    def _read_rows(self, count: int) -> BookRows:
        assert self.orderbook_path is not None
        levels = self.levels or _columns(self.orderbook_path) // 4
        rows = read_orderbook(self.orderbook_path, levels)
        if len(rows.ask_n) != count:
            raise InputError(self.orderbook_path, min(count, len(rows.ask_n)) + 1, "line",
                             f"{len(rows.ask_n)} orderbook rows for {count} messages in {self.message_path.name}")
        return rows

    def stats(self) -> dict[str, int]:
        """Counters of the last replay: messages, events, reconciliation and book integrity."""
        if self._replay is None:
            return {"messages": 0, "events": 0}
        report = self._replay.report()
        counters = {f"book_{key}": value for key, value in msgspec.structs.asdict(report.book).items()}
        return {"messages": len(self._replay.messages.ts), "events": report.events, "rows_checked": report.rows,
                "levels_checked": report.levels_checked, "sides_compared": report.sides_compared,
                "window_entries_adopted": report.window_entries_adopted,
                "unexplained_mismatches": report.unexplained_mismatches,
                "timestamps_rounded": report.timestamps_rounded, **counters}

    def report(self) -> ReconcileReport:
        """The reconciliation report of the last replay (run ``events()`` or ``batches()`` first)."""
        if self._replay is None:
            raise UsageError("no replay yet: iterate events() or batches() first")
        return self._replay.report()


def _columns(path: Path) -> int:
    """Number of comma-separated fields on the first line of a file."""
    with path.open("rb") as handle:
        return handle.readline().count(b",") + 1


def reconcile_file(message: str | Path, orderbook: str | Path | None = None, *,
                   instrument_id: int = 0) -> ReconcileReport:
    """Rebuild a whole LOBSTER day, reconciling every row, and report."""
    feed = LobsterFeed(message, orderbook, instrument_id=instrument_id)
    for _ in feed.batches():
        pass
    return feed.report()


__all__ = [
    "BookRows",
    "LobsterFeed",
    "LobsterName",
    "Messages",
    "Mismatch",
    "ReconcileReport",
    "lobster_available",
    "locate_sample",
    "midnight_ns",
    "orderbook_path_for",
    "parse_file_name",
    "parse_time_ns",
    "read_messages",
    "read_orderbook",
    "reconcile_file",
]
