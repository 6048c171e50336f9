"""Parquet tapes: one row per event in typed columns, the tape header in the file's key-value metadata.

The same events as a JSON-lines tape (``feeds/tape.py``), laid out for columnar readers: every field
of every event type has a column (``docs/parquet-tapes.md`` has the table of columns and codes), a
kind lacking a field leaves it null, and ``kind`` is an ``int8`` code. Prices are ``int64`` ticks,
times ``int64`` ns, sides and actions ``int64`` codes, so a compiled loop can take the columns as
numpy arrays as they are.

Invariants:
- writing is in row groups of at most ``ROW_GROUP`` events (memory stays bounded while recording),
  zstd-compressed, each page with its CRC checksum (verified when read); the header (``TapeHeader``
  as JSON) is under the metadata key ``chimera-tape``;
- a value a column cannot hold (an integer outside int64) is a ``UsageError`` naming the column,
  raised before anything of its row group is written;
- reading decodes one row group at a time straight from its column arrays; the events are equal to
  those written, field for field; ``column_batches`` gives the numeric columns as numpy arrays;
- bad input is a ``ParquetInputError`` naming the file and, where it applies, the row group, the
  row (0-based over the file, as pandas numbers it) and the column; a bad row is raised after every
  event of the rows before it has been yielded, damage in a row group after every event of the row
  groups before it;
- a Parquet file is readable only once closed (its footer is written last): a recorder killed
  before ``close`` leaves a file that cannot be replayed, which the reader says.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import ParquetInputError, UsageError
from engine.events import (
    ALL_EVENT_TYPES,
    Event,
    InstrumentDef,
    OrderCancel,
    Trade,
    TruthLabel,
)
from engine.kernel.columns import FIELDS, KIND_CODES, ColumnBatch
from feeds.base import batched

METADATA_KEY = b"chimera-tape"
ROW_GROUP = 65_536  # events per row group
COMPRESSION = "zstd"
MAGIC = b"PAR1"

# ---- the schema -----------------------------------------------------------------------------------
KINDS: dict[int, type[Event]] = {code: cls for cls, code in KIND_CODES.items()}
assert set(KIND_CODES) == set(ALL_EVENT_TYPES)

LEVEL = pa.struct([("price", pa.int64()), ("size", pa.int64()), ("count", pa.int64())])
LEVELS = pa.list_(LEVEL)

# Column of each event field where it is not the field's own name (shared columns keep the kernel's
# arrays few: a trade's aggressor is its ``side``, a partial cancel's cancelled lots its ``size``).
RENAMED = {(OrderCancel, "size_cancelled"): "size", (Trade, "aggressor"): "side", (TruthLabel, "kind"): "truth_kind"}

COLUMNS: dict[str, pa.DataType] = {"kind": pa.int8()}
for _cls in ALL_EVENT_TYPES:
    for _field in msgspec.structs.fields(_cls):
        _name = RENAMED.get((_cls, _field.name), _field.name)
        if _field.name in ("bids", "asks"):
            _type = LEVELS
        elif _field.name == "params":
            _type = pa.string()  # JSON object: {name: number or string}
        else:
            _type = {int: pa.int64(), str: pa.string(), bool: pa.bool_()}[_field.type]
        assert COLUMNS.setdefault(_name, _type) == _type, _name
SCHEMA = pa.schema([pa.field(name, kind, nullable=name != "kind") for name, kind in COLUMNS.items()])

# The columns of each kind, in its struct's field order (so ``cls(*values)`` rebuilds it).
KIND_COLUMNS: dict[type[Event], tuple[str, ...]] = {
    cls: tuple(RENAMED.get((cls, f), f) for f in cls.__struct_fields__) for cls in ALL_EVENT_TYPES
}
_NUMERIC = {name for name, kind in COLUMNS.items() if kind in (pa.int64(), pa.bool_())}
_PARAMS_DECODER = msgspec.json.Decoder(dict[str, float | int | str])
_ENCODE = msgspec.json.encode


def header_json(header: Any) -> bytes:
    """The tape header as it is stored under ``METADATA_KEY``."""
    return _ENCODE(header)


# ---- writing --------------------------------------------------------------------------------------
def _column(name: str, n: int, parts: list[tuple[np.ndarray, list[Any]]], path: Path) -> pa.Array:
    """One column of a row group of ``n`` rows from (row positions, values) parts; the rest is null."""
    kind = COLUMNS[name]
    if name in _NUMERIC:
        dtype = np.bool_ if kind == pa.bool_() else np.int64
        data = np.zeros(n, dtype=dtype)
        valid = np.zeros(n, dtype=np.bool_)
        for rows, values in parts:
            try:
                data[rows] = np.array(values, dtype=dtype)
            except OverflowError:
                bad = next(v for v in values if not -(2**63) <= v < 2**63)
                raise UsageError(f"{path}: cannot write Parquet tape: column {name!r} holds int64, "
                                 f"got {bad}") from None
            valid[rows] = True
        return pa.array(data, type=kind, mask=~valid)
    cells: list[Any] = [None] * n
    for rows, values in parts:
        if name in ("bids", "asks"):
            values = [[{"price": p, "size": s, "count": c} for p, s, c in levels] for levels in values]
        elif name == "params":
            values = [_ENCODE(v).decode() for v in values]
        for row, value in zip(rows.tolist(), values, strict=True):
            cells[row] = value
    try:
        return pa.array(cells, type=kind)
    except (pa.ArrowInvalid, OverflowError) as error:
        raise UsageError(f"{path}: cannot write Parquet tape: column {name!r}: {error}") from None


def events_table(events: list[Event], path: Path) -> pa.Table:
    """The row group holding ``events`` in order."""
    n = len(events)
    kinds = np.fromiter((KIND_CODES[type(e)] for e in events), dtype=np.int8, count=n)
    parts: dict[str, list[tuple[np.ndarray, list[Any]]]] = {}
    for code in np.unique(kinds).tolist():
        cls = KINDS[code]
        rows = np.flatnonzero(kinds == code)
        values = zip(*(msgspec.structs.astuple(events[i]) for i in rows.tolist()), strict=True)
        for name, column in zip(KIND_COLUMNS[cls], values, strict=True):
            parts.setdefault(name, []).append((rows, list(column)))
    arrays = [pa.array(kinds, type=pa.int8())]
    arrays += [_column(name, n, parts.get(name, []), path) for name in list(COLUMNS)[1:]]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


class ParquetTapeWriter:
    """Write events to a Parquet tape; the same interface as ``TapeWriter`` (a context manager)."""

    def __init__(self, path: Path, header: Any, *, level: int | None = None, row_group: int = ROW_GROUP) -> None:
        """Create ``path`` with ``header`` in its metadata.

        ``level`` is the zstd level (default: pyarrow's); ``row_group`` the events per row group.
        """
        if row_group < 1:
            raise UsageError(f"row group size must be at least 1, got {row_group}")
        self.path = path
        self.header = header
        self.row_group = row_group
        schema = SCHEMA.with_metadata({METADATA_KEY: header_json(header)})
        try:
            self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
                str(path), schema, compression=COMPRESSION, compression_level=level, write_page_checksum=True,
                use_dictionary=False)  # plain encoding: smaller and faster to read for these columns
        except OSError as error:
            raise UsageError(f"{path}: cannot write tape: {error}") from error
        self._pending: list[Event] = []
        self.count = 0  # events accepted so far

    def write(self, event: Event) -> None:
        """Append one event."""
        self._pending.append(event)
        self.count += 1
        if len(self._pending) >= self.row_group:
            self._drain()

    def write_many(self, events: Iterable[Event]) -> int:
        """Append every event of ``events``; returns how many were written."""
        written = 0
        for batch in batched(events, self.row_group):
            self._pending.extend(batch)
            written += len(batch)
            self.count += len(batch)
            if len(self._pending) >= self.row_group:
                self._drain()
        return written

    def flush(self) -> None:
        """Write the buffered events as a row group (they become readable only once the file is closed)."""
        self._open()
        self._drain()

    def close(self) -> None:
        """Write the buffered events and the footer (idempotent)."""
        if self._writer is None:
            return
        try:
            self._drain()
        finally:
            self._writer.close()
            self._writer = None

    def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.row_group], self._pending[self.row_group :]
            self._open().write_table(events_table(batch, self.path), row_group_size=self.row_group)

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            raise UsageError(f"{self.path}: tape writer is closed")
        return self._writer

    def __enter__(self) -> ParquetTapeWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---- reading --------------------------------------------------------------------------------------
def _open_file(path: Path) -> pq.ParquetFile:
    """The file's Parquet reader, or a ``ParquetInputError`` saying why it cannot be read."""
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            head = file.read(4)
            file.seek(max(size - 4, 0))
            tail = file.read(4)
    except OSError as error:
        raise UsageError(f"{path}: cannot read tape: {error.strerror or error}") from error
    if head != MAGIC:
        raise ParquetInputError(path, "file", f"not a Parquet file (starts with {head!r}, expected {MAGIC!r})")
    if tail != MAGIC or size < 12:
        raise ParquetInputError(path, "footer", f"file cut short at byte {size:,}: no Parquet footer (a recording "
                                "stopped before its tape was closed); none of its events can be read")
    try:
        return pq.ParquetFile(str(path), page_checksum_verification=True)
    except (pa.ArrowException, OSError) as error:
        raise ParquetInputError(path, "footer", f"unreadable Parquet footer: {error}") from None


def read_parquet_header(path: str | Path, file: pq.ParquetFile | None = None) -> Any:
    """The ``TapeHeader`` of the Parquet tape at ``path``, its columns checked against the schema."""
    from feeds.tape import FORMAT, VERSION, TapeHeader

    path = Path(path)
    file = file or _open_file(path)
    schema = file.schema_arrow
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ParquetInputError(path, "metadata", f"not a chimera tape: no {METADATA_KEY.decode()!r} key in the "
                                "file's key-value metadata")
    try:
        fields = msgspec.json.decode(raw)
        if not isinstance(fields, dict) or fields.get("format") != FORMAT:
            raise ParquetInputError(path, "metadata", f"not a chimera tape header: format {fields!r:.80}")
        if fields.get("version") != VERSION:
            raise ParquetInputError(path, "metadata", f"unsupported tape version {fields.get('version')!r} "
                                    f"(this reader: {VERSION})")
        header = msgspec.json.decode(raw, type=TapeHeader)
    except msgspec.DecodeError as error:
        raise ParquetInputError(path, "metadata", f"bad tape header: {error}") from None
    for name, kind in COLUMNS.items():
        index = schema.get_field_index(name)
        if index < 0:
            raise ParquetInputError(path, f"column {name!r}", "missing column")
        found = schema.field(index).type
        if found != kind:
            raise ParquetInputError(path, f"column {name!r}", f"wrong type {found} (expected {kind})")
    return header


class ParquetTapeFeed:
    """Replay a Parquet tape as a Feed, one row group at a time.

    ``strict`` is accepted for the same call as ``TapeFeed``; a Parquet tape has no malformed line to
    skip, so every bad row is an error.
    """

    def __init__(self, path: str | Path, *, strict: bool = False) -> None:
        """Open the tape at ``path`` and validate its footer, header and columns."""
        self.path = Path(path)
        self.strict = strict
        self.header = read_parquet_header(self.path, _open_file(self.path))
        self._stats = self._new_stats()

    def instruments(self) -> list[InstrumentDef]:
        """Instrument definitions from the tape header."""
        return list(self.header.instruments)

    def stats(self) -> dict[str, int]:
        """Counters of the current (or last) pass: row_groups, events."""
        return dict(self._stats)

    def events(self) -> Iterator[Event]:
        """Every event of the tape in file order; each call starts a new pass and resets the stats."""
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Event]]:
        """The events one row group at a time."""
        self._stats = stats = self._new_stats()
        file = _open_file(self.path)
        first_row = 0
        for group in range(file.num_row_groups):
            try:
                table = file.read_row_group(group, columns=list(COLUMNS))
            except (pa.ArrowException, OSError) as error:
                raise ParquetInputError(
                    self.path, f"row group {group} (rows {first_row:,}+)",
                    f"damaged: {error}; the {stats['events']:,} events before it were replayed") from None
            try:
                events = decode_table(table, self.path, group, first_row)
            except ParquetInputError as error:
                good, error = _before_bad_row(table, error, self.path, group, first_row)
                stats["events"] += len(good)
                if good:
                    yield good
                raise error from None
            first_row += table.num_rows
            stats["row_groups"] += 1
            stats["events"] += len(events)
            yield events

    def column_batches(self, columns: Iterable[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """The numeric columns one row group at a time as numpy arrays, no event objects built.

        ``columns`` defaults to every int64 and bool column (``kind`` included); a null (a kind lacking
        the field) reads as 0 / False, and ``kind`` says which fields of a row mean anything.
        """
        names = list(columns) if columns is not None else ["kind", *sorted(_NUMERIC, key=list(COLUMNS).index)]
        for name in names:
            if name != "kind" and name not in _NUMERIC:
                raise UsageError(f"{self.path}: column {name!r} is not a numeric column of a tape")
        file = _open_file(self.path)
        first_row = 0
        for group in range(file.num_row_groups):
            try:
                table = file.read_row_group(group, columns=names)
            except (pa.ArrowException, OSError) as error:
                raise ParquetInputError(self.path, f"row group {group} (rows {first_row:,}+)",
                                        f"damaged: {error}") from None
            first_row += table.num_rows
            yield {name: table.column(name).fill_null(False if COLUMNS[name] == pa.bool_() else 0).to_numpy()
                   for name in names}

    def kernel_batches(self) -> Iterator[ColumnBatch]:
        """The compiled kernel's input, one ``ColumnBatch`` per row group, no event objects built.

        Raises:
            ParquetInputError: a damaged row group, or a row whose ``kind`` is not a known code (the
                batches before it have been yielded).
        """
        first_row = 0
        file = _open_file(self.path)
        for group in range(file.num_row_groups):
            try:
                table = file.read_row_group(group, columns=[*FIELDS, "bids", "asks"])
            except (pa.ArrowException, OSError) as error:
                raise ParquetInputError(self.path, f"row group {group} (rows {first_row:,}+)",
                                        f"damaged: {error}") from None
            columns = {name: table.column(name).fill_null(False if COLUMNS[name] == pa.bool_() else 0).to_numpy()
                       .astype(np.int64) for name in FIELDS}
            unknown = ~np.isin(columns["kind"], list(KINDS))
            if unknown.any():
                row = first_row + int(np.flatnonzero(unknown)[0])
                raise ParquetInputError(self.path, _where(group, row, "kind"),
                                        f"unknown event kind code {int(columns['kind'][row - first_row])}", row)
            levels = {}
            for side in ("bid", "ask"):
                lists = table.column(f"{side}s").combine_chunks()
                values = lists.values  # the offsets index this child array as it is stored
                levels[f"{side}_off"] = lists.offsets.to_numpy().astype(np.int64)
                levels[f"{side}_px"] = values.field("price").to_numpy().astype(np.int64)
                levels[f"{side}_sz"] = values.field("size").to_numpy().astype(np.int64)
            first_row += table.num_rows
            yield ColumnBatch(**columns, **levels)

    @staticmethod
    def _new_stats() -> dict[str, int]:
        return {"row_groups": 0, "events": 0}


def decode_table(table: pa.Table, path: Path, group: int = 0, first_row: int = 0) -> list[Event]:
    """The events of one row group, in row order."""
    n = table.num_rows
    kind_column = table.column("kind")
    if kind_column.null_count:
        _raise_null(path, group, first_row, "kind", kind_column.is_null().to_numpy(zero_copy_only=False))
    kinds = kind_column.to_numpy()
    unknown = ~np.isin(kinds, list(KINDS))
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise ParquetInputError(path, _where(group, first_row + row, "kind"),
                                f"unknown event kind code {int(kinds[row])} (known: 1-{len(KINDS)})", first_row + row)
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    events: list[Event] = []
    positions = []
    for code in np.unique(kinds).tolist():
        cls = KINDS[code]
        rows = np.flatnonzero(kinds == code)
        values = [_values(table, name, rows, arrays, path, group, first_row) for name in KIND_COLUMNS[cls]]
        events.extend(map(cls, *values))
        positions.append(rows)
    if len(positions) <= 1 or n < 2:
        return events
    # events are grouped by kind; put them back in row order (itemgetter gathers in C)
    order = np.argsort(np.concatenate(positions), kind="stable").tolist()
    return list(itemgetter(*order)(events))


def _before_bad_row(table: pa.Table, error: ParquetInputError, path: Path, group: int,
                    first_row: int) -> tuple[list[Event], ParquetInputError]:
    """The events of the rows before the first bad row of a row group, and the error naming that row."""
    while error.row is not None and error.row > first_row:
        try:
            return decode_table(table.slice(0, error.row - first_row), path, group, first_row), error
        except ParquetInputError as earlier:
            error = earlier
    return [], error


def _values(table: pa.Table, name: str, rows: np.ndarray, cache: dict, path: Path, group: int,
            first_row: int) -> list[Any]:
    """Column ``name`` at ``rows`` as Python values; a null there is an error naming the row."""
    if name in _NUMERIC:
        if name not in cache:
            column = table.column(name)
            nulls = column.is_null().to_numpy(zero_copy_only=False)
            data = column.fill_null(False if COLUMNS[name] == pa.bool_() else 0).to_numpy()
            cache[name] = (data, nulls)
        data, nulls = cache[name]
        picked = nulls[rows]
        if picked.any():
            _raise_null(path, group, first_row, name, picked, rows)
        return data[rows].tolist()
    column = table.column(name).take(pa.array(rows))
    if column.null_count:
        _raise_null(path, group, first_row, name, column.is_null().to_numpy(zero_copy_only=False), rows)
    values = column.to_pylist()
    if name in ("bids", "asks"):
        return [tuple((lv["price"], lv["size"], lv["count"]) for lv in levels) for levels in values]
    if name == "params":
        decoded = []
        for row, text in zip(rows.tolist(), values, strict=True):
            try:
                decoded.append(_PARAMS_DECODER.decode(text))
            except msgspec.DecodeError as error:
                raise ParquetInputError(path, _where(group, first_row + row, name), str(error),
                                        first_row + row) from None
        return decoded
    return values


def _raise_null(path: Path, group: int, first_row: int, name: str, nulls: np.ndarray,
                rows: np.ndarray | None = None) -> None:
    at = int(np.flatnonzero(nulls)[0])
    row = int(rows[at]) if rows is not None else at
    raise ParquetInputError(path, _where(group, first_row + row, name), "null where the event's kind needs a value",
                            first_row + row)


def _where(group: int, row: int, column: str) -> str:
    return f"row group {group}, row {row:,}, column {column!r}"
