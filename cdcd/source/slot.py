"""The replication slot as cdcd keeps it: owned by streaming from it, created when missing, never re-created.

An instance owns the slot by streaming from it (PostgreSQL gives an active slot to one
walsender only), and an advisory lock on the catalog connection stands in for the slot
while there is none to own yet (it is being created or re-snapshotted). A slot that
disappears, was invalidated or belongs to another plugin stops cdcd with exit 3 and
says what to do: re-creating it silently would skip the changes it held.
"""

from __future__ import annotations

import threading

import psycopg
import structlog

from cdcd.config import Config
from cdcd.delivery.offsets import SourceOffset
from cdcd.errors import RetriableError, SourceError, SourceUnavailable
from cdcd.source.catalog import Catalog
from cdcd.wire.lsn import format_lsn
from cdcd.wire.replication import ReplicationCommandError, ReplicationConnection, SlotInfo
from cdcd.wire.standby import SlotCreationWait, invalidation_message

log = structlog.get_logger("cdcd.daemon")


class RetriableErrorActiveSlot(RetriableError):
    """Another walsender holds the slot (often our own previous connection, not yet gone)."""


class SlotKeeper:
    def __init__(self, config: Config, stop: threading.Event) -> None:
        self.config = config
        self.slot = config.slot_name
        self.stop = stop
        self.standby = False
        """This server is a standby (slot creation waits for the primary)."""
        self.publications = [config.publication_name]
        self.seen = False
        """This process streamed from (or created) the slot: its disappearance is an error, not a first start."""

    def start_replication(self, repl: ReplicationConnection, start: int) -> None:
        try:
            repl.start(self.slot, start, self.publications)
        except ReplicationCommandError as exc:
            if "is active for pid" in exc.server_message.lower():  # PostgreSQL says "PID"
                raise RetriableErrorActiveSlot(str(exc)) from exc
            raise

    def lock_setup(self, catalog: Catalog) -> None:
        """Stand in for the slot until it exists: two instances started together never both go on."""
        key = f"cdcd slot {self.slot}"
        try:
            row = catalog.conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
        except psycopg.Error as exc:
            raise SourceUnavailable(f"lost the PostgreSQL connection: {str(exc).strip()}") from exc
        if not (row and row[0]):
            raise RetriableErrorActiveSlot(f"another instance is creating or opening slot {self.slot!r}")

    def unlock_setup(self, catalog: Catalog) -> None:
        try:
            catalog.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"cdcd slot {self.slot}",))
        except psycopg.Error:
            pass  # a closed connection released it

    def acquire(self, repl: ReplicationConnection, info: SlotInfo | None, committed: int) -> int | None:
        """Start streaming from an existing slot; its position, or None when the slot is not usable as is.

        Streaming is what makes a slot active, so this is how an instance owns it. None
        leaves creating, re-snapshotting and the error messages to ``open``.
        """
        if info is None or info.plugin != "pgoutput" or info.wal_status == "lost" or info.invalidation is not None \
                or self.config.snapshot_mode == "always":
            return None
        start = max(committed, info.confirmed_flush_lsn or 0)
        self.start_replication(repl, start)
        self.seen = True
        return start

    def open(self, repl: ReplicationConnection, stored: SourceOffset | None, committed: int) -> int:
        """The slot's confirmed position; created when missing, never silently re-created."""
        slot = self.slot
        info = repl.slot_info(slot)
        if info is None and stored is not None and stored.lsn > 0:
            raise SourceError(
                f"replication slot {slot!r} does not exist, but Kafka holds events up to "
                f"{format_lsn(stored.lsn)} from it: the slot was dropped and the changes since are lost "
                "to it. Re-snapshot the tables, then either use a new slot.name, or delete the offsets record "
                f"(a tombstone for key {{\"server\":\"{self.config.topic_prefix}\",\"slot\":\"{slot}\"}} on "
                f"{self.config.effective_offsets_topic}) to start over knowingly")
        if info is None:
            if self.seen:
                raise SourceError(
                    f"replication slot {slot!r} disappeared while cdcd was using it: the changes since "
                    f"{format_lsn(committed)} are lost to it. "
                    "Re-snapshot the tables (or accept the gap) and restart cdcd, which creates a new slot")
            wait = self.creation_wait()
            try:
                point, _ = repl.create_slot(slot, on_wait=wait)
            finally:
                wait.close()
            log.info("slot_created", slot=slot, consistent_point=format_lsn(point))
            self.seen = True
            return point
        if info.plugin != "pgoutput":
            raise SourceError(f"slot {slot!r} uses plugin {info.plugin!r}, cdcd needs pgoutput: "
                              "drop it or choose another slot.name")
        if info.invalidation is not None or info.wal_status == "lost":
            raise SourceError(invalidation_message(slot, info.invalidation or "wal_removed"))
        self.seen = True
        return info.confirmed_flush_lsn or 0

    def creation_wait(self) -> SlotCreationWait:
        """Slot creation: log what it waits for, ask the primary for a running-xacts record, obey SIGTERM."""
        return SlotCreationWait(self.slot, self.standby, self.config.primary_dsn, self.stop)
