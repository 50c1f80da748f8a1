"""DDL change events: an event trigger writes each DDL into the WAL, cdcd turns it into a schema change event.

``cdcd install-ddl-capture`` creates (as a superuser, never implicitly) two
event triggers: at ``ddl_command_end`` the tables a command created or
altered, with their columns as the catalogs describe them afterwards; at
``sql_drop`` the tables dropped. Each becomes one transactional
``pg_logical_emit_message(true, 'cdcd.ddl', <json>)``, so it arrives in the
replication stream in commit order with the rows around it, and a rolled
back DDL leaves nothing. Reading the catalogs cannot fail the DDL (an error
there is a ``WARNING`` and the DDL goes uncaptured); the message is written
outside that protected block, because PostgreSQL decodes a message that is
the first WAL record of a subtransaction after the rest of its transaction.

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
from typing import Any, Final, TextIO

import orjson
import psycopg
import structlog
from psycopg import sql

from cdcd.debezium.connect_json import CLOSE, field as _f, framed, head
from cdcd.debezium.envelope import Record, sanitize_topic
from cdcd.debezium.source_info import SOURCE_SCHEMA, SourceBlock, SourceInfo
from cdcd.errors import SourceError
from cdcd.source.tables import ColumnInfo
from cdcd.debezium.types.source import length_and_scale

log = structlog.get_logger("cdcd.ddl")

PREFIX: Final = "cdcd.ddl"
MODES: Final = ("none", "event-trigger")
TRIGGERS: Final = ("cdcd_ddl_command_end", "cdcd_sql_drop")
FUNCTIONS: Final = ("cdcd_ddl_command_end", "cdcd_sql_drop", "cdcd_ddl_table")
CAPTURED_TAGS: Final = ("CREATE TABLE", "CREATE TABLE AS", "SELECT INTO", "ALTER TABLE", "CREATE INDEX", "COMMENT")

# -- the event trigger -------------------------------------------------------------------------

# One table as the catalogs describe it now: what the schema change event's ``table`` shows.
_TABLE_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.cdcd_ddl_table(rel oid, change text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT jsonb_build_object(
  'type', change, 'oid', c.oid, 'schema', n.nspname, 'name', c.relname,
  'comment', obj_description(c.oid, 'pg_class'),
  'primary_key', coalesce((
     SELECT jsonb_agg(a.attname ORDER BY k.ord) FROM pg_index i
     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = c.oid AND i.indisprimary), '[]'::jsonb),
  'columns', coalesce((
     SELECT jsonb_agg(jsonb_build_object(
       'name', a.attname, 'type_oid', a.atttypid, 'typmod', a.atttypmod,
       'type', format_type(a.atttypid, a.atttypmod), 'typname', t.typname, 'typtype', t.typtype,
       'base', bt.typname, 'not_null', a.attnotnull, 'default', pg_get_expr(d.adbin, d.adrelid),
       'identity', a.attidentity::text, 'generated', a.attgenerated::text,
       'comment', col_description(c.oid, a.attnum),
       'enum', CASE WHEN t.typtype = 'e' THEN (
                 SELECT jsonb_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
               END) ORDER BY a.attnum)
     FROM pg_attribute a
     JOIN pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     LEFT JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype
                                          WHEN t.typelem <> 0 AND t.typlen = -1 THEN t.typelem END
     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::jsonb))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel
$fn$
"""

# Commands report indexes and columns as well as tables: each maps to its (permanent) table.
_COMMAND_END_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.cdcd_ddl_command_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  tables jsonb;
BEGIN
  IF current_setting('wal_level') <> 'logical' THEN RETURN; END IF;
  BEGIN
    SELECT jsonb_agg({schema}.cdcd_ddl_table(r.rel, r.change) ORDER BY r.first) INTO tables
    FROM (SELECT x.rel, min(x.ord) AS first,
                 CASE WHEN bool_or(x.created) THEN 'CREATE' ELSE 'ALTER' END AS change
          FROM (SELECT coalesce(ix.indrelid, c.oid) AS rel, cmd.ord,
                       cmd.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
                         AND c.relkind IN ('r', 'p') AS created
                FROM pg_event_trigger_ddl_commands() WITH ORDINALITY AS cmd(
                       classid, objid, objsubid, command_tag, object_type, schema_name, object_identity,
                       in_extension, command, ord)
                JOIN pg_class c ON c.oid = cmd.objid
                LEFT JOIN pg_index ix ON ix.indexrelid = c.oid
                WHERE cmd.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'p', 'i', 'I')) x
          JOIN pg_class t ON t.oid = x.rel AND t.relkind IN ('r', 'p') AND t.relpersistence = 'p'
          GROUP BY x.rel) r;
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'cdcd: this DDL was not captured: %', sqlerrm;
    RETURN;
  END;
  -- Outside the block above: a message that is the first WAL record of a subtransaction is
  -- decoded after the rest of the transaction, out of order.
  IF tables IS NOT NULL THEN
    PERFORM pg_logical_emit_message(true, 'cdcd.ddl',
      jsonb_build_object('tag', tg_tag, 'ddl', current_query(), 'tables', tables)::text);
  END IF;
END
$fn$
"""

_SQL_DROP_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.cdcd_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  tables jsonb;
BEGIN
  IF current_setting('wal_level') <> 'logical' THEN RETURN; END IF;
  BEGIN
    SELECT jsonb_agg(jsonb_build_object('type', 'DROP', 'oid', d.objid, 'schema', d.schema_name,
                                        'name', d.object_name) ORDER BY d.ord) INTO tables
    FROM pg_event_trigger_dropped_objects() WITH ORDINALITY AS d(
           classid, objid, objsubid, original, normal, is_temporary, object_type, schema_name, object_name,
           object_identity, address_names, address_args, ord)
    WHERE d.object_type = 'table' AND NOT d.is_temporary;
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'cdcd: this DROP was not captured: %', sqlerrm;
    RETURN;
  END;
  IF tables IS NOT NULL THEN
    PERFORM pg_logical_emit_message(true, 'cdcd.ddl',
      jsonb_build_object('tag', tg_tag, 'ddl', current_query(), 'tables', tables)::text);
  END IF;
END
$fn$
"""

_TRIGGERS = """
DROP EVENT TRIGGER IF EXISTS cdcd_ddl_command_end;
DROP EVENT TRIGGER IF EXISTS cdcd_sql_drop;
CREATE EVENT TRIGGER cdcd_ddl_command_end ON ddl_command_end WHEN TAG IN ({tags})
  EXECUTE FUNCTION {schema}.cdcd_ddl_command_end();
CREATE EVENT TRIGGER cdcd_sql_drop ON sql_drop EXECUTE FUNCTION {schema}.cdcd_sql_drop();
"""

_INSTALLED = "SELECT evtname FROM pg_event_trigger WHERE evtname = ANY(%s) AND evtenabled <> 'D' ORDER BY 1"


def _schema_sql(template: str, schema: str) -> sql.Composed:
    tags = sql.SQL(", ").join(sql.Literal(t) for t in CAPTURED_TAGS)
    return sql.SQL(template).format(schema=sql.Identifier(schema), tags=tags)


def install(conn: psycopg.Connection[Any], schema: str = "public") -> None:
    """Create the functions (in ``schema``) and both event triggers, in one transaction."""
    try:
        with conn.transaction():
            for template in (_TABLE_FUNCTION, _COMMAND_END_FUNCTION, _SQL_DROP_FUNCTION, _TRIGGERS):
                conn.execute(_schema_sql(template, schema))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise SourceError(f"cannot install the DDL capture: {str(exc).strip()} (event triggers need a "
                          "superuser: run cdcd install-ddl-capture with a superuser's --dsn)") from exc
    except psycopg.Error as exc:
        raise SourceError(f"cannot install the DDL capture: {str(exc).strip()}") from exc


def uninstall(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop both event triggers and the functions, wherever they were created; returns what was dropped."""
    dropped: list[str] = []
    try:
        with conn.transaction():
            for name in TRIGGERS:
                if conn.execute("SELECT 1 FROM pg_event_trigger WHERE evtname = %s", (name,)).fetchone():
                    conn.execute(sql.SQL("DROP EVENT TRIGGER {}").format(sql.Identifier(name)))
                    dropped.append(f"event trigger {name}")
            rows = conn.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.proname = ANY(%s) ORDER BY 1",
                (list(FUNCTIONS),)).fetchall()
            for (signature,) in rows:
                conn.execute(sql.SQL("DROP FUNCTION {}").format(sql.SQL(signature)))  # regprocedure text is quoted
                dropped.append(f"function {signature}")
    except psycopg.Error as exc:
        raise SourceError(f"cannot uninstall the DDL capture: {str(exc).strip()} (it needs a superuser, "
                          "or the owner of the event triggers)") from exc
    return dropped


def installed(conn: psycopg.Connection[Any]) -> list[str]:
    """The enabled cdcd event triggers of the connection's database."""
    return [str(r[0]) for r in conn.execute(_INSTALLED, (list(TRIGGERS),)).fetchall()]


def command(dsn: str, action: str, schema: str, out: TextIO) -> None:
    """``cdcd install-ddl-capture`` / ``cdcd uninstall-ddl-capture``; raises ``CdcdError``."""
    from cdcd.source.catalog import connect

    conn = connect(dsn)
    try:
        if action == "install":
            install(conn, schema)
            print(f"installed: event triggers {', '.join(TRIGGERS)} (functions in schema {schema}); "
                  "set schema.changes.mode=event-trigger to emit schema change events", file=out)
            wal_level = conn.execute("SELECT current_setting('wal_level')").fetchone()
            if wal_level is None or wal_level[0] != "logical":
                print("note: wal_level is not logical, so nothing is captured until it is", file=out)
        else:
            dropped = uninstall(conn)
            print(f"dropped: {', '.join(dropped)}" if dropped else "nothing to drop: the DDL capture is not "
                  "installed in this database", file=out)
    finally:
        conn.close()


def check(conn: psycopg.Connection[Any], mode: str) -> tuple[str, str, str] | None:
    """``cdcd check``'s line (name, status, detail) for ``schema.changes.mode``; None when off."""
    if mode != "event-trigger":
        return None
    found = installed(conn)
    if len(found) == len(TRIGGERS):
        return "ddl capture", "ok", "event triggers installed (schema.changes.mode=event-trigger)"
    return "ddl capture", "FAIL", ("schema.changes.mode=event-trigger but the event triggers are missing"
                                   f"{' (found ' + ', '.join(found) + ')' if found else ''}: run "
                                   "cdcd install-ddl-capture --dsn <a superuser's DSN>")


# -- the schema change event -------------------------------------------------------------------


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
