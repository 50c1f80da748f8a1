"""Translating a real-world Debezium PostgreSQL connector configuration into cdcd settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cdcd.config import converter_settings
from cdcd.config import load as load_config
from cdcd.debezium.column_rules import column_rule_options
from cdcd.debezium.connector_properties import DebeziumConfig, load, translate
from cdcd.errors import ConfigError

CONNECTOR: dict[str, Any] = {
    "name": "inventory-connector",
    "config": {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": "db.internal",
        "database.port": "5433",
        "database.user": "debezium",
        "database.password": "s3cr3t pass'word",
        "database.dbname": "inventory",
        "database.sslmode": "verify-full",
        "database.sslrootcert": "/etc/ssl/ca.pem",
        "topic.prefix": "dbserver1",
        "slot.name": "inventory_slot",
        "publication.name": "inventory_pub",
        "publication.autocreate.mode": "filtered",
        "table.include.list": r"inventory\.customers,inventory\.orders,inventory\.line_items_\d{1\,3}",
        "column.exclude.list": r"inventory\.customers\.ssn",
        "column.mask.with.8.chars": r"inventory\.customers\.email",
        "column.truncate.to.100.chars": r"inventory\.orders\.notes",
        "column.mask.hash.SHA-256.with.salt.CzQMA0cB5K": r"inventory\.orders\.customer_name",
        "column.propagate.source.type": r"inventory\.orders\..*",
        "message.key.columns": "inventory.orders:order_number",
        "tombstones.on.delete": "false",
        "decimal.handling.mode": "string",
        "time.precision.mode": "connect",
        "binary.handling.mode": "base64",
        "provide.transaction.metadata": "true",
        "snapshot.mode": "never",
        "heartbeat.interval.ms": "10000",
        "heartbeat.action.query": "INSERT INTO heartbeat (ts) VALUES (now())",
        "skipped.operations": "none",
        "status.update.interval.ms": "5000",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
        "transforms": "unwrap,route",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.unwrap.delete.tombstone.handling.mode": "rewrite",
        "transforms.unwrap.add.fields": "op,source.ts_ms",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": "([^.]+)\\.([^.]+)\\.([^.]+)",
        "transforms.route.replacement": "$3",
        "topic.creation.default.replication.factor": "3",
        "topic.creation.default.partitions": "6",
        "producer.override.compression.type": "zstd",
        "max.queue.size": "16384",
        "slot.drop.on.stop": "false",
    },
}


def _translated(**changes: Any) -> DebeziumConfig:
    config = {**CONNECTOR["config"], **changes}
    return translate({"name": "c", "config": {k: v for k, v in config.items() if v is not None}})


def test_realistic_connector() -> None:
    result = translate(CONNECTOR)
    v = result.values
    assert result.name == "inventory-connector"
    assert v["topic.prefix"] == "dbserver1"
    assert (v["slot.name"], v["publication.name"], v["publication.autocreate.mode"]) == (
        "inventory_slot", "inventory_pub", "filtered")
    assert v["table.include.list"] == (r"inventory\.customers", r"inventory\.orders", r"inventory\.line_items_\d{1,3}")
    assert v["column.exclude.list"] == (r"inventory\.customers\.ssn",)
    assert v["message.key.columns"] == "inventory.orders:order_number"
    assert (v["tombstones.on.delete"], v["provide.transaction.metadata"]) == (False, True)
    assert (v["decimal.handling.mode"], v["time.precision.mode"], v["binary.handling.mode"]) == (
        "string", "connect", "base64")
    assert v["snapshot.mode"] == "no_data"  # "never" is Debezium's deprecated alias
    assert (v["heartbeat.interval.ms"], v["status.interval.ms"]) == (10000, 5000)
    assert v["heartbeat.action.query"] == "INSERT INTO heartbeat (ts) VALUES (now())"
    assert v["skipped.operations"] == ()
    assert v["kafka"] == {"compression.type": "zstd"}
    assert v["transforms"] == {"unwrap.delete.tombstone.handling.mode": "rewrite", "unwrap.add.fields": "op,source.ts_ms"}
    rules = column_rule_options(v)
    assert rules["column_mask_with"] == {8: (r"inventory\.customers\.email",)}
    assert rules["column_truncate_to"] == {100: (r"inventory\.orders\.notes",)}
    assert rules["column_mask_hash"][0].salt == "CzQMA0cB5K"


def test_dsn_quotes_and_never_leaks_the_password() -> None:
    result = translate(CONNECTOR)
    assert result.dsn == ("host=db.internal port=5433 user=debezium dbname=inventory "
                          "password='s3cr3t pass\\'word' sslmode=verify-full sslrootcert=/etc/ssl/ca.pem")
    assert "s3cr3t" not in repr(result) and "s3cr3t" not in result.redacted_dsn
    assert all("s3cr3t" not in w for w in result.warnings)


def test_one_warning_per_unsupported_option() -> None:
    warnings = translate(CONNECTOR).warnings
    named = sorted(w.split(":")[0].split("=")[0] for w in warnings)
    assert named == ["max.queue.size", "topic.creation.default.partitions",
                     "topic.creation.default.replication.factor", "transforms.route"]
    assert any("auto.create.topics.enable" in w for w in warnings)
    assert any("RegexRouter: not available" in w for w in warnings)
    assert any(w.startswith("slot.drop.on.stop") for w in _translated(**{"slot.drop.on.stop": "true"}).warnings)


def test_bare_config_map_and_debezium_defaults(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    path.write_text(json.dumps({
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector", "plugin.name": "pgoutput",
        "database.dbname": "shop", "topic.prefix": "shop", "tombstones.on.delete": True,
    }))
    result = load(path)
    assert result.name is None and result.dsn == "dbname=shop" and result.warnings == []
    v = result.values
    assert (v["slot.name"], v["publication.name"], v["snapshot.mode"]) == ("debezium", "dbz_publication", "initial")
    # Debezium skips truncates by default, as cdcd does; left out, so the publication cdcd creates
    # publishes every action, as Debezium's does when the property is not given
    assert "skipped.operations" not in v
    assert v["tombstones.on.delete"] is True


def test_plugin_name_must_be_pgoutput() -> None:
    with pytest.raises(ConfigError, match="only pgoutput"):
        _translated(**{"plugin.name": "decoderbufs"})
    assert any(w.startswith("plugin.name") for w in _translated(**{"plugin.name": None}).warnings)


def test_legacy_server_name_and_required_prefix() -> None:
    result = _translated(**{"topic.prefix": None, "database.server.name": "legacy"})
    assert result.values["topic.prefix"] == "legacy"
    assert any(w.startswith("database.server.name") for w in result.warnings)
    with pytest.raises(ConfigError, match="topic.prefix"):
        _translated(**{"topic.prefix": None})


def test_other_connector_class_is_rejected() -> None:
    with pytest.raises(ConfigError, match="PostgresConnector"):
        _translated(**{"connector.class": "io.debezium.connector.mysql.MySqlConnector"})


def test_unsupported_values_are_errors() -> None:
    with pytest.raises(ConfigError, match="decimal.handling.mode"):
        _translated(**{"decimal.handling.mode": "exact"})
    with pytest.raises(ConfigError, match="message.key.columns"):
        _translated(**{"message.key.columns": "no_colon"})
    with pytest.raises(ConfigError, match="MD2"):
        _translated(**{"column.mask.hash.MD2.with.salt.x": "a.b.c"})


def test_converters_are_translated() -> None:
    result = _translated(**{"value.converter": "io.confluent.connect.avro.AvroConverter",
                            "value.converter.schema.registry.url": "http://registry:8081",
                            "value.converter.basic.auth.credentials.source": "USER_INFO",
                            "value.converter.basic.auth.user.info": "${env:HOME}:secret",
                            "value.converter.unknown.thing": "1",
                            "key.converter.schemas.enable": "false"})
    assert result.values["value.converter"] == "io.confluent.connect.avro.AvroConverter"
    assert result.values["value.converter.schema.registry.url"] == "http://registry:8081"
    assert result.values["value.converter.basic.auth.user.info"].endswith(":secret")
    assert "${" not in result.values["value.converter.basic.auth.user.info"]
    assert result.values["key.converter.schemas.enable"] == "false"
    assert [w for w in result.warnings if "converter" in w] == [
        "value.converter.unknown.thing: AvroConverter option not supported by cdcd; ignored"]
    config = load_config(base=result.values, env={})
    key, value = converter_settings(config)
    assert (key.class_name, key.schemas_enable) == ("org.apache.kafka.connect.json.JsonConverter", False)
    assert value.is_avro and value.registry_conf["basic.auth.user.info"].endswith(":secret")
    assert "secret" not in repr(value)


def test_converter_errors_name_the_option() -> None:
    with pytest.raises(ConfigError, match="schema.registry.url is required"):
        _translated(**{"value.converter": "io.confluent.connect.avro.AvroConverter"})
    with pytest.raises(ConfigError, match="ProtobufConverter"):
        _translated(**{"key.converter": "io.confluent.connect.protobuf.ProtobufConverter"})
    json_only = _translated(**{"value.converter.replace.null.with.default": "false"})
    config = load_config(base=json_only.values, env={})
    assert converter_settings(config)[1].replace_null_with_default is False


def test_schema_lists_fold_into_table_lists() -> None:
    import re
    both = _translated(**{"schema.include.list": "inventory", "table.include.list": r".*\.orders"})
    [pattern] = both.values["table.include.list"]
    assert re.fullmatch(pattern, "inventory.orders", re.I) and not re.fullmatch(pattern, "sales.orders", re.I)
    only = _translated(**{"schema.exclude.list": "audit", "table.include.list": None})
    assert only.values["table.exclude.list"] == (r"(?:(?:audit))\..+",)


def test_config_providers_are_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "db.properties"
    secrets.write_text("# credentials\nuser = reader\npassword=from-file\n")
    monkeypatch.setenv("PG_HOST", "pg.example")
    result = _translated(**{"database.hostname": "${env:PG_HOST}", "database.user": f"${{file:{secrets}:user}}",
                            "database.password": f"${{file:{secrets}:password}}"})
    assert result.dsn.startswith("host=pg.example port=5433 user=reader dbname=inventory password=from-file")
    vault = _translated(**{"database.password": "${vault:secret/pg:password}"})
    assert "password" not in vault.dsn
    assert any("PGPASSWORD" in w for w in vault.warnings)


def test_outbox_router_is_scoped_to_the_captured_tables() -> None:
    result = translate({"config": {
        "plugin.name": "pgoutput", "database.dbname": "shop", "topic.prefix": "shop",
        "table.include.list": "public.outbox", "tombstones.on.delete": "false",
        "transforms": "outbox", "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
        "transforms.outbox.route.by.field": "aggregate_type",
        "transforms.outbox.table.expand.json.payload": "true",
    }})
    assert result.values["transforms"] == {
        "outbox.route.by.field": "aggregate_type", "outbox.table.expand.json.payload": "true",
        "outbox.table.include.list": ("public.outbox",),
    }
    bad = translate({"config": {
        "plugin.name": "pgoutput", "database.dbname": "shop", "topic.prefix": "shop",
        "transforms": "o", "transforms.o.type": "io.debezium.transforms.outbox.EventRouter",
        "transforms.o.route.topic.regex": "(unclosed",
    }})
    assert bad.values["transforms"] == {} and any(w.startswith("transforms.o:") for w in bad.warnings)


def test_signal_table_and_incremental_snapshot_options() -> None:
    result = _translated(**{"signal.data.collection": "inventory.debezium_signal", "signal.enabled.channels": "source",
                            "incremental.snapshot.chunk.size": "4096",
                            "incremental.snapshot.watermarking.strategy": "insert_delete"})
    v = result.values
    assert v["signal.data.collection"] == "inventory.debezium_signal"
    assert (v["incremental.snapshot.chunk.size"], v["incremental.snapshot.watermarking.strategy"]) == (
        4096, "insert_delete")
    assert not any(w.startswith(("signal.", "incremental.")) for w in result.warnings)
    kafka = _translated(**{"signal.enabled.channels": "source,kafka", "signal.kafka.topic": "signals"}).warnings
    assert any(w.startswith("signal.enabled.channels") and "source channel" in w for w in kafka)
    assert any(w.startswith("signal.kafka.topic") for w in kafka)
