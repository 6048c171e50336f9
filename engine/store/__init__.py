"""SQLite persistence: the schema and its migrations, the batching writer task, the ``runs`` table
and the read helpers for the CLI, reports and tests.

One writer (the persistence task) per run; readers open their own connections.
"""

from engine.store.queries import (
    CommittedPrefix,
    fetch_dicts,
    fetch_rows,
    group_rows,
    run_analytics_rows,
    table_counts,
    write_records,
)
from engine.store.runs import (
    FINAL_STATUSES,
    RESUMABLE_STATUSES,
    RunOwner,
    RunRow,
    finish_run,
    get_run,
    list_runs,
    mark_interrupted,
    reclaim_run,
    start_run,
)
from engine.store.schema import (
    APPLICATION_ID,
    INSERTS,
    NATURAL_ORDER,
    SCHEMA_VERSION,
    check_database,
    connect,
    migrate,
    pragmas,
)
from engine.store.writer import BatchWriter, WriterStats

__all__ = [
    "fetch_dicts",
    "run_analytics_rows",
    "APPLICATION_ID", "FINAL_STATUSES", "INSERTS", "NATURAL_ORDER", "RESUMABLE_STATUSES", "SCHEMA_VERSION",
    "BatchWriter", "CommittedPrefix", "RunOwner", "RunRow", "WriterStats", "check_database", "connect", "fetch_rows",
    "finish_run", "get_run", "group_rows", "list_runs", "mark_interrupted", "migrate", "pragmas", "reclaim_run",
    "start_run", "table_counts", "write_records",
]
