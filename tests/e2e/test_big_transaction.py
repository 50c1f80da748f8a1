"""Big things: a 1,000,000-row PostgreSQL transaction with bounded memory, and oversized records.

A huge PostgreSQL transaction streams through the producer's bounded local queue
(``queue.buffering.max.messages`` / ``queue.buffering.max.kbytes`` in cdcd/delivery/sinks/kafka.py):
when the queue is full cdcd stops reading the slot until Kafka caught up.  Its memory is
therefore bounded by that queue, not by the transaction.  At the default settings it is
committed to Kafka in parts (one per third of ``transaction.timeout.ms``), see
docs/delivery.md; the test bounds memory and checks every row arrives exactly once, and
leaves time to bench/.

Counting on the embedded broker: librdkafka's mock keeps only the last 5 MiB of each
partition (``mpart->max_size``).  The test topic is created with enough partitions and
cdcd compresses batches of a second (``compression.type = lz4``, ``linger.ms = 1000``), so the broker keeps
every record and the test can consume and check all of them; it also asserts that no
partition was trimmed (low watermark 0), so a count is never silently short.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any

import orjson
import pytest
import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from cdcd.debezium.envelope import Record
from cdcd.delivery.sinks.kafka import PRODUCER_DEFAULTS, KafkaSink
from cdcd.errors import ConfigError, SinkError
from tests.fix_cdcd import CdcdProcess
from tests.fix_kafka import consume_all

pytestmark = [pytest.mark.pg, pytest.mark.kafka]

ROWS = 1_000_000
PARTITIONS = 64  # 1M lz4-compressed envelopes in 1 s batches: well below 64 x 5 MiB kept by the mock
MIB = 1024 * 1024
QUEUE_BYTES = int(PRODUCER_DEFAULTS["queue.buffering.max.kbytes"]) * 1024  # 256 MiB
HEADROOM = 64 * MIB
# The bound for the whole process: an idle cdcd is ~50 MiB; the producer queue may hold up
# to 256 MiB of records (the envelopes of this transaction are ~2.6 GB, so it does fill);
# 64 MiB more covers librdkafka's per-message bookkeeping, compression buffers, libpq's
# input buffer and Python's heap.  Buffering the transaction would need > 2.6 GB.
RSS_BOUND = 384 * MIB


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE)
    assert match, f"no {field} in /proc/{pid}/status"
    return int(match.group(1))


class RssSampler(threading.Thread):
    """Samples VmRSS every 50 ms (VmHWM at the end is the authoritative peak)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            try:
                self.peak = max(self.peak, _status_kib(self.pid, "VmRSS") * 1024)
            except (OSError, AssertionError):
                return


def _watermarks(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex}"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(PARTITIONS)]
    finally:
        consumer.close()


def _consume_ids(bootstrap: str, topic: str, timeout: float) -> tuple[bytearray, int, int]:
    """Read every record of ``topic`` (read_committed); returns per-id counts, records, checked values."""
    seen = bytearray(ROWS + 1)
    count = checked = 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"big-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed", "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    pending = set(range(PARTITIONS))
    deadline = time.monotonic() + timeout
    try:
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise AssertionError(f"consumer error: {err.str()}")
                key = msg.key()
                row_id = int(key[key.rindex(b":") + 1:-2])  # ...,"payload":{"id":123}}
                seen[row_id] = min(255, seen[row_id] + 1)
                count += 1
                if row_id % 1000 == 0:  # the events are real Debezium creates of that very row
                    payload = orjson.loads(msg.value())["payload"]
                    assert payload["op"] == "c" and payload["after"] == {"id": row_id, "v": row_id % 7}, payload
                    checked += 1
    finally:
        consumer.close()
    assert not pending, f"partitions {sorted(pending)} never reached their end within {timeout} s"
    return seen, count, checked


def test_million_row_transaction_streams_with_bounded_memory(pg_db: Any, fresh_kafka_broker: Any,
                                                             cdcd_procs: list) -> None:
    broker = fresh_kafka_broker
    prefix = f"big{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.public.big"
    broker.create_topic(topic, PARTITIONS)
    pg_db.execute("CREATE TABLE big (id int PRIMARY KEY, v smallint NOT NULL)")
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--bootstrap-servers", broker.bootstrap, "--topic-prefix", prefix],
                       # Batches of ~1 s per partition compress well whatever the machine's speed.
                       env={"CDCD_LOG_LEVEL": "info", "CDCD_KAFKA_COMPRESSION_TYPE": "lz4",
                            "CDCD_KAFKA_LINGER_MS": "1000"})
    cdcd_procs.append(proc)
    proc.wait_for("streaming", timeout=60)
    time.sleep(1.0)  # settle: imports done, producer and consumer threads up
    baseline = _status_kib(proc.proc.pid, "VmRSS") * 1024
    sampler = RssSampler(proc.proc.pid)
    sampler.start()

    started = time.monotonic()
    with pg_db.connect() as conn:
        conn.execute(f"INSERT INTO big SELECT g, g % 7 FROM generate_series(1, {ROWS}) g")  # one transaction
        conn.commit()
        end = int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0])
    inserted = time.monotonic()
    # Everything is in Kafka once the slot confirmed the transaction's end: cdcd confirms
    # only what Kafka committed.  No deadline on speed (that is bench/'s job): the limit
    # below only turns a hang into a failure.
    limit = started + 1800
    while True:
        (confirmed,), = pg_db.execute("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots "
                                      "WHERE slot_name = 'cdcd'")
        if int(confirmed) >= end:
            break
        assert proc.proc.poll() is None, f"cdcd exited {proc.proc.poll()}:\n{proc.text()[-3000:]}"
        assert time.monotonic() < limit, f"not delivered after {limit - started:.0f} s:\n{proc.text()[-3000:]}"
        time.sleep(0.25)
    delivered = time.monotonic()
    peak = max(_status_kib(proc.proc.pid, "VmHWM") * 1024, sampler.peak)
    sampler.done.set()

    marks = _watermarks(broker.bootstrap, topic)
    assert all(low == 0 for low, _ in marks), f"the mock trimmed partitions, the count would be short: {marks}"
    seen, count, checked = _consume_ids(broker.bootstrap, topic, timeout=600)
    counted = time.monotonic()
    missing = [i for i in range(1, ROWS + 1) if not seen[i]]
    assert not missing, f"{len(missing)} rows never arrived, e.g. {missing[:10]}"
    assert count == ROWS, f"{count} records for {ROWS} rows (no faults were injected, so no duplicates either)"
    assert checked == ROWS // 1000
    # Kafka transactions: the parts (transaction_part_committed) and the last one; each
    # leaves at most one commit marker per partition, and nothing else is in the log.
    parts = sum(1 for e in proc.logs() if e.get("event") == "transaction_part_committed")
    assert ROWS < sum(high for _, high in marks) <= ROWS + PARTITIONS * (parts + 1), (parts, marks)

    print(f"\n1M-row transaction: insert {inserted - started:.1f} s, in Kafka after {delivered - started:.1f} s "
          f"({parts} part(s) before the last), "
          f"counted in {counted - delivered:.1f} s; cdcd RSS idle {baseline / MIB:.0f} MiB, "
          f"peak {peak / MIB:.0f} MiB (bound {RSS_BOUND / MIB:.0f} MiB; queue {QUEUE_BYTES / MIB:.0f} MiB)")
    assert peak < RSS_BOUND, f"peak RSS {peak / MIB:.0f} MiB >= {RSS_BOUND / MIB:.0f} MiB"
    assert peak - baseline < QUEUE_BYTES + HEADROOM, (
        f"cdcd grew by {(peak - baseline) / MIB:.0f} MiB: more than its producer queue allows")
    assert proc.terminate() == 0


# -- oversized records (records larger than the producer's message.max.bytes) ------------------

LIMIT = 10_000


def _envelope(prefix: str, row_id: int, text: str) -> Record:
    key = orjson.dumps({"schema": {"type": "struct"}, "payload": {"id": row_id}})
    value = orjson.dumps({"schema": {"type": "struct"}, "payload": {
        "before": None, "after": {"id": row_id, "doc": text}, "op": "c",
        "source": {"name": prefix, "schema": "public", "table": "docs", "lsn": 1000 + row_id, "txId": 77}}})
    # As the envelope encoder builds it: what the record is about travels with it (the sink parses nothing).
    return Record(f"{prefix}.public.docs", key, value, (), "public.docs", {"id": row_id}, 1000 + row_id, 77)


def _sink(bootstrap: str, **kwargs: Any) -> KafkaSink:
    sink = KafkaSink(bootstrap, f"oversized-{uuid.uuid4().hex}", properties={"message.max.bytes": str(LIMIT)},
                     timeout_s=20, **kwargs)
    sink.start()
    return sink


def _ids(records: list[Any]) -> list[int]:
    return [r.key_json()["payload"]["id"] for r in records]


def test_oversized_record_fails_by_default_naming_table_and_key(kafka_broker: Any) -> None:
    prefix = f"ovf{uuid.uuid4().hex[:8]}"
    sink = _sink(kafka_broker.bootstrap)
    try:
        assert sink.max_message_bytes == LIMIT
        sink.send(_envelope(prefix, 1, "small"))
        with pytest.raises(SinkError) as info:
            sink.send(_envelope(prefix, 2, "x" * (2 * LIMIT)))
        message = str(info.value)
        assert "public.docs" in message and '{"id":2}' in message and f"{prefix}.public.docs" in message
        assert f"message.max.bytes={LIMIT}" in message and "oversized.record.policy" in message
        # The pipeline never reaches commit: the transaction stays open, then is aborted.
        assert sink.in_transaction
        sink.abort()
        assert not sink.in_transaction
    finally:
        sink.close()


def test_oversized_record_skipped(kafka_broker: Any) -> None:
    prefix = f"ovs{uuid.uuid4().hex[:8]}"
    sink = _sink(kafka_broker.bootstrap, oversized_policy="skip")
    try:
        with structlog.testing.capture_logs() as logs:
            sink.send(_envelope(prefix, 1, "small"))
            sink.send(_envelope(prefix, 2, "x" * (2 * LIMIT)))
            sink.send(_envelope(prefix, 3, "small too"))
            sink.commit()
    finally:
        sink.close()
    skipped = [e for e in logs if e["event"] == "record_skipped_oversized"]
    assert len(skipped) == 1 and sink.oversized_skipped == 1
    assert skipped[0]["topic"] == f"{prefix}.public.docs" and skipped[0]["key"] == '{"id":2}'
    assert skipped[0]["size"] > 2 * LIMIT and skipped[0]["table"] == "public.docs"
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.docs", expect=2, timeout=20, settle=0.5,
                          connect=False)  # hand-made records
    assert sorted(_ids(records)) == [1, 3]  # different keys: different partitions


def test_oversized_record_dead_lettered(kafka_broker: Any) -> None:
    prefix = f"ovd{uuid.uuid4().hex[:8]}"
    sink = _sink(kafka_broker.bootstrap, oversized_policy="dead-letter")  # default topic: <prefix>.dlq
    big = _envelope(prefix, 2, "x" * (2 * LIMIT))
    try:
        sink.send(_envelope(prefix, 1, "small"))
        sink.send(big)
        sink.send(_envelope(prefix, 3, "small too"))
        sink.commit()
    finally:
        sink.close()
    assert sink.oversized_dead_lettered == 1
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.docs", expect=2, timeout=20, settle=0.5,
                          connect=False)  # hand-made records
    assert sorted(_ids(records)) == [1, 3]  # different keys: different partitions
    (dead,) = consume_all(kafka_broker.bootstrap, f"{prefix}.dlq", expect=1, timeout=20, settle=0.5, connect=False)
    assert dead.key == big.key, "the dead-letter record keeps the original key"
    doc = dead.json()
    assert doc["topic"] == f"{prefix}.public.docs" and doc["key"] == {"id": 2} and doc["table"] == "public.docs"
    assert doc["size"] == len(big.key or b"") + len(big.value or b"") and doc["limit"] == LIMIT
    assert "message.max.bytes" in doc["reason"] and doc["lsn"] == 1002 and doc["txId"] == 77
    assert len(dead.value or b"") < 1000, "the dead-letter record is small"


def test_oversized_record_dead_letter_topic_given(kafka_broker: Any) -> None:
    prefix = f"ovt{uuid.uuid4().hex[:8]}"
    sink = _sink(kafka_broker.bootstrap, oversized_policy="dead-letter", dead_letter_topic=f"{prefix}-parked")
    try:
        sink.send(_envelope(prefix, 5, "x" * (2 * LIMIT)))
        sink.commit()
    finally:
        sink.close()
    (dead,) = consume_all(kafka_broker.bootstrap, f"{prefix}-parked", expect=1, timeout=20, settle=0.5,
                           connect=False)
    assert dead.json()["key"] == {"id": 5}


def test_oversized_policy_is_validated() -> None:
    with pytest.raises(ConfigError, match="oversized.record.policy"):
        KafkaSink("127.0.0.1:1", "x", oversized_policy="drop")


def test_oversized_row_stops_cdcd_without_confirming_it(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    """End to end with the default policy: exit 4, the message names table and key, the slot stays before it."""
    prefix = f"ove{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    args = ["run", "--dsn", pg_db.dsn, "--bootstrap-servers", kafka_broker.bootstrap, "--topic-prefix", prefix]
    proc = CdcdProcess(args, env={"CDCD_KAFKA_MESSAGE_MAX_BYTES": str(LIMIT), "CDCD_STATUS_INTERVAL_MS": "100"})
    cdcd_procs.append(proc)
    proc.wait_for("streaming")
    pg_db.execute("INSERT INTO docs VALUES (1, 'small')")
    assert _ids(consume_all(kafka_broker.bootstrap, f"{prefix}.public.docs", expect=1, timeout=20)) == [1]
    with pg_db.connect() as conn:
        conn.execute("INSERT INTO docs VALUES (2, %s)", ("y" * (2 * LIMIT),))
        big_commit = int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0])
    assert proc.wait(60) == 4, proc.text()[-3000:]
    text = proc.text()
    assert "public.docs" in text and '{\\"id\\":2}' in text and "message.max.bytes" in text
    confirmed = pg_db.execute("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'cdcd'")
    assert int(confirmed[0][0]) < big_commit, "the oversized row's transaction was confirmed"
