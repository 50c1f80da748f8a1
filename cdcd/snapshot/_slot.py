"""Creating the slot together with the snapshot the initial read uses.

``CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT`` returns the slot's consistent
point and the name of a snapshot that sees exactly the transactions committed
before it: the slot decodes every transaction committing after it. Reading
the tables in that snapshot and then streaming from the consistent point
gives every change once: no gap, no overlap.

The exported snapshot lives in the walsender session and stays importable only
while that session runs **no other command** (and stays connected): import it
(``SnapshotReader.open()``) before the replication connection does anything
else — ``START_REPLICATION`` included.
"""

from __future__ import annotations

from collections.abc import Callable

from cdcd.errors import SourceError
from cdcd.wire.replication import ReplicationConnection


def create_slot_with_snapshot(repl: ReplicationConnection, slot: str, *,
                              on_wait: Callable[[float], None] | None = None) -> tuple[int, str]:
    """Create a logical pgoutput slot; returns ``(consistent_point, snapshot_name)``.

    PostgreSQL waits for every transaction running at that moment (in any
    database) to end before it returns: a session left idle in a transaction
    that wrote something delays slot creation until it ends. On a standby
    (PostgreSQL 16+) it also waits for the primary's next running-transactions
    record (``cdcd.wire.standby``); the snapshot it exports there is importable on the
    standby like on a primary. ``on_wait`` is called every second meanwhile.
    """
    point, name = repl.create_slot(slot, export_snapshot=True, on_wait=on_wait)
    if not point or not name:
        raise SourceError(f"CREATE_REPLICATION_SLOT for {slot!r} returned no consistent point or snapshot "
                          "name: PostgreSQL 10 or later is required")
    return point, name
