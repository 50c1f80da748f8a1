"""The replication stream: a walsender connection in COPY_BOTH mode.

psycopg has no replication API, but ``psycopg.pq`` exposes libpq's copy
calls, which is all the protocol needs. This layer knows bytes, LSNs and
slots, nothing about tables or Kafka: it yields ``XLogData`` and
``Keepalive`` frames and sends standby status updates it is told to send.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import structlog
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cdcd.errors import SourceError, SourceUnavailable
from cdcd.wire.frames import Keepalive, XLogData, parse_copy_data, standby_status_update
from cdcd.wire.lsn import format_lsn

log = structlog.get_logger("cdcd.replication")

# Output functions run in the walsender, so its session settings decide how
# pgoutput prints values: pin the ones the type converters parse.
SESSION_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres "
    "-c extra_float_digits=3 -c bytea_output=hex"
)


def replication_conninfo(dsn: str) -> str:
    """The user's DSN plus ``replication=database`` and our session options."""
    params = conninfo_to_dict(dsn)
    options = params.get("options")
    params["options"] = f"{options} {SESSION_OPTIONS}" if options else SESSION_OPTIONS
    params["replication"] = "database"
    params.setdefault("application_name", "cdcd")
    return make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None})


@dataclass(frozen=True, slots=True)
class SystemIdentity:
    system_id: str
    timeline: int
    xlogpos: int
    dbname: str


@dataclass(frozen=True, slots=True)
class SlotInfo:
    name: str
    plugin: str | None
    database: str | None
    active: bool
    confirmed_flush_lsn: int | None
    wal_status: str | None
    invalidation: str | None = None
    """Why the slot can no longer be used (``cdcd.wire.standby.slot_state_columns``), None while valid."""
    failover: bool | None = None
    """PostgreSQL 17: created with ``FAILOVER``; None before 17."""
    synced: bool | None = None
    """PostgreSQL 17: a standby's copy synchronised from the primary; None before 17."""


def _parse_lsn_text(text: bytes | None) -> int | None:
    if not text:
        return None
    hi, lo = text.decode().split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


class ReplicationConnection:
    """One walsender session. Not thread-safe; one reader at a time."""

    def __init__(self, dsn: str) -> None:
        self._pgconn = pq.PGconn.connect(replication_conninfo(dsn).encode())
        if self._pgconn.status != pq.ConnStatus.OK:
            message = self._pgconn.get_error_message()
            self._pgconn.finish()
            raise SourceUnavailable(f"cannot open a replication connection to PostgreSQL: {message}")
        self._streaming = False

    # -- simple commands (before streaming) -----------------------------------------------

    def _exec(self, sql: str) -> pq.abc.PGresult:
        try:
            return self._pgconn.exec_(sql.encode())
        except psycopg.Error as exc:  # the connection broke (server restart): reconnecting may work
            raise SourceUnavailable(f"replication connection lost during {sql.split(' ', 1)[0]}: "
                                    f"{str(exc).strip()}") from exc

    def _command(self, sql: str) -> list[tuple[bytes | None, ...]]:
        res = self._exec(sql)
        if res.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            message = res.get_error_message()
            sqlstate = res.error_field(pq.DiagnosticField.SQLSTATE)
            raise ReplicationCommandError(sql.split(" ", 1)[0], message, (sqlstate or b"").decode())
        return [tuple(res.get_value(r, c) for c in range(res.nfields)) for r in range(res.ntuples)]

    def _command_waiting(self, sql: str, on_wait: Callable[[float], None],
                         interval_s: float = 1.0) -> list[tuple[bytes | None, ...]]:
        """``_command`` that calls ``on_wait`` every ``interval_s`` while the server works."""
        pgconn = self._pgconn
        try:
            pgconn.send_query(sql.encode())
        except psycopg.OperationalError as exc:
            raise SourceUnavailable(f"cannot send {sql.split(' ', 1)[0]}: {exc}") from exc
        started = time.monotonic()
        try:
            while True:
                pgconn.consume_input()
                if not pgconn.is_busy():
                    break
                ready, _, _ = select.select([pgconn.socket], [], [], interval_s)
                if not ready:
                    on_wait(time.monotonic() - started)
        except BaseException:
            self._abandon_command()
            raise
        result = None
        while (res := pgconn.get_result()) is not None:
            result = res
        if result is None or result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            message = result.get_error_message() if result is not None else pgconn.get_error_message()
            sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE) if result is not None else None
            if not sqlstate and pgconn.status != pq.ConnStatus.OK:
                raise SourceUnavailable(f"connection lost during {sql.split(' ', 1)[0]}: {message.strip()}")
            raise ReplicationCommandError(sql.split(" ", 1)[0], message, (sqlstate or b"").decode())
        return [tuple(result.get_value(r, c) for c in range(result.nfields)) for r in range(result.ntuples)]

    def _abandon_command(self, grace_s: float = 2.0) -> None:
        """Cancel the running command; if the server does not react (a slot creation waiting
        on a standby ignores the cancel), close the connection: the walsender sees the end of
        its socket, exits, and its half-created (ephemeral) slot goes with it."""
        pgconn = self._pgconn
        try:
            pgconn.get_cancel().cancel()
        except psycopg.OperationalError:
            pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                pgconn.consume_input()
            except psycopg.OperationalError:
                break
            if not pgconn.is_busy():
                while pgconn.get_result() is not None:  # the cancelled command's error
                    pass
                return
            select.select([pgconn.socket], [], [], 0.1)
        pgconn.finish()

    def identify_system(self) -> SystemIdentity:
        (row,) = self._command("IDENTIFY_SYSTEM")
        return SystemIdentity(
            system_id=(row[0] or b"").decode(),
            timeline=int(row[1] or 0),
            xlogpos=_parse_lsn_text(row[2]) or 0,
            dbname=(row[3] or b"").decode(),
        )

    def slot_info(self, slot: str) -> SlotInfo | None:
        from cdcd.wire.standby import slot_state_columns

        rows = self._command(
            "SELECT slot_name, plugin, database, active, confirmed_flush_lsn, "
            f"{slot_state_columns(self.server_version)} "
            f"FROM pg_replication_slots WHERE slot_name = {_literal(slot)}"
        )
        if not rows:
            return None
        name, plugin, database, active, confirmed, wal_status, invalidation, failover, synced = rows[0]
        return SlotInfo(
            name=(name or b"").decode(),
            plugin=plugin.decode() if plugin else None,
            database=database.decode() if database else None,
            active=active == b"t",
            confirmed_flush_lsn=_parse_lsn_text(confirmed),
            wal_status=wal_status.decode() if wal_status else None,
            invalidation=invalidation.decode() if invalidation else None,
            failover=None if failover is None else failover == b"t",
            synced=None if synced is None else synced == b"t",
        )

    @property
    def server_version(self) -> int:
        """``server_version_num`` of the server, e.g. 160002."""
        return int(self._pgconn.server_version)

    def create_slot(self, slot: str, *, export_snapshot: bool = False,
                    on_wait: Callable[[float], None] | None = None) -> tuple[int, str | None]:
        """Create a logical pgoutput slot; returns its consistent point and, when asked
        for, the name of the exported snapshot (see ``cdcd.snapshot``).

        PostgreSQL answers once the slot is consistent, which can take long (running
        transactions; on a standby, the primary's next running-transactions record).
        ``on_wait(elapsed_s)`` is called about every second meanwhile; an exception it
        raises cancels the creation (no slot is left behind) and propagates."""
        mode = "EXPORT_SNAPSHOT" if export_snapshot else "NOEXPORT_SNAPSHOT"
        sql = f"CREATE_REPLICATION_SLOT {_ident(slot)} LOGICAL pgoutput {mode}"
        rows = self._command(sql) if on_wait is None else self._command_waiting(sql, on_wait)
        row = rows[0] if rows else ()
        name = row[2].decode() if len(row) > 2 and row[2] else None
        return (_parse_lsn_text(row[1]) if len(row) > 1 else None) or 0, name

    def drop_slot(self, slot: str) -> None:
        self._command(f"DROP_REPLICATION_SLOT {_ident(slot)}")

    def start(self, slot: str, start_lsn: int, publications: list[str], *, proto_version: int = 1,
              messages: bool = True) -> None:
        pubs = ",".join(_ident(p) for p in publications)
        options = [f"proto_version '{proto_version}'", f"publication_names {_literal(pubs)}"]
        if messages:
            options.append("messages 'true'")
        sql = f"START_REPLICATION SLOT {_ident(slot)} LOGICAL {format_lsn(start_lsn)} ({', '.join(options)})"
        res = self._exec(sql)
        if res.status != pq.ExecStatus.COPY_BOTH:
            sqlstate = (res.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
            raise ReplicationCommandError("START_REPLICATION", res.get_error_message(), sqlstate)
        self._pgconn.nonblocking = 1
        self._streaming = True
        log.info("replication_started", slot=slot, lsn=format_lsn(start_lsn), publications=publications)

    # -- streaming -------------------------------------------------------------------------

    def read(self, timeout: float, wake: int | None = None) -> XLogData | Keepalive | None:
        """The next frame, parsed (``read_data``)."""
        data = self.read_data(timeout, wake)
        return None if data is None else parse_copy_data(data)

    def read_data(self, timeout: float, wake: int | None = None) -> memoryview | None:
        """The next CopyData message as it came (a view of libpq's buffer), or None when nothing arrives in time.

        What the kernel already received is pulled in before "nothing" is the answer,
        so a caller deciding to commit or to wait never does so with WAL waiting. A
        readable ``wake`` descriptor (another event the caller waits for) ends the
        wait early with None; the caller drains it.

        A connection that breaks while reading (PostgreSQL restarted, the network
        dropped) raises ``SourceUnavailable``: the daemon reconnects with backoff.
        """
        pgconn = self._pgconn
        try:  # one function, not two: it runs once per row
            n, data = pgconn.get_copy_data(1)
            if n == 0:
                pgconn.consume_input()  # non-blocking: whatever the socket holds
                n, data = pgconn.get_copy_data(1)
                if n == 0 and timeout > 0:
                    sock = pgconn.socket
                    ready, _, _ = select.select([sock] if wake is None else [sock, wake], [], [], timeout)
                    if sock not in ready:
                        return None
                    pgconn.consume_input()
                    n, data = pgconn.get_copy_data(1)
            if n > 0:
                # No copy here: the buffer lives as long as the view, and the decoder copies the payload once.
                return data  # type: ignore[no-any-return]
            if n == 0:
                return None
            self._raise_stream_end()
        except (psycopg.Error, OSError, ValueError) as exc:
            self._streaming = False
            raise SourceUnavailable(f"replication connection lost: {str(exc).strip() or type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    def _raise_stream_end(self) -> None:
        """The server ended COPY or the connection broke: find out which and why."""
        self._streaming = False
        res = self._pgconn.get_result()
        if res is not None and res.status == pq.ExecStatus.FATAL_ERROR:
            sqlstate = (res.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
            if sqlstate.startswith(_TRANSIENT_SQLSTATE_CLASSES) or not sqlstate:
                # Server shutdown/restart, terminated backend, lost connection: reconnecting may work.
                raise SourceUnavailable(f"replication stream ended: {res.get_error_message().strip()}")
            raise ReplicationCommandError("replication stream", res.get_error_message(), sqlstate)
        message = self._pgconn.get_error_message() or "the server ended the replication stream"
        raise SourceUnavailable(f"replication connection lost: {message.strip()}")

    def send_status(self, write_lsn: int, flush_lsn: int, *, reply: bool = False) -> None:
        """Tell the server what we hold (``write``) and what it may discard (``flush``)."""
        try:
            self._send_status(write_lsn, flush_lsn, reply)
        except (psycopg.Error, OSError, ValueError) as exc:
            self._streaming = False
            raise SourceUnavailable(f"cannot send standby status: {str(exc).strip() or type(exc).__name__}") from exc

    def _send_status(self, write_lsn: int, flush_lsn: int, reply: bool) -> None:
        pgconn = self._pgconn
        if pgconn.put_copy_data(standby_status_update(write_lsn, flush_lsn, flush_lsn, reply=reply)) != 1:
            raise SourceUnavailable(f"cannot send standby status: {pgconn.get_error_message()}")
        deadline = time.monotonic() + 10.0
        while pgconn.flush() == 1:
            if time.monotonic() > deadline:
                raise SourceUnavailable("cannot send standby status: socket not writable for 10 s")
            select.select([], [pgconn.socket], [], 1.0)

    def close(self) -> None:
        self._pgconn.finish()  # idempotent; also frees a connection whose status is BAD


# 08 connection exception, 57 operator intervention (admin shutdown, crash shutdown,
# cannot connect now), 53 insufficient resources (too many connections/walsenders).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "57", "53")


class ReplicationCommandError(SourceError):
    """The walsender rejected a command; the message says what to do about it."""

    def __init__(self, command: str, server_message: str, sqlstate: str) -> None:
        self.command = command
        self.sqlstate = sqlstate
        self.server_message = server_message.strip()
        super().__init__(f"{command} failed: {self.server_message}{_hint(self.server_message, sqlstate)}")


def _hint(message: str, sqlstate: str) -> str:
    text = message.lower()
    if "logical decoding requires wal_level" in text or "wal_level" in text:
        return " (set wal_level = logical in postgresql.conf and restart PostgreSQL)"
    if "does not exist" in text and "replication slot" in text:
        return (" (the slot was dropped: changes since the last confirmed position are gone; "
                "re-snapshot, or create a new slot knowingly)")
    if "publication" in text and "does not exist" in text:
        if "callback" in text:
            # Raised while decoding: PostgreSQL reads the publication with the catalog as of
            # each change, so one created (again) after those changes does not help.
            return (" (the publication was dropped, or created after the changes being decoded: PostgreSQL "
                    "looks it up as of each change, so re-creating it does not cover changes made while it "
                    "was missing. Create it if missing, then either advance the slot past its creation "
                    "(SELECT pg_replication_slot_advance(...)) or drop the slot so cdcd creates a new one, "
                    "and re-snapshot the tables: the changes in between are not delivered)")
        return " (create the publication, e.g. CREATE PUBLICATION cdcd FOR ALL TABLES, or fix publication.name)"
    if "is active for pid" in text:
        return " (another client is streaming from this slot; stop it or use another slot.name)"
    if "can no longer get changes" in text or "invalidated" in text:
        if "conflict" in text or "wal_level" in text or "rows" in text:
            return (" (the slot was invalidated by a conflict with recovery on this standby: the primary "
                    "removed catalog rows it needed (set hot_standby_feedback = on with primary_slot_name) or "
                    "its wal_level dropped below logical; drop the slot, create a new one and re-snapshot)")
        return (" (the slot was invalidated because it fell behind max_slot_wal_keep_size: "
                "drop it, create a new one and re-snapshot)")
    if sqlstate == "42501" or "permission" in text or "must be superuser or replication" in text:
        return " (grant the role REPLICATION: ALTER ROLE <user> WITH REPLICATION)"
    return ""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
