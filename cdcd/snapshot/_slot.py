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

from ..errors import SourceError
from ..lsn import Lsn
from ..replication import ReplicationConnection


def create_slot_with_snapshot(repl: ReplicationConnection, slot: str) -> tuple[int, str]:
    """Create a logical pgoutput slot; returns ``(consistent_point, snapshot_name)``.

    PostgreSQL waits for every transaction running at that moment (in any
    database) to end before it returns: a session left idle in a transaction
    that wrote something delays slot creation until it ends.
    """
    rows = repl._command(f"CREATE_REPLICATION_SLOT {_ident(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT")
    if not rows or len(rows[0]) < 3 or not rows[0][1] or not rows[0][2]:
        raise SourceError(f"CREATE_REPLICATION_SLOT for {slot!r} returned no consistent point or snapshot "
                          f"name ({rows!r}): PostgreSQL 10 or later is required")
    return int(Lsn.parse(rows[0][1].decode())), rows[0][2].decode()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
