"""Catalog against a throwaway cluster: what table_info merges from the Relation message and the catalogs."""

from __future__ import annotations

import pytest

from cdcd.decode.messages import Relation, RelationColumn
from cdcd.source.catalog import Catalog, connect
from tests.fix_pg import PgDatabase

pytestmark = pytest.mark.pg


def relation(pg_db: PgDatabase, table: str, *, drop: tuple[str, ...] = (), extra: tuple[RelationColumn, ...] = ()
             ) -> Relation:
    """The Relation message pgoutput would send for ``table`` now (minus ``drop``, plus ``extra``)."""
    ((oid,),) = pg_db.execute("SELECT %s::regclass::oid", (table,))
    rows = pg_db.execute("SELECT attname, atttypid, atttypmod FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
                         "AND NOT attisdropped ORDER BY attnum", (oid,))
    columns = tuple(RelationColumn(False, str(name), int(typ), int(mod)) for name, typ, mod in rows
                    if name not in drop)
    return Relation(int(oid), "public", table, "d", columns + extra)


@pytest.fixture
def catalog(pg_db: PgDatabase) -> Catalog:
    pg_db.execute(
        "CREATE TYPE mood AS ENUM ('sad', 'ok'); CREATE DOMAIN posint AS integer CHECK (VALUE > 0);"
        "CREATE TABLE orders (id int PRIMARY KEY, qty posint NOT NULL DEFAULT 1, m mood, note varchar(20));"
        "CREATE TABLE keyless (a int NOT NULL, b text NOT NULL, c int, UNIQUE (b, a));"
        "CREATE PUBLICATION p FOR TABLE orders WITH (publish = 'insert, update')")
    cat = Catalog(connect(pg_db.dsn))
    yield cat
    cat.close()


def test_table_info_merges_the_relation_with_the_live_catalog(pg_db: PgDatabase, catalog: Catalog) -> None:
    info = catalog.table_info(relation(pg_db, "orders"))
    assert info.primary_key == ("id",)
    by_name = {c.name: c for c in info.columns}
    assert [c.name for c in info.columns] == ["id", "qty", "m", "note"]
    assert not by_name["id"].optional and by_name["note"].optional
    assert by_name["qty"].type_name == "posint" and by_name["qty"].type_kind == "d"
    assert by_name["qty"].base_type_name == "int4" and by_name["qty"].default == "1"
    assert by_name["m"].type_kind == "e" and by_name["m"].enum_values == ("sad", "ok")
    assert by_name["note"].type_modifier == 24, "varchar(20): the modifier from the Relation message"


def test_without_a_primary_key_the_first_unique_index_is_the_key(pg_db: PgDatabase, catalog: Catalog) -> None:
    assert catalog.table_info(relation(pg_db, "keyless")).primary_key == ("b", "a")


def test_columns_the_catalog_no_longer_has(pg_db: PgDatabase, catalog: Catalog) -> None:
    """Rows written before a later ALTER TABLE: the message's columns win, unknown ones are optional."""
    gone = RelationColumn(False, "renamed_since", 23, -1)
    info = catalog.table_info(relation(pg_db, "orders", drop=("id",), extra=(gone,)))
    assert info.primary_key == (), "a key column missing from the message is left out"
    column = info.columns[-1]
    assert column.name == "renamed_since" and column.optional and column.default is None


def test_settings_role_and_publications(pg_db: PgDatabase, catalog: Catalog) -> None:
    assert catalog.setting("wal_level") == "logical"
    assert catalog.database() == pg_db.dbname
    assert catalog.can_replicate()
    assert catalog.publication("missing") is None
    publication = catalog.publication("p")
    assert publication is not None and not publication.all_tables
    assert publication.tables == ("public.orders",) and publication.publishes == ("insert", "update")
    assert {"public.orders", "public.keyless"} <= set(catalog.tables())


def test_a_table_not_yet_visible_is_looked_for_again(pg_db: PgDatabase) -> None:
    """The walsender may send a transaction before other sessions see it committed: wait for it, briefly."""
    with pg_db.connect() as creator, connect(pg_db.dsn) as conn:
        creator.execute("BEGIN")
        creator.execute("CREATE TABLE late (id int PRIMARY KEY, v text NOT NULL)")
        ((oid,),) = creator.execute("SELECT 'late'::regclass::oid").fetchall()
        late = Relation(int(oid), "public", "late", "d",
                        (RelationColumn(True, "id", 23, -1), RelationColumn(False, "v", 25, -1)))
        waits: list[float] = []

        def sleep(seconds: float) -> None:  # the creating transaction becomes visible meanwhile
            waits.append(seconds)
            if len(waits) == 2:
                creator.execute("COMMIT")

        info = Catalog(conn, waits_s=(0.001, 0.002, 0.005), sleep=sleep).table_info(late)
    assert len(waits) == 2
    assert info.primary_key == ("id",)
    assert [c.optional for c in info.columns] == [False, False]


def test_a_table_the_catalog_never_shows_is_described_from_the_message(pg_db: PgDatabase) -> None:
    gone = Relation(4_000_000_000, "public", "gone", "d", (RelationColumn(True, "id", 23, -1),))
    with connect(pg_db.dsn) as conn:
        waits: list[float] = []
        info = Catalog(conn, waits_s=(0.001, 0.002), sleep=waits.append).table_info(gone)
    assert waits == [0.001, 0.002]
    assert info.primary_key == () and info.columns[0].optional and info.columns[0].type_name == "int4"
