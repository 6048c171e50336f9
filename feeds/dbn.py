"""Databento DBN files (plain or zstd) as a Feed: the MBO, MBP-10 and trades schemas, via databento-dbn.

A DBN file is a header (``b"DBN"`` and a version byte), the metadata (dataset, schema, symbology)
and records, e.g. one 56-byte MBO record per order book event. The package decodes the metadata
(``Metadata.decode``) and every record of another type than the schema's (symbol mappings, system
and error messages, versions 1 and 2 upgraded to 3); runs of the schema's own records, whose layout
is the same in versions 1 to 3, are viewed straight from the bytes as numpy columns in the
package's record layout (``_dtypes``, the table its client's ``to_ndarray`` uses), so
``feeds/dbn_events.py`` maps columns to events instead of reading attributes record by record.

Opening a feed reads the file once, before anything runs: it checks the header, the metadata, every
record's type and length, that the file ends on a record boundary (and, for zstd, at the end of a
frame), and collects the instrument ids that occur. Symbols come from the file's
``SymbolMappingMsg`` records (live files), else from the metadata's symbology (historical files),
else the id itself; a symbol shared by several ids (a parent or continuous symbol across a roll)
becomes ``SYMBOL@ID``. The tick size is ``tick_size``: one decimal string for every instrument, or
a function of the symbol (the CLI passes ``[instruments.SYMBOL].tick_size``, or ``--tick-size``).

Errors are ``DbnError`` (exit 2), one line naming the file: not a DBN file, an unsupported version,
metadata that does not decode, a schema other than mbo, mbp-10 and trades, a record of another type
(symbol mappings, system and error messages are allowed and counted), a file cut inside a record or
a zstd frame, a corrupt zstd stream; during replay, a price off the tick grid (naming the record and
field).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from decimal import Decimal, InvalidOperation
from itertools import chain
from operator import index
from pathlib import Path
from typing import IO, Any

import msgspec
import numpy as np
from databento_dbn import (
    DBNDecoder,
    DBNError,
    ErrorMsg,
    MBOMsg,
    MBP10Msg,
    Metadata,
    RType,
    Schema,
    SType,
    SymbolMappingMsg,
    SystemMsg,
    TradeMsg,
)

from engine.errors import ChimeraError, UsageError
from engine.events import LAST, Event, InstrumentDef
from feeds.dbn_events import DbnError, RecordMapper

MAGIC = b"DBN"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
VERSIONS = (1, 2, 3)
CHUNK = 1 << 20  # bytes read per call
DEFAULT_TICK_SIZE = "0.01"
RECORD_CLASSES: dict[str, type] = {"mbo": MBOMsg, "mbp-10": MBP10Msg, "trades": TradeMsg}

TickSize = str | Callable[[str], str]


# ---- bytes ------------------------------------------------------------------------------------------
def _content(path: Path) -> Iterator[bytes]:
    """The file's bytes, decompressed when it starts with the zstd magic."""
    try:
        file = path.open("rb")
    except OSError as error:
        raise DbnError(f"{path}: cannot read: {error.strerror or error}") from None
    with file:
        head = file.read(4)
        if head != ZSTD_MAGIC:
            yield head
            while chunk := file.read(CHUNK):
                yield chunk
            return
        yield from _unzstd(path, head, file)


def _unzstd(path: Path, head: bytes, file: IO[bytes]) -> Iterator[bytes]:
    """Decompress concatenated zstd frames; a corrupt stream or one cut inside a frame is an error."""
    import zstandard

    new = zstandard.ZstdDecompressor().decompressobj
    decompressor, fed, offset, chunk = new(), False, 0, head
    while True:
        if not chunk:
            chunk = file.read(CHUNK)
            if not chunk:
                break
        try:
            out = decompressor.decompress(chunk)
        except zstandard.ZstdError as error:
            raise DbnError(f"{path}: corrupt zstd stream after compressed byte {offset}: {error}") from None
        offset += len(chunk)
        fed = True
        if out:
            yield out
        if decompressor.eof:
            chunk, decompressor, fed = decompressor.unused_data, new(), False
            offset -= len(chunk)
        else:
            chunk = b""
    if fed:
        raise DbnError(f"{path}: truncated: the file ends inside a zstd frame (it was cut short)")


def _check_header(path: Path, head: bytes) -> int:
    """The version byte of a DBN header, or the error saying what the file is not."""
    if not head:
        raise DbnError(f"{path}: empty file (expected a Databento DBN file)")
    if not head.startswith(MAGIC):
        raise DbnError(f"{path}: not a DBN file (it starts with {head[:8]!r}, not {MAGIC!r})")
    if len(head) < 8:
        raise DbnError(f"{path}: truncated: the file ends inside the DBN header")
    if head[3] not in VERSIONS:
        raise DbnError(f"{path}: unsupported DBN version {head[3]} (this reader decodes versions "
                       f"{VERSIONS[0]} to {VERSIONS[-1]})")
    return head[3]


class _Reader:
    """One pass over a DBN file: the metadata, then its records in file order.

    ``records()`` yields ``(number, payload)``: a structured array of consecutive records of the
    schema's own type (the common case, viewed straight from the bytes), or one decoded record of
    another type (symbol mappings, system and error messages). ``number`` is the 1-based number of
    the first record, counted after the metadata.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = 0
        self.metadata: Metadata | None = None
        self.schema = ""
        self.dtype = np.dtype([])
        self._rtype = 0
        self._odd: DBNDecoder | None = None
        self._count = 0  # records read so far

    def records(self) -> Iterator[tuple[int, Any]]:
        chunks = _content(self.path)
        pending = self._read_metadata(chunks)
        for chunk in chain([b""], chunks):
            pending = yield from self._split(pending + chunk)
        if pending:
            raise DbnError(f"{self.path}: record {self._count + 1}: truncated: the file ends {len(pending)} bytes "
                           "into it (it was cut short)")

    def _read_metadata(self, chunks: Iterator[bytes]) -> bytes:
        """Check the header, decode the metadata with the package; the bytes after it."""
        head = b""
        for chunk in chunks:
            head += chunk
            if len(head) >= 8:
                break
        self.version = _check_header(self.path, head)
        end = 8 + int.from_bytes(head[4:8], "little")
        for chunk in chunks if len(head) < end else ():
            head += chunk
            if len(head) >= end:
                break
        if len(head) < end:
            raise DbnError(f"{self.path}: truncated: the file ends inside the DBN metadata")
        try:
            self.metadata = Metadata.decode(head[:end])
        except DBNError as error:
            raise DbnError(f"{self.path}: cannot decode the DBN metadata: {error}") from None
        self.schema = schema_of(self.path, self.metadata)
        kind = RECORD_CLASSES[self.schema]
        self.dtype = np.dtype(kind._dtypes + ([("ts_out", "u8")] if self.metadata.ts_out else []))
        self._rtype = index(RType.from_schema(Schema.from_str(self.schema)))
        self._odd = DBNDecoder(has_metadata=False, input_version=self.version, ts_out=self.metadata.ts_out)
        return head[end:]

    def _split(self, buffer: bytes) -> Generator[tuple[int, Any], None, bytes]:
        """Yield the complete records of ``buffer``: runs of the schema's records as one array each,
        any other record decoded on its own; return the incomplete tail."""
        size, position = self.dtype.itemsize, 0
        while position < len(buffer):
            rows = (len(buffer) - position) // size
            if rows:
                header = np.frombuffer(buffer, dtype=np.uint8, count=rows * size, offset=position)
                header = header.reshape(rows, size)[:, :2]
                own = (header[:, 0] == size // 4) & (header[:, 1] == self._rtype)
                run = rows if own.all() else int(np.argmin(own))
                if run:
                    first = self._count + 1
                    self._count += run
                    yield first, np.frombuffer(buffer, dtype=self.dtype, count=run, offset=position)
                    position += run * size
                    continue
            length = buffer[position] * 4
            if length == 0:
                raise DbnError(f"{self.path}: record {self._count + 1}: a record length of 0 (the file is corrupt)")
            if position + length > len(buffer):
                break
            self._count += 1
            yield self._count, self._decode_odd(buffer[position:position + length], buffer[position + 1], length)
            position += length
        return buffer[position:]

    def _decode_odd(self, raw: bytes, rtype: int, length: int) -> Any:
        """A record of another type than the schema's, decoded by the package."""
        number = self._count
        if rtype == self._rtype:
            raise DbnError(f"{self.path}: record {number}: {length}-byte {self.schema} record where its layout has "
                           f"{self.dtype.itemsize} bytes (an unsupported variant of the schema)")
        assert self._odd is not None
        try:
            [record] = self._odd.write_and_decode(raw)
        except (DBNError, ValueError) as error:
            raise DbnError(f"{self.path}: record {number}: cannot decode a record of type {rtype}: {error}") from None
        return record


def schema_of(path: Path, metadata: Metadata) -> str:
    """The metadata's schema name, if this feed reads it."""
    schema = metadata.schema
    name = getattr(schema, "value", schema)
    if name is None:
        raise DbnError(f"{path}: the metadata names no schema (a mixed-schema file); replay needs one of "
                       f"{', '.join(RECORD_CLASSES)}")
    if name not in RECORD_CLASSES:
        raise DbnError(f"{path}: schema {name!r} is not supported (supported: {', '.join(RECORD_CLASSES)})")
    return str(name)


# ---- instruments ------------------------------------------------------------------------------------
class _Scan(msgspec.Struct):
    """What one pass over the file found before replay."""

    version: int = 0
    schema: str = ""
    records: int = 0  # data records of the schema
    ids: set[int] = msgspec.field(default_factory=set)
    mapped: dict[int, str] = msgspec.field(default_factory=dict)  # symbols from SymbolMappingMsg records
    symbol_mappings: int = 0
    system_records: int = 0
    error_records: int = 0


def _scan(path: Path) -> tuple[_Scan, Metadata]:
    """Read the whole file once: check it and collect instrument ids and symbol mappings."""
    reader, scan = _Reader(path), _Scan()
    for number, payload in reader.records():
        if isinstance(payload, np.ndarray):
            scan.ids.update(np.unique(payload["instrument_id"]).tolist())
            scan.records += len(payload)
        else:
            _scan_other(path, scan, payload, number)
    assert reader.metadata is not None  # records() raised otherwise
    scan.version, scan.schema = reader.version, reader.schema
    return scan, reader.metadata


def _scan_other(path: Path, scan: _Scan, record: Any, number: int) -> None:
    """Count a record of another type: symbol mappings name instruments; unexpected types are errors."""
    if isinstance(record, SymbolMappingMsg):
        scan.symbol_mappings += 1
        symbol = _mapping_symbol(record)
        if symbol:
            scan.mapped[record.instrument_id] = symbol
    elif isinstance(record, SystemMsg):
        scan.system_records += 1
    elif isinstance(record, ErrorMsg):
        scan.error_records += 1
    else:
        raise DbnError(f"{path}: record {number}: a {type(record).__name__} record in a {scan.schema or 'DBN'} file "
                       "(only its own records, symbol mappings, system and error messages are read)")


def _mapping_symbol(record: SymbolMappingMsg) -> str:
    """The most specific name a symbol mapping gives its instrument (the output symbol, unless numeric)."""
    for symbol in (record.stype_out_symbol, record.stype_in_symbol):
        if symbol and symbol != str(record.instrument_id):
            return str(symbol)
    return ""


def metadata_symbols(metadata: Metadata) -> dict[int, str]:
    """Instrument id -> symbol from the metadata's symbology (first mapping interval wins)."""
    symbols: dict[int, str] = {}
    for key, intervals in metadata.mappings.items():
        for interval in intervals:
            out = str(interval["symbol"])
            if metadata.stype_out == SType.INSTRUMENT_ID and out.isdigit():
                symbols.setdefault(int(out), key)
            elif metadata.stype_in == SType.INSTRUMENT_ID and key.isdigit() and out:
                symbols.setdefault(int(key), out)
    return symbols


def units_per_tick(tick_size: str, symbol: str) -> int:
    """DBN price units (1e-9) in one tick of ``tick_size``; an error unless positive and on that grid."""
    try:
        units = Decimal(tick_size).scaleb(9)
    except (InvalidOperation, TypeError, ValueError):
        raise UsageError(f"tick size {tick_size!r} of {symbol}: not a decimal number") from None
    if not units.is_finite() or units <= 0 or units != units.to_integral_value():
        raise UsageError(f"tick size {tick_size!r} of {symbol}: must be positive and a multiple of 0.000000001 "
                         "(DBN's price unit)")
    return int(units)


def _definitions(scan: _Scan, metadata: Metadata, tick_size: TickSize) -> list[InstrumentDef]:
    """One InstrumentDef per instrument id seen in the data, symbols unique, ids ascending."""
    from_metadata = metadata_symbols(metadata)
    names = {iid: scan.mapped.get(iid) or from_metadata.get(iid) or str(iid) for iid in sorted(scan.ids)}
    uses: dict[str, int] = {}
    for name in names.values():
        uses[name] = uses.get(name, 0) + 1
    start = metadata.start
    end = metadata.end or 0
    definitions = []
    for iid, name in names.items():
        symbol = name if uses[name] == 1 else f"{name}@{iid}"
        tick = tick_size if isinstance(tick_size, str) else tick_size(name)
        definitions.append(InstrumentDef(iid, start, start, 0, LAST, symbol, metadata.dataset, tick,
                                         units_per_tick(tick, symbol), session_open=start, session_close=end))
    return definitions


# ---- the feed ---------------------------------------------------------------------------------------
class DbnFeed:
    """One DBN file (``.dbn`` or ``.dbn.zst``) as a Feed of Chimera events in file order.

    Args:
        path: the file.
        tick_size: one decimal string for every instrument, or a function of the symbol.
        check_sequence: count gaps in each instrument's venue ``sequence``; turn off for venues whose
            sequence numbers run across a whole channel (a file of a few instruments skips numbers by
            design); records flagged F_MAYBE_BAD_BOOK count as gaps either way.

    Raises:
        UsageError: the file is missing, or a tick size is not a positive multiple of 1e-9.
        DbnError: the file is not a DBN file Chimera reads (see the module docstring).
    """

    def __init__(self, path: str | Path, *, tick_size: TickSize = DEFAULT_TICK_SIZE,
                 check_sequence: bool = True) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(f"{self.path}: no such file")
        self.check_sequence = check_sequence
        self.scan, self.metadata = _scan(self.path)
        self.schema = self.scan.schema
        self._definitions = _definitions(self.scan, self.metadata, tick_size)
        self._units = {d.instrument_id: d.price_scale for d in self._definitions}
        self._mapper: RecordMapper | None = None

    def instruments(self) -> list[InstrumentDef]:
        """One definition per instrument that occurs in the file."""
        return list(self._definitions)

    def events(self) -> Iterator[Event]:
        """Every event of the file in file order (each call replays from the start)."""
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Event]]:
        """The same events in lists (about one per megabyte of records)."""
        symbols = {d.instrument_id: d.symbol for d in self._definitions}
        mapper = self._mapper = RecordMapper(self.path, self.schema, self._units, self.check_sequence, symbols)
        for number, payload in _Reader(self.path).records():
            if isinstance(payload, np.ndarray):
                mapper.map(payload, number)
                if out := mapper.take():
                    yield out
        if out := mapper.finish():
            yield out

    def stats(self) -> dict[str, int]:
        """Records, events, gaps and the other counters of the last replay (before one: of the scan)."""
        scan = self.scan
        counters = dict(self._mapper.stats) if self._mapper is not None else {"records": 0, "events": 0}
        return {"messages": scan.records, **counters, "instruments": len(self._definitions),
                "symbol_mappings": scan.symbol_mappings, "system_records": scan.system_records,
                "error_records": scan.error_records}


def import_dbn(path: str | Path, out: str | Path, *, tick_size: TickSize = DEFAULT_TICK_SIZE,
               check_sequence: bool = True, format: str | None = None) -> dict:
    """Record a DBN file into a tape at ``out``; returns the feed's counters plus what the file holds.

    ``format`` is the tape's format as ``feeds.tape.tape_format`` takes it (default: by ``out``'s name).

    A file that turns out malformed part way leaves no tape behind.
    """
    from feeds.tape import record

    feed = DbnFeed(path, tick_size=tick_size, check_sequence=check_sequence)
    source = Path(path).name
    try:
        record(feed, out, source=f"dbn:{source}",
               meta={"file": source, "dataset": feed.metadata.dataset, "schema": feed.schema,
                     "dbn_version": feed.scan.version}, format=format)
    except ChimeraError:
        Path(out).unlink(missing_ok=True)
        raise
    return {**feed.stats(), "symbols": [d.symbol for d in feed.instruments()], "dataset": feed.metadata.dataset,
            "schema": feed.schema, "dbn_version": feed.scan.version}


__all__ = ["DbnError", "DbnFeed", "import_dbn", "metadata_symbols", "units_per_tick"]
