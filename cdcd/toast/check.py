"""``cdcd check``'s TOAST line: captured tables whose updates may lack unchanged TOAST values."""

from __future__ import annotations

from typing import Any

import psycopg

from cdcd.source.filters import TableFilter

# Tables whose rows can hold out-of-line values, under REPLICA IDENTITY DEFAULT (no old values).
_TOASTABLE = """
SELECT n.nspname || '.' || c.relname, string_agg(a.attname, ', ' ORDER BY a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                   AND a.attlen = -1 AND a.attstorage <> 'p'
WHERE c.relkind = 'r' AND c.relreplident = 'd' AND c.relpersistence = 'p'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND (%(all)s OR (n.nspname, c.relname) IN (
        SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %(pub)s))
GROUP BY 1 ORDER BY 1
"""


def check(config: Any, conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    """``cdcd check`` lines (name, status, detail): captured tables whose updates may lack TOAST values."""
    accept = TableFilter(config.table_include_list, config.table_exclude_list)
    row = conn.execute("SELECT puballtables FROM pg_publication WHERE pubname = %s",
                       (config.publication_name,)).fetchone()
    tables = [(str(t), str(cols)) for t, cols in conn.execute(
        _TOASTABLE, {"all": row is None or bool(row[0]), "pub": config.publication_name}).fetchall() if accept(str(t))]
    mode = config.toast_handling_mode
    if mode != "placeholder":
        return [("toast", "ok", f"unchanged TOAST values of {len(tables)} table(s) with REPLICA IDENTITY DEFAULT "
                 f"are filled by toast.handling.mode={mode}")]
    return [("toast", "warn", f"{table} ({cols}) has REPLICA IDENTITY DEFAULT: an UPDATE that leaves a TOASTed "
             f"value alone emits {config.unavailable_value_placeholder!r} for it; ALTER TABLE {table} REPLICA "
             "IDENTITY FULL, or set toast.handling.mode=cache (docs/toast-and-ddl.md)") for table, cols in tables]
