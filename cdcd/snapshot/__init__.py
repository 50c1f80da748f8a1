"""The consistent initial snapshot: every captured row once, then the stream from where it ends.

The daemon's sequence (snapshot.mode=initial, no slot yet)::

    repl = ReplicationConnection(dsn)
    point, name = create_slot_with_snapshot(repl, slot)        # 1. slot + exported snapshot
    tables = tables_to_snapshot(catalog.conn, publication, TableFilter(...))
    with SnapshotReader(dsn, name, point, tables, degree=config.snapshot_max_threads,
                        fetch_size=config.snapshot_fetch_size, publication=publication,
                        on_progress=...) as reader:           # 2. every reader imported it:
        for row in reader:                                     #    repl is free again
            records = encoder_for(row.table).create(row.values, reader.source(row), None, op="r")
            ...                                                # 3. produce; commit in batches
    # 4. commit the last Kafka transaction, store offsets with snapshot_completed=True
    repl.start(slot, point, [publication])                     # 5. stream from the consistent point

Nothing is confirmed to PostgreSQL during the snapshot: the slot keeps its
WAL from the consistent point on, and ``START_REPLICATION`` at that point
delivers exactly the transactions the snapshot did not see. See
docs/snapshots.md for the modes and the guarantees each gives.
"""

from __future__ import annotations

from cdcd.snapshot._flags import (
    FIRST,
    FIRST_IN_DATA_COLLECTION,
    LAST,
    LAST_IN_DATA_COLLECTION,
    TRUE,
    flag_rows,
    marker,
)
from cdcd.snapshot._reader import DEFAULT_FETCH_SIZE, ProgressCallback, SnapshotReader, SnapshotRow
from cdcd.snapshot._slot import create_slot_with_snapshot
from cdcd.snapshot._tables import TablePlan, relation_for, tables_to_snapshot

__all__ = [
    "DEFAULT_FETCH_SIZE",
    "FIRST",
    "FIRST_IN_DATA_COLLECTION",
    "LAST",
    "LAST_IN_DATA_COLLECTION",
    "TRUE",
    "ProgressCallback",
    "SnapshotReader",
    "SnapshotRow",
    "TablePlan",
    "create_slot_with_snapshot",
    "flag_rows",
    "marker",
    "relation_for",
    "tables_to_snapshot",
]
