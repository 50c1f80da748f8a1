"""Server versions and roles: what cdcd needs from a primary or a hot standby.

Logical decoding on a physical standby exists since PostgreSQL 16. There the
slot is created and read like on a primary, with three differences this module
handles:

* **Slot creation waits for the primary.** A new slot becomes consistent only
  after the standby replays a running-transactions record written by the
  primary. The primary's background writer logs one every 15 s, but only while
  the primary writes WAL: on an idle primary creation waits forever. With
  ``primary.dsn`` cdcd calls ``pg_log_standby_snapshot()`` there every second
  while it waits (`SlotCreationWait`); without it cdcd says what it waits for.
* **Conflicts with recovery invalidate slots.** Without ``hot_standby_feedback``
  the primary may vacuum catalog rows the slot still needs, and the standby
  then invalidates it (``conflicting``, PostgreSQL 17: ``invalidation_reason``
  ``rows_removed``); lowering ``wal_level`` on the primary does too.
* **Nothing can be written.** The publication must be created on the primary,
  and the snapshot transaction has no transaction id (``source.txId`` 0, as
  Debezium reports on a standby).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import psycopg
import structlog

from cdcd.errors import RetriableError
from cdcd.ops.logs import redact_dsn

log = structlog.get_logger("cdcd.standby")

STANDBY_DECODING_VERSION: Final = 160000
"""Logical slots on a hot standby: PostgreSQL 16."""
FAILOVER_SLOTS_VERSION: Final = 170000
"""``CREATE_REPLICATION_SLOT ... (FAILOVER)`` and slot synchronisation: PostgreSQL 17."""

PROTOCOL_VERSION: Final = 1
"""The pgoutput ``proto_version`` cdcd requests, on every server version.

Each later version only adds opt-in features: 2 (PostgreSQL 14) streaming of
in-progress transactions with ``streaming 'on'``, 3 (15) two-phase commit with
``two_phase``, 4 (16) ``streaming 'parallel'``. cdcd maps one PostgreSQL
transaction onto one Kafka transaction decided at commit, so it asks for none of
them, and version 1 is what every server from 10 on supports: the messages are
the same bytes under 1 to 4 when none of those options is given (tested on each
server version in tests/wire/test_pg_versions.py)."""


def max_protocol_version(server_version: int) -> int:
    """The highest pgoutput ``proto_version`` a server accepts."""
    if server_version >= 160000:
        return 4
    if server_version >= 150000:
        return 3
    if server_version >= 140000:
        return 2
    return 1


def major(server_version: int) -> int:
    return server_version // 10000 if server_version >= 100000 else server_version // 100


# -- slots ------------------------------------------------------------------------------------


def slot_state_columns(server_version: int) -> str:
    """``pg_replication_slots`` columns, the same on every version: ``wal_status`` (13+) and
    an ``invalidation`` reason: PostgreSQL 17's ``invalidation_reason``; on 16 ``conflicting``
    (true: invalidated by a conflict with recovery; which one is not exposed) or ``wal_status``
    ``lost``; before 16 only ``lost``; plus ``failover``/``synced`` (17) or NULL."""
    if server_version >= FAILOVER_SLOTS_VERSION:
        return "wal_status, invalidation_reason, failover, synced"
    if server_version >= STANDBY_DECODING_VERSION:
        return ("wal_status, CASE WHEN conflicting THEN 'conflict' WHEN wal_status = 'lost' "
                "THEN 'wal_removed' END, NULL::bool, NULL::bool")
    return "wal_status, CASE WHEN wal_status = 'lost' THEN 'wal_removed' END, NULL::bool, NULL::bool"


_REASONS: Final = {
    "wal_removed": "it fell behind max_slot_wal_keep_size and the WAL it needed was removed",
    "rows_removed": ("the primary removed catalog rows it still needed (a conflict with recovery on this "
                     "standby): turn hot_standby_feedback on, with a physical slot for the standby "
                     "(primary_slot_name) so the feedback holds across reconnects"),
    "conflict": ("of a conflict with recovery on this standby: the primary removed catalog rows it still "
                 "needed (turn hot_standby_feedback on, with primary_slot_name) or the primary's wal_level "
                 "dropped below logical"),
    "wal_level_insufficient": "the primary's wal_level dropped below logical (set it back to logical)",
    "idle_timeout": "it was inactive longer than idle_replication_slot_timeout",
}


def invalidation_message(slot: str, reason: str) -> str:
    """Why the slot cannot be used any more and how to recover (cdcd exits 3)."""
    why = _REASONS.get(reason, f"invalidation_reason {reason}")
    return (f"replication slot {slot!r} was invalidated because {why}. Its changes since the last "
            "confirmed position are lost to it: drop the slot (SELECT pg_drop_replication_slot(...)), "
            "write the offsets tombstone or choose a new slot.name, and restart cdcd to create a new slot "
            "and re-snapshot (docs/operations.md#slot-and-wal-monitoring)")


# -- the server's role ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerRole:
    """What cdcd asks once about the server it captures from."""

    version: int
    """``server_version_num``, e.g. 160002."""
    in_recovery: bool
    """A (hot) standby."""
    hot_standby_feedback: bool
    primary_slot_name: str

    @property
    def standby(self) -> bool:
        return self.in_recovery


def server_role(conn: psycopg.Connection[Any]) -> ServerRole:
    row = conn.execute(
        "SELECT current_setting('server_version_num')::int, pg_is_in_recovery(), "
        "current_setting('hot_standby_feedback')::bool, current_setting('primary_slot_name')").fetchone()
    assert row is not None
    return ServerRole(int(row[0]), bool(row[1]), bool(row[2]), str(row[3] or ""))


@dataclass(frozen=True, slots=True)
class Finding:
    status: str  # "ok" | "warn" | "FAIL"
    name: str
    detail: str


def standby_findings(role: ServerRole, primary_wal_level: str | None, *, primary_dsn_given: bool,
                     signal_table: bool) -> list[Finding]:
    """What a standby needs for logical decoding; empty on a primary. Pure: the facts come in."""
    if not role.standby:
        return []
    if role.version < STANDBY_DECODING_VERSION:
        return [Finding("FAIL", "standby", f"this server is a standby running PostgreSQL {major(role.version)}: "
                        "logical decoding on a standby needs PostgreSQL 16 or later; point dsn at the primary")]
    out = [Finding("ok", "standby", f"hot standby, PostgreSQL {major(role.version)}: the slot is created and "
                   "read here")]
    if role.hot_standby_feedback:
        out.append(Finding("ok", "hot_standby_feedback", "on"))
    else:
        out.append(Finding("FAIL", "hot_standby_feedback", "off: the primary may vacuum catalog rows the slot "
                           "needs and the standby then invalidates the slot; set hot_standby_feedback = on "
                           "on the standby (reload)"))
    if not role.primary_slot_name:
        out.append(Finding("warn", "primary_slot_name", "empty: without a physical slot on the primary, "
                           "hot_standby_feedback lapses while the standby is disconnected and the primary may "
                           "remove WAL the standby still needs; set primary_slot_name"))
    if primary_wal_level == "logical":
        out.append(Finding("ok", "primary wal_level", "logical"))
    elif primary_wal_level is not None:
        out.append(Finding("FAIL", "primary wal_level", f"{primary_wal_level}: logical decoding on a standby "
                           "needs wal_level = logical on the primary (and a restart there)"))
    else:
        out.append(Finding("warn", "primary wal_level", "not visible from the standby: set primary.dsn to check "
                           "it (slot creation fails with 'requires wal_level >= logical on the primary' "
                           "otherwise)" if not primary_dsn_given else
                           "primary.dsn is set but the primary could not be asked"))
    if not primary_dsn_given:
        out.append(Finding("warn", "primary.dsn", "not set: creating the slot waits for the primary's next "
                           "running-transactions record (every 15 s while the primary writes, never while it "
                           "is idle); set primary.dsn, or run SELECT pg_log_standby_snapshot() on the primary"))
    if signal_table:
        out.append(Finding("FAIL", "signal table", "incremental snapshots write watermark rows to the signal "
                           "table, which a standby cannot do: capture from the primary, or unset "
                           "signal.data.collection"))
    return out


def primary_wal_level(primary_dsn: str) -> str | None:
    """``wal_level`` of the primary named by ``primary.dsn``; None when it cannot be asked."""
    if not primary_dsn:
        return None
    try:
        with psycopg.connect(primary_dsn, autocommit=True, connect_timeout=10,
                             application_name="cdcd-check") as conn:
            row = conn.execute("SELECT current_setting('wal_level')").fetchone()
            return str(row[0]) if row else None
    except psycopg.Error as exc:
        log.warning("primary_unreachable", dsn=redact_dsn(primary_dsn), error=str(exc).strip())
        return None


# -- waiting for a new slot -------------------------------------------------------------------


class SlotCreationStopped(RetriableError):
    """Shutdown was requested while ``CREATE_REPLICATION_SLOT`` waited; the slot was not created."""


class SlotCreationWait:
    """Called about every second while ``CREATE_REPLICATION_SLOT`` waits for its consistent point.

    On a standby with ``primary.dsn`` it calls ``pg_log_standby_snapshot()`` on the primary,
    so the standby soon replays the running-transactions record the slot waits for. It
    logs ``slot_creation_waiting`` (after 5 s, then every 60 s) with what it waits for, and
    raises `SlotCreationStopped` once ``stop`` is set, which cancels the creation.
    """

    LOG_AFTER_S: Final = 5.0
    LOG_EVERY_S: Final = 60.0

    def __init__(self, slot: str, standby: bool, primary_dsn: str, stop: threading.Event, *,
                 connect: Callable[[str], psycopg.Connection[Any]] | None = None) -> None:
        self.slot = slot
        self.standby = standby
        self.primary_dsn = primary_dsn
        self.stop = stop
        self.nudges = 0
        self._connect = connect or (lambda dsn: psycopg.connect(
            dsn, autocommit=True, connect_timeout=10, application_name="cdcd-standby-snapshot"))
        self._conn: psycopg.Connection[Any] | None = None
        self._next_log = self.LOG_AFTER_S
        self._nudge_failed = False

    def __call__(self, elapsed_s: float) -> None:
        if self.stop.is_set():
            raise SlotCreationStopped(f"shutdown requested while creating slot {self.slot!r}")
        if self.standby and self.primary_dsn:
            self._nudge()
        if elapsed_s >= self._next_log:
            self._next_log = elapsed_s + self.LOG_EVERY_S
            log.warning("slot_creation_waiting", slot=self.slot, waited_s=round(elapsed_s, 1),
                        waiting_for=self.reason())

    def reason(self) -> str:
        if not self.standby:
            return ("transactions running on the server when creation began to end (see pg_stat_activity: "
                    "sessions with a backend_xid, idle in transaction)")
        if self.primary_dsn:
            return ("the standby to replay the running-transactions record requested with "
                    f"pg_log_standby_snapshot() on the primary ({self.nudges} so far), and transactions "
                    "running on the primary to end")
        return ("a running-transactions record from the primary: its background writer logs one every 15 s "
                "while it writes WAL, never while idle; set primary.dsn so cdcd requests one, or run "
                "SELECT pg_log_standby_snapshot() on the primary")

    def _nudge(self) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect(self.primary_dsn)
            self._conn.execute("SELECT pg_log_standby_snapshot()")
            self.nudges += 1
            self._nudge_failed = False
        except psycopg.Error as exc:
            if not self._nudge_failed:
                hint = (" (GRANT EXECUTE ON FUNCTION pg_log_standby_snapshot() TO <user>, or use a superuser)"
                        if getattr(exc, "sqlstate", None) == "42501" else "")
                log.warning("standby_snapshot_request_failed", dsn=redact_dsn(self.primary_dsn),
                            error=str(exc).strip() + hint)
                self._nudge_failed = True
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # psycopg's close() only frees the connection: it does not raise
            self._conn = None

