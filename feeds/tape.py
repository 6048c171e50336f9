"""Tapes: recorded event streams, one JSON header line then one ``msgspec.json`` event per line.

A tape line is an ``array_like`` tagged event exactly as ``engine/events.py`` encodes it, e.g.::

    ["trd",0,1700000000000000000,1700000000000050000,17,128,1000300,100,-1,0,0,false]

Line 1 is a JSON object ``{"format": "chimera-tape", "version": 1, "instruments": [...],
"source": ..., "created_at": ..., "meta": {...}}``; the instruments are ``InstrumentDef`` events.

Invariants:
- writing picks the compression from the suffix (``.gz`` gzip, ``.zst`` zstandard, else plain);
  reading sniffs the magic bytes, so a renamed file still reads (``feeds/members.py``);
- events are encoded and decoded only by ``msgspec.json`` with the union of every event type,
  ``TruthLabel`` included (the truth channel is kept in the tape);
- a bad or missing header is always an ``InputError`` naming line 1;
- a malformed event line raises ``InputError(path, line, field, problem)`` when ``strict``, else it
  is skipped and counted in ``stats()["malformed_lines"]`` (nothing is logged per line);
- a compressed tape is a series of gzip members or zstd frames (a new one after the first write
  that fills ``MEMBER_BYTES`` of content, so members hold whole lines, each with its checksum); the
  reader passes a member's content on only once its checksum has been verified, so damaged bytes
  never reach the decoder as events;
- a tape cut mid-stream (the file ends inside a member, or a last line without newline does not
  parse) replays every event before the cut and sets ``stats()["truncated_tail"] = 1``: a killed
  recorder leaves such a tape;
- damage before the end (a checksum that fails, data the decompressor rejects, bytes after a member
  that start no member) raises ``CorruptInputError`` naming the file and the compressed byte offset
  where it was detected, after every event of the members before it has been replayed; the damaged
  member's content is dropped;
- blank lines are ignored; ``stats()["lines"]`` counts every physical line, the header included;
- ``RecordingFeed`` writes each event to its tape before handing it on, so a run stopped early
  still leaves on tape every event it was given (flushed when iteration ends or is closed);
- the format written is JSON lines unless asked for Parquet (``format="parquet"`` or a ``.parquet``
  file name; ``feeds/parquet_tape.py``); ``open_tape`` reads either, sniffing Parquet's magic bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import IO, Any

import msgspec

from engine.errors import CorruptInputError, InputError, UsageError
from engine.events import ALL_EVENT_TYPES, AnyEvent, Event, InstrumentDef
from feeds.base import Feed, batched
from feeds.members import MEMBER_BYTES, MemberWriter, ReadState, decompressed_chunks, open_members
from feeds.paths import input_file

FORMAT = "chimera-tape"
VERSION = 1
WRITE_BATCH = 8192  # events encoded per write call
TAPE_FILES = "a chimera tape (.jsonl, .jsonl.gz, .jsonl.zst, .parquet)"
FORMATS = ("jsonl", "parquet")


class TapeHeader(msgspec.Struct, frozen=True):
    """Line 1 of a tape: what it holds, where it came from and when it was made."""

    format: str
    version: int
    instruments: list[InstrumentDef]
    source: str
    created_at: str
    meta: dict[str, Any] = {}


# ---- writing --------------------------------------------------------------------------------------
def _writable(path: Path) -> Path:
    """``path`` when a tape can be created there; else ``UsageError`` (a directory, a missing folder)."""
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a tape file name such as {path / 'day.jsonl.gz'}")
    if not path.parent.is_dir():
        raise UsageError(f"{path}: cannot write tape: folder {path.parent} does not exist")
    return path


def _open_for_write(path: Path, level: int | None) -> MemberWriter | IO[bytes]:
    """Open ``path`` for binary writing, compressed according to its suffix."""
    try:
        return open_members(_writable(path), level)
    except OSError as error:
        raise UsageError(f"{path}: cannot write tape: {error.strerror or error}") from error


def utc_now_iso() -> str:
    """The current UTC time as ISO-8601 with milliseconds and a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tape_format(path: str | Path, format: str | None = None) -> str:
    """The format a tape at ``path`` is written in: ``format`` if given, else by suffix.

    A ``.parquet`` name means Parquet, any other JSON lines. An explicit format that contradicts the
    name (Parquet into ``.jsonl``/``.gz``/``.zst``, JSON lines into ``.parquet``) is a ``UsageError``.
    """
    name = Path(path).name.lower()
    by_name = "parquet" if name.endswith(".parquet") else "jsonl"
    if format is None:
        return by_name
    if format not in FORMATS:
        raise UsageError(f"unknown tape format {format!r} (expected one of {', '.join(FORMATS)})")
    json_name = name.endswith((".jsonl", ".gz", ".zst"))
    if (format == "parquet" and json_name) or (format == "jsonl" and by_name == "parquet"):
        said = "JSON lines" if json_name else "Parquet"
        raise UsageError(f"{path}: the file name says {said} but the format asked for is {format}; "
                         "name a Parquet tape *.parquet and a JSON-lines tape *.jsonl[.gz|.zst]")
    return format


def open_writer(
    path: str | Path, instruments: Iterable[InstrumentDef], source: str, meta: dict[str, Any] | None = None, *,
    created_at: str | None = None, format: str | None = None,
) -> Any:
    """A ``TapeWriter`` or, for the Parquet format (see ``tape_format``), a ``ParquetTapeWriter``."""
    path = Path(path)
    if tape_format(path, format) == "jsonl":
        return TapeWriter(path, instruments, source, meta, created_at=created_at)
    from feeds.parquet_tape import ParquetTapeWriter

    header = TapeHeader(format=FORMAT, version=VERSION, instruments=list(instruments), source=source,
                        created_at=created_at or utc_now_iso(), meta=dict(meta or {}))
    return ParquetTapeWriter(_writable(path), header)


def is_parquet(path: str | Path) -> bool:
    """Whether the file at ``path`` starts with Parquet's magic bytes ``PAR1``."""
    try:
        with Path(path).open("rb") as file:
            return file.read(4) == b"PAR1"
    except OSError as error:
        raise UsageError(f"{path}: cannot read tape: {error.strerror or error}") from error


def open_tape(path: str | Path, *, strict: bool = False) -> Any:
    """A ``ParquetTapeFeed`` when the file is Parquet (by its magic bytes), else a ``TapeFeed``."""
    path = input_file(Path(path), TAPE_FILES)
    if not is_parquet(path):
        return TapeFeed(path, strict=strict)
    from feeds.parquet_tape import ParquetTapeFeed  # pyarrow is imported only for Parquet tapes

    return ParquetTapeFeed(path, strict=strict)


class TapeWriter:
    """Write events to a tape file; a context manager whose exit flushes and closes the file."""

    def __init__(
        self,
        path: str | Path,
        instruments: Iterable[InstrumentDef],
        source: str,
        meta: dict[str, Any] | None = None,
        *,
        created_at: str | None = None,
        level: int | None = None,
    ) -> None:
        """Open ``path`` and write the header; ``level`` overrides the default compression level."""
        self.path = Path(path)
        self.header = TapeHeader(
            format=FORMAT,
            version=VERSION,
            instruments=list(instruments),
            source=source,
            created_at=created_at or utc_now_iso(),
            meta=dict(meta or {}),
        )
        self._encoder = msgspec.json.Encoder()
        header_line = self._encoder.encode(self.header) + b"\n"
        self._file: MemberWriter | IO[bytes] | None = _open_for_write(self.path, level)
        self._member_bytes = 0  # content written into the current member
        self._pending: list[Event] = []
        self.count = 0  # events accepted so far
        self._write(header_line)

    def write(self, event: Event) -> None:
        """Append one event."""
        self._pending.append(event)
        self.count += 1
        if len(self._pending) >= WRITE_BATCH:
            self._drain()

    def write_many(self, events: Iterable[Event]) -> int:
        """Append every event of ``events``; returns how many were written."""
        written = 0
        for batch in batched(events, WRITE_BATCH):
            self._pending.extend(batch)
            written += len(batch)
            self.count += len(batch)
            if len(self._pending) >= WRITE_BATCH:
                self._drain()
        return written

    def flush(self) -> None:
        """Encode buffered events and flush the (compressed) stream to the operating system."""
        self._drain()
        self._open_file().flush()

    def close(self) -> None:
        """Flush buffered events and close the file (idempotent)."""
        if self._file is None:
            return
        self._drain()
        self._file.close()
        self._file = None

    def _drain(self) -> None:
        if self._pending:
            self._write(self._encoder.encode_lines(self._pending))
            self._pending.clear()

    def _write(self, lines: bytes) -> None:
        """Write whole lines; a compressed member ends after the write that fills it."""
        file = self._open_file()
        file.write(lines)
        self._member_bytes += len(lines)
        if self._member_bytes >= MEMBER_BYTES and isinstance(file, MemberWriter):
            file.end_member()
            self._member_bytes = 0

    def _open_file(self) -> MemberWriter | IO[bytes]:
        if self._file is None:
            raise UsageError(f"{self.path}: tape writer is closed")
        return self._file

    def __enter__(self) -> TapeWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def record(
    feed: Feed, path: str | Path, *, source: str, meta: dict[str, Any] | None = None, limit: int | None = None,
    created_at: str | None = None, format: str | None = None,
) -> int:
    """Record ``feed`` (at most ``limit`` events) into a tape at ``path``; returns the event count.

    ``created_at`` overrides the header's wall-clock stamp (simulated sessions pass their simulated
    start, so one seed reproduces the tape byte for byte); ``format`` as ``tape_format`` takes it.
    """
    tape_format(path, format)  # a contradicting name fails before the feed is read
    events: Iterable[Event] = feed.events()
    if limit is not None:
        events = islice(events, limit)
    with open_writer(path, feed.instruments(), source, meta, created_at=created_at, format=format) as writer:
        count: int = writer.write_many(events)
        return count


class RecordingFeed:
    """Wrap a feed so every event it yields is also written to a tape (written before it is yielded)."""

    def __init__(
        self, feed: Feed, path: str | Path, *, source: str, meta: dict[str, Any] | None = None,
        created_at: str | None = None, format: str | None = None,
    ) -> None:
        """Record ``feed`` to ``path`` while it is replayed; the tape is opened when ``events()`` starts.

        Raises:
            UsageError: ``path`` is a directory or its folder does not exist (checked now, before a run).
        """
        self.feed = feed
        self.path = _writable(Path(path))
        self.source = source
        self.meta = meta
        self.created_at = created_at
        self.format = tape_format(self.path, format)
        self._writer: Any = None

    def instruments(self) -> list[InstrumentDef]:
        """The wrapped feed's instruments."""
        return self.feed.instruments()

    def events(self) -> Iterator[Event]:
        """The wrapped feed's events; the tape is flushed and closed when iteration ends or stops."""
        with open_writer(self.path, self.feed.instruments(), self.source, self.meta,
                         created_at=self.created_at, format=self.format) as writer:
            self._writer = writer
            for event in self.feed.events():
                writer.write(event)
                yield event

    def stats(self) -> dict[str, int]:
        """The wrapped feed's counters plus ``recorded_events``."""
        recorded = self._writer.count if self._writer is not None else 0
        return {**self.feed.stats(), "recorded_events": recorded}


# ---- reading: bytes -------------------------------------------------------------------------------
def _line_blocks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Regroup chunks into blocks of whole lines; only the last block may lack its final newline."""
    tail = b""
    for chunk in chunks:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            tail += chunk
            continue
        yield tail + chunk[: cut + 1]
        tail = chunk[cut + 1 :]
    if tail:
        yield tail


def _open_for_read(path: Path) -> IO[bytes]:
    try:
        return input_file(path, TAPE_FILES).open("rb")
    except OSError as error:
        raise UsageError(f"{path}: cannot read tape: {error.strerror or error}") from error


def _damaged(path: str | Path, state: ReadState, consequence: str) -> CorruptInputError:
    assert state.damage is not None
    offset, problem = state.damage
    return CorruptInputError(str(path), offset, problem, consequence)


def read_head(path: str | Path, size: int = 4096) -> bytes:
    """The first ``size`` decompressed bytes of a file (for sniffing its format).

    Raises:
        CorruptInputError: the file is damaged before any of its content could be verified.
    """
    head, state = b"", ReadState()
    with _open_for_read(Path(path)) as file:
        for chunk in decompressed_chunks(file, state):
            head += chunk
            if len(head) >= size:
                break
    if not head and state.damage is not None:
        raise _damaged(path, state, "nothing before it could be read")
    return head[:size]


# ---- reading: header ------------------------------------------------------------------------------
def _field_from_path(message: str) -> tuple[str, str]:
    """Split msgspec's ``"problem - at `$.a[0]`"`` into (``"a[0]"``, ``"problem"``)."""
    problem, sep, where = message.rpartition(" - at `")
    if not sep:
        return "", message
    return where.rstrip("`").removeprefix("$").lstrip("."), problem


def parse_header(path: str | Path, line: bytes, truncated: bool = False) -> TapeHeader:
    """Validate and decode a tape's first line; raises ``InputError`` naming line 1."""
    cut = " (file is cut short)" if truncated else ""
    if not line.strip():
        raise InputError(path, 1, "header", f"missing tape header (empty first line){cut}")
    try:
        raw = msgspec.json.decode(line)
    except msgspec.DecodeError as error:
        raise InputError(path, 1, "json", f"not a chimera tape header: {error}{cut}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise InputError(path, 1, "format", f"not a chimera tape: expected {FORMAT!r}, got {found!r}")
    if raw.get("version") != VERSION:
        found = raw.get("version")
        raise InputError(path, 1, "version", f"unsupported tape version {found!r} (this reader: {VERSION})")
    try:
        return msgspec.json.decode(line, type=TapeHeader)
    except msgspec.ValidationError as error:
        field, problem = _field_from_path(str(error))
        raise InputError(path, 1, field or "header", problem) from None


def read_header(path: str | Path) -> TapeHeader:
    """Read and validate only the header line of the tape at ``path``.

    Raises:
        UsageError: the path is missing, a directory or an empty file.
        CorruptInputError: the file is damaged before the end of its header line.
        InputError: the header line is missing or invalid (line 1).
    """
    state = ReadState()
    with _open_for_read(Path(path)) as file:
        first = next(_line_blocks(_first_line_chunks(decompressed_chunks(file, state))), b"")
    line, newline, _ = first.partition(b"\n")
    if not newline and state.damage is not None:
        raise _damaged(path, state, "nothing before it could be read")
    return parse_header(path, line, truncated=state.truncated and not newline)


def _first_line_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Pass chunks through up to and including the one holding the first newline."""
    for chunk in chunks:
        yield chunk
        if b"\n" in chunk:
            return


# ---- reading: events ------------------------------------------------------------------------------
_TAGS: dict[str, tuple[str, ...]] = {
    cls.__struct_config__.tag: cls.__struct_fields__ for cls in ALL_EVENT_TYPES
}


def _locate(line: bytes, error: msgspec.DecodeError) -> tuple[str, str]:
    """Name what is wrong in an event line: ``json``, ``tag``, the tag, or ``tag.field[...]``."""
    if not isinstance(error, msgspec.ValidationError):
        return "json", str(error)
    where, problem = _field_from_path(str(error))
    raw = msgspec.json.decode(line)
    tag = raw[0] if isinstance(raw, list) and raw else None
    if not isinstance(tag, str) or tag not in _TAGS or where.startswith("[0]"):
        return "tag", f"{problem} (known tags: {', '.join(_TAGS)})"
    if not where.startswith("["):
        return tag, problem
    index, _, rest = where[1:].partition("]")
    fields = _TAGS[tag]
    position = int(index) - 1
    name = fields[position] if 0 <= position < len(fields) else f"[{index}]"
    return f"{tag}.{name}{rest}", problem


class TapeFeed:
    """Replay a tape file as a Feed; ``strict`` turns the first malformed line into an ``InputError``.

    Iterating raises ``CorruptInputError`` at damage before the end of a compressed tape, once every
    event before it has been yielded.
    """

    def __init__(self, path: str | Path, *, strict: bool = False) -> None:
        """Open the tape at ``path`` and validate its header."""
        self.path = Path(path)
        self.strict = strict
        self.header = read_header(self.path)
        self._decoder = msgspec.json.Decoder(AnyEvent)
        self._stats = self._new_stats()

    def instruments(self) -> list[InstrumentDef]:
        """Instrument definitions from the tape header."""
        return list(self.header.instruments)

    def stats(self) -> dict[str, int]:
        """Counters of the current (or last) pass: lines, events, malformed_lines, truncated_tail."""
        return dict(self._stats)

    def events(self) -> Iterator[Event]:
        """Every event of the tape in file order; each call starts a new pass and resets the stats."""
        self._stats = stats = self._new_stats()
        state = ReadState()
        with _open_for_read(self.path) as file:
            blocks = self._after_header(_line_blocks(decompressed_chunks(file, state)), state)
            for block in blocks:
                line_no = stats["lines"] + 1
                if block.endswith(b"\n"):
                    stats["lines"] += block.count(b"\n")
                    yield from self._decode_block(block, line_no)
                elif state.damage is None:
                    stats["lines"] += 1
                    yield from self._decode_tail(block)
        if state.damage is not None:
            raise _damaged(self.path, state, f"{stats['events']:,} events before it were replayed")
        if state.truncated:
            stats["truncated_tail"] = 1

    def _after_header(self, blocks: Iterator[bytes], state: ReadState) -> Iterator[bytes]:
        first = next(blocks, b"")
        line, newline, rest = first.partition(b"\n")
        parse_header(self.path, line, truncated=state.truncated and not newline)
        self._stats["lines"] = 1
        if rest:
            yield rest
        yield from blocks

    def _decode_block(self, block: bytes, line_no: int) -> Iterator[Event]:
        try:
            events = self._decoder.decode_lines(block)
        except msgspec.DecodeError:
            yield from self._decode_each(block, line_no)
            return
        self._stats["events"] += len(events)
        yield from events

    def _decode_each(self, block: bytes, line_no: int) -> Iterator[Event]:
        decode = self._decoder.decode
        for offset, line in enumerate(block.split(b"\n")[:-1]):
            if not line.strip():
                continue
            try:
                event = decode(line)
            except msgspec.DecodeError as error:
                self._malformed(line, line_no + offset, error)
                continue
            self._stats["events"] += 1
            yield event

    def _decode_tail(self, line: bytes) -> Iterator[Event]:
        """The last line has no newline: an event if it parses, else a cut-off tail."""
        if not line.strip():
            return
        try:
            event = self._decoder.decode(line)
        except msgspec.DecodeError:
            self._stats["truncated_tail"] = 1
            return
        self._stats["events"] += 1
        yield event

    def _malformed(self, line: bytes, line_no: int, error: msgspec.DecodeError) -> None:
        if self.strict:
            field, problem = _locate(line, error)
            raise InputError(self.path, line_no, field, problem) from None
        self._stats["malformed_lines"] += 1

    @staticmethod
    def _new_stats() -> dict[str, int]:
        return {"lines": 0, "events": 0, "malformed_lines": 0, "truncated_tail": 0}
