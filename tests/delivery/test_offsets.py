"""OffsetStore: the offsets record's JSON, and reading back our key's newest state from the embedded broker."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Producer

from cdcd.delivery.offsets import OffsetRecord, OffsetStore, SourceOffset, TxnPosition


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
