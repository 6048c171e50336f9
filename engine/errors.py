"""One family of errors; every message names the file, line, field or config key at fault.

The CLI prints ``str(error)`` on one line and exits with ``error.exit_code`` (traceback only with
``--debug``).
"""

from __future__ import annotations


class ChimeraError(Exception):
    """Base of every error Chimera raises on purpose."""

    exit_code = 1


class UsageError(ChimeraError):
    """Bad command-line arguments or an unreadable input file."""

    exit_code = 2


class ConfigError(ChimeraError):
    """Invalid configuration; the message carries the key path (``$.risk.max_position``)."""

    exit_code = 2


class InputError(ChimeraError):
    """Malformed input data, located as ``file:line`` plus the offending field."""

    exit_code = 2

    def __init__(self, path: str, line: int, field: str, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem
        super().__init__(f"{self.path}:{line}: field {field!r}: {problem}")


class CorruptInputError(ChimeraError):
    """A damaged input file: data its decoder rejects before the end (a cut-off tail is not this)."""

    exit_code = 2

    def __init__(self, path: str, offset: int, problem: str, consequence: str) -> None:
        self.path = str(path)
        self.offset = offset
        self.problem = problem
        super().__init__(f"{self.path}: corrupt compressed data at byte {offset:,} ({problem}); {consequence}"
                         " - the file is damaged, re-record it or restore it from a copy")


class ParquetInputError(ChimeraError):
    """A Parquet tape that cannot be replayed: named by file and where (row group, row, column)."""

    exit_code = 2

    def __init__(self, path: str | object, where: str, problem: str, row: int | None = None) -> None:
        self.path = str(path)
        self.where = where
        self.problem = problem
        self.row = row  # the bad row (0-based over the file), when one row is to blame
        super().__init__(f"{self.path}: {where}: {problem}")


class LaneError(ChimeraError):
    """A failure inside one instrument's lane; names the instrument and the stage."""

    exit_code = 1

    def __init__(self, instrument: str, stage: str, cause: BaseException) -> None:
        self.instrument = instrument
        self.stage = stage
        self.cause = cause
        super().__init__(f"lane {instrument} failed in stage {stage}: {type(cause).__name__}: {cause}")


class StoreError(ChimeraError):
    """SQLite refused a read or a write (locked longer than ``busy_timeout``, disk full, I/O error)."""

    exit_code = 1


class ReconciliationError(ChimeraError):
    """Unexplained mismatches between a rebuilt book and the source's own book file."""

    exit_code = 3
