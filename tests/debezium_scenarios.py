"""Scenarios for the Debezium side-by-side comparison (``tests/debezium/test_debezium_side_by_side.py``).

Each `Scenario` is one Debezium engine run and one cdcd run on a fresh database: `setup`
runs before both start (the snapshot reads it), each statement of `workload` is one
transaction while both stream, and every table in `tables` is compared as its own test
case (``<scenario>-<schema.table>``), plus the ``transaction`` and ``message`` topics when
listed in `extra_topics`; a `SYNC` entry waits until both connectors caught up.  ``xfail`` maps a table (or extra topic) to the one-line
deviation that still makes cdcd differ; the case then runs as ``xfail(strict=True)`` and
turns red when the deviation is fixed, so the entry can go.  See ``tests/fix_debezium.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


# A workload entry that runs no SQL but waits until both connectors emitted everything
# committed before it (put it before DDL that must not race a connector's catalog reads).
SYNC = "-- sync: both connectors caught up"


@dataclass(frozen=True)
class Scenario:
    name: str
    properties: dict[str, str]
    setup: str
    workload: tuple[str, ...]
    tables: tuple[str, ...]
    extra_topics: tuple[str, ...] = ()
    xfail: dict[str, str] = field(default_factory=dict)
    # table -> records each connector must have emitted before the closing fence (asynchronous work)
    expect: dict[str, int] = field(default_factory=dict)
    # cases where both connectors emitting nothing is the expected result
    empty: tuple[str, ...] = ()
    # why the sets of topics still differ (None: they must be equal)
    topics_xfail: str | None = None
    # why the whole scenario cannot run yet (every case xfail)
    broken: str | None = None

    def topic(self, name: str) -> str:
        """The topic of a table (``schema.table``) or of an extra topic, as both connectors name it."""
        return re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.properties['topic.prefix']}.{name}")

    def cases(self) -> list[str]:
        return [*self.tables, *self.extra_topics]


# -- type families ------------------------------------------------------------------------------

TYPE_TABLES = """
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS ltree;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE t_int (id int PRIMARY KEY, i2 smallint, i4 int, i8 bigint, ser serial, bser bigserial, o oid);
CREATE TABLE t_numeric (id int PRIMARY KEY, n102 numeric(10,2), n numeric, n380 numeric(38,0), n3818 numeric(38,18),
                        m money);
CREATE TABLE t_numeric_special (id int PRIMARY KEY, n numeric, n52 numeric(5,2));
CREATE TABLE t_float (id int PRIMARY KEY, r real, d double precision, f float(10));
CREATE TABLE t_bool (id int PRIMARY KEY, b boolean NOT NULL DEFAULT true, bn boolean);
CREATE TABLE t_text (id int PRIMARY KEY, t text, vc varchar(20), vcu varchar, c char(5), c1 "char", nm name,
                     ci citext, big text);
CREATE TABLE t_binary (id int PRIMARY KEY, ba bytea, bits bit(4), bit1 bit, vbits varbit(16));
CREATE TABLE t_date (id int PRIMARY KEY, d date);
CREATE TABLE t_time (id int PRIMARY KEY, t time, t0 time(0), t3 time(3), t6 time(6), ttz timetz, ttz3 timetz(3));
CREATE TABLE t_timestamp (id int PRIMARY KEY, ts timestamp, ts0 timestamp(0), ts3 timestamp(3), tstz timestamptz,
                          tstz3 timestamptz(3));
CREATE TABLE t_interval (id int PRIMARY KEY, iv interval, ivd interval day to second(3));
CREATE TABLE t_json (id int PRIMARY KEY, j json, jb jsonb, x xml, u uuid);
CREATE TABLE t_net (id int PRIMARY KEY, ip inet, net cidr, mac macaddr, mac8 macaddr8);
CREATE TABLE t_range (id int PRIMARY KEY, r4 int4range, r8 int8range, rn numrange, rts tsrange, rtstz tstzrange,
                      rd daterange);
CREATE TABLE t_enum (id int PRIMARY KEY, e mood, e2 mood NOT NULL DEFAULT 'ok');
CREATE TABLE t_hstore (id int PRIMARY KEY, h hstore);
CREATE TABLE t_ltree (id int PRIMARY KEY, l ltree);
CREATE TABLE t_tsvector (id int PRIMARY KEY, tv tsvector);
CREATE TABLE t_point (id int PRIMARY KEY, p point);
CREATE TABLE t_geometric (id int PRIMARY KEY, l line, ls lseg, bx box, pa path, pg polygon, ci circle);
CREATE TABLE t_array_num (id int PRIMARY KEY, ai int[], ai2 smallint[], ai8 bigint[], an numeric[], an102 numeric(10,2)[]);
CREATE TABLE t_array_float (id int PRIMARY KEY, af double precision[], ar real[]);
CREATE TABLE t_array_text (id int PRIMARY KEY, at text[], avc varchar(10)[], ab bool[], au uuid[], aj jsonb[]);
CREATE TABLE t_array_date (id int PRIMARY KEY, ad date[]);
CREATE TABLE t_array_timestamp (id int PRIMARY KEY, ats timestamp[], atstz timestamptz[]);
CREATE TABLE t_array_time (id int PRIMARY KEY, atm time[]);
CREATE TABLE t_array_enum (id int PRIMARY KEY, ae mood[]);
CREATE TABLE t_array_2d (id int PRIMARY KEY, a2 int[][]);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN short_text AS varchar(8);
CREATE TABLE t_domain (id int PRIMARY KEY, p posint, st short_text, g int GENERATED ALWAYS AS (id * 2) STORED);
"""

TYPE_NAMES = tuple(
    line.split()[2] for line in TYPE_TABLES.splitlines() if line.startswith("CREATE TABLE ")
)

# (table, rows): every row's values after the id; NULL rows come from "INSERT ... (id)".
TYPE_ROWS: dict[str, tuple[str, ...]] = {
    "t_int": ("-32768, -2147483648, -9223372036854775808, DEFAULT, DEFAULT, 0",
              "32767, 2147483647, 9223372036854775807, DEFAULT, DEFAULT, 4294967295"),
    "t_numeric": ("12345678.91, 3.14159265358979323846264338327950288, 99999999999999999999999999999999999999, "
                  "12345678901234567890.123456789012345678, 92233720368547758.07",
                  "-0.01, 0, -99999999999999999999999999999999999999, 0.000000000000000001, -92233720368547758.08",
                  "1.50, 1e-20, 10, 0, 0.5"),
    "t_numeric_special": ("'NaN', 'NaN'", "'Infinity', 1.5"),
    "t_float": ("1.5, -2.25e100, 0.1", "'NaN', 'Infinity', '-Infinity'", "3.4028235e38, -0, 1e-30",
                "'-Infinity', 'NaN', 'Infinity'"),
    "t_bool": ("false, true", "true, false"),
    "t_text": ("'unicodé ✓ 𝄞 中文', 'vc', '', 'ab', 'x', 'nm', 'CiTeXt', repeat('big ', 5000)",
               "'', 'quote''s \"dq\" \\\\ back', 'tab\t', 'abcde', 'y', 'n', 'c', 'z'"),
    "t_binary": ("'\\x00ff10'::bytea, B'1010', B'1', B'101'", "''::bytea, B'0000', B'0', B''",
                 "decode(repeat('ab', 3000), 'hex'), B'1111', B'1', B'1111111100000000'"),
    "t_date": ("'2024-02-29'", "'0044-03-15 BC'", "'infinity'", "'-infinity'", "'1970-01-01'", "'0001-01-01'",
               "'9999-12-31'", "'1969-12-31'"),
    "t_time": ("'23:59:59.999999', '00:00:00', '12:00:00.123', '01:02:03.456789', '10:11:12.5+02', '10:11:12-05:30'",
               "'24:00:00', '23:59:59', '00:00:00.001', '00:00:00.000001', '00:00:00+00', '23:59:59.999+14'"),
    "t_timestamp": ("'2024-01-02 03:04:05.123456', '2024-01-02 03:04:05', '1999-12-31 23:59:59.999', "
                    "'2024-01-02 03:04:05.5+01', '2024-06-01 00:00:00.123+00'",
                    "'infinity', '-infinity', '0044-03-15 12:00:00 BC', 'infinity', '-infinity'",
                    "'1969-12-31 23:59:59.999999', '1970-01-01 00:00:00', '0001-01-01 00:00:00', "
                    "'1969-12-31 23:59:59.5+00', '0044-03-15 12:00:00+00 BC'"),
    "t_interval": ("'1 year 2 mons 3 days 04:05:06.789', '3 days 04:05:06.789'",
                   "'-1 year -2 mons +3 days -04:05:06', '-00:00:00.001'", "'0', '0'",
                   "'290000 years', '1000 days'"),
    "t_json": ("'{\"a\": [1, 2.5, \"x\"]}', '{\"k\": \"v\", \"n\": null, \"u\": \"é\"}', '<a>x</a>', "
               "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
               "'[]', (SELECT jsonb_agg(jsonb_build_object('i', g, 's', repeat('x', 20))) FROM generate_series(1, 2000) g), "
               "'<r/>', '00000000-0000-0000-0000-000000000000'"),
    "t_net": ("'192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05'",
              "'::1', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00:00:00'"),
    "t_range": ("'[1,10)', '[1,9223372036854775806)', '[1.5,2.5]', '[2024-01-01 00:00,2024-02-01 00:00)', "
                "'[2024-01-01 00:00+00,2024-02-01 00:00+00)', '[2024-01-01,2024-02-01)'",
                "'empty', '(,5]', '(,)', 'empty', '[2024-01-01 00:00+00,)', '(,2024-01-01]'"),
    "t_enum": ("'happy', 'sad'", "'ok', DEFAULT"),
    "t_hstore": ("'k=>v, n=>NULL, \"a b\"=>\"c d\"'", "''"),
    "t_ltree": ("'top.middle.bottom'", "''"),
    "t_tsvector": ("'a fat cat sat on a mat'", "''"),
    "t_point": ("'(1.5,2.5)'", "'(-0,1e300)'"),
    "t_geometric": ("'{1,-1,0}', '[(0,0),(1,1)]', '((0,0),(1,1))', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(2,0))', "
                    "'<(1,1),2>'",),
    "t_array_num": ("'{1,NULL,3}', '{-32768,32767}', '{9223372036854775807}', '{1.5,NULL,-2}', '{1.25,3}'",
                    "'{}', '{}', '{}', '{}', '{}'", "'{NULL}', NULL, '{0}', '{NaN}', '{0.00}'"),
    "t_array_float": ("'{1.25,-0.5,NULL}', '{2.5}'", "'{NaN,Infinity,-Infinity}', '{}'"),
    "t_array_text": ("'{\"a\",\"b c\",NULL,\"\"}', '{x,y}', '{true,false,NULL}', "
                     "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', ARRAY['{\"a\":1}'::jsonb, '[]'::jsonb]",
                     "'{}', '{}', '{}', '{}', '{}'"),
    "t_array_date": ("'{2024-01-01,NULL,1970-01-01}'", "'{}'", "'{infinity,0044-03-15 BC}'"),
    "t_array_timestamp": ("'{\"2024-01-02 03:04:05.123456\",NULL}', '{\"2024-01-02 03:04:05+00\",\"1970-01-01 00:00:00.5+00\"}'",
                          "'{}', '{}'"),
    "t_array_time": ("'{\"12:00:00.123456\",NULL,\"00:00:00\"}'", "'{}'"),
    "t_array_enum": ("'{sad,ok}'", "'{}'", "'{happy,NULL}'"),
    "t_array_2d": ("'{{1,2},{3,4}}'", "'{}'"),
    "t_domain": ("7, 'eight ch'", "1, ''"),
}


def _inserts(first_id: int) -> str:
    """One INSERT per row of every type table (ids from `first_id`), plus an all-NULL row."""
    out = []
    for table, rows in TYPE_ROWS.items():
        for i, row in enumerate(rows):
            out.append(f"INSERT INTO {table} VALUES ({first_id + i}, {row});")
        out.append(f"INSERT INTO {table} (id) VALUES ({first_id + 100});")
    return "\n".join(out)


def _type_workload() -> tuple[str, ...]:
    return (
        _inserts(1000),
        # every table: an update of a streamed row and a delete of a snapshot row
        "\n".join(f"UPDATE {t} SET id = id WHERE id = 1000; DELETE FROM {t} WHERE id = 1;" for t in TYPE_ROWS),
    )


TYPES_XFAIL: dict[str, str] = {}

TYPES = Scenario(
    name="types",
    properties={"topic.prefix": "sbs_types", "provide.transaction.metadata": "true"},
    setup=TYPE_TABLES + _inserts(1),
    workload=_type_workload(),
    tables=tuple(f"public.{t}" for t in TYPE_NAMES),
    extra_topics=("transaction",),
    xfail=dict(TYPES_XFAIL),
)


def _modes(name: str, props: dict[str, str], tables: tuple[str, ...], xfail: dict[str, str]) -> Scenario:
    return Scenario(
        name=name,
        properties={"topic.prefix": f"sbs_{name}", **props},
        setup=TYPE_TABLES + _inserts(1),
        workload=_type_workload(),
        tables=tuple(f"public.{t}" for t in tables),
        xfail=xfail,
    )


MODE_TABLES = ("t_numeric", "t_numeric_special", "t_float", "t_binary", "t_date", "t_time", "t_timestamp",
               "t_interval", "t_hstore", "t_array_num", "t_array_date", "t_array_time", "t_array_timestamp", "t_int")

MODES_STRING = _modes(
    "modes_string",
    {"decimal.handling.mode": "string", "binary.handling.mode": "base64",
     "time.precision.mode": "adaptive_time_microseconds", "interval.handling.mode": "string",
     "hstore.handling.mode": "map"},
    MODE_TABLES,
    {},
)
MODES_DOUBLE = _modes(
    "modes_double",
    {"decimal.handling.mode": "double", "binary.handling.mode": "hex", "time.precision.mode": "connect"},
    MODE_TABLES,
    {},
)
MODES_URLSAFE = _modes(
    "modes_urlsafe",
    {"binary.handling.mode": "base64-url-safe", "time.precision.mode": "adaptive", "interval.handling.mode": "numeric",
     "hstore.handling.mode": "json", "decimal.handling.mode": "precise"},
    ("t_binary", "t_numeric", "t_interval", "t_hstore"),
    {},
)

# -- column options -------------------------------------------------------------------------------

COLUMN_SETUP = """
CREATE TABLE opts (id int PRIMARY KEY, alt int NOT NULL, masked text, masked_vc varchar(10), hashed text,
                   hashed2 varchar(40), truncated varchar(40), truncated_text text, plain text);
CREATE TABLE propagated (id int PRIMARY KEY, n numeric(8,3), vc varchar(12), t text);
CREATE TABLE propagated_numeric (id int PRIMARY KEY, nu numeric);
CREATE TABLE nopk (code text NOT NULL, region int NOT NULL, v text);
ALTER TABLE nopk REPLICA IDENTITY FULL;
CREATE TABLE dt (id int PRIMARY KEY, n numeric(6,2), vc varchar(7), t text, f real, i2 smallint);
CREATE TABLE dt_numeric (id int PRIMARY KEY, nu numeric);
CREATE TABLE unknown_types (id int PRIMARY KEY, l line, bx box, pa path, pg polygon, ci circle, ls lseg, p point);
INSERT INTO opts VALUES (1, 10, 'secret', 'sec', 'hash me', 'hash me too', 'a long text to truncate', 'x', 'p'),
                        (2, 20, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO propagated VALUES (1, 12.345, 'varchar', 't'), (2, NULL, NULL, NULL);
INSERT INTO propagated_numeric VALUES (1, 1.5), (2, NULL);
INSERT INTO nopk VALUES ('a', 1, 'v1'), ('b', 2, NULL);
INSERT INTO dt VALUES (1, 1234.56, 'seven77', 't', 1.5, 3);
INSERT INTO dt_numeric VALUES (1, 1.5);
INSERT INTO unknown_types VALUES (1, '{1,-1,0}', '((0,0),(1,1))', '[(0,0),(1,1)]', '((0,0),(1,1),(2,0))',
                                  '<(1,1),2>', '[(0,0),(1,1)]', '(1,2)');
"""

COLUMN_OPTIONS = Scenario(
    name="column_options",
    properties={
        "topic.prefix": "sbs_cols",
        "column.mask.with.5.chars": "public.opts.masked,public.opts.masked_vc",
        "column.mask.hash.SHA-256.with.salt.pepper": "public.opts.hashed",
        "column.mask.hash.v2.SHA-256.with.salt.pepper": "public.opts.hashed2",
        "column.truncate.to.4.chars": "public.opts.truncated,public.opts.truncated_text",
        "column.propagate.source.type": "public.propagated.n,public.propagated.vc,public.propagated_numeric.nu",
        "datatype.propagate.source.type": ".+\\.numeric,.+\\.varchar,.+\\.float4,.+\\.int2",
        "message.key.columns": "public.nopk:code,region;public.opts:alt",
        "include.unknown.datatypes": "true",
        "tombstones.on.delete": "false",
    },
    setup=COLUMN_SETUP,
    workload=(
        "INSERT INTO opts VALUES (3, 30, 'another secret', 'abc', 'hash', 'hash2', 'truncate this too', 'yz', 'q'), "
        "(4, 40, '', '', '', '', '', '', '')",
        "UPDATE opts SET masked = 'changed', plain = 'u' WHERE id = 1",
        "UPDATE opts SET alt = 11 WHERE id = 1",
        "DELETE FROM opts WHERE id = 2",
        "INSERT INTO propagated VALUES (3, -0.5, 'v', 'x'); INSERT INTO propagated_numeric VALUES (3, 1e10)",
        "INSERT INTO nopk VALUES ('c', 3, 'v3'); UPDATE nopk SET v = 'v1b' WHERE code = 'a'",
        "UPDATE nopk SET region = 9 WHERE code = 'b'",
        "DELETE FROM nopk WHERE code = 'c'",
        "INSERT INTO dt VALUES (2, -0.01, '', NULL, 'NaN', -1); UPDATE dt SET n = 1 WHERE id = 1; "
        "INSERT INTO dt_numeric VALUES (2, 123456789.123)",
        "INSERT INTO unknown_types VALUES (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    ),
    tables=("public.opts", "public.propagated", "public.propagated_numeric", "public.nopk", "public.dt",
            "public.dt_numeric", "public.unknown_types"),
)

OPS_OPTIONS = Scenario(
    name="skipped_ops",
    properties={"topic.prefix": "sbs_ops", "skipped.operations": "u", "tombstones.on.delete": "true",
                "provide.transaction.metadata": "true"},
    setup="CREATE TABLE ops (id int PRIMARY KEY, v text); INSERT INTO ops VALUES (1, 'snap');",
    workload=(
        "INSERT INTO ops VALUES (2, 'a'), (3, 'b')",
        "UPDATE ops SET v = 'skipped' WHERE id = 2",
        "UPDATE ops SET id = 20 WHERE id = 2",
        "DELETE FROM ops WHERE id = 3",
        "TRUNCATE ops",
        "INSERT INTO ops VALUES (4, 'after truncate')",
        "CREATE TABLE late (id int PRIMARY KEY, v text); INSERT INTO late VALUES (1, 'created mid-stream')",
        "INSERT INTO late VALUES (2, 'second'); DELETE FROM late WHERE id = 1",
    ),
    tables=("public.ops", "public.late"),
    extra_topics=("transaction",),
)

# -- structure ------------------------------------------------------------------------------------

STRUCTURE_SETUP = """
CREATE SCHEMA s1; CREATE SCHEMA s2; CREATE SCHEMA "Mixed Schema";
CREATE TABLE measurements (id int NOT NULL, at date NOT NULL, v numeric(6,1), PRIMARY KEY (id, at))
    PARTITION BY RANGE (at);
CREATE TABLE measurements_2023 PARTITION OF measurements FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE ri_default (id int PRIMARY KEY, v text, w int);
CREATE TABLE ri_full (id int PRIMARY KEY, v text, w int); ALTER TABLE ri_full REPLICA IDENTITY FULL;
CREATE TABLE ri_index (id int PRIMARY KEY, code text NOT NULL, v text);
CREATE UNIQUE INDEX ri_index_code ON ri_index (code); ALTER TABLE ri_index REPLICA IDENTITY USING INDEX ri_index_code;
CREATE TABLE pk_change (a int, b int, v text, PRIMARY KEY (a, b));
CREATE TABLE s1.t (id int PRIMARY KEY, v text);
CREATE TABLE s2.t (id bigint PRIMARY KEY, v varchar(5));
CREATE TABLE "Mixed Schema"."Weird-Table" ("Id" int PRIMARY KEY, "Col With Space" text, "camelCase" int);
CREATE TABLE ddl_t (id int PRIMARY KEY, v int);
CREATE TABLE ddl_race (id int PRIMARY KEY, amount numeric(10,2), n int);
CREATE TABLE toasty (id int PRIMARY KEY, n int, big text, bin bytea, arr text[], js jsonb);
ALTER TABLE toasty ALTER COLUMN big SET STORAGE EXTERNAL, ALTER COLUMN bin SET STORAGE EXTERNAL,
    ALTER COLUMN arr SET STORAGE EXTERNAL, ALTER COLUMN js SET STORAGE EXTERNAL;
CREATE TABLE toasty_full (id int PRIMARY KEY, n int, big text);
ALTER TABLE toasty_full REPLICA IDENTITY FULL; ALTER TABLE toasty_full ALTER COLUMN big SET STORAGE EXTERNAL;
INSERT INTO measurements VALUES (1, '2023-05-01', 1.5), (2, '2024-05-01', 2.5);
INSERT INTO ri_default VALUES (1, 'a', 1); INSERT INTO ri_full VALUES (1, 'a', 1);
INSERT INTO ri_index VALUES (1, 'c1', 'a');
INSERT INTO pk_change VALUES (1, 1, 'x');
INSERT INTO s1.t VALUES (1, 'one'); INSERT INTO s2.t VALUES (1, 'one');
INSERT INTO "Mixed Schema"."Weird-Table" VALUES (1, 'space', 2);
INSERT INTO ddl_t VALUES (1, 1);
"""

STRUCTURE = Scenario(
    name="structure",
    properties={"topic.prefix": "sbs_struct", "provide.transaction.metadata": "true", "skipped.operations": "none"},
    setup=STRUCTURE_SETUP,
    workload=(
        "INSERT INTO measurements VALUES (3, '2023-06-01', 3.5), (4, '2024-06-01', 4.5)",
        "UPDATE measurements SET v = 9.9 WHERE id = 1",
        "UPDATE measurements SET at = '2024-07-01' WHERE id = 3",  # moves to the other partition
        "DELETE FROM measurements WHERE id = 2",
        "INSERT INTO ri_default VALUES (2, 'b', 2); UPDATE ri_default SET v = 'c' WHERE id = 1; "
        "DELETE FROM ri_default WHERE id = 2",
        "INSERT INTO ri_full VALUES (2, 'b', 2); UPDATE ri_full SET v = 'c' WHERE id = 1; DELETE FROM ri_full WHERE id = 2",
        "INSERT INTO ri_index VALUES (2, 'c2', 'b'); UPDATE ri_index SET v = 'c' WHERE id = 1; "
        "UPDATE ri_index SET code = 'c9' WHERE id = 2; DELETE FROM ri_index WHERE id = 1",
        "UPDATE pk_change SET b = 2 WHERE a = 1; UPDATE pk_change SET v = 'y'",
        "INSERT INTO s1.t VALUES (2, 'two'); INSERT INTO s2.t VALUES (2, 'two'); UPDATE s2.t SET v = 'deux'",
        "INSERT INTO \"Mixed Schema\".\"Weird-Table\" VALUES (2, 'more', 3); "
        "UPDATE \"Mixed Schema\".\"Weird-Table\" SET \"Id\" = 3 WHERE \"Id\" = 2",
        "INSERT INTO ddl_t VALUES (2, 2)",
        "ALTER TABLE ddl_t ADD COLUMN added text DEFAULT 'dflt'",
        "INSERT INTO ddl_t VALUES (3, 3, 'x'); UPDATE ddl_t SET v = 10 WHERE id = 1",
        # Debezium reads a changed table's columns (defaults) from the catalog when it meets the
        # change: a later DDL must not run before both connectors have read the rows before it
        SYNC,
        "ALTER TABLE ddl_t ALTER COLUMN v TYPE bigint",
        "INSERT INTO ddl_t VALUES (4, 4, 'y')",
        SYNC,
        "ALTER TABLE ddl_t DROP COLUMN added",
        "INSERT INTO ddl_t VALUES (5, 5); DELETE FROM ddl_t WHERE id = 2",
        "CREATE TABLE late (id int PRIMARY KEY, v text); INSERT INTO late VALUES (1, 'created mid-stream')",
        "INSERT INTO late VALUES (2, 'second')",
        "INSERT INTO ddl_race VALUES (1, 12.34, 1), (2, 56.78, 2)",
        "ALTER TABLE ddl_race ALTER COLUMN amount TYPE text, ALTER COLUMN n TYPE bigint",
        "INSERT INTO ddl_race VALUES (3, 'text now', 3)",
        "SELECT pg_logical_emit_message(true, 'app', 'alone in a transaction')",
        "INSERT INTO s1.t VALUES (3, 'with a message'); SELECT pg_logical_emit_message(true, 'app', 'after a row'); "
        "INSERT INTO s1.t VALUES (4, 'after the message')",
        "SELECT pg_logical_emit_message(false, 'nontx', '\\x0102'::bytea)",
        "INSERT INTO toasty SELECT 1, 1, repeat('t', 9000), decode(repeat('ab', 9000), 'hex'), "
        "ARRAY[repeat('a', 9000)], jsonb_build_object('k', repeat('j', 9000)); "
        "INSERT INTO toasty_full VALUES (1, 1, repeat('f', 9000))",
        "UPDATE toasty SET n = 2; UPDATE toasty_full SET n = 2",  # TOASTed columns unchanged
        "UPDATE toasty SET big = 'small now', n = 3",
        "DELETE FROM toasty; DELETE FROM toasty_full",
        "TRUNCATE ri_default",
    ),
    tables=("public.measurements_2023", "public.measurements_2024", "public.ri_default", "public.ri_full",
            "public.ri_index", "public.pk_change", "s1.t", "s2.t", "Mixed Schema.Weird-Table",
            "public.ddl_t", "public.late", "public.ddl_race", "public.toasty", "public.toasty_full"),
    extra_topics=("transaction", "message"),
)

# The publications cdcd creates never publish updates and deletes of a table without a
# replica identity, where Debezium's FOR ALL TABLES does (and PostgreSQL then rejects the
# application's UPDATE/DELETE on it): a deliberate difference (docs/debezium-compatibility.md,
# "Deliberate differences in the events"), so such tables live in their own scenario, whose
# workload only inserts into them.
NO_IDENTITY = Scenario(
    name="no_identity",
    properties={"topic.prefix": "sbs_noid", "provide.transaction.metadata": "true"},
    setup="""
CREATE TABLE ri_nothing (id int PRIMARY KEY, v text); ALTER TABLE ri_nothing REPLICA IDENTITY NOTHING;
CREATE TABLE nopk_log (msg text, at int);
CREATE TABLE plain (id int PRIMARY KEY, v text);
INSERT INTO ri_nothing VALUES (1, 'a'); INSERT INTO nopk_log VALUES ('first', 1); INSERT INTO plain VALUES (1, 'a');
""",
    workload=(
        "INSERT INTO ri_nothing VALUES (2, 'b'); INSERT INTO nopk_log VALUES ('second', 2)",
        "UPDATE plain SET v = 'b'; INSERT INTO plain VALUES (2, 'c'); DELETE FROM plain WHERE id = 1",
        "INSERT INTO nopk_log SELECT 'many', g FROM generate_series(1, 5) g",
    ),
    tables=("public.ri_nothing", "public.nopk_log", "public.plain"),
    extra_topics=("transaction",),
)

PARTITION_ROOT = Scenario(
    name="partition_root",
    properties={
        "topic.prefix": "sbs_proot", "provide.transaction.metadata": "true",
        "publication.autocreate.mode": "disabled",
        "debezium.publication.name": "dbz_root_pub", "cdcd.publication.name": "cdcd_root_pub",
    },
    setup="""
CREATE TABLE readings (id int NOT NULL, at date NOT NULL, v int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE readings_2023 PARTITION OF readings FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE readings_2024 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE plain (id int PRIMARY KEY);
INSERT INTO readings VALUES (1, '2023-02-01', 1), (2, '2024-02-01', 2);
CREATE PUBLICATION dbz_root_pub FOR ALL TABLES WITH (publish_via_partition_root = true);
CREATE PUBLICATION cdcd_root_pub FOR ALL TABLES WITH (publish_via_partition_root = true);
""",
    workload=(
        "INSERT INTO readings VALUES (3, '2023-03-01', 3), (4, '2024-03-01', 4); INSERT INTO plain VALUES (1)",
        "UPDATE readings SET v = v + 10",
        "DELETE FROM readings WHERE id = 1",
    ),
    tables=("public.readings", "public.readings_2023", "public.readings_2024", "public.plain"),
    extra_topics=("transaction",),
    empty=("public.readings_2023", "public.readings_2024"),
)

INCREMENTAL = Scenario(
    name="incremental",
    properties={
        "topic.prefix": "sbs_inc", "snapshot.mode": "no_data", "signal.data.collection": "public.dbz_signal",
        "incremental.snapshot.chunk.size": "7",
    },
    setup="""
CREATE TABLE dbz_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));
CREATE TABLE inc (id int PRIMARY KEY, v text, n numeric(6,2));
CREATE TABLE inc_other (k text PRIMARY KEY, v int);
INSERT INTO inc SELECT g, 'row ' || g, g / 4.0 FROM generate_series(1, 25) g;
INSERT INTO inc_other SELECT 'k' || g, g FROM generate_series(1, 5) g;
""",
    workload=(
        "INSERT INTO dbz_signal VALUES ('sig-1', 'execute-snapshot', "
        "'{\"data-collections\": [\"public.inc\", \"public.inc_other\"], \"type\": \"incremental\"}')",
    ),
    tables=("public.inc", "public.inc_other"),
    expect={"public.inc": 25, "public.inc_other": 5},
)

FILTERS = Scenario(
    name="filters",
    properties={
        "topic.prefix": "sbs_filt", "publication.autocreate.mode": "filtered",
        "table.include.list": "public\\.keep.*,public\\.harness_fence",
        "column.exclude.list": "public\\.keep_cols\\.secret",
    },
    setup="""
CREATE TABLE keep_all (id int PRIMARY KEY, v text);
CREATE TABLE keep_cols (id int PRIMARY KEY, secret text, v text);
CREATE TABLE skip_me (id int PRIMARY KEY, v text);
INSERT INTO keep_all VALUES (1, 'a'); INSERT INTO keep_cols VALUES (1, 's', 'a'); INSERT INTO skip_me VALUES (1, 'x');
""",
    workload=(
        "INSERT INTO keep_all VALUES (2, 'b'); INSERT INTO keep_cols VALUES (2, 's2', 'b'); "
        "INSERT INTO skip_me VALUES (2, 'y')",
        "UPDATE keep_cols SET secret = 'changed', v = 'c' WHERE id = 1; DELETE FROM keep_all WHERE id = 1",
    ),
    tables=("public.keep_all", "public.keep_cols", "public.skip_me"),
    empty=("public.skip_me",),
)

INTERVAL_OVERFLOW = Scenario(
    name="interval_overflow",
    properties={"topic.prefix": "sbs_ivo", "interval.handling.mode": "numeric"},
    setup="CREATE TABLE ivo (id int PRIMARY KEY, iv interval); INSERT INTO ivo VALUES (1, '178000000 years');",
    workload=("INSERT INTO ivo VALUES (2, '-178000000 years'), (3, '1 day')",),
    tables=("public.ivo",),
)

URLSAFE_MESSAGE = Scenario(
    name="urlsafe_message",
    properties={"topic.prefix": "sbs_urlmsg", "binary.handling.mode": "base64-url-safe"},
    setup="CREATE TABLE b (id int PRIMARY KEY, ba bytea);",
    workload=("SELECT pg_logical_emit_message(true, 'app', '\\xfbff'::bytea); INSERT INTO b VALUES (1, '\\xfbff')",),
    tables=("public.b",),
    extra_topics=("message",),
)

SCENARIOS: tuple[Scenario, ...] = (TYPES, MODES_STRING, MODES_DOUBLE, MODES_URLSAFE, COLUMN_OPTIONS, OPS_OPTIONS,
                                   STRUCTURE, NO_IDENTITY, PARTITION_ROOT, INCREMENTAL, FILTERS, INTERVAL_OVERFLOW,
                                   URLSAFE_MESSAGE)

# -- found by the seeded random workloads (tests/debezium/test_side_by_side_random.py) ---------


def _found(name: str, props: dict[str, str], setup: str, workload: tuple[str, ...], table: str,
           xfail: str | None) -> Scenario:
    """A minimal reproduction of one difference a random seed showed."""
    return Scenario(name=name, properties={"topic.prefix": f"sbs_{name}", **props}, setup=setup, workload=workload,
                    tables=(f"public.{table}",), xfail={f"public.{table}": xfail} if xfail else {})


FOUND_QUOTED_DEFAULT = _found(
    "found_quoted_default", {},
    "CREATE TABLE dq (id int PRIMARY KEY, t text DEFAULT 'a''b', c char(5) DEFAULT 'x''y', "
    "j jsonb DEFAULT '{\"k\": \"it''s\"}'); INSERT INTO dq (id) VALUES (1);",
    ("INSERT INTO dq (id) VALUES (2)", "DELETE FROM dq WHERE id = 1"),
    "dq", None)

FOUND_TIMESTAMP_INFINITY_DEFAULT = _found(
    "found_ts_infinity_default", {},
    "CREATE TABLE tsi (id int PRIMARY KEY, ts timestamp DEFAULT 'infinity', ts1 timestamp(1) DEFAULT 'infinity', "
    "tsn timestamp DEFAULT '-infinity', tz timestamptz DEFAULT '-infinity', d date DEFAULT 'infinity'); "
    "INSERT INTO tsi (id) VALUES (1);",
    ("INSERT INTO tsi (id) VALUES (2)", "DELETE FROM tsi WHERE id = 1"),
    "tsi", None)

FOUND_TIMESTAMP_INFINITY_DEFAULT_CONNECT = _found(
    "found_ts_infinity_default_connect", {"time.precision.mode": "connect"},
    "CREATE TABLE tsic (id int PRIMARY KEY, ts timestamp DEFAULT 'infinity', tsn timestamp DEFAULT '-infinity', "
    "tz timestamptz DEFAULT 'infinity', d date DEFAULT 'infinity', dn date DEFAULT '-infinity'); "
    "INSERT INTO tsic (id) VALUES (1);",
    ("INSERT INTO tsic (id) VALUES (2)", "DELETE FROM tsic WHERE id = 1"),
    "tsic", None)

FOUND_TIMESTAMP_BEYOND_INT64 = _found(
    "found_ts_beyond_int64", {},
    "CREATE TABLE tsb (id int PRIMARY KEY, ts timestamp, ts3 timestamp(3), d timestamp DEFAULT '294276-12-31 23:59:59');",
    ("INSERT INTO tsb VALUES (1, '294276-12-31 23:59:59', '294276-12-31 23:59:59', DEFAULT), "
     "(2, '294000-01-01 00:00:00', '290000-01-01 00:00:00', '2000-01-01')",),
    "tsb", None)

FOUND_FLOAT4_TEXT = _found(
    "found_float4_text", {},
    "CREATE TABLE f4 (id int PRIMARY KEY, r real);",
    ("INSERT INTO f4 (id, r) VALUES (1, 1e-45), (2, 1.17549435e-38), (3, 9.53e9), (4, -9.60045e16), (5, 0.1)",),
    "f4", None)

FOUND_FLOAT4_DEFAULT = _found(
    "found_float4_default", {},
    "CREATE TABLE f4d (id int PRIMARY KEY, rd real DEFAULT 0.1, rb real DEFAULT 7.448155308736037e19, "
    "rn real DEFAULT -1.5e-7); INSERT INTO f4d (id) VALUES (1);",
    ("INSERT INTO f4d (id) VALUES (2)", "DELETE FROM f4d WHERE id = 1"),
    "f4d", None)

FOUND_TIME_24_CONNECT = _found(
    "found_time24_connect", {"time.precision.mode": "connect"},
    "CREATE TABLE t24 (id int PRIMARY KEY, t time DEFAULT '24:00:00', t4 time(4));",
    ("INSERT INTO t24 VALUES (1, '24:00:00', '24:00:00'), (2, DEFAULT, '23:59:59.9999')",),
    "t24", None)

FOUND_TIME_24_ADAPTIVE = _found(
    "found_time24_adaptive", {},
    "CREATE TABLE t24a (id int PRIMARY KEY, t3 time(3) DEFAULT '24:00:00', t0 time(0));",
    ("INSERT INTO t24a VALUES (1, '24:00:00', '24:00:00'), (2, DEFAULT, '23:59:59')",),
    "t24a", None)

FOUND_BC_DATE_DEFAULT = _found(
    "found_bc_date_default", {},
    "CREATE TABLE bcd (id int PRIMARY KEY, d date DEFAULT '0044-03-15 BC', d2 date DEFAULT '1500-03-01', "
    "d3 date DEFAULT '1582-10-04'); INSERT INTO bcd (id) VALUES (1);",
    ("INSERT INTO bcd (id) VALUES (2)", "DELETE FROM bcd WHERE id = 1"),
    "bcd", None)

def _numeric_special_default(mode: str) -> Scenario:
    return _found(
        f"found_numeric_special_default_{mode}", {"decimal.handling.mode": mode},
        f"CREATE TABLE nsd_{mode} (id int PRIMARY KEY, n numeric NOT NULL DEFAULT 'NaN', i numeric DEFAULT 'Infinity', "
        f"m numeric DEFAULT '-Infinity', p numeric(6,2) DEFAULT 'NaN', z numeric DEFAULT 0); INSERT INTO nsd_{mode} (id) VALUES (1);",
        (f"INSERT INTO nsd_{mode} (id) VALUES (2)", f"DELETE FROM nsd_{mode} WHERE id = 1"),
        f"nsd_{mode}", None)


FOUND_AVRO_LEADING_DIGIT = _found(
    "found_avro_leading_digit", {"field.name.adjustment.mode": "avro", "schema.name.adjustment.mode": "avro"},
    'CREATE TABLE "1-tbl" ("1st-col" int PRIMARY KEY, "5" text, "naïve col" int, "Quo""te" int);',
    ("INSERT INTO \"1-tbl\" VALUES (1, 'a', 2, 3)",),
    "1-tbl", None)

FOUND_DOMAIN_TYPMOD = _found(
    "found_domain_typmod",
    {"column.mask.hash.SHA-256.with.salt.pepper": "public.dtm.hv", "column.propagate.source.type": "public.dtm.n.*",
     "column.truncate.to.4.chars": "public.dtm.tv"},
    "CREATE DOMAIN dnum AS numeric(8,3); CREATE DOMAIN dvc AS varchar(10); "
    "CREATE TABLE dtm (id int PRIMARY KEY, n dnum, nd dnum DEFAULT 12.5, hv dvc, tv dvc, v dvc); "
    "INSERT INTO dtm VALUES (1, 12345.678, DEFAULT, 'hash me', 'truncate10', 'x');",
    ("INSERT INTO dtm VALUES (2, -0.001, 1, 'and me', 'me too', NULL)",),
    "dtm", None)

FOUND_VARBIT1_EMPTY = _found(
    "found_varbit1_empty", {},
    "CREATE TABLE vb1 (id int PRIMARY KEY, e varbit(1) DEFAULT B'', o varbit(1) DEFAULT B'1', v varbit(1)); "
    "INSERT INTO vb1 VALUES (1, B'', B'', B'0');",
    ("INSERT INTO vb1 (id) VALUES (2); INSERT INTO vb1 VALUES (3, B'1', B'', B'')",),
    "vb1", None)

FOUND_NAME_NOT_NULL = _found(
    "found_name_not_null", {},
    "CREATE TABLE nnn (id int PRIMARY KEY, n name NOT NULL DEFAULT 'd', o name); INSERT INTO nnn VALUES (1, 'a', 'b');",
    ("INSERT INTO nnn VALUES (2, 'c', 'd')", "DELETE FROM nnn WHERE id = 1"),
    "nnn", None)


# a primary-key change sends a key-only old tuple: an optional message-key column it leaves out is NULL
# in Debezium's old key (mkp.b: delete + create although both print the default), a NOT NULL one its
# default (mkr.r: an update while the row holds the default, delete + create when it holds another value)
FOUND_MESSAGE_KEY_PK_CHANGE = _found(
    "found_message_key_pk_change", {"message.key.columns": "public.mkp:b;public.mkr:r"},
    "CREATE TABLE mkp (id int PRIMARY KEY, b boolean DEFAULT true, v int); "
    "INSERT INTO mkp VALUES (1, DEFAULT, 1), (3, NULL, 3);",
    # the first transactions warm the table up, so the key changes take the compiled core's change lane
    ("UPDATE mkp SET v = 7 WHERE id = 1", "INSERT INTO mkp VALUES (5, false, 5)", "UPDATE mkp SET id = 2 WHERE id = 1",
     "UPDATE mkp SET id = 4 WHERE id = 3", "UPDATE mkp SET v = 9 WHERE id = 2; UPDATE mkp SET id = 6 WHERE id = 5"),
    "mkp", None)
FOUND_MESSAGE_KEY_PK_CHANGE = Scenario(
    name=FOUND_MESSAGE_KEY_PK_CHANGE.name, properties=FOUND_MESSAGE_KEY_PK_CHANGE.properties,
    setup=FOUND_MESSAGE_KEY_PK_CHANGE.setup + " CREATE TABLE mkr (id int PRIMARY KEY, r text NOT NULL DEFAULT 'd', v int); "
    "INSERT INTO mkr VALUES (1, DEFAULT, 1), (3, 'x', 3);",
    workload=FOUND_MESSAGE_KEY_PK_CHANGE.workload + (
        "UPDATE mkr SET v = 2 WHERE id = 1", "INSERT INTO mkr VALUES (5, 'y', 5)", "UPDATE mkr SET id = 2 WHERE id = 1",
        "UPDATE mkr SET id = 4 WHERE id = 3"),
    tables=("public.mkp", "public.mkr"))

FOUND_SERIAL_TYPE_NAME = _found(
    "found_serial_type_name", {"datatype.propagate.source.type": r".+\.int4,.+\.int8,.+\.serial",
                               "column.propagate.source.type": r"public\.ser\.s2"},
    "CREATE TABLE ser (id int PRIMARY KEY, s serial, s2 smallserial, b bigserial, i int DEFAULT 1); "
    "INSERT INTO ser (id) VALUES (1);",
    ("INSERT INTO ser (id) VALUES (2)",),
    "ser", None)

FOUND_TIMESTAMP_ARRAY_BEYOND_INT64 = _found(
    "found_ts_array_beyond_int64", {},
    "CREATE TABLE tsab (id int PRIMARY KEY, a timestamp[], a3 timestamp(3)[]);",
    ("INSERT INTO tsab VALUES (1, ARRAY['294276-12-31 23:59:59'::timestamp, '294000-01-01 00:00:00.5', '2000-01-01'], "
     "ARRAY['294276-12-31 23:59:59'::timestamp])",),
    "tsab", None)

FOUND_TRUNCATE_TO_ZERO = _found(
    "found_truncate_to_zero", {"column.truncate.to.0.chars": r"public\.tz0\.(t|v|n)"},
    "CREATE TABLE tz0 (id int PRIMARY KEY, t text, v varchar(5), n int); INSERT INTO tz0 VALUES (1, 'abc', 'de', 7);",
    ("INSERT INTO tz0 VALUES (2, '', NULL, NULL)",),
    "tz0", None)


FOUND_INTERVAL_STRING_SECONDS = _found(
    "found_interval_string_seconds", {"interval.handling.mode": "string"},
    "CREATE TABLE ivs (id int PRIMARY KEY, iv interval DEFAULT '00:00:03.381524'); INSERT INTO ivs VALUES (1, DEFAULT);",
    ("INSERT INTO ivs VALUES (2, '-9 mons 04:32:03.381524'), (3, '-00:00:03.381524'), (4, '1 day 00:00:00.1'), "
     "(5, '00:00:59.999999')",),
    "ivs", None)


FOUND_TRUNCATE_NUMERIC_SNAPSHOT = _found(
    "found_truncate_numeric_snapshot", {"column.truncate.to.6.chars": r"public\.tns\.(n.*|b)"},
    "CREATE TABLE tns (id int PRIMARY KEY, n numeric, n2 numeric(10,2), n3 numeric(4,1), b bytea); "
    "INSERT INTO tns VALUES (1, 1.5, 2, 3, '\\x00010203040506070809');",
    ("INSERT INTO tns VALUES (2, 2.5, 3, 4, '\\x0001'), (3, 0, 0, 0, '\\x000102030405060708')",),
    "tns", None)


def _money_fraction_digits(mode: str) -> Scenario:
    return _found(
        f"found_money_digits_{mode}", {"decimal.handling.mode": mode, "money.fraction.digits": "1"},
        f"CREATE TABLE mfd_{mode} (id int PRIMARY KEY, m money, z money NOT NULL DEFAULT 0); "
        f"INSERT INTO mfd_{mode} VALUES (1, 675686.66, 0);",
        (f"INSERT INTO mfd_{mode} VALUES (2, -0.01, 0), (3, 0, 1.25)", f"DELETE FROM mfd_{mode} WHERE id = 1"),
        f"mfd_{mode}", None)


FOUND_SCENARIOS = (FOUND_TRUNCATE_NUMERIC_SNAPSHOT, FOUND_INTERVAL_STRING_SECONDS, FOUND_MESSAGE_KEY_PK_CHANGE, FOUND_SERIAL_TYPE_NAME, FOUND_TIMESTAMP_ARRAY_BEYOND_INT64,
                   FOUND_TRUNCATE_TO_ZERO, FOUND_AVRO_LEADING_DIGIT, FOUND_DOMAIN_TYPMOD, FOUND_VARBIT1_EMPTY, FOUND_NAME_NOT_NULL,
                   _money_fraction_digits("double"), _money_fraction_digits("string"), _money_fraction_digits("precise"),
                   FOUND_BC_DATE_DEFAULT, _numeric_special_default("double"), _numeric_special_default("string"), FOUND_QUOTED_DEFAULT, FOUND_TIMESTAMP_INFINITY_DEFAULT, FOUND_TIMESTAMP_INFINITY_DEFAULT_CONNECT,
                   FOUND_TIMESTAMP_BEYOND_INT64,
                   FOUND_FLOAT4_TEXT, FOUND_FLOAT4_DEFAULT, FOUND_TIME_24_CONNECT, FOUND_TIME_24_ADAPTIVE)
SCENARIOS = SCENARIOS + FOUND_SCENARIOS
