"""The lifecycle: startup checks → streaming sessions (reconnecting) → shutdown.

Startup fails fast with a clear message (a wrong DSN, wal_level, a missing
publication, an unreachable broker): nothing has been confirmed yet, and the
service manager decides about restarts. Once streaming, transient failures
(PostgreSQL restarts, broker outages) are retried with capped exponential
backoff and jitter, resuming from the last LSN Kafka acknowledged. Each session
reads top to bottom (``Daemon._session``): take the slot → fence older writers →
load the offsets → snapshot when needed → open the slot → stream → shut down.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import structlog

from cdcd.check import check_broker
from cdcd.config import Config
from cdcd.delivery.offsets import OffsetStore, SourceOffset, ensure_offsets_topic
from cdcd.delivery.sinks import Sink
from cdcd.delivery.sinks.factory import check_registries, make_sink
from cdcd.delivery.tracker import LsnTracker
from cdcd.errors import ConfigError, RetriableError, SinkUnavailable, SourceError, SourceUnavailable
from cdcd.ops.health import Health
from cdcd.ops.heap import set_up_objects_frozen
from cdcd.ops.metrics import Metrics, SlotLagPoller
from cdcd.ops.sdnotify import Notifier
from cdcd.pipeline import Stats, StreamingSession
from cdcd.session.build import SessionStart, Surfaces, build_parts
from cdcd.snapshot.initial import InitialSnapshot, SnapshotStopped, Snapshotted, snapshot_needed
from cdcd.source.catalog import Catalog, connect
from cdcd.source.preflight import preflight_source
from cdcd.source.publication import Layout, Refresher, layout
from cdcd.source.slot import RetriableErrorActiveSlot, SlotKeeper
from cdcd.wire.lsn import format_lsn
from cdcd.wire.replication import ReplicationConnection, SlotInfo, SystemIdentity
from cdcd.wire.standby import ServerRole

__all__ = ["Daemon", "backoff_delay", "make_sink"]

log = structlog.get_logger("cdcd.daemon")

BACKOFF_INITIAL_S = 0.5
BACKOFF_CAP_S = 30.0


def backoff_delay(attempt: int, *, initial: float = BACKOFF_INITIAL_S, cap: float = BACKOFF_CAP_S) -> float:
    """Capped exponential backoff with full jitter in its upper half."""
    ceiling = min(cap, initial * (2 ** min(attempt, 16)))
    return ceiling * (0.5 + random.random() / 2)


@dataclass(slots=True)
class _Attempt:
    """What one session holds; ``Daemon._end_session`` releases it whatever happened."""

    repl: ReplicationConnection
    identity: SystemIdentity | None = None
    info: SlotInfo | None = None
    """The slot as the session found it (None: there is none)."""
    owned: int | None = None
    """The position this session already streams the slot from (it was usable as is), else None."""
    locked: bool = False
    sink: Sink | None = None


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
        """The one tracker, created when the first session opens the slot (``_tracker_at``)."""
        self.slots = SlotKeeper(config, self.stop)
        self.snapshots = InitialSnapshot(config, self.slots, stop=self.stop, metrics=self.metrics,
                                         health=self.health, notifier=self.notifier)
        self.role: ServerRole | None = None
        self.catalog: Catalog | None = None
        self._standby_logged = False
        self._streamed = False
        self._layout = Layout(names=(config.publication_name,))

    def run(self) -> None:
        """Startup checks, then sessions until stopped (reconnecting with backoff), then shutdown."""
        self.catalog = self._startup()
        helpers = self._start_helpers()
        try:
            self._sessions()
        finally:
            for helper in helpers:
                helper.stop()
            self.catalog.close()
        log.info("stopped", confirmed_lsn=format_lsn(self.tracker.confirmed) if self.tracker else None)

    # -- startup -----------------------------------------------------------------------------

    def _startup(self) -> Catalog:
        if not self.config.dsn:
            raise ConfigError("no database given: set --dsn, CDCD_DSN or dsn in the config file")
        if self.config.sink == "kafka":
            # librdkafka checks every [kafka] property when the producer is built: a typo is
            # a configuration error (exit 2), not an unreachable broker.
            self.sink_factory(self.config).close()
        catalog = Catalog(connect(self.config.dsn))
        self.role = preflight_source(self.config, catalog)
        self.slots.standby = self.role.standby
        self._layout = layout(self.config, catalog)
        self.slots.publications = list(self._layout.names)
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

    def _start_helpers(self) -> list[SlotLagPoller | Refresher]:
        """The slot lag gauge, and the publication refresher where no event trigger keeps it in step."""
        config = self.config
        helpers: list[SlotLagPoller | Refresher] = [
            SlotLagPoller(config.dsn, config.slot_name, self.metrics, interval_s=config.slot_lag_poll_interval_ms / 1000)]
        if self._layout.updates is not None and not self._layout.trigger and not (self.role and self.role.standby):
            # No event trigger: a window, named in the publication_sync_window warning.
            helpers.append(Refresher(config.dsn, config.publication_name))
        for helper in helpers:
            helper.start()
        return helpers

    # -- sessions, reconnecting --------------------------------------------------------------

    def _sessions(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            try:
                self._streamed = False
                try:
                    self._session()
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    # The catalog connection broke (PostgreSQL restarted): like the stream's.
                    raise SourceUnavailable(f"lost the PostgreSQL connection: {str(exc).strip()}") from exc
                attempt = 0
            except RetriableErrorActiveSlot as exc:
                if self._wait_as_standby(exc):
                    break
            except RetriableError as exc:
                if self.stop.is_set():
                    break  # e.g. a slot creation cancelled by SIGTERM
                if self._streamed:
                    attempt = 0  # a healthy session failed: a new failure, not another retry
                attempt += 1
                if self._back_off(exc, attempt):
                    break

    def _wait_as_standby(self, exc: RetriableErrorActiveSlot) -> bool:
        """Another instance streams from the slot: take over once it is free. True when stopped meanwhile."""
        self.health.set_streaming(False)
        if not self._standby_logged:
            log.info("standby_waiting", slot=self.config.slot_name, reason=str(exc))
            self.notifier.status(f"standby: slot {self.config.slot_name} is held by another instance")
            self._standby_logged = True
        if self.stop.wait(self.config.standby_poll_ms / 1000):
            return True
        self.health.loop_tick()
        return False

    def _back_off(self, exc: RetriableError, attempt: int) -> bool:
        """Wait before the ``attempt``-th retry and reconnect the catalog. True when stopped meanwhile."""
        self.stats.streaming = False
        delay = backoff_delay(attempt - 1)
        cause = type(exc).__name__
        self.metrics.reconnect(cause)
        self.metrics.error(cause)
        self.health.set_streaming(False)
        self.notifier.status(f"reconnecting in {delay:.1f} s: {exc}")
        log.warning("stream_interrupted", error=str(exc), retry_in_s=round(delay, 2), attempt=attempt)
        if self.stop.wait(delay):
            return True
        self.health.loop_tick()
        self._reconnect_catalog()
        return False

    def _reconnect_catalog(self) -> None:
        assert self.catalog is not None
        try:
            self.catalog.close()
        except Exception:  # noqa: BLE001 - the old connection is gone anyway
            pass
        try:
            self.catalog = Catalog(connect(self.config.dsn))
        except RetriableError as exc:
            log.warning("catalog_reconnect_failed", error=str(exc))

    # -- one session -------------------------------------------------------------------------

    def _session(self) -> None:
        """Take the slot → fence older writers → load offsets → snapshot → open the slot → stream → shut down."""
        attempt = _Attempt(ReplicationConnection(self.config.dsn))
        try:
            self._take_slot(attempt)
            self._fence(attempt)
            offsets, stored = self._load_offsets()
            self._standby_logged = False
            # source.sequence's first element until the first COMMIT: Debezium's stored lsn_commit,
            # null on a first start and right after a snapshot.
            resumed_from = stored.lsn if stored is not None else None
            snapshot = self._snapshot_if_needed(attempt, stored, offsets)
            if isinstance(snapshot, SnapshotStopped):
                return
            if snapshot is not None:
                attempt.repl, stored, resumed_from = snapshot.repl, snapshot.stored, None
            tracker, start = self._open_slot(attempt, stored, offsets)
            self._stream(attempt, tracker, start, stored, offsets, resumed_from)
        finally:
            self._end_session(attempt)

    def _committed(self) -> int:
        return self.tracker.committed if self.tracker is not None else 0

    def _take_slot(self, attempt: _Attempt) -> None:
        """Own the slot before registering the transactional id: an instance that loses
        the race for the slot must not fence the one that won it."""
        repl, slot = attempt.repl, self.config.slot_name
        attempt.identity = repl.identify_system()
        self.health.set_connected("postgresql", True)
        attempt.info = repl.slot_info(slot)
        if attempt.info is not None and attempt.info.active:
            raise RetriableErrorActiveSlot(f"slot {slot!r} is active for another client")
        # An advisory lock stands in for the slot while there is none to own yet (it is
        # created, or re-snapshotted, below, and free while the snapshot is read), so two
        # instances started together never both go on.
        assert self.catalog is not None
        self.slots.lock_setup(self.catalog)
        attempt.locked = True
        attempt.owned = self.slots.acquire(repl, attempt.info, self._committed())

    def _fence(self, attempt: _Attempt) -> None:
        """Register the transactional id: from here on only this producer can commit."""
        attempt.sink = self.sink_factory(self.config)
        attempt.sink.start()
        if attempt.owned is not None:
            attempt.repl.send_status(attempt.owned, attempt.owned)  # the walsender must not time out meanwhile

    def _load_offsets(self) -> tuple[OffsetStore | None, SourceOffset | None]:
        """What Kafka holds, read after fencing, so it cannot move under us (None, None: no offsets)."""
        config = self.config
        if config.sink != "kafka":
            return None, None
        self.health.set_connected("kafka", True)
        offsets = OffsetStore(config.effective_offsets_topic, config.topic_prefix, config.slot_name)
        stored = offsets.read(config.bootstrap_servers, dict(config.kafka), config.kafka_timeout_ms / 1000)
        if stored is not None:
            log.info("offset_loaded", topic=offsets.topic, lsn=format_lsn(stored.lsn), xid=stored.txid,
                     partial=stored.partial.to_doc() if stored.partial is not None else None)
        return offsets, stored

    def _snapshot_if_needed(self, attempt: _Attempt, stored: SourceOffset | None,
                            offsets: OffsetStore | None) -> Snapshotted | SnapshotStopped | None:
        """The initial snapshot when this session needs one (None: it does not)."""
        config = self.config
        if not snapshot_needed(config, attempt.info, stored, self.slots.seen):
            return None
        if attempt.owned is not None:
            # A snapshot needs the slot's own connection for its commands: let go of it.
            attempt.repl.close()
            attempt.repl = ReplicationConnection(config.dsn)
            attempt.identity = attempt.repl.identify_system()
            attempt.info = attempt.repl.slot_info(config.slot_name)
            attempt.owned = None
            if not snapshot_needed(config, attempt.info, stored, self.slots.seen):
                return None
        assert attempt.sink is not None and attempt.identity is not None and self.catalog is not None
        return self.snapshots.take(attempt.repl, attempt.sink, self.catalog, attempt.identity, attempt.info, stored,
                                   offsets)

    def _open_slot(self, attempt: _Attempt, stored: SourceOffset | None,
                   offsets: OffsetStore | None) -> tuple[LsnTracker, int]:
        """The tracker and the position streaming starts from (replication started if not yet)."""
        assert attempt.identity is not None
        confirmed = attempt.owned if attempt.owned is not None else self.slots.open(attempt.repl, stored,
                                                                                    self._committed())
        tracker = self._tracker_at(confirmed)
        system_id = attempt.identity.system_id
        if stored is not None and stored.system_id and stored.system_id != system_id:
            raise SourceError(
                f"Kafka's offsets ({offsets.topic if offsets else ''}) come from PostgreSQL system "
                f"{stored.system_id}, but this server is {system_id} (restored from a backup, "
                "or a different cluster): positions are not comparable. Use a new topic.prefix or slot.name")
        if attempt.owned is not None:
            # Streaming from the slot's position already; transactions Kafka holds are
            # dropped by the session (Begin.final_lsn below the stored end LSN).
            return tracker, attempt.owned
        # The server skips transactions below the start point itself; the session
        # skips them too, in case PostgreSQL starts from an older confirmed position.
        start = max(tracker.committed, confirmed, stored.lsn if stored is not None else 0)
        self.slots.start_replication(attempt.repl, start)
        return tracker, start

    def _tracker_at(self, confirmed: int) -> LsnTracker:
        """The process's one tracker: created at the first session's slot position, kept across reconnects.

        A new slot created with a snapshot reports its consistent point as that position.
        """
        if self.tracker is None:
            self.tracker = LsnTracker(confirmed)
        else:
            self.tracker.new_session()
        return self.tracker

    def _stream(self, attempt: _Attempt, tracker: LsnTracker, start: int, stored: SourceOffset | None,
                offsets: OffsetStore | None, resumed_from: int | None) -> None:
        config, identity = self.config, attempt.identity
        assert identity is not None and attempt.sink is not None and self.catalog is not None
        log.info("streaming", slot=config.slot_name, lsn=format_lsn(start), database=identity.dbname)
        self._streamed = True
        self.notifier.ready(f"streaming slot {config.slot_name} from {format_lsn(start)}")
        begin = SessionStart(identity.dbname, identity.system_id, last_commit_lsn=resumed_from,
                             skip_until=stored.lsn if stored is not None else 0,
                             resume=stored.partial if stored is not None else None,
                             incremental=stored.incremental if stored is not None else None)
        parts = build_parts(config, begin, attempt.repl, self.catalog, attempt.sink, tracker, self.surfaces, offsets)
        with set_up_objects_frozen():
            StreamingSession(parts).run(self.stop)

    def _end_session(self, attempt: _Attempt) -> None:
        if attempt.locked and self.catalog is not None:
            self.slots.unlock_setup(self.catalog)
        self.health.set_connected("postgresql", False)
        self.health.set_connected("kafka", False)
        self.health.set_streaming(False)
        if attempt.sink is not None:
            try:
                attempt.sink.close()
            except Exception as exc:  # noqa: BLE001 - closing must not mask the real error
                log.warning("sink_close_failed", error=str(exc))
        attempt.repl.close()
