"""Compressed files as a series of independent members (gzip) or frames (zstd), each with its checksum.

Writing: ``open_members(path, level)`` picks gzip or zstd from the suffix and returns a
``MemberWriter``, whose ``end_member()`` closes one member (its checksum written) so the next write
starts another; a plain suffix gives the plain file.

Reading: ``decompressed_chunks(file, state)`` sniffs the magic bytes (so a renamed file still reads)
and yields the decompressed content, a member's content only once its checksum has been verified.

Invariants:
- the file ending inside a member passes on what that member holds and sets ``state.truncated``:
  a cut-off tail (a killed writer), not damage;
- a decompression error (a failed checksum, rejected data, bytes after a member that start no
  member) sets ``state.damage = (offset, problem)``, the compressed offset of the byte at which it
  was detected and the problem in words; the damaged member's content is dropped;
- a member larger than ``VERIFY_LIMIT`` (files written by other tools, or tapes written before
  members were bounded) is passed on in parts before its check.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from engine.errors import UsageError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_LEVEL = 1
ZSTD_LEVEL = 3
READ_CHUNK = 1 << 20  # bytes read per call from a plain file
COMPRESSED_CHUNK = 1 << 16  # compressed bytes read (and decompressed) per call
MEMBER_BYTES = 1 << 20  # content per gzip member / zstd frame: the unit a reader verifies
VERIFY_LIMIT = 8 << 20  # content held back for its checksum; a larger member passes on unverified


# ---- writing --------------------------------------------------------------------------------------
def _zstandard() -> Any:
    """Import zstandard lazily; a clear error when it is missing."""
    try:
        import zstandard
    except ImportError as error:
        raise UsageError("reading or writing .zst tapes needs the 'zstandard' package") from error
    return zstandard


def open_members(path: Path, level: int | None) -> MemberWriter | IO[bytes]:
    """Open ``path`` for binary writing, compressed in members according to its suffix."""
    if path.suffix == ".gz":  # no name and no mtime in the gzip headers: same events, same bytes
        gzip_level = level or GZIP_LEVEL
        return MemberWriter(path.open("wb"), lambda raw: gzip.GzipFile(
            filename="", mode="wb", compresslevel=gzip_level, fileobj=raw, mtime=0))
    if path.suffix == ".zst":
        compressor = _zstandard().ZstdCompressor(level=level or ZSTD_LEVEL, write_checksum=True)
        return MemberWriter(path.open("wb"), lambda raw: compressor.stream_writer(raw, closefd=False))
    return path.open("wb")


class MemberWriter:
    """A compressed file written as independent members (gzip) or frames (zstd), each with its checksum.

    ``open_member(raw)`` starts a member on the raw file; closing it ends the member, not the file.
    """

    def __init__(self, raw: IO[bytes], open_member: Callable[[IO[bytes]], IO[bytes]]) -> None:
        self._raw = raw
        self._open_member = open_member
        self._member: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        """Compress ``data`` into the current member (started when needed)."""
        if self._member is None:
            self._member = self._open_member(self._raw)
        self._member.write(data)

    def end_member(self) -> None:
        """Close the current member (its checksum is written); the next write starts a new one."""
        if self._member is not None:
            self._member.close()
            self._member = None

    def flush(self) -> None:
        """Flush the current member's compressor and the raw file to the operating system."""
        if self._member is not None:
            self._member.flush()
        self._raw.flush()

    def close(self) -> None:
        """End the current member and close the file."""
        try:
            self.end_member()
        finally:
            self._raw.close()


# ---- reading ----------------------------------------------------------------------------------------
class ReadState:
    """What reading found besides the content: a cut-off tail, or damage before the end."""

    def __init__(self) -> None:
        self.truncated = False  # the file ends inside a member
        self.damage: tuple[int, str] | None = None  # (compressed offset, problem) of the first damage


class _Codec(NamedTuple):
    """How to read one member of a compressed format."""

    new: Callable[[], Any]  # a fresh decompressor for one member
    errors: tuple[type[Exception], ...]  # what it raises on damaged data


# What the decompressors say, in words a user can act on (others are passed on as they are).
_PROBLEMS = {
    "incorrect data check": "CRC check failed",
    "incorrect length check": "length check failed",
    "incorrect header check": "bytes that start no gzip member",
    "Restored data doesn't match checksum": "checksum check failed",
    "Unknown frame descriptor": "bytes that start no zstd frame",
}


def _problem(error: Exception) -> str:
    """``"CRC check failed"`` from zlib's ``"Error -3 while decompressing data: incorrect data check"``."""
    text = str(error).rpartition(": ")[2]
    return _PROBLEMS.get(text, text)


def _raw_chunks(file: IO[bytes], size: int) -> Iterator[bytes]:
    while chunk := file.read(size):
        yield chunk


def _codec(head: bytes) -> _Codec | None:
    """The compression the magic bytes ``head`` announce, or None for a plain file."""
    if head.startswith(GZIP_MAGIC):
        return _Codec(lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), (zlib.error,))
    if head.startswith(ZSTD_MAGIC):
        zstandard = _zstandard()
        return _Codec(zstandard.ZstdDecompressor().decompressobj, (zstandard.ZstdError,))
    return None


def decompressed_chunks(file: IO[bytes], state: ReadState) -> Iterator[bytes]:
    """Chunks of the decompressed content of ``file``, compression sniffed from its magic bytes."""
    head = file.read(4)
    codec = _codec(head)
    if codec is None:
        yield from _prepend(head, _raw_chunks(file, READ_CHUNK))
    else:
        yield from _members(file, _prepend(head, _raw_chunks(file, COMPRESSED_CHUNK)), codec, state)


def _members(file: IO[bytes], chunks: Iterator[bytes], codec: _Codec, state: ReadState) -> Iterator[bytes]:
    """The content of each member, passed on once the member's checksum has been verified.

    A member whose content exceeds ``VERIFY_LIMIT`` (tapes written before members were bounded) is
    passed on in parts before its check. The file ending inside a member passes on what it holds and
    sets ``state.truncated``; a decompression error sets ``state.damage`` and drops the member.
    """
    decompressor, member_start, offset, fed = codec.new(), 0, 0, False
    held: list[bytes] = []
    held_size = 0
    for chunk in chunks:
        while chunk:
            try:
                out = decompressor.decompress(chunk)
            except codec.errors as error:
                state.damage = (_damage_offset(file, codec, member_start, offset, chunk), _problem(error))
                return
            fed = True
            held.append(out)
            held_size += len(out)
            if not decompressor.eof:
                offset += len(chunk)
                if held_size > VERIFY_LIMIT:
                    yield b"".join(held)
                    held, held_size = [], 0
                break
            yield b"".join(held)
            held, held_size = [], 0
            rest = decompressor.unused_data
            offset += len(chunk) - len(rest)
            member_start = offset
            chunk, decompressor, fed = rest, codec.new(), False
    if fed:
        state.truncated = True
        yield b"".join(held)


def _damage_offset(file: IO[bytes], codec: _Codec, member_start: int, chunk_start: int, chunk: bytes) -> int:
    """The compressed offset of the byte at which the member starting at ``member_start`` fails.

    The member is decompressed again up to ``chunk_start`` (it passed that far), then ``chunk`` byte by
    byte; only a damaged file pays for this.
    """
    decompressor = codec.new()
    file.seek(member_start)
    remaining = chunk_start - member_start
    while remaining > 0:
        block = file.read(min(COMPRESSED_CHUNK, remaining))
        remaining -= len(block)
        decompressor.decompress(block)
    for index in range(len(chunk)):
        try:
            decompressor.decompress(chunk[index : index + 1])
        except codec.errors:
            return chunk_start + index
    return chunk_start + len(chunk) - 1


def _prepend(head: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from chunks
