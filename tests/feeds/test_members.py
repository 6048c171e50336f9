"""Tests for feeds/members.py: compressed files in checksummed members, verified before their content is passed on."""

from __future__ import annotations

import gzip
import random
import zlib
from pathlib import Path

import pytest
import zstandard

from feeds.members import VERIFY_LIMIT, MemberWriter, ReadState, decompressed_chunks, open_members

DECOMPRESSORS = {".gz": lambda: zlib.decompressobj(31), ".zst": lambda: zstandard.ZstdDecompressor().decompressobj()}


def write_members(path: Path, parts: list[bytes]) -> list[tuple[int, int]]:
    """Write each part as its own member; returns the ``(start, end)`` byte range of each."""
    writer = open_members(path, None)
    assert isinstance(writer, MemberWriter)
    for part in parts:
        writer.write(part)
        writer.end_member()
    writer.close()
    data, ranges, start = path.read_bytes(), [], 0
    while start < len(data):
        decompressor = DECOMPRESSORS[path.suffix]()
        decompressor.decompress(data[start:])
        end = len(data) - len(decompressor.unused_data)
        ranges.append((start, end))
        start = end
    return ranges


def read_all(path: Path) -> tuple[bytes, ReadState]:
    state = ReadState()
    with path.open("rb") as file:
        content = b"".join(decompressed_chunks(file, state))
    return content, state


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_each_part_is_its_own_member_and_reads_back_whole(tmp_path, suffix):
    """end_member() closes a member, the next write opens one, and reading joins them with nothing flagged."""
    parts = [b"first line\n" * 500, b"second\n", b"third\n" * 10_000]
    ranges = write_members(tmp_path / f"m{suffix}", parts)
    content, state = read_all(tmp_path / f"m{suffix}")
    assert len(ranges) == 3 and content == b"".join(parts)
    assert (state.truncated, state.damage) == (False, None)


@pytest.mark.parametrize(("suffix", "problem", "at_end"), [(".gz", "CRC check failed", 5),
                                                           (".zst", "checksum check failed", 1)])
def test_a_member_failing_its_checksum_is_dropped_and_located(tmp_path, suffix, problem, at_end):
    """Content before a damaged member is passed on, the member itself is not, and its checksum byte is named."""
    path = tmp_path / f"m{suffix}"
    ranges = write_members(path, [b"kept\n" * 100, b"damaged\n" * 100, b"never reached\n"])
    data = bytearray(path.read_bytes())
    _, end = ranges[1]
    data[end - at_end - 1] ^= 0x01
    path.write_bytes(bytes(data))
    content, state = read_all(path)
    assert content == b"kept\n" * 100
    assert state.damage == (end - at_end, problem) and not state.truncated


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_a_file_ending_inside_a_member_is_a_cut_tail(tmp_path, suffix):
    """A file cut inside its last member passes on what that member holds and is flagged truncated, not damaged."""
    path = tmp_path / f"m{suffix}"
    parts = [b"one\n" * 100, bytes(range(256)) * 400]
    ranges = write_members(path, parts)
    path.write_bytes(path.read_bytes()[: ranges[1][1] - 10])
    content, state = read_all(path)
    assert content.startswith(parts[0]) and b"".join(parts).startswith(content)
    assert (state.truncated, state.damage) == (True, None)


def test_a_member_larger_than_the_verify_limit_is_passed_on_before_its_check(tmp_path):
    """One gzip member beyond VERIFY_LIMIT (another tool's file) streams its first part before its CRC fails."""
    noise = random.Random(7).randbytes(VERIFY_LIMIT // 2 + 200_000).hex().encode()
    content = b"\n".join(noise[i : i + 64] for i in range(0, len(noise), 64)) + b"\n"
    data = bytearray(gzip.compress(content, compresslevel=1, mtime=0))
    data[-6] ^= 0x01
    path = tmp_path / "old.gz"
    path.write_bytes(bytes(data))
    read, state = read_all(path)
    assert VERIFY_LIMIT < len(read) < len(content) and content.startswith(read)
    assert state.damage == (len(data) - 5, "CRC check failed")
