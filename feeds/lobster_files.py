"""LOBSTER files: names, the sample days' location, exact time parsing, and validated readers.

``read_messages`` and ``read_orderbook`` parse whole files with numpy (falling back to a
line-by-line reader that pinpoints the first malformed line as ``file:line`` and field); the
replay and reconciliation live in ``feeds/lobster.py``.
"""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from functools import reduce
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from engine.errors import InputError, UsageError
from engine.events import (
    BUY,
    MarketState,
)

TICK_SIZE = "0.01"
PRICE_SCALE = 100  # LOBSTER price units ($ x 10000) per $0.01 tick
VENUE = "NASDAQ"
TIMEZONE = "America/New_York"
DUMMY_PRICE = 9_999_999_999  # asks +, bids -: an empty level in the orderbook file
DAY_SECONDS = 86_400
SAMPLE_SYMBOL = "AMZN"
SAMPLE_DATE = "2012-06-21"
REGULAR_SESSION_MS = (34_200_000, 57_600_000)  # 09:30-16:00, when the file name does not say
CHUNK = 8192  # messages mapped per batch
MAX_MISMATCH_DETAILS = 20
MESSAGE_FIELDS = ("time", "type", "order_id", "size", "price", "direction")
_ASK_SIDE, _BID_SIDE = 1, 2  # per-row bits: that side of the file changed since the previous row
_ASK_ENTRY, _BID_ENTRY = 4, 8  # per-row bits: a price beyond the previous row's edge entered the window
STATUS_OF_PRICE = {-1: MarketState.HALTED, 0: MarketState.QUOTE_ONLY, 1: MarketState.OPEN}
_NAME = re.compile(
    r"^(?P<symbol>[^_]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
    r"(?P<kind>message|orderbook)_(?P<levels>\d+)\.csv$"
)
FILE_NAMES = "TICKER_YYYY-MM-DD_start_end_message_N.csv"  # LOBSTER's naming scheme, as hints show it
_TIME = re.compile(r"^\d+(\.\d+)?$")
_INT = re.compile(r"^-?\d+$")


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
        raise UsageError(f"{path}: not a LOBSTER message file name ({FILE_NAMES})")
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
    """Columns of a message file (numpy int64); ``price`` is in ticks, raw for status messages.

    Hidden executions (type 5) may print between ticks (midpoint fills, e.g. $223.795): their price
    is rounded to the nearest tick, a tie toward the resting order's side, and counted.
    """

    ts: np.ndarray
    type: np.ndarray
    order_id: np.ndarray
    size: np.ndarray
    price: np.ndarray
    direction: np.ndarray
    rounded: int  # timestamps with digits beyond the nanosecond (rounded)
    subtick: int  # hidden executions between ticks, rounded to a tick


def _read_bytes(path: Path, what: str) -> bytes:
    """File bytes with LF line ends and exactly one final newline; an empty file is an error."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: cannot read LOBSTER {what} file: {error.strerror}") from error
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if not data.endswith(b"\n") or data.endswith(b"\n\n"):
        data = data.rstrip(b"\n") + b"\n"
    if data == b"\n":
        raise InputError(path, 1, "line", f"empty {what} file")
    return data


def _integer_table(source, columns: int, rows: int) -> np.ndarray:
    """Strict integer table (any warning, bad token, ragged or skipped row -> ``_Fallback``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            table = np.loadtxt(source, delimiter=",", dtype=np.int64, comments=None, ndmin=2)
    except (ValueError, Warning) as error:
        raise _Fallback from error
    if table.shape != (rows, columns):
        raise _Fallback
    return table


def _messages_fast(data: bytes, base_ns: int) -> tuple:
    """Vectorised parse: seconds and fraction as two integer columns, fraction digits from bytes."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as error:
        raise _Fallback from error
    raw = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(raw == 10)
    table = _integer_table(text.replace(".", ",").splitlines(), 7, len(ends))
    dots = np.flatnonzero(raw == 46)
    if len(dots) != len(ends):
        raise _Fallback
    starts = np.concatenate(([0], ends[:-1] + 1))
    if not ((dots > starts).all() and (dots < ends).all()):
        raise _Fallback
    first_commas = np.flatnonzero(raw == 44)[::5]  # each line has one dot, so exactly five commas
    digits = first_commas - dots - 1
    seconds, fraction = table[:, 0], table[:, 1]
    if (digits < 1).any() or (digits > 18).any() or (fraction < 0).any() or (
            (seconds < 0) | (seconds >= DAY_SECONDS)).any():
        raise _Fallback
    short = digits <= 9
    ts = base_ns + seconds * 1_000_000_000 + np.where(short, fraction * 10 ** (9 - np.minimum(digits, 9)), 0)
    for i in np.flatnonzero(~short).tolist():
        ts[i] += _fraction_ns(int(fraction[i]), int(digits[i]))
    return ts, table[:, 2], table[:, 3], table[:, 4], table[:, 5], table[:, 6], int((~short).sum())


def _messages_slow(path: Path, data: bytes, base_ns: int) -> tuple:
    """Line-by-line parse; raises ``InputError`` at the first malformed line."""
    columns: list[list[int]] = [[] for _ in MESSAGE_FIELDS]
    rounded = 0
    for number, line in enumerate(data.decode("ascii", errors="replace").split("\n")[:-1], start=1):
        fields = line.split(",")
        if len(fields) != len(MESSAGE_FIELDS):
            found = f"expected 6 comma-separated fields, found {len(fields)}"
            raise InputError(path, number, "line", found if line.strip() else "blank line")
        try:
            ts = parse_time_ns(fields[0], base_ns)
        except ValueError:
            problem = f"not a decimal number of seconds: {fields[0]!r}"
            raise InputError(path, number, "time", problem) from None
        if not 0 <= ts - base_ns < DAY_SECONDS * 1_000_000_000:
            raise InputError(path, number, "time", f"{fields[0]} s is not within a day (0 to {DAY_SECONDS})")
        columns[0].append(ts)
        rounded += len(fields[0].partition(".")[2]) > 9
        for column, name, text in zip(columns[1:], MESSAGE_FIELDS[1:], fields[1:], strict=True):
            column.append(_integer(path, number, name, text))
    return (*(np.array(column, dtype=np.int64) for column in columns), rounded)


def _integer(path: Path, line: int, field: str, text: str) -> int:
    """A signed 64-bit decimal integer, else ``InputError``."""
    if not _INT.match(text) or not -(2**63) <= int(text) < 2**63:
        raise InputError(path, line, field, f"not a 64-bit integer: {text!r}")
    return int(text)


def read_messages(path: str | Path, base_ns: int, price_scale: int = PRICE_SCALE) -> Messages:
    """Parse and validate a message file into columns (times in epoch ns, prices in ticks).

    Raises:
        InputError: naming file, line and field: wrong column count, non-numeric field, unknown type,
            bad direction, price off the tick grid, non-positive size, decreasing timestamps.
    """
    path = Path(path)
    data = _read_bytes(path, "message")
    try:
        columns = _messages_fast(data, base_ns)
    except _Fallback:
        columns = _messages_slow(path, data, base_ns)
    ts, kind, order_id, size, price, direction, rounded = columns
    _check_messages(path, ts, kind, order_id, size, price, direction, base_ns, price_scale)
    ticks = np.where(kind == 7, price, price // price_scale)
    subtick = (kind == 5) & (price % price_scale != 0)
    if subtick.any():  # nearest tick, a tie toward the resting order's side (so the quote rule agrees)
        ties_down = (price + price_scale // 2 - 1) // price_scale
        ties_up = (price + price_scale // 2) // price_scale
        ticks = np.where(subtick, np.where(direction == BUY, ties_down, ties_up), ticks)
    return Messages(ts, kind, order_id, size, ticks, direction, rounded, int(subtick.sum()))


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
        ((kind <= 4) & (price % scale != 0), "price",
         lambda i: f"{price[i]} is not a multiple of {scale} (one ${TICK_SIZE} tick in $ x 10000)"),
        ((kind == 7) & ((price < -1) | (price > 1)), "price",
         lambda i: f"a status message (type 7) needs price -1, 0 or 1, got {price[i]}"),
    )
    offences = [(i, field, problem) for mask, field, problem in checks if (i := _first(mask)) is not None]
    if (i := _first(np.diff(ts) < 0)) is not None:
        earlier, later = _seconds_text(ts[i + 1], base_ns), _seconds_text(ts[i], base_ns)
        offences.append((i + 1, "time", lambda _: f"out of order: {earlier} s is earlier than {later} s on "
                         f"line {i + 1} (timestamps must not decrease)"))
    if offences:
        i, field, problem = min(offences, key=lambda offence: offence[0])
        raise InputError(path, i + 1, field, problem(i))


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
    leading ascending-bid slots, price 0 here); ``ask_edge``/``bid_edge`` are the W-th price, or
    +/-``DUMMY_PRICE`` when the side holds fewer than W levels (then nothing lies beyond the window);
    ``changed`` has bit 1 (asks) / 2 (bids) set when that side differs from the previous row, and
    bit 4 (asks) / 8 (bids) when the row shows a price beyond the previous row's edge (an entry).
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
            value, price off the tick grid, unsorted levels, dummy levels not last, bad sizes.
    """
    path = Path(path)
    data = _read_bytes(path, "orderbook")
    try:
        table = _integer_table(io.BytesIO(data), 4 * levels, data.count(b"\n"))
    except _Fallback:
        _diagnose_orderbook(path, data, levels)
        raise InputError(path, 1, "line", "unreadable orderbook file") from None
    table = table.reshape(len(table), levels, 4)
    _check_orderbook(path, table, price_scale)
    return _book_rows(table, price_scale)


def _diagnose_orderbook(path: Path, data: bytes, levels: int) -> None:
    """Raise ``InputError`` at the first malformed orderbook line."""
    for number, line in enumerate(data.decode("ascii", errors="replace").split("\n")[:-1], start=1):
        fields = line.split(",")
        if len(fields) != 4 * levels:
            found = f"expected {4 * levels} comma-separated fields ({levels} levels x 4), found {len(fields)}"
            raise InputError(path, number, "line", found if line.strip() else "blank line")
        for column, text in enumerate(fields):
            _integer(path, number, _orderbook_field(column), text)


def _check_orderbook(path: Path, table: np.ndarray, scale: int) -> None:
    """Vectorised checks of an ``(rows, W, 4)`` orderbook table; the first offence in file order."""
    rows, levels, _ = table.shape
    offences = []
    for mask, column, problem in _orderbook_checks(table, scale):
        if mask.any() and (hit := _first(mask.ravel())) is not None:
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
        off_grid = ~empty & ((price <= 0) | (price % scale != 0))
        yield off_grid, column, f"price not a positive multiple of {scale}"
        yield empty & (size != 0), column + 1, "an empty (dummy) level must have size 0"
        yield ~empty & (size <= 0), column + 1, "an occupied level must have a positive size"
        disorder = np.zeros_like(empty)
        disorder[:, 1:] = (empty[:, :-1] & ~empty[:, 1:]) | (
            ~empty[:, 1:] & (sign * (price[:, 1:] - price[:, :-1]) <= 0))
        order = "increasing" if sign > 0 else "decreasing"
        yield disorder, column, f"{side} prices must be strictly {order} with dummy levels last"


def _book_rows(table: np.ndarray, scale: int) -> BookRows:
    """Ticks, level counts, window edges and per-row change bits of a validated table."""
    rows, levels, _ = table.shape
    ask_raw, bid_raw = table[:, :, 0], table[:, ::-1, 2]
    ask_real, bid_real = ask_raw != DUMMY_PRICE, bid_raw != -DUMMY_PRICE
    ask_n, bid_n = _sum(ask_real), _sum(bid_real)
    ask_px = np.where(ask_real, ask_raw // scale, 0)
    bid_px = np.where(bid_real, bid_raw // scale, 0)
    ask_edge = np.where(ask_n == levels, ask_px[:, -1], DUMMY_PRICE)
    bid_edge = np.where(bid_n == levels, bid_px[:, 0], -DUMMY_PRICE)
    at = np.arange(rows)
    ask_worst = np.where(ask_n > 0, ask_px[at, np.maximum(ask_n - 1, 0)], 0)
    bid_worst = np.where(bid_n > 0, bid_px[at, np.minimum(levels - bid_n, levels - 1)], DUMMY_PRICE)
    flat = table.reshape(rows, 4 * levels)
    differs = flat[1:] != flat[:-1]
    ask_changed = differs[:, [c for c in range(4 * levels) if c % 4 < 2]].any(axis=1)
    bid_changed = differs[:, [c for c in range(4 * levels) if c % 4 >= 2]].any(axis=1)
    changed = np.full(rows, _ASK_SIDE | _BID_SIDE, dtype=np.int64)
    ask_entry, bid_entry = ask_worst[1:] > ask_edge[:-1], bid_worst[1:] < bid_edge[:-1]
    changed[1:] = (ask_changed * _ASK_SIDE | bid_changed * _BID_SIDE
                   | ask_entry * _ASK_ENTRY | bid_entry * _BID_ENTRY)
    return BookRows(levels, ask_px, table[:, :, 1].copy(), bid_px, table[:, ::-1, 3].copy(), ask_n, bid_n,
                    ask_edge, bid_edge, changed)





def _all(mask: np.ndarray) -> np.ndarray:
    """Row-wise ``all`` of a narrow 2-D array (column by column: faster than an axis reduction)."""
    return reduce(np.logical_and, mask.T)


def _any(mask: np.ndarray) -> np.ndarray:
    """Row-wise ``any`` of a narrow 2-D array."""
    return reduce(np.logical_or, mask.T)


def _sum(values: np.ndarray) -> np.ndarray:
    """Row-wise sum of a narrow 2-D array (bools count as 1)."""
    return reduce(np.add, values.T.astype(np.int64))
