"""The Kafka sink: one transactional producer, transactions with checked transitions.

``commit`` returns only after ``commit_transaction`` did, i.e. after every
record of the transaction was acknowledged by all in-sync replicas. Any
failure leaves the transaction aborted (or the producer unusable) and raises:
the pipeline then restarts from the last confirmed LSN, so nothing is skipped.
The ``transactional.id`` fences any older producer using the same id.
"""

from __future__ import annotations

import enum
import logging
import time
from typing import Any

import orjson
import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ..envelope import Record
from ..errors import SinkError, SinkUnavailable

log = structlog.get_logger("cdcd.kafka")

# Defaults tuned for latency: a commit flushes anyway, so linger stays short.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 5,
    "enable.idempotence": True,
    "acks": "all",
    "delivery.report.only.error": True,
    "queue.buffering.max.messages": 200_000,
    "queue.buffering.max.kbytes": 262_144,
    # Broker connection states for readiness, served by poll() once a second.
    "statistics.interval.ms": 1000,
}


class TxnState(enum.Enum):
    NEW = "new"
    READY = "ready"
    IN_TRANSACTION = "in_transaction"
    FAILED = "failed"
    CLOSED = "closed"


_ALLOWED = {
    TxnState.NEW: {TxnState.READY, TxnState.FAILED, TxnState.CLOSED},
    TxnState.READY: {TxnState.IN_TRANSACTION, TxnState.FAILED, TxnState.CLOSED},
    TxnState.IN_TRANSACTION: {TxnState.READY, TxnState.FAILED, TxnState.CLOSED},
    TxnState.FAILED: {TxnState.CLOSED},
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


def _describe_key(key: bytes | None) -> str:
    if key is None:
        return "null"
    try:
        return orjson.dumps(orjson.loads(key).get("payload")).decode()
    except (orjson.JSONDecodeError, AttributeError):
        return repr(key[:200])


class KafkaSink:
    def __init__(self, bootstrap_servers: str, transactional_id: str, *,
                 properties: dict[str, str] | None = None, timeout_s: float = 30.0) -> None:
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
        self._timeout = timeout_s
        self._producer = Producer(config)
        self._state = TxnState.NEW
        self._delivery_error: tuple[KafkaError, str, str] | None = None
        self.brokers_down = False
        self.staged = 0

    @property
    def in_transaction(self) -> bool:
        return self._state is TxnState.IN_TRANSACTION

    def _move(self, new: TxnState) -> None:
        if new not in _ALLOWED[self._state]:
            raise SinkError(f"internal error: Kafka transaction cannot go from {self._state.value} to {new.value}")
        self._state = new

    # -- callbacks (run inside poll/flush) ---------------------------------------------------

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None and self._delivery_error is None:
            self._delivery_error = (err, str(msg.topic()), _describe_key(msg.key()))

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.brokers_down = True
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
        if self._state is not TxnState.IN_TRANSACTION:
            self._begin()
        while True:
            try:
                if type(record) is not Record:
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
                return
            except BufferError:
                # The local queue is full: wait for the broker instead of buffering more.
                self._producer.poll(0.05)
                self._raise_delivery_error()
            except KafkaException as exc:
                self._fail_produce(exc.args[0], record.topic, _describe_key(record.key))

    def _begin(self) -> None:
        try:
            self._producer.begin_transaction()
        except KafkaException as exc:
            self._move(TxnState.FAILED)
            raise SinkUnavailable(f"cannot begin a Kafka transaction: {exc.args[0].str()}") from exc
        self._move(TxnState.IN_TRANSACTION)
        self.staged = 0

    def poll(self) -> None:
        self._producer.poll(0)
        self._raise_delivery_error()

    def commit(self, timeout_s: float | None = None) -> None:
        if self._state is not TxnState.IN_TRANSACTION:
            return
        deadline = time.monotonic() + (self._timeout if timeout_s is None else timeout_s)
        while True:
            try:
                self._producer.commit_transaction(max(0.1, deadline - time.monotonic()))
                break
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                self._producer.poll(0)
                if err.retriable() and time.monotonic() < deadline:
                    continue
                self._after_failed_commit(err)
        self._move(TxnState.READY)
        self.staged = 0
        self.brokers_down = False

    def _after_failed_commit(self, err: KafkaError) -> None:
        delivery = self._delivery_error
        if delivery is not None and delivery[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
            self._move(TxnState.FAILED)
            self._fail_produce(delivery[0], delivery[1], delivery[2])
        if err.txn_requires_abort():
            self.abort()
        else:
            self._move(TxnState.FAILED)
        if err.fatal():
            raise SinkError(
                f"Kafka producer {self.transactional_id!r} failed fatally: {err.str()} "
                "(if another cdcd with the same transactional.id took over, this instance was fenced)")
        detail = f"; first failed record: topic {delivery[1]} key {delivery[2]}: {delivery[0].str()}" if delivery else ""
        raise SinkUnavailable(f"Kafka transaction did not commit: {err.str()}{detail}")

    def _fail_produce(self, err: KafkaError, topic: str, key: str) -> None:
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            raise SinkError(
                f"a record for topic {topic} (key {key}) is larger than the Kafka limit: {err.str()} "
                "(raise message.max.bytes in [kafka] and the topic's max.message.bytes, "
                "or exclude the large column with column.exclude.list)")
        if err.fatal():
            raise SinkError(f"Kafka producer failed fatally while producing to {topic}: {err.str()}")
        raise SinkUnavailable(f"cannot produce to {topic} (key {key}): {err.str()}")

    def _raise_delivery_error(self) -> None:
        if self._delivery_error is not None:
            err, topic, key = self._delivery_error
            self._fail_produce(err, topic, key)

    def abort(self) -> None:
        if self._state is not TxnState.IN_TRANSACTION:
            return
        try:
            self._producer.abort_transaction(self._timeout)
            self._move(TxnState.READY)
        except KafkaException as exc:
            log.warning("kafka_abort_failed", error=exc.args[0].str())
            self._move(TxnState.FAILED)
        self.staged = 0
        self._delivery_error = None

    def close(self) -> None:
        if self._state is TxnState.IN_TRANSACTION:
            self.abort()
        if self._state is not TxnState.CLOSED:
            self._state = TxnState.CLOSED
            self._producer.flush(0)
