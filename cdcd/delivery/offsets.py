"""Source offsets kept in Kafka, inside the same transactions as the events.

Each Kafka transaction ends with one record on the offsets topic (compacted,
``<topic.prefix>.offsets`` by default) saying which PostgreSQL transaction it
completes: its end LSN and txId. Because that record commits atomically with
the events, a read_committed reader of the topic knows exactly what Kafka
holds, even when PostgreSQL's ``confirmed_flush_lsn`` lags behind (cdcd died
after the Kafka commit, before the standby status update). On start cdcd
reads it and skips every transaction at or below that position: no duplicates.

It also tells a dropped-and-recreated slot from a first start. The newest
record for our key counts (the topic's order, as compaction keeps it), so a
tombstone for the key forgets the position: that is how an operator starts
over knowingly after a slot was dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from cdcd import __version__
from cdcd.debezium.envelope import Record
from cdcd.errors import SinkUnavailable
from cdcd.ops.logs import quiet_librdkafka_logger
from cdcd.wire.lsn import format_lsn

log = structlog.get_logger("cdcd.offsets")

_TAIL_STEPS = (64, 4096, 262_144)


@dataclass(frozen=True, slots=True)
class TxnPosition:
    """How far into one PostgreSQL transaction Kafka holds its changes.

    A PostgreSQL transaction that outlives a Kafka transaction's timeout is committed
    to Kafka in parts. Each part's offsets record names the transaction by its commit
    record's LSN (``Begin.final_lsn``, known from its first message) and counts the
    row changes, truncates and transactional messages already committed, so a restart
    decodes the transaction again and drops exactly that many.
    """

    final_lsn: int
    txid: int | None
    changes: int

    def to_doc(self) -> dict[str, Any]:
        return {"final_lsn": self.final_lsn, "final_lsn_str": format_lsn(self.final_lsn), "txId": self.txid,
                "changes": self.changes}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TxnPosition:
        return cls(int(doc["final_lsn"]), doc.get("txId"), int(doc["changes"]))


@dataclass(frozen=True, slots=True)
class SourceOffset:
    lsn: int
    """End LSN of the last PostgreSQL transaction whose events Kafka committed."""
    txid: int | None
    ts_us: int | None = None
    system_id: str | None = None
    """PostgreSQL's system identifier: LSNs of another cluster are not comparable."""
    snapshot_completed: bool = True
    incremental: dict[str, Any] | None = None
    """A running incremental snapshot's progress (``IncrementalState.to_doc()``), or None."""
    partial: TxnPosition | None = None
    """Parts of the PostgreSQL transaction after ``lsn`` that Kafka already holds, or None."""

    def to_json(self) -> bytes:
        doc = {
            "lsn": self.lsn, "lsn_str": format_lsn(self.lsn), "txId": self.txid, "ts_usec": self.ts_us,
            "system_id": self.system_id, "snapshot_completed": self.snapshot_completed,
            "writer": f"cdcd {__version__}",
        }
        if self.incremental is not None:
            doc["incremental_snapshot"] = self.incremental
        if self.partial is not None:
            doc["partial_transaction"] = self.partial.to_doc()
        return orjson.dumps(doc)

    @classmethod
    def from_json(cls, data: bytes) -> SourceOffset:
        doc = orjson.loads(data)
        return cls(lsn=int(doc["lsn"]), txid=doc.get("txId"), ts_us=doc.get("ts_usec"),
                   system_id=doc.get("system_id"), snapshot_completed=bool(doc.get("snapshot_completed", True)),
                   incremental=doc.get("incremental_snapshot"),
                   partial=TxnPosition.from_doc(doc["partial_transaction"]) if doc.get("partial_transaction") else None)


class OffsetRecord(Record):
    """The offsets record: the last record of its Kafka transaction, a type of its own.

    It commits atomically with the events it covers; a read_committed reader sees
    neither of an aborted transaction. Its type tells it apart (benchmark counters,
    tests), never an attribute probed by name.
    """

    __slots__ = ()


class OffsetStore:
    """Names the offsets record of one cdcd (topic prefix + slot) and reads it back."""

    def __init__(self, topic: str, topic_prefix: str, slot: str) -> None:
        self.topic = topic
        self.key = orjson.dumps({"server": topic_prefix, "slot": slot})

    def record(self, offset: SourceOffset) -> OffsetRecord:
        return OffsetRecord(self.topic, self.key, offset.to_json())

    def read(self, bootstrap_servers: str, properties: dict[str, str] | None = None,
             timeout_s: float = 30.0) -> SourceOffset | None:
        """The last committed offset record for our key, or None when there is none yet."""
        props: dict[str, Any] = {k: v for k, v in (properties or {}).items()
                                 if not k.startswith(("transactional.", "linger", "queue.", "enable.idempotence",
                                                      "acks", "compression", "batch", "message.send",
                                                      "delivery", "retries", "statistics"))}
        props.update({"bootstrap.servers": bootstrap_servers, "group.id": "cdcd-offsets-reader",
                      "enable.auto.commit": False, "isolation.level": "read_committed",
                      "enable.partition.eof": True, "logger": quiet_librdkafka_logger("offsets")})
        consumer = Consumer(props)
        try:
            try:
                metadata = consumer.list_topics(self.topic, timeout=timeout_s)
            except KafkaException as exc:
                raise SinkUnavailable(f"cannot read the offsets topic {self.topic}: {exc}") from exc
            topic = metadata.topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                return None
            partitions = sorted(topic.partitions)
            try:
                for step in _TAIL_STEPS:
                    seen, found, exhausted = self._read_tail(consumer, partitions, step, timeout_s)
                    if seen or exhausted:
                        return found
                _, found, _ = self._read_tail(consumer, partitions, None, timeout_s)
                return found
            except KafkaException as exc:
                # Watermarks, assign, poll: a broker that went away is an outage, retried with backoff.
                raise SinkUnavailable(f"cannot read the offsets topic {self.topic}: {exc.args[0].str() if exc.args and hasattr(exc.args[0], 'str') else exc}") from exc
        finally:
            consumer.close()

    def _is_ours(self, key: bytes | None) -> bool:
        if key == self.key:
            return True
        if not key or not key.startswith(b"{"):
            return False
        try:  # a tombstone typed by hand may be formatted differently
            return bool(orjson.loads(key) == orjson.loads(self.key))
        except orjson.JSONDecodeError:
            return False

    def _read_tail(self, consumer: Consumer, partitions: list[int], depth: int | None,
                   timeout_s: float) -> tuple[bool, SourceOffset | None, bool]:
        """Read the last ``depth`` offsets of each partition (all when None).

        Returns whether our key was seen, its newest state (None after a tombstone)
        and whether the whole topic was read.
        """
        assignment = []
        exhausted = True
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=timeout_s)
            start = low if depth is None else max(low, high - depth)
            exhausted = exhausted and start == low
            if high > start:
                assignment.append(TopicPartition(self.topic, p, start))
        if not assignment:
            return False, None, True
        consumer.assign(assignment)
        pending = {tp.partition for tp in assignment}
        # Per partition, the newest write for our key in log order: (timestamp, state).
        newest: dict[int, tuple[int, SourceOffset | None]] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise SinkUnavailable(f"timed out reading the offsets topic {self.topic}")
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                if err.retriable():
                    continue
                raise SinkUnavailable(f"cannot read the offsets topic {self.topic}: {err.str()}")
            if self._is_ours(msg.key()):
                value = msg.value()
                newest[msg.partition() or 0] = (msg.timestamp()[1], SourceOffset.from_json(value) if value else None)
        consumer.unassign()
        if not newest:
            return False, None, exhausted
        # cdcd's writes for one key all land in one partition; a tombstone produced by another
        # client (another partitioner) may land elsewhere: then the later write wins.
        _, state = max(newest.values(), key=lambda e: (e[0], e[1].lsn if e[1] is not None else -1))
        return True, state, exhausted


def _admin(bootstrap_servers: str, properties: dict[str, str] | None) -> Any:
    from confluent_kafka.admin import AdminClient

    props: dict[str, Any] = {k: v for k, v in (properties or {}).items()
                             if k.startswith(("security.", "sasl.", "ssl.", "client."))}
    props["bootstrap.servers"] = bootstrap_servers
    props["logger"] = quiet_librdkafka_logger("offsets")
    return AdminClient(props)


def _describe(admin: Any, kind: Any, name: str, timeout: float) -> dict[str, str]:
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(kind, name)
    result = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout + 2)
    return {key: entry.value for key, entry in result.items()}


def topic_cleanup_policy(bootstrap_servers: str, topic: str, properties: dict[str, str] | None = None,
                         timeout: float = 10.0) -> str | None:
    """The offsets topic's ``cleanup.policy``, or None when the topic does not exist."""
    from confluent_kafka.admin import ConfigResource

    admin = _admin(bootstrap_servers, properties)
    if topic not in admin.list_topics(timeout=timeout).topics:
        return None
    return _describe(admin, ConfigResource.Type.TOPIC, topic, timeout).get("cleanup.policy", "")


def not_compacted_fix(topic: str, policy: str) -> str:
    return (f"offsets topic {topic} has cleanup.policy={policy or 'delete'}, so the stored position expires with "
            f"its retention and a later start would stream from the slot's position only: make it compacted "
            f"(kafka-configs --alter --entity-type topics --entity-name {topic} --add-config cleanup.policy=compact)")


def ensure_offsets_topic(bootstrap_servers: str, topic: str, properties: dict[str, str] | None = None,
                         timeout: float = 10.0) -> None:
    """Create the offsets topic compacted when missing, and warn when an existing one is not compacted.

    The replication factor is the broker's ``default.replication.factor``, given explicitly:
    brokers before Apache Kafka 2.4 refuse ``-1`` (KIP-464), and the broker would then
    auto-create the topic on the first write, uncompacted and with the default retention.
    """
    from confluent_kafka.admin import ConfigResource, NewTopic

    admin = _admin(bootstrap_servers, properties)
    try:
        metadata = admin.list_topics(timeout=timeout)
        if topic in metadata.topics:
            policy = _describe(admin, ConfigResource.Type.TOPIC, topic, timeout).get("cleanup.policy", "")
            if "compact" not in policy.split(","):
                log.error("offsets_topic_not_compacted", topic=topic, cleanup_policy=policy,
                          detail=not_compacted_fix(topic, policy))
            return
        if metadata.controller_id < 0:
            raise RuntimeError("the cluster reports no controller, so topics cannot be created through it")
        replication = _default_replication_factor(admin, metadata, timeout)
        futures = admin.create_topics([NewTopic(topic, 1, replication, config={"cleanup.policy": "compact"})],
                                      operation_timeout=timeout, request_timeout=timeout)
        futures[topic].result(timeout + 2)
        log.info("offsets_topic_created", topic=topic, replication_factor=replication)
    except Exception as exc:  # noqa: BLE001 - the first write lets the broker auto-create it instead
        log.warning("offsets_topic_not_created", topic=topic, error=str(exc) or type(exc).__name__,
                    hint="create it with cleanup.policy=compact, or the broker auto-creates it uncompacted")


def _default_replication_factor(admin: Any, metadata: Any, timeout: float) -> int:
    """The broker's ``default.replication.factor``, capped by the brokers there are."""
    from confluent_kafka.admin import ConfigResource

    brokers = len(metadata.brokers) or 1
    broker_id = metadata.controller_id if metadata.controller_id >= 0 else next(iter(metadata.brokers), 0)
    try:
        value = _describe(admin, ConfigResource.Type.BROKER, str(broker_id), timeout).get("default.replication.factor")
        factor = int(value) if value else 1
    except Exception as exc:  # noqa: BLE001 - a broker that hides its configuration: as many copies as brokers, up to 3
        log.info("broker_config_unreadable", error=str(exc) or type(exc).__name__)
        factor = min(3, brokers)
    return max(1, min(factor, brokers))
