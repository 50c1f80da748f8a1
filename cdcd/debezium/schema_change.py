"""Schema change events: a ``cdcd.ddl`` message becomes Debezium's schema change event.

The event triggers of ``cdcd.source.ddl_capture`` write each DDL into the WAL.
With ``schema.changes.mode=event-trigger`` the pipeline turns each such
message into one event on the ``<topic.prefix>`` topic in Debezium's schema
change format (``io.debezium.connector.postgresql.SchemaChangeKey`` /
``SchemaChangeValue``)::

    key   {"databaseName": "shop"}
    value {"source": {..., "schema": "public", "table": "orders", "txId": 812, "lsn": 26997904},
           "ts_ms": 1795547161012, "databaseName": "shop", "schemaName": "public",
           "ddl": "ALTER TABLE orders ADD COLUMN note text",
           "tableChanges": [{"type": "ALTER", "id": "\\"shop\\".\\"public\\".\\"orders\\"",
                             "table": {"defaultCharsetName": null, "primaryKeyColumnNames": ["id"],
                                       "columns": [{"name": "id", "jdbcType": 4, ...}], "comment": null}}]}

``ddl`` is ``current_query()``: the client's whole query string, which can
hold more than one statement. A DROP's ``table`` is null (the catalogs no
longer describe it when the trigger runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
import psycopg
import structlog

from cdcd.debezium.connect_json import CLOSE, framed, head
from cdcd.debezium.connect_json import field as _f
from cdcd.debezium.envelope import Record, sanitize_topic
from cdcd.debezium.source_info import SOURCE_SCHEMA, SourceBlock, SourceInfo
from cdcd.debezium.types.source import length_and_scale
from cdcd.source.ddl_capture import PREFIX, TRIGGERS, installed
from cdcd.source.tables import ColumnInfo

__all__ = ["PREFIX", "DdlMessage", "SchemaChangeEncoder", "TableChange", "jdbc_type", "parse",
           "schema_change_encoder"]

log = structlog.get_logger("cdcd.ddl")

def _strings(optional: bool, field: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "optional": False}, "optional": optional, "field": field}


_COLUMN_SCHEMA: Final = {
    "type": "struct",
    "fields": [
        _f("string", False, "name"), _f("int32", False, "jdbcType"), _f("int32", True, "nativeType"),
        _f("string", False, "typeName"), _f("string", True, "typeExpression"), _f("string", True, "charsetName"),
        _f("int32", True, "length"), _f("int32", True, "scale"), _f("int32", False, "position"),
        _f("boolean", True, "optional"), _f("boolean", True, "autoIncremented"), _f("boolean", True, "generated"),
        _f("string", True, "comment"), _f("string", True, "defaultValueExpression"), _strings(True, "enumValues"),
    ],
    "optional": False, "name": "io.debezium.connector.schema.Column", "version": 1,
}
_TABLE_SCHEMA: Final = {
    "type": "struct",
    "fields": [
        _f("string", True, "defaultCharsetName"), _strings(True, "primaryKeyColumnNames"),
        {"type": "array", "items": _COLUMN_SCHEMA, "optional": False, "field": "columns"},
        _f("string", True, "comment"),
    ],
    "optional": True, "name": "io.debezium.connector.schema.Table", "version": 1, "field": "table",
}
_CHANGE_SCHEMA: Final = {
    "type": "struct",
    "fields": [_f("string", False, "type"), _f("string", False, "id"), _TABLE_SCHEMA],
    "optional": False, "name": "io.debezium.connector.schema.Change", "version": 1,
}
_KEY_HEAD: Final = head({
    "type": "struct", "fields": [_f("string", False, "databaseName")], "optional": False,
    "name": "io.debezium.connector.postgresql.SchemaChangeKey", "version": 1,
})
_VALUE_HEAD: Final = head({
    "type": "struct",
    "fields": [
        SOURCE_SCHEMA, _f("int64", False, "ts_ms"), _f("string", True, "databaseName"),
        _f("string", True, "schemaName"), _f("string", True, "ddl"),
        {"type": "array", "items": _CHANGE_SCHEMA, "optional": False, "field": "tableChanges"},
    ],
    "optional": False, "name": "io.debezium.connector.postgresql.SchemaChangeValue", "version": 1,
})

# java.sql.Types as pgjdbc reports them (TypeInfoCache); anything else is OTHER (1111).
_JDBC_TYPES: Final = {
    "int2": 5, "int4": 4, "oid": -5, "int8": -5, "money": 8, "numeric": 2, "float4": 7, "float8": 8,
    "char": 1, "bpchar": 1, "varchar": 12, "text": 12, "name": 12, "bytea": -2, "bool": -7, "bit": -7,
    "date": 91, "time": 92, "timetz": 92, "timestamp": 93, "timestamptz": 93, "xml": 2009, "refcursor": 2012,
}
_ARRAY, _VARCHAR, _STRUCT, _OTHER = 2003, 12, 2002, 1111


def jdbc_type(typname: str, typtype: str, base: str | None) -> int:
    if typname.startswith("_") and base is not None:
        return _ARRAY
    if typtype == "e":
        return _VARCHAR
    if typtype == "c":
        return _STRUCT
    if typtype == "d" and base is not None:
        return _JDBC_TYPES.get(base, _OTHER)
    return _JDBC_TYPES.get(typname, _OTHER)


@dataclass(frozen=True, slots=True)
class TableChange:
    type: str  # CREATE | ALTER | DROP
    oid: int
    schema: str
    name: str
    table: dict[str, Any] | None
    """Debezium's ``io.debezium.connector.schema.Table`` payload; None for a DROP."""

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True, slots=True)
class DdlMessage:
    tag: str
    ddl: str | None
    tables: tuple[TableChange, ...]


def parse(content: bytes) -> DdlMessage:
    """A ``cdcd.ddl`` message's content; ``ValueError`` when it is not what the trigger writes."""
    try:
        data = orjson.loads(content)
        tables = tuple(_table_change(t) for t in data["tables"])
        return DdlMessage(str(data["tag"]), data.get("ddl"), tables)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a cdcd.ddl message: {exc}") from exc


def _table_change(t: dict[str, Any]) -> TableChange:
    if t["type"] == "DROP":
        return TableChange("DROP", int(t["oid"]), str(t["schema"]), str(t["name"]), None)
    columns = []
    for position, c in enumerate(t["columns"], start=1):
        info = ColumnInfo(name=c["name"], type_oid=int(c["type_oid"]), type_name=c["typname"],
                          type_modifier=int(c["typmod"]), optional=not c["not_null"], default=c["default"],
                          type_kind=c["typtype"], base_type_name=c["base"])
        length, scale = length_and_scale(info)
        default = c["default"]
        columns.append({
            "name": info.name, "jdbcType": jdbc_type(info.type_name, info.type_kind, info.base_type_name),
            "nativeType": info.type_oid, "typeName": info.type_name, "typeExpression": c["type"],
            "charsetName": None, "length": length, "scale": scale, "position": position,
            "optional": info.optional,
            "autoIncremented": bool(c["identity"]) or (default is not None and default.startswith("nextval(")),
            "generated": c["generated"] == "s", "comment": c["comment"],
            "defaultValueExpression": default, "enumValues": c["enum"] or None,
        })
    table = {"defaultCharsetName": None, "primaryKeyColumnNames": list(t["primary_key"]), "columns": columns,
             "comment": t["comment"]}
    return TableChange(str(t["type"]), int(t["oid"]), str(t["schema"]), str(t["name"]), table)


class SchemaChangeEncoder:
    """Builds the schema change record of a ``cdcd.ddl`` message, keeping only captured tables."""

    def __init__(self, topic_prefix: str, database: str, connector_version: str,
                 accept: Callable[[str], bool]) -> None:
        self.topic = sanitize_topic(topic_prefix)
        self._source = SourceBlock(connector_version, topic_prefix, database)
        self._db = database
        self._accept = accept
        self._key = framed(_KEY_HEAD, {"databaseName": database})

    def record(self, message: DdlMessage, source: SourceInfo) -> Record | None:
        """One record for the whole command; None when it touched no captured table."""
        tables = [t for t in message.tables if self._accept(t.qualified_name)]
        if not tables:
            return None
        db, schema = self._db, tables[0].schema
        block = self._source.json(source, SourceBlock.table(schema, ",".join(t.name for t in tables)))
        rest = orjson.dumps({
            "ts_ms": source.ts_us // 1000 if source.ts_us else time.time_ns() // 1_000_000,
            "databaseName": db, "schemaName": schema, "ddl": message.ddl,
            "tableChanges": [{"type": t.type, "id": _quoted(db, t.schema, t.name), "table": t.table} for t in tables],
        })
        value = b"".join((_VALUE_HEAD, b'{"source":', block.encode(), b",", rest[1:], CLOSE))
        return Record(self.topic, self._key, value, (), ",".join(f"{t.schema}.{t.name}" for t in tables), None,
                      source.lsn, source.txid)


def schema_change_encoder(config: Any, database: str, connector_version: str, accept: Callable[[str], bool],
                          conn: psycopg.Connection[Any]) -> SchemaChangeEncoder | None:
    """The encoder ``schema.changes.mode`` asks for (None: off); warns when the triggers are missing."""
    if config.schema_changes_mode != "event-trigger":
        return None
    try:
        found = installed(conn)
    except psycopg.Error as exc:
        found = []
        log.warning("ddl_capture_check_failed", error=str(exc).strip())
    if len(found) < len(TRIGGERS):
        log.warning("ddl_capture_not_installed", found=found,
                    hint="no schema change events until a superuser runs cdcd install-ddl-capture")
    return SchemaChangeEncoder(config.topic_prefix, database, connector_version, accept)


def _quoted(*parts: str) -> str:
    """Debezium's ``TableId.toDoubleQuotedString``."""
    return ".".join('"' + p + '"' for p in parts)
