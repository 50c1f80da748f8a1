"""KafkaSink on the embedded broker: the pause between commits (``commit.gap.ms``), partitioning, closing."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from cdcd.debezium.envelope import Record
from cdcd.delivery.sinks import kafka as kafka_module
from cdcd.delivery.sinks.kafka import KafkaSink
from cdcd.errors import SinkUnavailable
from tests.fix_kafka import consume_all

pytestmark = pytest.mark.kafka


class Clock:
    """Stands in for the sink module's ``time``: real monotonic plus ``ahead``, sleeps recorded."""

    def __init__(self) -> None:
        self.ahead = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.mark.parametrize("gap_s", [0.0, 0.002])
def test_the_next_transaction_begins_no_sooner_than_the_gap_after_a_commit(kafka_broker: Any, gap_s: float,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    topic = f"gap{uuid.uuid4().hex[:8]}.public.t"
    kafka_broker.create_topic(topic, 1)
    clock = Clock()
    monkeypatch.setattr(kafka_module, "time", clock)
    sink = KafkaSink(kafka_broker.bootstrap, f"{topic}-tid", timeout_s=20, begin_gap_s=gap_s)
    sink.start()
    try:
        sink.send(Record(topic, b"1", b"first"))  # no commit before it: begins at once
        assert clock.slept == []
        sink.commit()
        sink.send(Record(topic, b"2", b"right after the commit"))
        if gap_s:
            assert len(clock.slept) == 1 and 0 < clock.slept[0] <= gap_s
        else:
            assert clock.slept == []
        sink.commit()
        clock.slept.clear()
        clock.ahead += 1.0  # the gap has long passed
        sink.send(Record(topic, b"3", b"later"))
        assert clock.slept == []
        sink.commit()
    finally:
        sink.close()


def test_a_key_lands_on_the_partition_the_java_producer_chooses(kafka_broker: Any, jvm: None) -> None:
    """Kafka Connect's producer (so Debezium) partitions by murmur2 of the key bytes; cdcd must agree."""
    import jpype

    from tests.fix_jvm import jclass
    from tests.fix_kafka import consume_all

    partitions = 7
    topic = f"part{uuid.uuid4().hex[:8]}.public.t"
    kafka_broker.create_topic(topic, partitions)
    keys = [b'{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],'
            b'"optional":false,"name":"part.public.t.Key"},"payload":{"id":%d}}' % n for n in range(150)]
    keys += [b'{"id":%d}' % n for n in range(50)]  # schemas.enable=false
    keys += [bytes([0, 0, 0, 0, 1, 2 * n]) for n in range(50)]  # Confluent Avro: magic, schema id, a long
    sink = KafkaSink(kafka_broker.bootstrap, f"{topic}-tid", timeout_s=20)
    sink.start()
    try:
        for key in keys:
            sink.send(Record(topic, key, b"{}"))
        sink.commit()
    finally:
        sink.close()
    java = jclass("org.apache.kafka.clients.producer.internals.BuiltInPartitioner")
    expected = {key: int(java.partitionForKey(jpype.JArray(jpype.JByte)(key), partitions)) for key in keys}
    records = consume_all(kafka_broker.bootstrap, topic, expect=len(keys), connect=False)
    landed = {record.key: record.partition for record in records}
    assert landed == expected
    assert len(set(expected.values())) == partitions  # the keys spread over every partition


def test_a_closed_sink_delivers_nothing_a_failed_commit_left_queued(fresh_kafka_broker: Any) -> None:
    """After an outage the next session's producer writes first; the old one must stay silent.

    A commit that timed out during an outage leaves records queued in its producer. Were
    that producer kept alive, it would deliver them once the broker is back, behind the
    records of the session that replaced it. (A real broker fences it by its epoch; the
    embedded one hands each producer a new id and does not, so it shows what was sent.)
    """
    broker = fresh_kafka_broker
    topic = f"close{uuid.uuid4().hex[:8]}.public.t"
    broker.create_topic(topic, 1)
    old = KafkaSink(broker.bootstrap, f"{topic}-tid", timeout_s=2)
    old.start()
    old.send(Record(topic, b"k", b"committed"))
    old.commit()
    broker.down()
    for i in range(20):
        old.send(Record(topic, b"k", f"queued {i}".encode()))
    with pytest.raises(SinkUnavailable, match="did not commit"):
        old.commit()
    producer = old._producer  # as a session's objects may outlive it until the collector runs
    assert len(producer) == 20  # queued for a broker that is back soon
    old.close()
    assert len(producer) == 0  # nothing left that it could deliver
    broker.up()

    new = KafkaSink(broker.bootstrap, f"{topic}-tid", timeout_s=20)
    new.start()
    try:
        new.send(Record(topic, b"k", b"next session"))
        new.commit()
        records = consume_all(broker.bootstrap, topic, isolation="read_uncommitted", connect=False, timeout=20)
        assert [r.value for r in records] == [b"committed", b"next session"]
    finally:
        new.close()
