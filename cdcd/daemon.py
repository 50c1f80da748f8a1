"""The lifecycle: startup checks → streaming sessions (reconnecting) → shutdown.

Startup fails fast with a clear message (a wrong DSN, wal_level, a missing
publication, an unreachable broker): nothing has been confirmed yet, and the
service manager decides about restarts. Once streaming, transient failures
(PostgreSQL restarts, broker outages) are retried with capped exponential
backoff and jitter, resuming from the last LSN Kafka acknowledged.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import psycopg
import structlog

from cdcd.source.catalog import Catalog, connect
from cdcd.check import check_broker
from cdcd.config import Config, converter_settings
from cdcd.converters import JSON_CONVERTER, ConverterSettings, RecordConverter
from cdcd.errors import ConfigError, RetriableError, SinkUnavailable, SourceError, SourceUnavailable
from cdcd.ops.health import Health
from cdcd.wire.lsn import format_lsn
from cdcd.ops.metrics import Metrics, SlotLagPoller
from cdcd.delivery.offsets import OffsetStore, SourceOffset, ensure_offsets_topic
from cdcd.source.filters import TableFilter
from cdcd.debezium.options import envelope_options
from cdcd.pipeline import Stats, StreamingSession
from cdcd.session.build import SessionStart, Surfaces, build_parts
from cdcd.source.publication import Layout, Refresher, ensure_publication, layout
from cdcd.wire.replication import ReplicationCommandError, ReplicationConnection, SlotInfo
from cdcd.snapshot import SnapshotReader, create_slot_with_snapshot, tables_to_snapshot
from cdcd.source.signal_table import check_signal_table
from cdcd.wire.standby import (ServerRole, SlotCreationWait, invalidation_message, primary_wal_level, server_role,
                      standby_findings)
from cdcd.snapshot.run import produce_snapshot
from cdcd.debezium.transforms import outbox_router, unwrapper
from cdcd.ops.sdnotify import Notifier
from cdcd.delivery.sinks import Sink
from cdcd.delivery.sinks.converting import ConvertingSink
from cdcd.delivery.tracker import LsnTracker

log = structlog.get_logger("cdcd.daemon")

BACKOFF_INITIAL_S = 0.5
BACKOFF_CAP_S = 30.0


def make_sink(config: Config) -> Sink:
    sink: Sink
    if config.sink == "stdout":
        from cdcd.delivery.sinks.stdout import StdoutSink

        sink = StdoutSink()
    else:
        from cdcd.delivery.sinks.kafka import KafkaSink

        sink = KafkaSink(config.bootstrap_servers, config.effective_transactional_id,
                         properties=dict(config.kafka), timeout_s=config.kafka_timeout_ms / 1000.0,
                         oversized_policy=config.oversized_record_policy,
                         dead_letter_topic=config.oversized_record_dead_letter_topic or f"{config.topic_prefix}.dlq")
    converter = record_converter(config)
    return sink if converter.identity else ConvertingSink(sink, converter)


def record_converter(config: Config) -> RecordConverter:
    """The key/value converters; the stdout sink prints JSON lines, so only JsonConverter applies to it."""
    key, value = converter_settings(config)
    if config.sink == "stdout":
        key, value = (s if s.class_name == JSON_CONVERTER else ConverterSettings(s.is_key) for s in (key, value))
    return RecordConverter(key, value)


def check_registries(config: Config) -> None:
    """Log the converters' warnings; exit like a broker that is down when a schema registry cannot be reached."""
    for settings in converter_settings(config):
        for warning in settings.warnings:
            log.warning("converter_option_ignored", detail=warning)
        if settings.is_avro and config.sink == "kafka":
            from cdcd.converters.avro import check_registry

            problem = check_registry(settings)
            if problem is not None:
                raise SinkUnavailable(f"cannot reach the schema registry of {settings.side}.converter: {problem}")


def backoff_delay(attempt: int, *, initial: float = BACKOFF_INITIAL_S, cap: float = BACKOFF_CAP_S) -> float:
    """Capped exponential backoff with full jitter in its upper half."""
    ceiling = min(cap, initial * (2 ** min(attempt, 16)))
    return ceiling * (0.5 + random.random() / 2)


def preflight_source(config: Config, catalog: Catalog) -> ServerRole:
    """What must hold before touching the slot; each failure says how to fix it."""
    wal_level = catalog.setting("wal_level")
    if wal_level != "logical":
        raise SourceError(f"wal_level is {wal_level!r}, logical decoding needs 'logical': "
                          "set wal_level = logical in postgresql.conf and restart PostgreSQL")
    if not catalog.can_replicate():
        raise SourceError("the database user lacks the REPLICATION attribute: "
                          "ALTER ROLE <user> WITH REPLICATION (or connect as a superuser)")
    role = server_role(catalog.conn)
    if role.standby:
        # Only what cannot work is fatal here; `cdcd check` also reports the risks (warn).
        findings = standby_findings(role, primary_wal_level(config.primary_dsn),
                                    primary_dsn_given=bool(config.primary_dsn),
                                    signal_table=bool(config.signal_data_collection))
        for finding in findings:
            if finding.status == "FAIL" and finding.name != "hot_standby_feedback":
                raise SourceError(f"{finding.name}: {finding.detail}")
            if finding.status != "ok":
                log.warning("standby_setting", setting=finding.name, detail=finding.detail)
    if role.standby and catalog.publication(config.publication_name) is None:
        name = config.publication_name
        raise SourceError(f"publication {name!r} does not exist, and this server is a standby where nothing can "
                          f"be created: CREATE PUBLICATION {name} FOR ALL TABLES (or FOR TABLE ...) on the "
                          "primary; the standby sees it once it replayed that")
    ensure_publication(config, catalog)
    if config.signal_data_collection:
        check_signal_table(config, catalog)
    return role


class Daemon:
    def __init__(self, config: Config, *, sink_factory: Callable[[Config], Sink] = make_sink,
                 stop: threading.Event | None = None, metrics: Metrics | None = None,
                 health: Health | None = None, notifier: Notifier | None = None) -> None:
        self.config = config
        self.sink_factory = sink_factory
        self.stop = stop or threading.Event()
        self.metrics = metrics or Metrics(process_metrics=False)
        self.health = health or Health(require_kafka=config.sink == "kafka", metrics=self.metrics)
        self.notifier = notifier or Notifier(env={})
        self.stats = Stats()
        self.surfaces = Surfaces(self.stats, self.metrics, self.health)
        self.tracker: LsnTracker | None = None
        self._slot_seen = False
        self.role: ServerRole | None = None
        self._standby_logged = False
        self._streamed = False
        self._publications = [config.publication_name]
        self._layout = Layout(names=(config.publication_name,))

    def run(self) -> None:
        catalog = self._startup()
        config = self.config
        poller = SlotLagPoller(config.dsn, config.slot_name, self.metrics,
                               interval_s=config.slot_lag_poll_interval_ms / 1000)
        poller.start()
        refresher = None
        if self._layout.updates is not None and not self._layout.trigger and not (self.role and self.role.standby):
            # No event trigger: a window, named in the publication_sync_window warning.
            refresher = Refresher(config.dsn, config.publication_name)
            refresher.start()
        attempt = 0
        try:
            while not self.stop.is_set():
                try:
                    self._streamed = False
                    try:
                        self._stream(catalog)
                    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                        # The catalog connection broke (PostgreSQL restarted): like the stream's.
                        raise SourceUnavailable(f"lost the PostgreSQL connection: {str(exc).strip()}") from exc
                    attempt = 0
                except RetriableErrorActiveSlot as exc:
                    # Standby: another instance streams from the slot; take over once it is free.
                    self.health.set_streaming(False)
                    if not self._standby_logged:
                        log.info("standby_waiting", slot=config.slot_name, reason=str(exc))
                        self.notifier.status(f"standby: slot {config.slot_name} is held by another instance")
                        self._standby_logged = True
                    if self.stop.wait(config.standby_poll_ms / 1000):
                        break
                    self.health.loop_tick()
                except RetriableError as exc:
                    if self.stop.is_set():
                        break  # e.g. a slot creation cancelled by SIGTERM
                    if self._streamed:
                        attempt = 0  # a healthy session failed: a new failure, not another retry
                    self.stats.streaming = False
                    delay = backoff_delay(attempt)
                    attempt += 1
                    cause = type(exc).__name__
                    self.metrics.reconnect(cause)
                    self.metrics.error(cause)
                    self.health.set_streaming(False)
                    self.notifier.status(f"reconnecting in {delay:.1f} s: {exc}")
                    log.warning("stream_interrupted", error=str(exc), retry_in_s=round(delay, 2), attempt=attempt)
                    if self.stop.wait(delay):
                        break
                    self.health.loop_tick()
                    catalog = self._reconnect_catalog(catalog)
        finally:
            poller.stop()
            if refresher is not None:
                refresher.stop()
            catalog.close()
        log.info("stopped", confirmed_lsn=format_lsn(self.tracker.confirmed) if self.tracker else None)

    def _startup(self) -> Catalog:
        if not self.config.dsn:
            raise ConfigError("no database given: set --dsn, CDCD_DSN or dsn in the config file")
        if self.config.sink == "kafka":
            # librdkafka checks every [kafka] property when the producer is built: a typo is
            # a configuration error (exit 2), not an unreachable broker.
            self.sink_factory(self.config).close()
        catalog = Catalog(connect(self.config.dsn))
        self.role = preflight_source(self.config, catalog)
        self._layout = layout(self.config, catalog)
        self._publications = list(self._layout.names)
        # Check the destination before a slot exists: a new slot retains WAL from now on.
        # Only a metadata request: registering the transactional id here would fence
        # the instance that holds the slot now, if this one is a standby.
        if self.config.sink == "kafka":
            result = check_broker(self.config, timeout=self.config.kafka_timeout_ms / 1000)
            if result.status == "FAIL":
                raise SinkUnavailable(f"cannot reach Kafka: {result.detail}")
            check_registries(self.config)
            # In the background: it only creates the topic (compacted, with an explicit replication
            # factor) or warns that an existing one is not compacted; a broker without the admin
            # API (the embedded test broker) would otherwise delay every start.
            threading.Thread(target=ensure_offsets_topic, name="cdcd-offsets-topic", daemon=True,
                             args=(self.config.bootstrap_servers, self.config.effective_offsets_topic,
                                   dict(self.config.kafka))).start()
        return catalog

    def _reconnect_catalog(self, catalog: Catalog) -> Catalog:
        try:
            catalog.close()
        except Exception:  # noqa: BLE001 - the old connection is gone anyway
            pass
        try:
            return Catalog(connect(self.config.dsn))
        except RetriableError as exc:
            log.warning("catalog_reconnect_failed", error=str(exc))
            return catalog

    def _tracker_at(self, confirmed: int) -> LsnTracker:
        """The process's one tracker: created at the first session's slot position, kept across reconnects.

        A new slot created with a snapshot reports its consistent point as that position.
        """
        if self.tracker is None:
            self.tracker = LsnTracker(confirmed)
        else:
            self.tracker.new_session()
        return self.tracker

    def _start_replication(self, repl: ReplicationConnection, start: int) -> None:
        try:
            repl.start(self.config.slot_name, start, self._publications)
        except ReplicationCommandError as exc:
            if "is active for pid" in exc.server_message.lower():  # PostgreSQL says "PID"
                raise RetriableErrorActiveSlot(str(exc)) from exc
            raise

    def _lock_slot_setup(self, catalog: Catalog) -> bool:
        key = f"cdcd slot {self.config.slot_name}"
        try:
            row = catalog.conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
        except psycopg.Error as exc:
            raise SourceUnavailable(f"lost the PostgreSQL connection: {str(exc).strip()}") from exc
        if not (row and row[0]):
            raise RetriableErrorActiveSlot(f"another instance is creating or opening slot {self.config.slot_name!r}")
        return True

    def _unlock_slot_setup(self, catalog: Catalog) -> None:
        try:
            catalog.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"cdcd slot {self.config.slot_name}",))
        except psycopg.Error:
            pass  # a closed connection released it

    def _acquire_slot(self, repl: ReplicationConnection, info: SlotInfo | None) -> int | None:
        """Start streaming from an existing slot; its position, or None when the slot is not usable as is.

        Streaming is what makes a slot active, so this is how an instance owns it. None
        leaves creating, re-snapshotting and the error messages to the slower path.
        """
        if info is None or info.plugin != "pgoutput" or info.wal_status == "lost" or info.invalidation is not None \
                or self.config.snapshot_mode == "always":
            return None
        start = max(self.tracker.committed if self.tracker is not None else 0, info.confirmed_flush_lsn or 0)
        self._start_replication(repl, start)
        self._slot_seen = True
        return start

    def _open_slot(self, repl: ReplicationConnection, stored: SourceOffset | None) -> int:
        """The slot's confirmed position; created when missing, never silently re-created."""
        slot = self.config.slot_name
        info = repl.slot_info(slot)
        if info is None and stored is not None and stored.lsn > 0:
            raise SourceError(
                f"replication slot {slot!r} does not exist, but Kafka holds events up to "
                f"{format_lsn(stored.lsn)} from it: the slot was dropped and the changes since are lost "
                "to it. Re-snapshot the tables, then either use a new slot.name, or delete the offsets record "
                f"(a tombstone for key {{\"server\":\"{self.config.topic_prefix}\",\"slot\":\"{slot}\"}} on "
                f"{self.config.effective_offsets_topic}) to start over knowingly")
        if info is None:
            if self._slot_seen:
                raise SourceError(
                    f"replication slot {slot!r} disappeared while cdcd was using it: the changes since "
                    f"{format_lsn(self.tracker.committed if self.tracker else 0)} are lost to it. "
                    "Re-snapshot the tables (or accept the gap) and restart cdcd, which creates a new slot")
            wait = self._slot_wait()
            try:
                point, _ = repl.create_slot(slot, on_wait=wait)
            finally:
                wait.close()
            log.info("slot_created", slot=slot, consistent_point=format_lsn(point))
            self._slot_seen = True
            return point
        if info.plugin != "pgoutput":
            raise SourceError(f"slot {slot!r} uses plugin {info.plugin!r}, cdcd needs pgoutput: "
                              "drop it or choose another slot.name")
        if info.invalidation is not None or info.wal_status == "lost":
            raise SourceError(invalidation_message(slot, info.invalidation or "wal_removed"))
        self._slot_seen = True
        return info.confirmed_flush_lsn or 0

    def _slot_wait(self) -> SlotCreationWait:
        """Slot creation: log what it waits for, ask the primary for a running-xacts record, obey SIGTERM."""
        standby = self.role is not None and self.role.standby
        return SlotCreationWait(self.config.slot_name, standby, self.config.primary_dsn, self.stop)

    # -- snapshot ----------------------------------------------------------------------------

    def _snapshot_needed(self, info: SlotInfo | None, stored: SourceOffset | None) -> bool:
        mode = self.config.snapshot_mode
        if mode in ("no_data", "never"):
            return False
        if stored is not None and not stored.snapshot_completed:
            return True  # an earlier snapshot did not finish: take it again
        if info is None:
            if mode == "when_needed":
                return True  # the stored position is not available any more: snapshot again
            # A slot this process used, or one Kafka holds a position of, is gone: _open_slot
            # reports that; it is never silently re-created by a snapshot.
            return stored is None and not self._slot_seen
        if mode == "always":
            return True
        return mode == "when_needed" and stored is None and self.config.sink == "kafka"

    def _snapshot(self, repl: ReplicationConnection, sink: Sink, catalog: Catalog, system_id: str, database: str,
                  info: SlotInfo | None, stored: SourceOffset | None,
                  offsets: OffsetStore | None) -> tuple[ReplicationConnection | None, SourceOffset | None]:
        """Take the snapshot; returns a fresh replication connection to stream on (None: stop)."""
        config = self.config
        slot = config.slot_name
        unfinished = stored is not None and not stored.snapshot_completed
        exported = config.snapshot_mode != "initial_only" and (
            info is None or (unfinished and config.snapshot_mode == "initial"))
        if offsets is not None:
            # Mark the snapshot as started before the slot exists: whatever happens next, a
            # restart sees an unfinished snapshot and takes it again instead of leaving a gap.
            sink.send(offsets.record(SourceOffset(stored.lsn if stored else 0, None, None, system_id,
                                                  snapshot_completed=False)))
            sink.commit()
        if exported and info is not None:
            # Nothing was streamed from this slot (its snapshot never completed), so a new
            # slot with a new snapshot loses nothing and makes the result exact again.
            log.info("snapshot_restarting", slot=slot, reason="the previous snapshot did not complete")
            repl.drop_slot(slot)
        name: str | None = None
        point: int | None = None
        if exported:
            wait = self._slot_wait()
            try:
                point, name = create_slot_with_snapshot(repl, slot, on_wait=wait)
            finally:
                wait.close()
            self._slot_seen = True
            log.info("slot_created", slot=slot, consistent_point=format_lsn(point), snapshot=name)
        accept = TableFilter(config.table_include_list, config.table_exclude_list)
        options = envelope_options(config, database)
        outbox = outbox_router(config.transforms, options)
        tables = accept.snapshot_order(
            {t for name in self._publications for t in tables_to_snapshot(catalog.conn, name, accept)})
        if outbox is not None:
            tables = [t for t in tables if not outbox.handles_table_name(t)]
        offset_lsn = point if point is not None else (
            stored.lsn if stored is not None else (info.confirmed_flush_lsn or 0) if info else 0)

        def progress(table: str, done: int, estimated: int | None) -> None:
            if estimated is not None:
                self.metrics.set_snapshot_estimate(table, estimated)
            self.health.loop_tick()
            log.info("snapshot_progress", table=table, rows_done=done, rows_estimated=estimated)

        log.info("snapshot_started", mode=config.snapshot_mode, tables=tables, exported=exported)
        self.notifier.status(f"snapshot of {len(tables)} table(s)")
        with SnapshotReader(config.dsn, name, point, tables, degree=config.snapshot_max_threads,
                            fetch_size=config.snapshot_fetch_size, publication=config.publication_name,
                            on_progress=progress) as reader:
            repl.close()  # every reader holds the snapshot now; the walsender must not idle meanwhile
            completed = produce_snapshot(
                reader, sink, options, offsets=offsets, offset_lsn=offset_lsn, system_id=system_id,
                batch_events=config.max_batch_events, stop=self.stop, metrics=self.metrics, health=self.health,
                unwrap=unwrapper(config.transforms))
        if not completed or config.snapshot_mode == "initial_only":
            if config.snapshot_mode == "initial_only" and completed:
                log.info("initial_only_done", hint="the snapshot is complete; cdcd stops (snapshot.mode=initial_only)")
                self.stop.set()
            return None, stored
        new_repl = ReplicationConnection(config.dsn)
        new_repl.identify_system()
        return new_repl, SourceOffset(offset_lsn, reader.txid, reader.ts_us, system_id, snapshot_completed=True)

    def _stream(self, catalog: Catalog) -> None:
        config = self.config
        repl = ReplicationConnection(config.dsn)
        sink: Sink | None = None
        locked = False
        try:
            identity = repl.identify_system()
            self.health.set_connected("postgresql", True)
            info = repl.slot_info(config.slot_name)
            if info is not None and info.active:
                raise RetriableErrorActiveSlot(f"slot {config.slot_name!r} is active for another client")
            # Own the slot before registering the transactional id: an instance that loses
            # the race for the slot must not fence the one that won it.
            # An advisory lock stands in for the slot while there is none to own yet (it is
            # created, or re-snapshotted, below, and free while the snapshot is read), so two
            # instances started together never both go on.
            locked = self._lock_slot_setup(catalog)
            owned = self._acquire_slot(repl, info)
            # Fence any older writer first, then read what Kafka holds: from here on only
            # this producer can commit, so the stored offset cannot move under us.
            sink = self.sink_factory(config)
            sink.start()
            if owned is not None:
                repl.send_status(owned, owned)  # the walsender must not time out while Kafka is read
            offsets = None
            stored = None
            if config.sink == "kafka":
                self.health.set_connected("kafka", True)
                offsets = OffsetStore(config.effective_offsets_topic, config.topic_prefix, config.slot_name)
                stored = offsets.read(config.bootstrap_servers, dict(config.kafka), config.kafka_timeout_ms / 1000)
                if stored is not None:
                    log.info("offset_loaded", topic=offsets.topic, lsn=format_lsn(stored.lsn), xid=stored.txid,
                             partial=stored.partial.to_doc() if stored.partial is not None else None)
            self._standby_logged = False
            # source.sequence's first element until the first COMMIT: Debezium's stored lsn_commit,
            # null on a first start and right after a snapshot.
            resumed_from = stored.lsn if stored is not None else None
            if owned is not None and self._snapshot_needed(info, stored):
                # A snapshot needs the slot's own connection for its commands: let go of it.
                repl.close()
                repl = ReplicationConnection(config.dsn)
                identity = repl.identify_system()
                info = repl.slot_info(config.slot_name)
                owned = None
            if owned is None and self._snapshot_needed(info, stored):
                resumed_from = None
                streaming_repl, stored = self._snapshot(repl, sink, catalog, identity.system_id, identity.dbname,
                                                        info, stored, offsets)
                if streaming_repl is None:
                    return
                repl = streaming_repl
            confirmed = self._open_slot(repl, stored) if owned is None else owned
            tracker = self._tracker_at(confirmed)
            if stored is not None and stored.system_id and stored.system_id != identity.system_id:
                raise SourceError(
                    f"Kafka's offsets ({offsets.topic if offsets else ''}) come from PostgreSQL system "
                    f"{stored.system_id}, but this server is {identity.system_id} (restored from a backup, "
                    "or a different cluster): positions are not comparable. Use a new topic.prefix or slot.name")
            skip_until = stored.lsn if stored is not None else 0
            # The server skips transactions below the start point itself; the session
            # skips them too, in case PostgreSQL starts from an older confirmed position.
            if owned is None:
                start = max(tracker.committed, confirmed, skip_until)
                self._start_replication(repl, start)
            else:
                # Streaming from the slot's position already; transactions Kafka holds are
                # dropped by the session (Begin.final_lsn below the stored end LSN).
                start = owned
            log.info("streaming", slot=config.slot_name, lsn=format_lsn(start), database=identity.dbname)
            self._streamed = True
            self.notifier.ready(f"streaming slot {config.slot_name} from {format_lsn(start)}")
            start_at = SessionStart(identity.dbname, identity.system_id, last_commit_lsn=resumed_from,
                                    skip_until=skip_until,
                                    resume=stored.partial if stored is not None else None,
                                    incremental=stored.incremental if stored is not None else None)
            session = StreamingSession(build_parts(config, start_at, repl, catalog, sink, tracker, self.surfaces,
                                                   offsets))
            session.run(self.stop)
        finally:
            if locked:
                self._unlock_slot_setup(catalog)
            self.health.set_connected("postgresql", False)
            self.health.set_connected("kafka", False)
            self.health.set_streaming(False)
            if sink is not None:
                try:
                    sink.close()
                except Exception as exc:  # noqa: BLE001 - closing must not mask the real error
                    log.warning("sink_close_failed", error=str(exc))
            repl.close()


class RetriableErrorActiveSlot(RetriableError):
    """Another walsender holds the slot (often our own previous connection, not yet gone)."""
