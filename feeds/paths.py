"""Checks on the input files feeds read, made before any of them is read.

Each failure is a ``UsageError`` (exit 2) naming the path and what to give instead: a missing file,
a directory where a file is expected, an empty file.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import UsageError


def input_file(path: str | Path, expected: str) -> Path:
    """``path`` when it names a non-empty regular file; else a ``UsageError`` saying what is wrong.

    ``expected`` completes the hint, e.g. ``"a chimera tape (.jsonl, .jsonl.gz, .jsonl.zst)"``.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give {expected}")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise UsageError(f"{path}: empty file (0 bytes); give {expected}")
    return path
