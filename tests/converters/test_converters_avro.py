"""AvroConverter and JsonConverter(schemas.enable=false) on every record kind, with confluent-kafka's in-memory registry.

Each Avro record is checked for the Confluent framing (magic byte 0, the id the
registry gave the subject ``<topic>-key`` / ``<topic>-value``) and decoded back with
confluent-kafka's own ``AvroDeserializer``; the decoded value is compared with the
JSON payload interpreted independently through its Connect schema (base64 bytes,
Decimal, Date, Time, Timestamp). That the schemas are the ones Confluent's AvroData
derives is tests/converters/test_converters_confluent.py's job.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import math
import socket
import struct
import threading
from decimal import Decimal
from typing import Any, Iterator

import orjson
import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from cdcd.converters import AVRO_CONVERTER, JSON_CONVERTER, RecordConverter, converter_settings
from cdcd.converters.avro import check_registry
from cdcd.debezium.envelope import Record
from cdcd.delivery.offsets import OffsetRecord
from cdcd.errors import SinkError, SinkUnavailable
from tests.converter_records import ROW, SOURCE, TABLE, change_events, every_record, options

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
RECORDS = every_record()


def avro_converter(url: str = "mock://avro-tests", **props: str) -> RecordConverter:
    properties = {f"{side}.converter.{k}": v for side in ("key", "value")
                  for k, v in {"schema.registry.url": url, **props}.items()}
    key, value = converter_settings(AVRO_CONVERTER, AVRO_CONVERTER, properties)
    return RecordConverter(key, value)


def expected(schema: dict[str, Any], value: Any) -> Any:
    """What an Avro reader returns for a JsonConverter payload value, from its Connect schema alone."""
    if value is None:
        return None
    name, type_ = schema.get("name"), schema["type"]
    if name == "org.apache.kafka.connect.data.Decimal":
        unscaled = int.from_bytes(base64.b64decode(value), "big", signed=True)
        return Decimal(unscaled).scaleb(-int(schema["parameters"]["scale"]))
    if name == "org.apache.kafka.connect.data.Date":
        return (EPOCH + dt.timedelta(days=value)).date()
    if name == "org.apache.kafka.connect.data.Time":
        return (EPOCH + dt.timedelta(milliseconds=value)).time()
    if name == "org.apache.kafka.connect.data.Timestamp":
        return EPOCH + dt.timedelta(milliseconds=value)
    if type_ == "bytes":
        return base64.b64decode(value)
    if type_ in ("float", "float32"):
        number = float(value) if isinstance(value, str) else value
        return struct.unpack("<f", struct.pack("<f", number))[0]
    if type_ in ("double", "float64"):
        return float(value)
    if type_ == "struct":
        return {f["field"]: expected(f, value.get(f["field"])) for f in schema["fields"]}
    if type_ == "array":
        return [expected(schema["items"], v) for v in value]
    if type_ == "map":
        if schema["keys"]["type"] == "string":
            return {k: expected(schema["values"], v) for k, v in value.items()}
        return [{"key": expected(schema["keys"], k), "value": expected(schema["values"], v)} for k, v in value]
    return value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def parts(record: Record) -> Iterator[tuple[MessageField, bytes | None]]:
    yield MessageField.KEY, record.key
    yield MessageField.VALUE, record.value


@pytest.mark.parametrize("label,record", RECORDS, ids=[label for label, _ in RECORDS])
def test_every_record_decodes_with_confluents_deserializer(label: str, record: Record) -> None:
    converter = avro_converter()
    out = converter(record)
    client = converter.value.client  # type: ignore[attr-defined]
    assert client is converter.key.client  # type: ignore[attr-defined]
    assert out.topic == record.topic and out.headers == record.headers
    for field, original in parts(record):
        data = out.key if field is MessageField.KEY else out.value
        doc = None if original is None else orjson.loads(original)
        if doc is None or doc["payload"] is None:
            assert data is None, "a null value is no bytes, as with AvroConverter"
            continue
        assert data is not None and data[0] == 0
        schema_id = int.from_bytes(data[1:5], "big")
        suffix = "key" if field is MessageField.KEY else "value"
        latest = client.get_latest_version(f"{record.topic}-{suffix}")
        assert latest.schema_id == schema_id
        decoded = AvroDeserializer(client)(data, SerializationContext(record.topic, field))
        assert same(decoded, expected(doc["schema"], doc["payload"])), label


def test_schema_registered_once_per_relation_version() -> None:
    converter = avro_converter()
    client = converter.value.client  # type: ignore[attr-defined]
    calls: list[str] = []
    register = client.register_schema_full_response

    def counting(subject: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(subject)
        return register(subject, *args, **kwargs)
    client.register_schema_full_response = counting
    from cdcd.debezium.envelope import TableEncoder
    from cdcd.source.tables import ColumnInfo, TableInfo

    v1 = TableEncoder(TABLE, options())
    for i in range(50):
        for record in v1.create((str(i).encode(),) + ROW[1:], SOURCE, None):
            converter(record)
    assert sorted(calls) == ["shop.public.families-key", "shop.public.families-value"]
    v2 = TableEncoder(TableInfo(TABLE.oid, TABLE.schema, TABLE.name,
                                TABLE.columns + (ColumnInfo("extra", 25, "text", -1, True),), ("id",)), options())
    for i in range(50):
        for record in v2.create((str(i).encode(),) + ROW[1:] + (b"e",), SOURCE, None):
            converter(record)
    assert calls.count("shop.public.families-value") == 2 and calls.count("shop.public.families-key") == 1
    versions = client.get_versions("shop.public.families-value")
    assert len(versions) == 2


@pytest.mark.parametrize("strategy,subject", [
    ("io.confluent.kafka.serializers.subject.TopicNameStrategy", "shop.public.families-value"),
    ("io.confluent.kafka.serializers.subject.RecordNameStrategy", "shop.public.families.Envelope"),
    ("io.confluent.kafka.serializers.subject.TopicRecordNameStrategy",
     "shop.public.families-shop.public.families.Envelope"),
])
def test_subject_name_strategies(strategy: str, subject: str) -> None:
    converter = avro_converter(**{"value.subject.name.strategy": strategy})
    [(_, record)] = [r for r in change_events() if r[0] == "defaults:create:0"]
    out = converter(record)
    client = converter.value.client  # type: ignore[attr-defined]
    assert out.value is not None
    assert client.get_latest_version(subject).schema_id == int.from_bytes(out.value[1:5], "big")


def test_use_latest_version_without_registering() -> None:
    [(_, record)] = [r for r in change_events() if r[0] == "defaults:create:0"]
    registering = avro_converter()
    registering(record)
    client = registering.value.client  # type: ignore[attr-defined]
    key, value = converter_settings(AVRO_CONVERTER, AVRO_CONVERTER, {
        f"{side}.converter.{k}": v for side in ("key", "value") for k, v in {
            "schema.registry.url": "mock://x", "auto.register.schemas": "false", "use.latest.version": "true",
        }.items()})
    reader = RecordConverter(key, value, clients={repr(sorted(value.registry_conf.items())): client})
    out = reader(record)
    assert out.value is not None and out.value[1:5] == client.get_latest_version(
        "shop.public.families-value").schema_id.to_bytes(4, "big")
    assert len(client.get_versions("shop.public.families-value")) == 1


def test_not_registered_and_no_auto_register_is_a_clear_error() -> None:
    converter = avro_converter(**{"auto.register.schemas": "false"})
    [(_, record)] = [r for r in change_events() if r[0] == "defaults:create:0"]
    with pytest.raises(SinkError, match="auto.register.schemas=false"):
        converter(record)


def test_offsets_record_stays_json() -> None:
    """The converting sink passes cdcd's own offsets record (known by its type) through unconverted."""
    from cdcd.delivery.sinks.converting import ConvertingSink

    sent: list[Any] = []

    class Collect:
        def send(self, record: Any) -> None:
            sent.append(record)

    sink = ConvertingSink(Collect(), avro_converter())  # type: ignore[arg-type]
    record = OffsetRecord("shop.offsets", b'{"server":"shop"}', b'{"lsn":1}')
    sink.send(record)
    assert sent == [record] and sent[0] is record


def test_invalid_avro_names_say_what_to_set() -> None:
    from cdcd.debezium.envelope import TableEncoder
    from cdcd.source.tables import ColumnInfo, TableInfo

    # a namespace with "-" is accepted, as by Avro 1.11 (Confluent 7.x); a field or record name is not
    [(_, hyphen_prefix)] = [r for r in change_events(prefix="my-shop") if r[0] == "defaults:create:0"]
    assert avro_converter()(hyphen_prefix).value is not None
    table = TableInfo(1, "public", "t", (ColumnInfo("order-id", 23, "int4", -1, False),), ("order-id",))
    [record] = TableEncoder(table, options()).create((b"1",), SOURCE, None)
    with pytest.raises(SinkError, match="field.name.adjustment.mode=avro"):
        avro_converter()(record)
    scrubbing = avro_converter(**{"scrub.invalid.names": "true"})
    out = scrubbing(record)
    decoded = AvroDeserializer(scrubbing.key.client)(  # type: ignore[attr-defined]
        out.key, SerializationContext(record.topic, MessageField.KEY))
    assert decoded == {"order_id": 1}  # AvroData's doScrubName (tests/converters/test_converters_confluent.py)
    adjusted = TableEncoder(table, options(field_name_adjustment_mode="avro")).create((b"1",), SOURCE, None)[0]
    assert avro_converter()(adjusted).value is not None


# --- JsonConverter, schemas.enable=false ----------------------------------------------------

@pytest.mark.parametrize("label,record", RECORDS, ids=[label for label, _ in RECORDS])
def test_json_without_schemas_is_the_payload(label: str, record: Record) -> None:
    key, value = converter_settings(JSON_CONVERTER, JSON_CONVERTER, {
        "key.converter.schemas.enable": "false", "value.converter.schemas.enable": "false"})
    converter = RecordConverter(key, value)
    for _ in range(2):  # the second pass takes the cached-prefix path
        out = converter(record)
        for original, data in ((record.key, out.key), (record.value, out.value)):
            if original is None:
                assert data is None
            else:
                assert data is not None and orjson.loads(data) == orjson.loads(original)["payload"]
    assert RecordConverter(*converter_settings(JSON_CONVERTER, JSON_CONVERTER, {})).identity


# --- registry faults --------------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_registry_down_is_retriable() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    converter = avro_converter(url)
    [(_, record)] = [r for r in change_events() if r[0] == "defaults:create:0"]
    with pytest.raises(SinkUnavailable, match="cannot reach the schema registry"):
        converter(record)
    key, _ = converter_settings(AVRO_CONVERTER, JSON_CONVERTER, {"key.converter.schema.registry.url": url})
    assert check_registry(key) is not None


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A registry that refuses every new schema as incompatible (409) and serves /subjects."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"error_code":409,"message":"Schema being registered is incompatible with an earlier schema"}'
        self.send_response(409)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        assert self.headers.get("Authorization", "").startswith("Basic ")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args: Any) -> None:
        pass


def test_incompatible_schema_is_a_permanent_error_naming_the_subject() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        converter = avro_converter(url, **{"basic.auth.credentials.source": "USER_INFO",
                                           "basic.auth.user.info": "cdcd:s3cret"})
        [(_, record)] = [r for r in change_events() if r[0] == "defaults:create:0"]
        with pytest.raises(SinkError, match="incompatible") as raised:
            converter(record)
        assert "shop.public.families" in str(raised.value) and "s3cret" not in str(raised.value)
        assert check_registry(converter.value.settings) is None  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_toml_forms_and_environment(tmp_path: Any) -> None:
    from cdcd.config import converter_settings as config_settings
    from cdcd.config import load
    from cdcd.errors import ConfigError

    path = tmp_path / "cdcd.toml"
    path.write_text('"key.converter" = "org.apache.kafka.connect.json.JsonConverter"\n'
                    '"key.converter.schemas.enable" = false\n'
                    '[value.converter]\nclass = "io.confluent.connect.avro.AvroConverter"\n'
                    '"schema.registry.url" = "http://registry:8081"\n'
                    '"basic.auth.credentials.source" = "USER_INFO"\n')
    config = load(str(path), env={"CDCD_VALUE_CONVERTER_BASIC_AUTH_USER_INFO": "cdcd:pw"})
    key, value = config_settings(config)
    assert not key.schemas_enable and not key.is_avro
    assert value.is_avro and value.registry_conf == {"url": "http://registry:8081", "basic.auth.user.info": "cdcd:pw"}
    path.write_text('[value.converter]\nclass = "io.confluent.connect.avro.AvroConverter"\n'
                    '"basic.auth.credentials.source" = "USER_INFO"\n"schema.registry.url" = "http://r"\n')
    with pytest.raises(ConfigError, match="basic.auth.user.info"):
        load(str(path), env={})


def test_cdcd_check_reports_the_registry(schema_registry: Any) -> None:
    from cdcd.check import check_converters
    from cdcd.config import load

    env = {"CDCD_VALUE_CONVERTER": AVRO_CONVERTER, "CDCD_VALUE_CONVERTER_SCHEMA_REGISTRY_URL": schema_registry.url,
           "CDCD_KEY_CONVERTER_SCHEMAS_ENABLE": "false"}
    key, value = check_converters(load(env=env))
    assert (key.status, key.detail) == ("ok", "JsonConverter without schemas")
    assert value.status == "ok" and schema_registry.url in value.detail
    schema_registry.stop()
    [_, down] = check_converters(load(env=env))
    assert down.status == "FAIL" and "cannot reach the schema registry" in down.detail


def test_string_and_byte_array_converters_for_outbox_records() -> None:
    from cdcd.converters import BYTE_ARRAY_CONVERTER, STRING_CONVERTER

    outbox = [r for label, r in RECORDS if label.startswith("outbox:string")]
    converter = RecordConverter(*converter_settings(STRING_CONVERTER, STRING_CONVERTER, {}))
    out = converter(outbox[0])
    assert out.key == b"1"
    assert out.value is not None and orjson.loads(out.value)["items"] == [{"sku": "A", "qty": 2}]
    raw = Record("t", None, orjson.dumps({"schema": {"type": "bytes", "optional": True}, "payload": "AAEC"}))
    assert RecordConverter(*converter_settings(JSON_CONVERTER, BYTE_ARRAY_CONVERTER, {}))(raw).value == b"\x00\x01\x02"
    with pytest.raises(SinkError, match="ByteArrayConverter takes only bytes"):
        RecordConverter(*converter_settings(JSON_CONVERTER, BYTE_ARRAY_CONVERTER, {}))(outbox[0])
