"""Connect schema -> Avro schema, as Confluent's ``AvroData.fromConnectSchema`` derives it (pure, no I/O).

The input is a Connect schema in JsonConverter's JSON form (what cdcd's records
carry); the output is the Avro schema text exactly as Avro's ``Schema.toString``
prints the schema AvroData builds (Confluent 7.x, ``connect.meta.data=true``), so
the registry sees the same text, and hands out the same ids, as for a Debezium
connector with ``AvroConverter``:

* a struct is a record named after the Connect name (namespace = everything before
  the last dot), unnamed ones ``io.confluent.connect.avro.ConnectDefault[N]``;
* an optional schema is the union ``["null", T]`` (``[T, "null"]`` when it has a
  non-null default), its field defaulting to null;
* ``connect.doc``, ``connect.version``, ``connect.parameters``, ``connect.default``,
  ``connect.name`` and ``connect.type`` (int8, int16) annotate non-record types;
* ``org.apache.kafka.connect.data.Decimal`` is bytes with the ``decimal`` logical
  type (``connect.decimal.precision``, else 64); Connect's Date, Time and
  Timestamp are int/long with date, time-millis and timestamp-millis; Debezium's
  semantic types (``io.debezium.time.*``) stay their primitive with ``connect.name``;
* a map with string keys is an Avro map, any other an array of ``MapEntry`` records.

`translate` also returns a `Datum` function turning the JSON payload into what
fastavro writes (`cdcd.converters._avro_datum`); the schema tree and its printing
are `cdcd.converters._avro_tree`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Callable, Final

import orjson

from cdcd.converters._avro_datum import (
    Datum,
    bytes_datum,
    entries_datum,
    float_datum,
    identity,
    list_datum,
    map_datum,
    record_datum,
    union_datum,
)
from cdcd.converters._avro_tree import NULL, Fixed, Printer, Record, SchemaTranslationError, Type, Union

NAMESPACE: Final = "io.confluent.connect.avro"
DECIMAL: Final = "org.apache.kafka.connect.data.Decimal"
_LOGICAL: Final = {
    "org.apache.kafka.connect.data.Date": "date",
    "org.apache.kafka.connect.data.Time": "time-millis",
    "org.apache.kafka.connect.data.Timestamp": "timestamp-millis",
}
_PRIMITIVE: Final = {
    "int8": "int", "int16": "int", "int32": "int", "int64": "long", "float": "float", "float32": "float",
    "double": "double", "float64": "double", "boolean": "boolean", "string": "string", "bytes": "bytes",
}
_FIELD_DEFAULT_FLAG: Final = f"{NAMESPACE}.field.default"
_FIELD_DOC_PREFIX: Final = f"{NAMESPACE}.field.doc."
_RECORD_DOC: Final = f"{NAMESPACE}.record.doc"
_DECIMAL_PRECISION: Final = "connect.decimal.precision"
_FIXED_SIZE: Final = "connect.fixed.size"

@dataclass(frozen=True, slots=True)
class AvroOptions:
    """AvroData's options that change the schema (AvroConverter's ``*.converter.*`` properties)."""

    connect_meta_data: bool = True
    scrub_invalid_names: bool = False


@dataclass(frozen=True, slots=True)
class Translation:
    schema: str
    """The Avro schema text, as Avro's ``Schema.toString`` prints it."""
    datum: Datum
    full_name: str | None
    """The top-level record's full name (RecordNameStrategy subjects), None for other types."""


def translate(connect: dict[str, Any], options: AvroOptions = AvroOptions()) -> Translation:
    """The Avro schema AvroData derives from ``connect``, and the payload converter for it."""
    builder = _Builder(options)
    node, datum = builder.build(connect, ignore_optional=False)
    text = orjson.dumps(Printer().emit(node)).decode()
    target = node.branches[-1] if isinstance(node, Union) and len(node.branches) == 2 \
        and node.branches[0] == "null" else node
    full_name = target.full_name if isinstance(target, Record) else None
    return Translation(text, datum or identity, full_name)


def _split_name(name: str, scrub: bool) -> tuple[str | None, str]:
    parts = name.split(".")
    if scrub:
        parts = [_scrub(p) for p in parts]
    if len(parts) <= 1:
        return None, parts[0]
    return ".".join(parts[:-1]), parts[-1]


def _scrub(name: str) -> str:
    """AvroData's ``doScrubName``: URL-encode (as Java's URLEncoder), then ``_`` for what Avro refuses."""
    if not name:
        return name
    if all(c.isascii() and (c.isalnum() or c == "_") for c in name) and not name[0].isdigit():
        return name
    encoded = []
    for char in name:
        if char.isascii() and (char.isalnum() or char in ".-*_"):
            encoded.append(char)
        elif char == " ":
            encoded.append("+")
        else:
            encoded.extend(f"%{b:02X}" for b in char.encode("utf-8"))
    text = "".join(encoded)
    if text[0].isdigit():
        text = "x" + text
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in text)


def _is_valid_name(name: str) -> bool:
    return bool(name) and (name[0].isascii() and (name[0].isalpha() or name[0] == "_")) \
        and all(c.isascii() and (c.isalnum() or c == "_") for c in name)


class _Builder:
    def __init__(self, options: AvroOptions) -> None:
        self.options = options
        self.cache: dict[bytes, tuple[Any, Datum | None]] = {}  # AvroData's schemaMap (non-optional schemas)
        self.default_names = 0

    # AvroData.fromConnectSchema(schema, context, ignoreOptional)
    def build(self, schema: dict[str, Any], *, ignore_optional: bool) -> tuple[Any, Datum | None]:
        optional = bool(schema.get("optional", False))
        key = None
        if not optional:
            key = orjson.dumps({k: v for k, v in schema.items() if k != "field"}, option=orjson.OPT_SORT_KEYS)
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        type_ = schema.get("type")
        name = schema.get("name")
        params = schema.get("parameters") or None
        connect_type = None
        datum: Datum | None = None
        base: Any
        if type_ in ("int8", "int16"):
            connect_type = type_
            base = Type("int")
        elif type_ in ("float", "float32", "double", "float64"):
            base, datum = Type(_PRIMITIVE[type_]), float_datum
        elif type_ in ("int32", "int64", "boolean", "string"):
            base = Type(_PRIMITIVE[type_])
        elif type_ == "bytes":
            if name is not None and params and _FIXED_SIZE in params:
                namespace, short = _split_name(name, self.options.scrub_invalid_names)
                base = Fixed(short, namespace, None)
                base.size = int(params[_FIXED_SIZE])
            else:
                base = Type("bytes")
            datum = bytes_datum
            if name == DECIMAL:
                params = params or {}
                base.props["scale"] = int(params.get("scale", 0))
                base.props["precision"] = int(params.get(_DECIMAL_PRECISION, 64))
        elif type_ == "array":
            items, item_datum = self.build_with_cycle(schema["items"])
            base = Type("array")
            base.items = items
            if item_datum is not None:
                datum = list_datum(item_datum)
        elif type_ == "map":
            base, datum = self._map(schema)
        elif type_ == "struct":
            if optional:
                inner, inner_datum = self.build_with_cycle({**schema, "optional": False})
                union = Union([NULL, inner])
                return union, union_datum(inner, inner_datum)
            base, datum = self._record(schema, name, params)
        else:
            raise SchemaTranslationError(f"unknown Connect schema type {type_!r}")

        if self.options.connect_meta_data:
            props = base.props
            if schema.get("doc") is not None:
                props["connect.doc"] = schema["doc"]
            if schema.get("version") is not None:
                props["connect.version"] = schema["version"]
            if params:
                shown = {k: v for k, v in params.items() if k != _FIELD_DEFAULT_FLAG}
                if shown:
                    props["connect.parameters"] = shown
            if schema.get("default") is not None and not (params and _FIELD_DEFAULT_FLAG in params):
                props["connect.default"] = _default(schema, schema["default"])
            if name is not None:
                props["connect.name"] = name
            if connect_type is not None:
                props["connect.type"] = connect_type
        if name is not None:
            if name == DECIMAL:
                base.props.setdefault("logicalType", "decimal")
            elif name in _LOGICAL:
                base.props.setdefault("logicalType", _LOGICAL[name])
        if params:
            for k, v in params.items():
                if k.startswith("avro"):
                    base.props.setdefault(k, v)
        final: Any = base
        if not ignore_optional and optional:
            if schema.get("default") is not None:
                final = Union([base, NULL])
            else:
                final = Union([NULL, base])
            datum = union_datum(base, datum)
        result = (final, datum)
        if key is not None:
            self.cache[key] = result
        return result

    def build_with_cycle(self, schema: dict[str, Any]) -> tuple[Any, Datum | None]:
        return self.build(schema, ignore_optional=False)

    def _name(self, name: str | None) -> tuple[str | None, str]:
        if name is not None:
            return _split_name(name, self.options.scrub_invalid_names)
        self.default_names += 1
        return NAMESPACE, "ConnectDefault" + (str(self.default_names) if self.default_names > 1 else "")

    def _record(self, schema: dict[str, Any], name: str | None,
                params: dict[str, str] | None) -> tuple[Record, Datum | None]:
        namespace, short = self._name(name)
        _check_name(short, name)  # Avro 1.11 (Confluent 7.x) checks names, not namespaces
        record = Record(short, namespace, (params or {}).get(_RECORD_DOC))
        converters: list[tuple[str, str, Datum | None]] = []
        for field in schema.get("fields", ()):
            field_name = field["field"]
            avro_name = _scrub(field_name) if self.options.scrub_invalid_names else field_name
            _check_name(avro_name, f"{name}.{field_name}" if name else field_name, field=True)
            doc = (params or {}).get(_FIELD_DOC_PREFIX + field_name)
            node, datum = self._field(record, avro_name, field, doc)
            if datum is not None or avro_name != field_name:
                converters.append((field_name, avro_name, datum))
        return record, record_datum(converters) if converters else None

    def _field(self, record: Record, name: str, schema: dict[str, Any],
               doc: str | None) -> tuple[Any, Datum | None]:
        node, datum = self.build(schema, ignore_optional=False)
        entry: dict[str, Any] = {"name": name, "type": node}
        if doc is not None:
            entry["doc"] = doc
        if schema.get("default") is not None:
            default = _default(schema, schema["default"])
            if _valid_default(node, default):
                entry["default"] = default
        elif schema.get("optional"):
            if _valid_default(node, None):
                entry["default"] = None
        record.fields.append(entry)
        return node, datum

    def _map(self, schema: dict[str, Any]) -> tuple[Any, Datum | None]:
        keys, values = schema["keys"], schema["values"]
        if keys.get("type") == "string" and not keys.get("optional"):
            node = Type("map")
            node.values, value_datum = self.build_with_cycle(values)
            return node, None if value_datum is None else map_datum(value_datum)
        name = schema.get("name")
        if name is None:
            entry = Record("MapEntry", NAMESPACE, None)
        else:
            namespace, short = self._name(name)
            entry = Record(short, namespace, None)
            entry.props["connect.internal.type"] = "MapEntry"
        _, key_datum = self._field(entry, "key", keys, None)
        _, value_datum = self._field(entry, "value", values, None)
        node = Type("array")
        node.items = entry
        return node, entries_datum(key_datum or identity, value_datum or identity)


def _check_name(part: str, where: str | None, *, field: bool = False) -> None:
    if not _is_valid_name(part):
        what = "field" if field else "schema name"
        option = "field.name.adjustment.mode" if field else "schema.name.adjustment.mode"
        raise SchemaTranslationError(
            f"{what} {where!r} is not a valid Avro name ({part!r}: letters, digits and _ only, not starting with "
            f"a digit): set {option}=avro (as Debezium requires with AvroConverter), or scrub.invalid.names=true "
            "on the converter")


def _default(schema: dict[str, Any], value: Any) -> Any:
    """AvroData's ``defaultValueFromConnect`` on the JSON form of a Connect default."""
    if value is None:
        return None
    type_ = schema.get("type")
    if type_ == "bytes":
        raw = base64.b64decode(value) if isinstance(value, str) else bytes(value)
        return raw.decode("latin-1")
    if type_ == "array":
        return [_default(schema["items"], v) for v in value]
    if type_ == "map":
        if schema["keys"].get("type") == "string" and not schema["keys"].get("optional"):
            return {k: _default(schema["values"], v) for k, v in value.items()}
        pairs = value.items() if isinstance(value, dict) else value
        return [[_default(schema["keys"], k), _default(schema["values"], v)] for k, v in pairs]
    if type_ == "struct":
        return {f["field"]: _default(f, value.get(f["field"])) for f in schema.get("fields", ())}
    if type_ in ("float", "float32", "double", "float64") and isinstance(value, int):
        return float(value)
    return value


def _valid_default(node: Any, value: Any) -> bool:
    """Avro's default validation, for what a Connect default can be: a union's default matches its first branch."""
    if isinstance(node, Union):
        node = node.branches[0]
    if node == NULL:
        return value is None
    if value is None:
        return False
    if isinstance(node, Record) and not isinstance(node, Fixed):
        return isinstance(value, dict)
    type_ = "fixed" if isinstance(node, Fixed) else node.type
    checks: dict[str, Callable[[Any], bool]] = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool), "string": lambda v: isinstance(v, str),
        "bytes": lambda v: isinstance(v, str), "fixed": lambda v: isinstance(v, str),
        "array": lambda v: isinstance(v, list), "map": lambda v: isinstance(v, dict),
    }
    return checks[type_](value)
