"""SQLite persistence: the schema and its migrations, the batching writer task, the ``runs`` table
and the read helpers for the CLI, reports and tests.

One writer (the persistence task) per run; readers open their own connections.
"""

from engine.store.queries import fetch_rows, group_rows, table_counts, write_records
from engine.store.runs import finish_run, start_run
from engine.store.schema import INSERTS, NATURAL_ORDER, SCHEMA_VERSION, connect, migrate, pragmas
from engine.store.writer import BatchWriter, WriterStats

__all__ = [
    "INSERTS", "NATURAL_ORDER", "SCHEMA_VERSION", "BatchWriter", "WriterStats", "connect", "fetch_rows",
    "finish_run", "group_rows", "migrate", "pragmas", "start_run", "table_counts", "write_records",
]
