"""The Kafka sink: one transactional producer, transactions with checked transitions.

``commit`` returns only after ``commit_transaction`` did, i.e. after every
record of the transaction was acknowledged by all in-sync replicas. Any
failure leaves the transaction aborted (or the producer unusable) and raises:
the pipeline then restarts from the last confirmed LSN, so nothing is skipped.
The ``transactional.id`` fences any older producer using the same id.

With ``overlap`` (``commit.overlap``), ``commit_start`` hands ``commit_transaction``
to one committer thread and returns (librdkafka releases the GIL while it waits),
so the streaming thread can read, decode and encode the next batch meanwhile
(docs/delivery.md, "Committing while the next batch streams"). Records sent while
that commit runs are held in order and produced into the next Kafka transaction
only once the commit returned: they reach every partition after the committed
ones, and a failed commit drops them unsent. ``commit_finished`` settles the
commit without waiting (``wake_fd`` turns readable when it returned),
``commit_wait`` waits for it, ``commit`` does both. Without ``overlap`` (the
default) ``commit_start`` commits before it returns.
The offsets record is simply the transaction's last record: ``commit_transaction``
flushes and ends the transaction in one call, and an aborted transaction's offsets
record is invisible to read_committed readers like its events. Each transaction also
opens with a copy of the last committed offsets record: the offsets partition is then
registered with the transaction together with the first record's, not in its own
AddPartitionsToTxn round trip at commit time, and the copy changes nothing (in log order
the transaction's own offsets record follows it; without one the stored state is the
committed one either way).

Every method raises in a state where it has nothing sensible to do (sending or
committing after a failure or ``close``, committing with no transaction open),
except ``abort`` and ``close``, which are safe to call in any state. ``close``
purges what the producer still holds and releases it: a closed sink sends nothing.

A fatal producer error is exit 4 (``SinkError``: fenced by another writer), however
librdkafka surfaces it, a ``SystemError`` out of a callback included, except when the
Kafka transaction had been open longer than ``transaction.timeout.ms``: then the
broker aborted it on its timeout (librdkafka says "fenced" for that too), which is
logged as ``kafka_transaction_timed_out`` and retried (``SinkUnavailable``). The
pipeline keeps transactions shorter than that (``transaction_age_s``, huge PostgreSQL
transactions are committed in parts).

A record larger than the producer's ``message.max.bytes`` is refused by
librdkafka before it enters the transaction; ``oversized_policy`` decides
what happens then: ``fail`` (stop, nothing of the transaction is confirmed),
``skip`` (log ``record_skipped_oversized`` and go on) or ``dead-letter``
(a small JSON record naming it goes to the dead-letter topic, inside the same
Kafka transaction, keyed like the original).

Over 400 lines on purpose: it is one state machine (``TxnState``) whose transitions,
committer thread and failure classification must be read together to see that no
path reports a commit Kafka did not make.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import orjson
import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from cdcd.debezium.envelope import Record
from cdcd.delivery.offsets import OffsetRecord
from cdcd.errors import CdcdError, ConfigError, SinkError, SinkUnavailable

log = structlog.get_logger("cdcd.kafka")

# Defaults tuned for latency: a commit flushes anyway, so linger stays short. lz4: envelopes
# with schemas repeat the schema in every record and shrink several times; on a real broker
# uncompressed wide records (≈ 5-10 kB) keep librdkafka's broker thread busy at 4x the CPU
# per record (docs/performance.md), for no gain. Every consumer decompresses transparently.
PRODUCER_DEFAULTS: dict[str, Any] = {
    # Java's partitioner (murmur2 of the key bytes), as Kafka Connect's producer: a key lands on
    # the partition Debezium put it on. librdkafka's own default hashes with CRC32.
    "partitioner": "murmur2_random",
    "compression.type": "lz4",
    "linger.ms": 5,
    "enable.idempotence": True,
    "acks": "all",
    "delivery.report.only.error": True,
    "queue.buffering.max.messages": 200_000,
    "queue.buffering.max.kbytes": 262_144,
    # Broker connection states for readiness, served by poll() once a second.
    "statistics.interval.ms": 1000,
}


OVERSIZED_POLICIES = ("fail", "skip", "dead-letter")
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000  # librdkafka's default message.max.bytes
DEFAULT_TRANSACTION_TIMEOUT_MS = 60_000  # librdkafka's default transaction.timeout.ms


class TxnState(enum.Enum):
    NEW = "new"
    READY = "ready"
    IN_TRANSACTION = "in_transaction"
    COMMITTING = "committing"
    FAILED = "failed"
    CLOSED = "closed"


_ALLOWED = {
    TxnState.NEW: {TxnState.READY, TxnState.FAILED, TxnState.CLOSED},
    TxnState.READY: {TxnState.IN_TRANSACTION, TxnState.FAILED, TxnState.CLOSED},
    TxnState.IN_TRANSACTION: {TxnState.READY, TxnState.COMMITTING, TxnState.FAILED, TxnState.CLOSED},
    # A failed commit leaves its transaction open until it is aborted.
    TxnState.COMMITTING: {TxnState.READY, TxnState.IN_TRANSACTION, TxnState.FAILED, TxnState.CLOSED},
    TxnState.FAILED: {TxnState.FAILED, TxnState.CLOSED},
    TxnState.CLOSED: set(),
}


class _LibrdkafkaLogger(logging.Logger):
    """Routes librdkafka's own log lines into structlog instead of raw stderr."""

    def __init__(self) -> None:
        super().__init__("cdcd.librdkafka")

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        text = str(msg) % args if args else str(msg)
        if level >= logging.ERROR:
            log.warning("kafka_client_log", message=text, level=logging.getLevelName(level))
        else:
            log.debug("kafka_client_log", message=text)


def _key_text(key: bytes | None) -> str:
    """The raw key as text, for a record known only by its bytes (a delivery report)."""
    return "null" if key is None else key[:200].decode("utf-8", "replace")


def _describe_key(record: Record) -> str:
    """The key's columns as JSON (from the record's metadata), else its bytes as text."""
    if record.key_fields is not None:
        return orjson.dumps(record.key_fields, default=str).decode()
    return _key_text(record.key)


def _describe_table(record: Record) -> str:
    """``schema.table`` from the record's metadata, else its topic."""
    return record.table or record.topic


def _int_property(config: dict[str, Any], name: str, default: int) -> int:
    value = config.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"[kafka] {name} {value!r} is not a number") from None


def _error_text(exc: BaseException) -> str:
    """The librdkafka error of a KafkaException, else the exception's own text."""
    err = exc.args[0] if exc.args else None
    return err.str() if isinstance(err, KafkaError) else (str(exc) or type(exc).__name__)


def _kafka_error(exc: BaseException) -> KafkaError | None:
    """The KafkaError an exception carries, directly or as the cause of a SystemError."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KafkaException) and seen.args and isinstance(seen.args[0], KafkaError):
            return seen.args[0]
        seen = seen.__cause__ or seen.__context__
    return None


_FENCED_CODES = frozenset(code for code in (
    getattr(KafkaError, "_FENCED", None), getattr(KafkaError, "PRODUCER_FENCED", None),
    getattr(KafkaError, "INVALID_PRODUCER_EPOCH", None), getattr(KafkaError, "INVALID_TXN_STATE", None),
) if code is not None)


def _record_size(record: Record) -> int:
    return (len(record.key or b"") + len(record.value or b"")
            + sum(len(k) + len(v or b"") for k, v in record.headers))


class KafkaSink:
    def __init__(self, bootstrap_servers: str, transactional_id: str, *,
                 properties: dict[str, str] | None = None, timeout_s: float = 30.0,
                 oversized_policy: str = "fail", dead_letter_topic: str | None = None,
                 overlap: bool = False, begin_gap_s: float = 0.0) -> None:
        if oversized_policy not in OVERSIZED_POLICIES:
            raise ConfigError(f"oversized.record.policy {oversized_policy!r}: expected one of "
                              f"{', '.join(OVERSIZED_POLICIES)}")
        config: dict[str, Any] = dict(PRODUCER_DEFAULTS)
        config.update(properties or {})
        config["bootstrap.servers"] = bootstrap_servers
        config.setdefault("transactional.id", transactional_id)
        config["on_delivery"] = self._on_delivery
        config["error_cb"] = self._on_error
        config["stats_cb"] = self._on_stats
        config["logger"] = _LibrdkafkaLogger()
        self.bootstrap_servers = bootstrap_servers
        self.transactional_id = str(config["transactional.id"])
        self.oversized_policy = oversized_policy
        self.dead_letter_topic = dead_letter_topic or None
        self.max_message_bytes = _int_property(config, "message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES)
        self._timeout = timeout_s
        self.transaction_timeout_s = _int_property(config, "transaction.timeout.ms",
                                                   DEFAULT_TRANSACTION_TIMEOUT_MS) / 1000.0
        self._fatal_error: KafkaError | None = None
        self._txn_started = 0.0
        try:
            self._producer = Producer(config)
        except KafkaException as exc:
            # librdkafka refuses unknown properties and bad values: the configuration is wrong.
            raise ConfigError(f"[kafka] producer properties: {_error_text(exc)}") from None
        self._state = TxnState.NEW
        self._delivery_error: tuple[KafkaError, str, str, str] | None = None
        self.brokers_down = False
        self.staged = 0
        self._held: list[Record] = []
        """Records sent while a commit runs: produced into the next transaction once it returned."""
        self._txn_offsets: OffsetRecord | None = None
        """The offsets record staged in the open transaction (the last one sent)."""
        self._committed_offsets: OffsetRecord | None = None
        """The offsets record of the last committed transaction: each new one opens with a copy."""
        self.begin_gap_s = begin_gap_s
        """The next transaction begins no sooner than this after a commit returned (``commit.gap.ms``)."""
        self._committed_at = 0.0
        """When the last commit returned (``time.monotonic()``)."""
        self._commit_deadline = 0.0
        self.overlap = overlap
        """Commit on the committer thread; else ``commit_start`` commits before it returns."""
        self._committer: ThreadPoolExecutor | None = None
        self._commit: Future[None] | None = None
        self._stuck: Future[None] | None = None
        """A commit that outlived its deadline, still running on the committer thread."""
        self._settled = False
        """A commit settled (successfully) that ``commit_finished`` has not reported yet."""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self.oversized_skipped = 0
        self.oversized_dead_lettered = 0

    @property
    def in_transaction(self) -> bool:
        return self._state is TxnState.IN_TRANSACTION

    @property
    def wake_fd(self) -> int:
        """Readable once a running commit returned: the streaming thread waits on it with the socket."""
        return self._wake_r

    @property
    def committing(self) -> bool:
        """A commit runs on the committer thread (records sent meanwhile are held)."""
        return self._state is TxnState.COMMITTING

    def _require(self, action: str, *states: TxnState) -> None:
        if self._state not in states:
            raise SinkError(f"internal error: cannot {action} while the Kafka producer is {self._state.value}")

    def _move(self, new: TxnState) -> None:
        if new not in _ALLOWED[self._state]:
            raise SinkError(f"internal error: Kafka transaction cannot go from {self._state.value} to {new.value}")
        self._state = new

    # -- callbacks (run inside poll/flush) ---------------------------------------------------

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None or self._delivery_error is not None:
            return
        try:
            # Only the bytes come back: the topic names the table (Debezium's <prefix>.<schema>.<table>).
            topic = str(msg.topic())
            self._delivery_error = (err, topic, _key_text(msg.key()), topic)
        except BaseException:  # noqa: BLE001 - a fatal producer error is pending: never raise from here
            self._delivery_error = (err, "?", "?", "?")

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.brokers_down = True
        if err.fatal() and self._fatal_error is None:
            self._fatal_error = err
        log.warning("kafka_error", error=err.str(), code=err.name(), fatal=err.fatal())

    def _on_stats(self, stats_json: str) -> None:
        """Track whether any broker connection is up (recovers without traffic, unlike error_cb)."""
        try:
            brokers = orjson.loads(stats_json).get("brokers", {})
        except orjson.JSONDecodeError:
            return
        states = [b.get("state") for b in brokers.values() if b.get("nodeid", -1) >= 0]
        if states:
            self.brokers_down = "UP" not in states

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Register the transactional id (fencing older producers) or explain why not."""
        try:
            self._producer.init_transactions(self._timeout)
        except KafkaException as exc:
            self._move(TxnState.FAILED)
            err = exc.args[0]
            raise SinkUnavailable(
                f"cannot initialize Kafka transactions at {self.bootstrap_servers}: {err.str()} "
                "(is the broker reachable, and Kafka >= 0.11 with transactions enabled? "
                "check bootstrap.servers and the broker's transaction.state.log settings)") from exc
        self.brokers_down = False
        self._move(TxnState.READY)
        log.info("kafka_ready", bootstrap_servers=self.bootstrap_servers, transactional_id=self.transactional_id)

    def send(self, record: Record) -> None:
        state = self._state
        if state is TxnState.IN_TRANSACTION:
            if record.__class__ is Record and not record.headers:
                try:  # the common case first: a full queue or a refused record goes the careful way below
                    self._producer.produce(record.topic, record.value, record.key)
                    self.staged += 1
                    return
                except (BufferError, KafkaException):
                    pass
        elif state is TxnState.COMMITTING:
            self._held.append(record)  # the next transaction's: produced once the commit returned
            return
        else:
            self._require("send a record", TxnState.READY)
            self._begin()
        err = self._produce(record)
        if err is not None:
            self._oversized(record, err)

    def _produce(self, record: Record) -> KafkaError | None:
        """Stage one record, waiting while the local queue is full; the error when it is too large."""
        while True:
            try:
                if type(record) is OffsetRecord:
                    self._producer.produce(record.topic, record.value, record.key)
                    self._txn_offsets = record
                elif type(record) is not Record:
                    # Routed records (outbox) may carry their own timestamp and partition.
                    partition = getattr(record, "partition", None)
                    self._producer.produce(record.topic, record.value, record.key,
                                           headers=list(record.headers) or None,
                                           partition=-1 if partition is None else partition,
                                           timestamp=getattr(record, "timestamp_ms", None) or 0)
                elif record.headers:
                    self._producer.produce(record.topic, record.value, record.key, headers=list(record.headers))
                else:
                    self._producer.produce(record.topic, record.value, record.key)
                self.staged += 1
                return None
            except BufferError:
                # The local queue is full: wait for the broker instead of buffering more.
                self._producer.poll(0.05)
                self._raise_delivery_error()
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    # Refused locally, before it joined the transaction: the rest of it is intact.
                    return err
                self._fail_produce(err, record.topic, _describe_key(record), _describe_table(record))

    def _oversized(self, record: Record, err: KafkaError) -> None:
        """Apply the oversized-record policy to a record librdkafka refused as too large."""
        size = _record_size(record)
        table = _describe_table(record)
        key = _describe_key(record)
        if self.oversized_policy == "fail":
            self._fail_produce(err, record.topic, key, table, size=size)
        if self.oversized_policy == "skip":
            self.oversized_skipped += 1
            log.warning("record_skipped_oversized", topic=record.topic, table=table, key=key, size=size,
                        limit=self.max_message_bytes)
            return
        topic = self.dead_letter_topic or f"{record.topic.split('.', 1)[0]}.dlq"
        reason = (f"record of {size} bytes is larger than message.max.bytes={self.max_message_bytes} "
                  f"({err.str()})")
        key_doc = record.key_fields if record.key_fields is not None else (
            None if record.key is None else _key_text(record.key))
        value = orjson.dumps({"topic": record.topic, "table": table, "key": key_doc,
                              "size": size, "limit": self.max_message_bytes, "reason": reason,
                              "lsn": record.lsn, "txId": record.txid}, default=str)
        if self._produce(Record(topic, record.key, value, (), record.table, record.key_fields, record.lsn,
                                record.txid)) is not None:
            raise SinkError(f"the dead-letter record for table {table} (topic {record.topic}, key {key}) "
                            f"is itself larger than message.max.bytes={self.max_message_bytes}: "
                            "its key is too large; raise message.max.bytes in [kafka]")
        self.oversized_dead_lettered += 1
        log.warning("record_dead_lettered", topic=record.topic, table=table, key=key, size=size,
                    limit=self.max_message_bytes, dead_letter_topic=topic)

    def _begin(self) -> None:
        if self.begin_gap_s:
            wait = self._committed_at + self.begin_gap_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # at most commit.gap.ms: see _settle
        try:
            self._producer.begin_transaction()
        except KafkaException as exc:
            self._move(TxnState.FAILED)
            raise SinkUnavailable(f"cannot begin a Kafka transaction: {exc.args[0].str()}") from exc
        self._move(TxnState.IN_TRANSACTION)
        self._txn_started = time.monotonic()
        self.staged = 0
        self._txn_offsets = None
        if self._committed_offsets is not None:  # registers the offsets partition now (module docstring)
            self._produce(self._committed_offsets)

    def poll(self) -> None:
        self._require("poll", TxnState.READY, TxnState.IN_TRANSACTION, TxnState.COMMITTING)
        self._producer.poll(0)
        if self._state is not TxnState.COMMITTING:  # a failed record of a running commit fails the commit
            self._raise_delivery_error()

    @property
    def transaction_age_s(self) -> float:
        """How long the open Kafka transaction has been open (0 when none is)."""
        return time.monotonic() - self._txn_started if self._txn_started else 0.0

    def commit(self, timeout_s: float | None = None) -> None:
        """Commit the open transaction and wait for it (after any commit already running)."""
        if self._state is TxnState.COMMITTING:
            self.commit_wait()
        self.commit_start(timeout_s)
        self.commit_wait()
        self._settled = False  # waited for here: not one for commit_finished to report

    def commit_start(self, timeout_s: float | None = None) -> None:
        """Commit the open transaction: on the committer thread with ``overlap`` (returns at once), else here."""
        self._require("commit", TxnState.IN_TRANSACTION)
        if self._committer is None and self.overlap:
            self._committer = ThreadPoolExecutor(1, thread_name_prefix="cdcd-kafka-commit")
        self._commit_deadline = time.monotonic() + (self._timeout if timeout_s is None else timeout_s)
        self._move(TxnState.COMMITTING)
        self._settled = False
        if not self.overlap:
            done: Future[None] = Future()
            try:
                self._commit_transaction(self._commit_deadline)
                done.set_result(None)
            except BaseException as exc:  # noqa: BLE001 - settled below, as the thread's outcome would be
                done.set_exception(exc)
            self._settle(done)
            return
        self._commit = self._committer.submit(self._commit_transaction, self._commit_deadline)
        self._commit.add_done_callback(self._wake)

    def commit_finished(self) -> bool:
        """Whether a commit settled since the last call (never waits); raises when it failed.

        A settled commit's held records are produced into a new transaction.
        """
        commit = self._commit
        if commit is not None and commit.done():
            self._settle(commit)
        settled, self._settled = self._settled, False
        return settled

    def commit_wait(self) -> None:
        """Wait for the running commit and settle it (raises when it failed); no-op when none runs."""
        commit = self._commit
        if commit is not None:
            try:
                commit.exception(max(0.0, self._commit_deadline - time.monotonic()) + 5.0)
            except TimeoutError:
                pass  # settled below as a failure: librdkafka did not return within its own timeout
            self._settle(commit)

    def _commit_transaction(self, deadline: float) -> None:
        """On the committer thread: commit_transaction (it flushes first), retried while retriable."""
        producer = self._producer  # close() may drop the sink's reference meanwhile
        while True:
            try:
                producer.commit_transaction(max(0.1, deadline - time.monotonic()))
                return
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.retriable() and not err.fatal() and time.monotonic() < deadline:
                    continue
                raise

    def _wake(self, _commit: Future[None]) -> None:
        """Once the commit's outcome is set (not before: the streaming thread would find it still running)."""
        if self._wake_w >= 0:
            os.write(self._wake_w, b"w")

    def _settle(self, commit: Future[None]) -> None:
        """On the streaming thread: the commit's outcome becomes the sink's state."""
        self._commit = None
        try:
            os.read(self._wake_r, 64)
        except BlockingIOError:
            pass
        if not commit.done():
            self._stuck = commit
            self._held = []
            self._move(TxnState.FAILED)
            raise SinkUnavailable("Kafka transaction did not commit in time (kafka.timeout.ms); "
                                  "the records after it were dropped unsent")
        exc = commit.exception()
        if exc is not None:
            self._held = []  # the next transaction never begins: nothing of it reaches Kafka
            self._move(TxnState.IN_TRANSACTION)  # failed, to be aborted
            self._commit_failed(exc)
        self._move(TxnState.READY)
        self._txn_started = 0.0
        self.staged = 0
        if self._txn_offsets is not None:
            self._committed_offsets, self._txn_offsets = self._txn_offsets, None
        self._committed_at = time.monotonic()
        self.brokers_down = False
        self._settled = True
        held, self._held = self._held, []
        for record in held:
            self.send(record)

    def _commit_failed(self, exc: BaseException) -> None:
        if isinstance(exc, CdcdError):
            self._move(TxnState.FAILED)
            raise exc
        if not isinstance(exc, (KafkaException, SystemError, RuntimeError)):
            self._move(TxnState.FAILED)
            raise SinkError(f"internal error: Kafka commit failed: {exc!r}") from exc
        # librdkafka may surface a fatal error (fenced) as a SystemError from a callback:
        # never a crash, always the fatal error it stands for.
        err = self._fatal_error or _kafka_error(exc)
        if err is None:
            self._serve_callbacks()  # the error callback names the fatal error
            err = self._fatal_error
        if err is None and isinstance(exc, SystemError):
            # confluent-kafka's sign of a fatal producer error raised inside a callback.
            err = KafkaError(KafkaError._FATAL, f"fatal producer error ({exc})", fatal=True)
        if err is None:
            self._move(TxnState.FAILED)
            raise SinkUnavailable(f"Kafka transaction did not commit: {_error_text(exc)}") from exc
        self._after_failed_commit(err)

    def _after_failed_commit(self, err: KafkaError) -> None:
        delivery = self._delivery_error
        if delivery is not None and delivery[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
            self._move(TxnState.FAILED)
            self._fail_produce(*delivery)
        if self._fatal_error is not None and not err.fatal():
            err = self._fatal_error
        if err.txn_requires_abort() and not err.fatal():
            self.abort()
        elif self._state is not TxnState.FAILED:
            self._move(TxnState.FAILED)
        if err.fatal() or err.code() in _FENCED_CODES:
            self._raise_fatal(err)
        detail = (f"; first failed record: table {delivery[3]} (topic {delivery[1]}, key {delivery[2]}): "
                  f"{delivery[0].str()}" if delivery else "")
        raise SinkUnavailable(f"Kafka transaction did not commit: {err.str()}{detail}")

    def _raise_fatal(self, err: KafkaError) -> None:
        """A fatal producer error: a transaction the broker timed out, or fenced by another writer."""
        age = time.monotonic() - self._txn_started if self._txn_started else 0.0
        if (err.code() in _FENCED_CODES or err.code() == KafkaError._FATAL) and age >= self.transaction_timeout_s:
            # The coordinator aborts a transaction older than transaction.timeout.ms and bumps the
            # producer's epoch: librdkafka then reports "fenced", but no other writer exists.
            log.warning("kafka_transaction_timed_out", open_s=round(age, 1),
                        transaction_timeout_ms=int(self.transaction_timeout_s * 1000), error=err.str())
            raise SinkUnavailable(
                f"the broker aborted the Kafka transaction: it was open {age:.0f} s, longer than the producer's "
                f"transaction.timeout.ms={int(self.transaction_timeout_s * 1000)} (librdkafka reports this as "
                f"{err.str()!r}); it is sent again")
        raise SinkError(
            f"Kafka producer {self.transactional_id!r} failed fatally: {err.str()} "
            "(if another cdcd with the same transactional.id took over, this instance was fenced)")

    def _fail_produce(self, err: KafkaError, topic: str, key: str, table: str, *, size: int | None = None) -> None:
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            what = f"is {size} bytes, larger than message.max.bytes={self.max_message_bytes}" if size is not None \
                else "is larger than the broker accepts"
            raise SinkError(
                f"a record of table {table} (topic {topic}, key {key}) {what}: {err.str()}; nothing of its "
                "transaction was confirmed. Raise message.max.bytes in [kafka] and the topic's max.message.bytes, "
                "exclude the large column with column.exclude.list, or set oversized.record.policy to skip "
                "or dead-letter")
        if err.code() == KafkaError._FATAL and self._fatal_error is None:
            self._serve_callbacks()  # the error callback names the fatal error behind "Local: Fatal error"
        if err.fatal() or self._fatal_error is not None or err.code() == KafkaError._FATAL:
            if self._state is not TxnState.FAILED:
                self._move(TxnState.FAILED)
            self._raise_fatal(self._fatal_error or err)
        raise SinkUnavailable(f"cannot produce to {topic} (table {table}, key {key}): {err.str()}")

    def _serve_callbacks(self) -> None:
        deadline = time.monotonic() + 1.0
        while self._fatal_error is None and time.monotonic() < deadline:
            try:
                self._producer.poll(0.1)
            except (KafkaException, SystemError, RuntimeError):
                return

    def _raise_delivery_error(self) -> None:
        if self._delivery_error is not None:
            self._fail_produce(*self._delivery_error)

    def abort(self) -> None:
        """Drop the open transaction (after settling a running commit); safe in any state."""
        self._held = []
        if self._state is TxnState.COMMITTING:
            try:
                self.commit_wait()
            except CdcdError as exc:
                log.debug("kafka_commit_failed_before_abort", error=str(exc))
        if self._state not in (TxnState.IN_TRANSACTION, TxnState.COMMITTING):
            return
        try:
            self._producer.abort_transaction(self._timeout)
            self._move(TxnState.READY)
            self._txn_started = 0.0
            self._txn_offsets = None
        except (KafkaException, SystemError, RuntimeError) as exc:
            log.warning("kafka_abort_failed", error=_error_text(exc))
            self._move(TxnState.FAILED)
        self.staged = 0
        self._delivery_error = None

    def close(self) -> None:
        if self._state in (TxnState.IN_TRANSACTION, TxnState.COMMITTING):
            self.abort()
        if self._committer is not None:
            self._committer.shutdown(wait=False)
            self._committer = None
        stuck = self._stuck is not None and not self._stuck.done()
        if self._wake_w >= 0 and not stuck:  # a stuck commit may still write to it
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        if self._state is not TxnState.CLOSED:
            self._state = TxnState.CLOSED
            try:
                # What a failed commit left queued must never reach Kafka: after an outage this
                # producer would deliver it once the broker is back, behind the next session's records.
                self._producer.purge(in_queue=True, in_flight=True, blocking=True)
                self._producer.flush(0)
            except (KafkaException, SystemError, RuntimeError) as exc:  # a fenced producer: nothing to keep
                log.debug("kafka_close_flush_failed", error=_error_text(exc))
            # Destroyed now (its threads and connections with it), not whenever the collector
            # reaches the cycle through its callbacks; a stuck commit holds its own reference.
            del self._producer
