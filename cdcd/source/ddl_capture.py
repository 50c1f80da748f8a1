"""DDL capture: event triggers that write each DDL into the WAL as a logical decoding message.

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

``cdcd.debezium.schema_change`` turns such a message into Debezium's schema
change event.
"""

from __future__ import annotations

from typing import Any, Final, TextIO

import psycopg
from psycopg import sql

from cdcd.errors import SourceError

PREFIX: Final = "cdcd.ddl"
"""The prefix of the messages the triggers write."""
TRIGGERS: Final = ("cdcd_ddl_command_end", "cdcd_sql_drop")
FUNCTIONS: Final = ("cdcd_ddl_command_end", "cdcd_sql_drop", "cdcd_ddl_table")
CAPTURED_TAGS: Final = ("CREATE TABLE", "CREATE TABLE AS", "SELECT INTO", "ALTER TABLE", "CREATE INDEX", "COMMENT")

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


def _trigger_function(name: str, what: str, select: str) -> str:
    """An event trigger function: ``select`` fills ``tables`` (a failure only warns), one message carries them.

    The message is written outside the protected block: a message that is the first
    WAL record of a subtransaction is decoded after the rest of the transaction.
    """
    return f"""
CREATE OR REPLACE FUNCTION {{schema}}.{name}() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  tables jsonb;
BEGIN
  IF current_setting('wal_level') <> 'logical' THEN RETURN; END IF;
  BEGIN
{select}
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'cdcd: this {what} was not captured: %', sqlerrm;
    RETURN;
  END;
  IF tables IS NOT NULL THEN
    PERFORM pg_logical_emit_message(true, '{PREFIX}',
      jsonb_build_object('tag', tg_tag, 'ddl', current_query(), 'tables', tables)::text);
  END IF;
END
$fn$
"""


# Commands report indexes and columns as well as tables: each maps to its (permanent) table.
_COMMAND_END_FUNCTION = _trigger_function("cdcd_ddl_command_end", "DDL", """\
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
          GROUP BY x.rel) r;""")

_SQL_DROP_FUNCTION = _trigger_function("cdcd_sql_drop", "DROP", """\
    SELECT jsonb_agg(jsonb_build_object('type', 'DROP', 'oid', d.objid, 'schema', d.schema_name,
                                        'name', d.object_name) ORDER BY d.ord) INTO tables
    FROM pg_event_trigger_dropped_objects() WITH ORDINALITY AS d(
           classid, objid, objsubid, original, normal, is_temporary, object_type, schema_name, object_name,
           object_identity, address_names, address_args, ord)
    WHERE d.object_type = 'table' AND NOT d.is_temporary;""")

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
