"""OffsetStore: the offsets record's JSON, and reading back our key's newest state from the embedded broker."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Producer

from cdcd.debezium.envelope import Record
from cdcd.delivery.offsets import OffsetRecord, OffsetStore, SourceOffset, TxnPosition
from cdcd.delivery.sinks.kafka import KafkaSink
from tests.fix_kafka import MockKafka, consume_all


def test_the_record_round_trips_every_field() -> None:
    offset = SourceOffset(0x16B3A40, 731, 1_700_000_000_000_000, "7000000000000000001", snapshot_completed=False,
                          incremental={"id": "x"}, partial=TxnPosition(0x16B3B00, 732, 12))
    record = OffsetStore("shop.offsets", "shop", "cdcd").record(offset)
    assert isinstance(record, OffsetRecord) and record.topic == "shop.offsets"
    assert record.key == b'{"server":"shop","slot":"cdcd"}'
    assert SourceOffset.from_json(record.value or b"") == offset


def test_records_written_before_partial_positions_existed_still_read() -> None:
    old = b'{"lsn":100,"txId":5,"ts_usec":null,"system_id":null,"snapshot_completed":true}'
    assert SourceOffset.from_json(old) == SourceOffset(100, 5)


@pytest.mark.kafka
def test_read_returns_our_keys_newest_state(kafka_broker: Any) -> None:
    topic = f"off{uuid.uuid4().hex[:8]}.offsets"
    kafka_broker.create_topic(topic, 3)
    ours, other = OffsetStore(topic, "shop", "cdcd"), OffsetStore(topic, "shop", "other-slot")
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for store, lsn in ((ours, 100), (other, 900), (ours, 200), (other, 950)):
        record = store.record(SourceOffset(lsn, lsn // 10))
        producer.produce(record.topic, record.value, record.key)
    assert producer.flush(10) == 0
    assert ours.read(kafka_broker.bootstrap, timeout_s=30) == SourceOffset(200, 20)
    assert other.read(kafka_broker.bootstrap, timeout_s=30) == SourceOffset(950, 95)
    assert OffsetStore(topic, "shop", "never-written").read(kafka_broker.bootstrap, timeout_s=30) is None

    # A tombstone typed by hand (other spacing, so possibly another partition) forgets the position.
    producer.produce(topic, None, b'{"server": "shop", "slot": "cdcd"}')
    assert producer.flush(10) == 0
    assert ours.read(kafka_broker.bootstrap, timeout_s=30) is None
    assert other.read(kafka_broker.bootstrap, timeout_s=30) == SourceOffset(950, 95)


@pytest.mark.kafka
def test_read_of_a_topic_that_does_not_exist_is_none(kafka_broker: Any) -> None:
    store = OffsetStore(f"missing{uuid.uuid4().hex[:8]}.offsets", "shop", "cdcd")
    assert store.read(kafka_broker.bootstrap, timeout_s=30) is None


@pytest.fixture(params=["mock", pytest.param("real", marks=pytest.mark.realkafka)])
def any_broker(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("kafka_broker" if request.param == "mock" else "real_kafka")


def test_each_transaction_opens_with_the_last_committed_offsets_record(any_broker: Any) -> None:
    """The copy registers the offsets partition early and never changes what is read back."""
    kafka_broker = any_broker
    prefix = f"open{uuid.uuid4().hex[:8]}"
    topic, data = f"{prefix}.offsets", f"{prefix}.public.t"
    kafka_broker.create_topic(topic, 1)
    kafka_broker.create_topic(data, 1)
    store = OffsetStore(topic, prefix, "cdcd")
    sink = KafkaSink(kafka_broker.bootstrap, f"{prefix}-tid", timeout_s=20)
    sink.start()
    try:
        sink.send(Record(data, b"1", b"first"))
        sink.send(store.record(SourceOffset(100, 10)))
        sink.commit()
        sink.send(Record(data, b"2", b"second"))  # a transaction without its own offsets record
        sink.commit()
        sink.send(Record(data, b"3", b"third"))
        sink.send(store.record(SourceOffset(300, 30)))
        sink.commit()
        sink.send(Record(data, b"4", b"fourth"))
        sink.abort()  # an aborted transaction's copy is not committed: the next one still copies 300
        sink.send(Record(data, b"5", b"fifth"))
        sink.commit()
    finally:
        sink.close()
    records = consume_all(kafka_broker.bootstrap, topic, expect=5, connect=False)
    stored = [SourceOffset.from_json(r.value or b"").lsn for r in records]
    expected = [100, 100, 100, 300, 300]  # first: none to copy; then each opens with the last committed
    if isinstance(kafka_broker, MockKafka) and len(stored) == 6:
        expected.insert(4, 300)  # the aborted transaction's copy, if it was sent before the abort: the mock shows it
    assert stored == expected
    assert store.read(kafka_broker.bootstrap, timeout_s=30) == SourceOffset(300, 30)
