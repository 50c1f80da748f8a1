"""A Debezium connector configured with AvroConverter, run unchanged by ``cdcd run --debezium-config``.

PostgreSQL -> cdcd (subprocess) -> Kafka, with the schemas in an HTTP Schema Registry
(tests/fix_registry.py); consumers decode every record with confluent-kafka's
``AvroDeserializer``. A registry outage is ridden out without loss or duplicates; a
schema the registry refuses stops cdcd with exit code 4 and confirms nothing of it.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from psycopg.conninfo import conninfo_to_dict

from tests.connect_consumer import avro_check
from tests.fix_cdcd import CdcdProcess
from tests.fix_kafka import Record, consume_all
from tests.fix_registry import SchemaRegistry

pytestmark = [pytest.mark.pg, pytest.mark.kafka]
# consume_all(connect=False): these records are Avro, not JSON; avro_connect() reads the
# change events with Confluent's AvroConverter and Debezium's SMTs instead.
SECRET = "s3cret-pa55"


def connector(tmp_path: Path, pg_db: Any, bootstrap: str, registry: SchemaRegistry, prefix: str) -> Path:
    params = conninfo_to_dict(pg_db.dsn)
    avro = {"schema.registry.url": registry.url, "basic.auth.credentials.source": "USER_INFO",
            "basic.auth.user.info": f"cdcd:{SECRET}"}
    config = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector", "plugin.name": "pgoutput",
        "database.hostname": str(params["host"]), "database.port": str(params["port"]),
        "database.user": str(params["user"]), "database.dbname": str(params["dbname"]),
        "topic.prefix": prefix, "slot.name": "cdcd", "publication.name": "cdcd",
        "provide.transaction.metadata": "true", "schema.name.adjustment.mode": "avro",
        "key.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter": "io.confluent.connect.avro.AvroConverter",
        "producer.override.bootstrap.servers": bootstrap,
        **{f"key.converter.{k}": v for k, v in avro.items()},
        **{f"value.converter.{k}": v for k, v in avro.items()},
    }
    path = tmp_path / "connector.json"
    path.write_text(json.dumps({"name": prefix, "config": config}))
    return path


def start(procs: list[CdcdProcess], path: Path, bootstrap: str) -> CdcdProcess:
    proc = CdcdProcess(["run", "--debezium-config", str(path), "--bootstrap-servers", bootstrap])
    procs.append(proc)
    proc.wait_for("streaming", timeout=60)
    return proc


def avro_connect(registry: SchemaRegistry) -> Any:
    """The real Connect consumer for these topics: AvroConverter over the test registry."""
    return avro_check({"schema.registry.url": registry.url, "basic.auth.credentials.source": "USER_INFO",
                       "basic.auth.user.info": f"cdcd:{SECRET}"})


def decode(registry: SchemaRegistry, records: list[Record]) -> list[tuple[Any, Any]]:
    client = SchemaRegistryClient({"url": registry.url, "basic.auth.user.info": f"cdcd:{SECRET}"})
    out = []
    for r in records:
        key = None if r.key is None else AvroDeserializer(client)(r.key, SerializationContext(r.topic, MessageField.KEY))
        value = None if r.value is None else AvroDeserializer(client)(
            r.value, SerializationContext(r.topic, MessageField.VALUE))
        out.append((key, value))
    return out


def test_debezium_avro_connector_runs_unchanged(pg_db: Any, kafka_broker: Any, schema_registry: SchemaRegistry,
                                               cdcd_procs: list, tmp_path: Path) -> None:
    schema_registry.basic_auth = f"cdcd:{SECRET}"
    prefix = f"av{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2), "
                  "added date DEFAULT '2020-01-01', tags text[])")
    pg_db.execute("INSERT INTO items VALUES (1, 'snapshotted', 1.50, '2021-02-03', '{a,b}')")
    proc = start(cdcd_procs, connector(tmp_path, pg_db, kafka_broker.bootstrap, schema_registry, prefix),
                 kafka_broker.bootstrap)
    pg_db.execute("INSERT INTO items VALUES (2, 'streamed', 99.99, NULL, NULL)")
    pg_db.execute("UPDATE items SET price = 100.00 WHERE id = 2")
    pg_db.execute("DELETE FROM items WHERE id = 1")
    topic = f"{prefix}.public.items"
    records = consume_all(kafka_broker.bootstrap, topic, expect=5, timeout=60, connect=False,
                          check=avro_connect(schema_registry))
    decoded = decode(schema_registry, records)
    unwrapped = [avro_connect(schema_registry)(r).unwrapped_rewrite for r in records if r.value is not None]
    assert all(u is not None and "__op=" in u.value for u in unwrapped), "ExtractNewRecordState over Avro data"
    by_key: dict[int, list[Any]] = {}
    for k, v in decoded:  # partitions interleave; each key's records keep their order
        by_key.setdefault(k["id"], []).append(v)
    assert [v and v["op"] for v in by_key[1]] == ["r", "d", None]
    assert [v["op"] for v in by_key[2]] == ["c", "u"]
    created, updated = by_key[2]
    after = created["after"]
    assert after["name"] == "streamed" and str(after["price"]) == "99.99" and after["tags"] is None
    assert str(updated["after"]["price"]) == "100.00" and updated["transaction"]["total_order"] == 1
    snapshot = by_key[1][0]["after"]
    assert snapshot["tags"] == ["a", "b"] and snapshot["added"] == 18661  # io.debezium.time.Date: days
    assert created["source"]["table"] == "items" and created["source"]["db"] == pg_db.dbname
    assert set(schema_registry.subjects) >= {f"{topic}-key", f"{topic}-value", f"{prefix}.transaction-key",
                                             f"{prefix}.transaction-value"}
    assert len(schema_registry.subjects[f"{topic}-value"]) == 1, "one schema version per relation version"
    tx = decode(schema_registry, consume_all(kafka_broker.bootstrap, f"{prefix}.transaction", expect=6, timeout=30,
                                             connect=False, check=avro_connect(schema_registry)))
    assert {v["status"] for _, v in tx} == {"BEGIN", "END"}
    offsets = consume_all(kafka_broker.bootstrap, f"{prefix}.offsets", timeout=10, connect=False)
    assert offsets and json.loads(offsets[-1].value or b"")["lsn"] > 0, "the offsets topic stays JSON"
    assert proc.terminate() == 0
    assert SECRET not in proc.text()


def _confirmed(pg_db: Any) -> int:
    rows = pg_db.execute("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'cdcd'")
    return int(rows[0][0])


def test_registry_outage_is_ridden_out(pg_db: Any, kafka_broker: Any, schema_registry: SchemaRegistry,
                                       cdcd_procs: list, tmp_path: Path) -> None:
    prefix = f"ao{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    proc = start(cdcd_procs, connector(tmp_path, pg_db, kafka_broker.bootstrap, schema_registry, prefix),
                 kafka_broker.bootstrap)
    schema_registry.stop()
    pg_db.execute("INSERT INTO t VALUES (1)")
    lsn = int(pg_db.execute("SELECT pg_current_wal_lsn() - '0/0'")[0][0])
    proc.wait_for("stream_interrupted", timeout=60)
    assert _confirmed(pg_db) < lsn, "nothing of the transaction is confirmed while the registry is down"
    assert consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", timeout=3, connect=False) == []
    schema_registry.start()
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=1, timeout=90, settle=3.0,
                          connect=False)
    assert [v["after"]["id"] for _, v in decode(schema_registry, records)] == [1], "no loss, no duplicate"
    deadline = time.monotonic() + 60
    while _confirmed(pg_db) < lsn and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _confirmed(pg_db) >= lsn
    assert proc.terminate() == 0


def test_incompatible_schema_stops_and_loses_nothing(pg_db: Any, kafka_broker: Any,
                                                      schema_registry: SchemaRegistry, cdcd_procs: list,
                                                      tmp_path: Path) -> None:
    prefix = f"ai{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    path = connector(tmp_path, pg_db, kafka_broker.bootstrap, schema_registry, prefix)
    proc = start(cdcd_procs, path, kafka_broker.bootstrap)
    pg_db.execute("INSERT INTO t VALUES (1)")
    topic = f"{prefix}.public.t"
    assert len(consume_all(kafka_broker.bootstrap, topic, expect=1, timeout=60, connect=False)) == 1
    schema_registry.mode = "incompatible"
    pg_db.execute("ALTER TABLE t ADD COLUMN note text NOT NULL DEFAULT 'x'")
    pg_db.execute("INSERT INTO t VALUES (2, 'changed')")
    lsn = int(pg_db.execute("SELECT pg_current_wal_lsn() - '0/0'")[0][0])
    deadline = time.monotonic() + 60
    while proc.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.proc.poll() == 4
    assert "incompatible" in proc.text() and f"{topic}" in proc.text()
    assert _confirmed(pg_db) < lsn
    schema_registry.mode = "ok"  # the operator relaxed the subject's compatibility
    proc = start(cdcd_procs, path, kafka_broker.bootstrap)
    records = consume_all(kafka_broker.bootstrap, topic, expect=2, timeout=60, settle=2.0, connect=False)
    # sorted: keys 1 and 2 may sit in different partitions
    assert sorted((v["after"]["id"], v["after"].get("note")) for _, v in decode(schema_registry, records)) == [
        (1, None), (2, "changed")]
    assert proc.terminate() == 0


def test_json_without_schemas_from_a_debezium_config(pg_db: Any, kafka_broker: Any, cdcd_procs: list,
                                                     tmp_path: Path) -> None:
    prefix = f"aj{uuid.uuid4().hex[:8]}"
    params = conninfo_to_dict(pg_db.dsn)
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
    path = tmp_path / "connector.json"
    path.write_text(json.dumps({"name": prefix, "config": {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector", "plugin.name": "pgoutput",
        "database.hostname": str(params["host"]), "database.port": str(params["port"]),
        "database.user": str(params["user"]), "database.dbname": str(params["dbname"]),
        "topic.prefix": prefix, "slot.name": "cdcd", "publication.name": "cdcd",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter", "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter", "value.converter.schemas.enable": "false",
    }}))
    proc = start(cdcd_procs, path, kafka_broker.bootstrap)
    pg_db.execute("INSERT INTO t VALUES (1, 'one')")
    pg_db.execute("DELETE FROM t WHERE id = 1")
    # schemaless JSON is not what the JsonConverter(schemas.enable=true) check reads
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=3, timeout=60, connect=False)
    assert [r.key_json() for r in records] == [{"id": 1}] * 3
    values = [r.json() for r in records]
    assert values[0]["op"] == "c" and values[0]["after"] == {"id": 1, "note": "one"} and "schema" not in values[0]
    assert values[1]["op"] == "d" and values[2] is None
    offsets = consume_all(kafka_broker.bootstrap, f"{prefix}.offsets", timeout=10, connect=False)
    assert offsets and json.loads(offsets[-1].value or b"")["lsn"] > 0
    assert proc.terminate() == 0
