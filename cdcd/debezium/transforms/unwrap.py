"""Flatten change events to the row: Debezium's ExtractNewRecordState, on serialized records.

Sinks and consumers that want rows, not envelopes, get ``after`` (with the
``<topic>.Value`` schema) plus chosen metadata, exactly as Debezium 3's SMT with
JsonConverter (``schemas.enable=true``) prints it::

    {"schema":{"type":"struct","fields":[...columns..., {"type":"string","optional":true,"field":"__op"}],
               "optional":false,"name":"shop.public.orders.Value"},
     "payload":{...columns..., "__op":"c"}}

Like Connect's ``SchemaUtil.copySchemaBasics`` the flattened struct is not
optional and added fields are optional copies of their source field's schema
(no default). Deletes follow ``delete.tombstone.handling.mode``:

==========================  ======================================  ===================
mode                        the delete event becomes                Debezium tombstone
==========================  ======================================  ===================
``tombstone`` (default)     ``{"schema": <Value>, "payload": null}`` dropped
``drop``                    nothing                                 dropped
``rewrite``                 ``before`` + ``"__deleted": "true"``    dropped
``rewrite-with-tombstone``  ``before`` + ``"__deleted": "true"``    kept
``delete-to-tombstone``     a Kafka tombstone (value None)          dropped
==========================  ======================================  ===================

The legacy ``delete.handling.mode`` (drop|none|rewrite) with ``drop.tombstones``
is still read when the new option is absent. Truncate events are dropped;
records that are not change events (transaction metadata) pass unchanged.
The record is parsed and re-serialized with orjson: correct first, and cheap
enough for the rows a sink connector would see.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Final, Mapping

import orjson

from cdcd.debezium.connect_json import framed, head
from cdcd.debezium.envelope import AFTER, BEFORE, OPERATION, SOURCE, TIMESTAMP_MS, TRANSACTION, Record
from cdcd.debezium.transforms._common import as_bool, as_list, header_bytes, select_properties, without_field
from cdcd.errors import ConfigError

MODES: Final = ("drop", "tombstone", "rewrite", "rewrite-with-tombstone", "delete-to-tombstone")
LEGACY_MODES: Final = ("drop", "none", "rewrite")
DELETED_FIELD: Final = "__deleted"
_DELETED_SCHEMA: Final = {"type": "string", "optional": True, "field": DELETED_FIELD}
# (what a delete event becomes, whether Debezium's tombstones are kept)
_MODE_PLAN: Final = {
    "drop": ("drop", False), "tombstone": ("null", False), "rewrite": ("rewrite", False),
    "rewrite-with-tombstone": ("rewrite", True), "delete-to-tombstone": ("tombstone", False),
}
_TRANSACTION_FIELDS: Final = ("id", "total_order", "data_collection_order")


@dataclass(frozen=True, slots=True)
class UnwrapOptions:
    """ExtractNewRecordState's options (snake_case of the Debezium property names)."""

    delete_tombstone_handling_mode: str | None = None
    """Debezium 3's option; None means ``tombstone`` unless a legacy option is set."""
    delete_handling_mode: str | None = None
    """Legacy (removed in Debezium 3.2): drop | none | rewrite; only read without the option above."""
    drop_tombstones: bool | None = None
    """Legacy companion of ``delete_handling_mode`` (default true)."""
    add_fields: tuple[str, ...] = ()
    """``op``, ``table``, ``lsn``, ``source.ts_ms``, ``ts_ms``, ... optionally ``field:newname``."""
    add_fields_prefix: str = "__"
    add_headers: tuple[str, ...] = ()
    add_headers_prefix: str = "__"
    route_by_field: str = ""
    """A column whose value (of ``after``, or ``before`` for deletes) replaces the topic."""

    PROPERTIES: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self) -> None:
        if self.delete_tombstone_handling_mode is not None and self.delete_tombstone_handling_mode not in MODES:
            raise ConfigError(f"delete.tombstone.handling.mode={self.delete_tombstone_handling_mode!r}: "
                              f"use one of {', '.join(MODES)}")
        if self.delete_handling_mode is not None and self.delete_handling_mode not in LEGACY_MODES:
            raise ConfigError(f"delete.handling.mode={self.delete_handling_mode!r}: use one of "
                              f"{', '.join(LEGACY_MODES)} (or delete.tombstone.handling.mode)")
        for spec in self.add_fields + self.add_headers:
            if spec.count(":") > 1 or spec.count(".") > 1 or not spec.split(":")[0]:
                raise ConfigError(f"add.fields/add.headers: {spec!r} is not [struct.]field[:newname]")

    @classmethod
    def from_properties(cls, props: Mapping[str, Any], prefix: str = "") -> UnwrapOptions:
        """From Debezium property names, e.g. a flattened TOML ``[transforms.unwrap]`` table."""
        kwargs = select_properties(props, prefix, cls.PROPERTIES, "unwrap")
        for name, value in list(kwargs.items()):
            if name == "drop_tombstones":
                kwargs[name] = as_bool(value, prefix + "drop.tombstones")
            elif name in ("add_fields", "add_headers"):
                kwargs[name] = as_list(value)
            elif name in ("delete_tombstone_handling_mode", "delete_handling_mode"):
                kwargs[name] = str(value).strip().lower() or None
            else:
                kwargs[name] = str(value).strip()
        return cls(**kwargs)

    @property
    def delete_plan(self) -> tuple[str, bool]:
        """(what a delete event becomes: drop|null|rewrite|tombstone, whether tombstones are kept)."""
        if self.delete_tombstone_handling_mode is not None:
            return _MODE_PLAN[self.delete_tombstone_handling_mode]
        if self.delete_handling_mode is None and self.drop_tombstones is None:
            return _MODE_PLAN["tombstone"]
        legacy = {"drop": "drop", "none": "null", "rewrite": "rewrite"}[self.delete_handling_mode or "drop"]
        return legacy, not (True if self.drop_tombstones is None else self.drop_tombstones)


UnwrapOptions.PROPERTIES = {f.name.replace("_", "."): f.name for f in fields(UnwrapOptions)}


@dataclass(frozen=True, slots=True)
class _FieldRef:
    """Debezium's FieldReference: ``op``/``ts_ms`` are top level, transaction keys in ``transaction``,
    anything else in ``source``; ``struct.field`` says it explicitly."""

    struct: str | None
    field: str
    new_name: str

    @classmethod
    def parse(cls, prefix: str, spec: str) -> _FieldRef:
        name, _, rename = spec.partition(":")
        struct, dot, simple = name.rpartition(".")
        if not dot:
            simple = name
            struct = ("" if name in (OPERATION, TIMESTAMP_MS) else
                      TRANSACTION if name in _TRANSACTION_FIELDS else SOURCE)
        new_name = prefix + (rename or (f"{struct}_{simple}" if dot else simple))
        return cls(struct or None, simple, new_name)

    def lookup(self, schema: dict[str, Any], payload: dict[str, Any]) -> tuple[dict[str, Any], Any] | None:
        """(field schema, value), falling back to the top level as Debezium does; None if absent."""
        top = _fields(schema)
        if self.struct is not None and self.struct in top:
            inner = _fields(top[self.struct])
            if self.field in inner:
                parent = payload.get(self.struct)
                return inner[self.field], None if parent is None else parent.get(self.field)
        if self.field in top:
            return top[self.field], payload.get(self.field)
        return None


class Unwrapper:
    """``Unwrapper(options)(record) -> Record | None`` (None: the record is dropped)."""

    def __init__(self, options: UnwrapOptions) -> None:
        self.options = options
        self._deletes, self._keep_tombstones = options.delete_plan
        self._fields = [_FieldRef.parse(options.add_fields_prefix, s) for s in options.add_fields]
        self._headers = [_FieldRef.parse(options.add_headers_prefix, s) for s in options.add_headers]

    def __call__(self, record: Record) -> Record | None:
        if record.value is None:  # Debezium's tombstone after a delete
            if not self._keep_tombstones:
                return None
            op_headers = tuple((h.new_name, b"d") for h in self._headers if h.struct is None and h.field == OPERATION)
            return record._replace(headers=record.headers + op_headers)
        document = orjson.loads(record.value)
        schema, payload = document.get("schema"), document.get("payload")
        if not isinstance(schema, dict) or not str(schema.get("name", "")).endswith(".Envelope") \
                or not isinstance(payload, dict):
            return record
        headers = record.headers + self._metadata_headers(schema, payload)
        before: dict[str, Any] | None = payload.get(BEFORE)
        after: dict[str, Any] | None = payload.get(AFTER)
        if payload.get(OPERATION) == "t" or (before is None and after is None):
            return None
        envelope_fields = _fields(schema)
        if after is None:  # a delete
            assert before is not None
            if self._deletes == "drop":
                return None
            topic = self._route(record.topic, before)
            if self._deletes == "tombstone":
                return _same_row(record, topic, record.key, None, headers)
            if self._deletes == "null":
                return _same_row(record, topic, record.key, framed(head(without_field(envelope_fields[AFTER])), None),
                                 headers)
            return self._row(record, topic, envelope_fields[BEFORE], before, "true", schema, payload, headers)
        deleted = "false" if self._deletes == "rewrite" else None
        topic = self._route(record.topic, after)
        return self._row(record, topic, envelope_fields[AFTER], after, deleted, schema, payload, headers)

    def _row(self, record: Record, topic: str, row_schema: dict[str, Any], row: dict[str, Any],
             deleted: str | None, schema: dict[str, Any], payload: dict[str, Any],
             headers: tuple[tuple[str, bytes], ...]) -> Record:
        """The row struct, then ``__deleted`` (rewrite modes), then ``add.fields``; not optional."""
        out_schema = without_field(row_schema)
        out_fields = list(out_schema["fields"])
        value = dict(row)
        if deleted is not None:
            out_fields.append(dict(_DELETED_SCHEMA))
            value[DELETED_FIELD] = deleted
        for ref in self._fields:
            found = ref.lookup(schema, payload)
            if found is not None:
                out_fields.append({**_optional_copy(found[0]), "field": ref.new_name})
                value[ref.new_name] = found[1]
        out_schema["fields"] = out_fields
        out_schema["optional"] = False
        return _same_row(record, topic, record.key, framed(head(out_schema), value), headers)

    def _metadata_headers(self, schema: dict[str, Any], payload: dict[str, Any]) -> tuple[tuple[str, bytes], ...]:
        out = []
        for ref in self._headers:
            found = ref.lookup(schema, payload)
            data = None if found is None else header_bytes(found[1])
            if data is not None:  # absent fields get no header; null ones neither (Record carries bytes)
                out.append((ref.new_name, data))
        return tuple(out)

    def _route(self, topic: str, row: dict[str, Any] | None) -> str:
        name = self.options.route_by_field
        if not name or row is None:
            return topic
        routed = row.get(name)
        return routed if isinstance(routed, str) and routed.strip() else topic


def unwrap(record: Record, options: UnwrapOptions) -> Record | None:
    """One-off form of ``Unwrapper(options)(record)``; build an ``Unwrapper`` once for a stream."""
    return Unwrapper(options)(record)


def _same_row(record: Record, topic: str, key: bytes | None, value: bytes | None,
              headers: tuple[tuple[str, bytes], ...]) -> Record:
    """The flattened record, still about the same row (table, key, position) as the envelope."""
    return Record(topic, key, value, headers, record.table, record.key_fields, record.lsn, record.txid)


def _fields(struct_schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["field"]: f for f in struct_schema.get("fields", ())}


def _optional_copy(field_schema: dict[str, Any]) -> dict[str, Any]:
    """``SchemaUtil.copySchemaBasics(schema).optional()``: type, name, version, doc, parameters."""
    out: dict[str, Any] = {"type": field_schema["type"], "optional": True}
    for key in ("name", "version", "doc", "parameters"):
        if key in field_schema:
            out[key] = field_schema[key]
    return out
