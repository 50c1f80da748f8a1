"""KafkaSink on the embedded broker: the pause between a commit and the next transaction (``commit.gap.ms``)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from cdcd.debezium.envelope import Record
from cdcd.delivery.sinks import kafka as kafka_module
from cdcd.delivery.sinks.kafka import KafkaSink

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
