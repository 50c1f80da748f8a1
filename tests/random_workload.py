"""Seeded random workloads for the Debezium side-by-side comparison.

`generate(seed)` returns a `Workload`: connector properties, the setup SQL (tables and the
rows the snapshot reads) and the streamed transactions, all from ``random.Random(seed)``
and nothing else, so a seed always yields the same SQL.  Every value is a constant SQL
literal or a deterministic expression (no now(), random(), sequences shared by tables);
rows are always addressed by columns whose values the generator keeps unique, so every
UPDATE and DELETE touches exactly the row it means to.

``python -m tests.random_workload SEED`` prints a seed's SQL (to minimise a difference by
hand); ``tests/debezium/test_side_by_side_random.py`` runs seeds against real Debezium.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import string
import sys
import uuid
from dataclasses import dataclass, field
from typing import Callable

from tests.debezium_scenarios import SYNC

# -- value generators ------------------------------------------------------------------------

_PLAIN = string.ascii_letters + string.digits + " _-."
_SPECIAL = "'\"\\\t\n{},;%é ü ß ñ ø 中文 日本 𝄞 😀 \u00a0 \u200b \u2028 \u0301 ‰ €"


def q(text: str) -> str:
    """A standard SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def rand_text(rng: random.Random, max_len: int = 24, *, unicode: bool = True) -> str:
    n = rng.choice((0, 1, rng.randint(1, max_len), rng.randint(1, max_len)))
    alphabet = _PLAIN + (_SPECIAL if unicode and rng.random() < 0.4 else "")
    return "".join(rng.choice(alphabet) for _ in range(n))


def _ident(text: str) -> str:
    return text if text.isidentifier() and text.islower() else '"' + text.replace('"', '""') + '"'


@dataclass
class ColType:
    """One column type: its SQL and how to draw literals of it."""

    kind: str
    sql: str
    p: int | None = None  # precision / length
    s: int | None = None  # scale
    elem: ColType | None = None  # an array's element type (kinds ending in "[]" other than int[]/text[])
    base: ColType | None = None  # a domain's base type

    @property
    def serial(self) -> bool:
        """smallserial/serial/bigserial: NOT NULL with a nextval() default of its own sequence."""
        return self.kind in SERIAL_KINDS

    @property
    def keyable(self) -> bool:
        return self.kind in KEY_KINDS

    @property
    def toastable(self) -> bool:
        return self.kind in ("text", "bytea", "jsonb", "json")

    # literals ------------------------------------------------------------------------------

    def value(self, rng: random.Random, enum: list[str], edge: float = 0.25) -> str:
        e = rng.random() < edge
        k = SERIAL_KINDS.get(self.kind, self.kind)
        if self.base is not None:
            return self.base.value(rng, enum, edge)
        if self.elem is not None:
            return self._array(rng, enum, e)
        if k in MORE_KINDS:
            return _more_value(self, rng, e)
        if k in INT_RANGE:
            lo, hi = INT_RANGE[k]
            if e:
                return str(rng.choice((lo, hi, 0, -1, 1)))
            return str(rng.choice((rng.randint(max(lo, -1000), min(hi, 1000)), rng.randint(lo, hi))))
        if k == "numeric":
            return self._numeric(rng, e)
        if k in ("float4", "float8"):
            if e:
                return rng.choice(("'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "0",
                                   "3.4028235e38" if k == "float4" else "1.7976931348623157e308",
                                   "1e-45" if k == "float4" else "5e-324", "1.17549435e-38"))
            return rng.choice((repr(round(rng.uniform(-1000, 1000), rng.randint(0, 8))),
                               repr(rng.uniform(-1e20, 1e20)), repr(rng.random()),
                               f"{rng.randint(1, 9)}.{rng.randint(0, 99)}e{rng.randint(-37, 37) if k == 'float4' else rng.randint(-300, 300)}"))
        if k == "bool":
            return rng.choice(("true", "false"))
        if k in ("text", "varchar", "char"):
            n = self.p if self.p else 40
            return q((rng.choice(("", " ", "  x  ", "ééé", "𝄞")) if e else rand_text(rng, n))[:n])
        if k == "bytea":
            data = bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 1, rng.randint(1, 40)))))
            return q("\\x" + data.hex())
        if k == "date":
            if e:
                return q(rng.choice(("infinity", "-infinity", "0001-01-01", "9999-12-31", "1970-01-01", "1969-12-31",
                                     "0044-03-15 BC", "2000-02-29", "5874897-12-31", "4713-01-01 BC")))
            return q(self._date(rng))
        if k == "time":
            if e:
                return q(rng.choice(("00:00:00", "24:00:00", "23:59:59.999999", "12:00:00.5", "00:00:00.000001")))
            return q(self._time(rng))
        if k == "timetz":
            if e:
                return q(rng.choice(("00:00:00+00", "24:00:00-14", "23:59:59.999999+14", "12:00:00-12:30",
                                     "00:00:00.000001+05:45")))
            return q(self._time(rng) + self._offset(rng))
        if k == "timestamp":
            if e:
                return q(rng.choice(("infinity", "-infinity", "1970-01-01 00:00:00", "1969-12-31 23:59:59.999999",
                                     "0001-01-01 00:00:00", "0044-03-15 12:00:00 BC", "294276-12-31 23:59:59",
                                     "2000-02-29 12:00:00.5")))
            return q(_bc_last(self._date(rng) + " " + self._time(rng, self.p)))
        if k == "timestamptz":
            if e:
                return q(rng.choice(("infinity", "-infinity", "1970-01-01 00:00:00+00", "1969-12-31 23:59:59.5-01",
                                     "0001-01-01 00:00:00+00", "0044-03-15 12:00:00+00 BC", "2262-04-11 23:47:16.854775+00",
                                     "2000-02-29 12:00:00+14")))
            return q(_bc_last(self._date(rng) + " " + self._time(rng, self.p) + self._offset(rng)))
        if k == "interval":
            if e:
                return q(rng.choice(("0", "-00:00:00.000001", "178000000 years", "-178000000 years", "1 mon",
                                     "-1 days +23:59:59.999999", "2147483647 days", "1 year -1 mon")))
            parts = []
            for unit, hi in (("years", 300), ("mons", 30), ("days", 400)):
                if rng.random() < 0.5:
                    parts.append(f"{rng.randint(-hi, hi)} {unit}")
            if rng.random() < 0.6:
                sign = rng.choice(("", "-"))
                parts.append(f"{sign}{rng.randint(0, 99):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
                             + (f".{rng.randint(0, 999999):06d}" if rng.random() < 0.5 else ""))
            return q(" ".join(parts) or "0")
        if k == "uuid":
            return q(str(uuid.UUID(int=rng.getrandbits(128))))
        if k in ("json", "jsonb"):
            doc = _json_doc(rng, 3)
            text = json.dumps(doc, ensure_ascii=rng.random() < 0.5,
                              separators=rng.choice(((",", ":"), (", ", ": "))))
            if k == "json" and rng.random() < 0.2:
                text = rng.choice(("  {\"a\" :  1 }  ", "[1, 1.0, 1e2, -0, 12345678901234567890.5]",
                                   "{\"k\": 1, \"k\": 2}", "\"x\"", "null"))
            return q(text)
        if k == "inet":
            return q(self._net(rng, strict=False))
        if k == "cidr":
            return q(self._net(rng, strict=True))
        if k == "macaddr":
            b = bytes(rng.getrandbits(8) for _ in range(6))
            return q(rng.choice((":".join(f"{x:02x}" for x in b), "-".join(f"{x:02X}" for x in b), b.hex())))
        if k == "money":
            if e:
                return q(rng.choice(("-92233720368547758.08", "92233720368547758.07", "0", "-0.01")))
            return q(f"{rng.randint(-10**6, 10**6)}.{rng.randint(0, 99):02d}")
        if k == "int[]":
            if e:
                return rng.choice(("'{}'", "'{NULL}'", "'{-2147483648,2147483647}'"))
            items = [rng.choice(("NULL", str(rng.randint(-99999, 99999)))) for _ in range(rng.randint(0, 5))]
            return q("{" + ",".join(items) + "}")
        if k == "text[]":
            if e:
                return rng.choice(("'{}'", "'{NULL}'", "ARRAY['']", "ARRAY['NULL', 'a,b', '{x}']"))
            items = [rng.choice(("NULL", q(rand_text(rng, 10)))) for _ in range(rng.randint(1, 4))]
            return "ARRAY[" + ", ".join(items) + "]::text[]"
        if k == "enum":
            return q(rng.choice(enum))
        if k == "xml":
            inner = "".join(rng.choice(string.ascii_letters + " é中") for _ in range(rng.randint(0, 12)))
            return q(rng.choice((f"<r>{inner}</r>", f"<a x=\"1\"><b>{inner}</b><c/></a>", inner or "<e/>",
                                 "<r>&amp;&lt;&gt;</r>")))
        raise AssertionError(k)

    def key_value(self, rng: random.Random) -> str:
        """A literal whose text is canonical for the column (equal values have equal text)."""
        k = SERIAL_KINDS.get(self.kind, self.kind)
        if k in INT_RANGE:
            lo, hi = INT_RANGE[k]
            return str(rng.choice((lo, hi, rng.randint(-50, 50), rng.randint(lo, hi), rng.randint(1, min(hi, 100000)))))
        if k == "numeric":
            return self._numeric(rng, False)
        if k in ("text", "varchar"):
            n = self.p or 30
            return q(rand_text(rng, n)[:n])
        if k == "char":
            return q(rand_text(rng, self.p or 1, unicode=False)[: self.p or 1].rstrip())
        if k == "uuid":
            return q(str(uuid.UUID(int=rng.getrandbits(128))))
        if k == "date":
            return q(self._date(rng, bc=False))
        if k == "timestamp":
            return q(self._date(rng, bc=False) + " " + self._time(rng, self.p, canonical=True))
        raise AssertionError(k)

    def _array(self, rng: random.Random, enum: list[str], edge: bool) -> str:
        elem = self.elem
        assert elem is not None
        if self.kind == "int[][]":  # two-dimensional (or one-dimensional: the column type allows both)
            if edge:
                return rng.choice(("'{}'", "'{{NULL}}'", "'{1,2}'", "'{{1},{2},{3}}'"))
            rows, cols = rng.randint(1, 3), rng.randint(1, 3)
            cells = [[rng.choice(("NULL", str(rng.randint(-99, 99)))) for _ in range(cols)] for _ in range(rows)]
            return q("{" + ",".join("{" + ",".join(r) + "}" for r in cells) + "}")
        if edge and rng.random() < 0.5:
            return rng.choice(("'{}'", "'{NULL}'"))
        items = ["NULL" if rng.random() < 0.15 else f"({elem.value(rng, enum, edge=0.3 if edge else 0.1)})::{elem.sql}"
                 for _ in range(rng.randint(1, 4))]
        return "ARRAY[" + ", ".join(items) + f"]::{self.sql}"

    def _numeric(self, rng: random.Random, edge: bool) -> str:
        if self.p is None:
            if edge:
                return rng.choice(("'NaN'", "0", "-0.0", "1e-30", "99999999999999999999999999999999999999.5",
                                   "'Infinity'", "'-Infinity'", "0.000000000000000000001", "123.4500"))
            digits = rng.randint(1, 30)
            return _fixed(rng.randint(-(10**digits), 10**digits), rng.randint(0, min(digits, 20)))
        p, s = self.p, self.s or 0
        if edge:
            return rng.choice(("'NaN'", "0", _fixed(10 ** p - 1, s), _fixed(-(10 ** p) + 1, s)))
        return _fixed(rng.randint(-(10**p) + 1, 10**p - 1), s)

    @staticmethod
    def _date(rng: random.Random, bc: bool = True) -> str:
        year = rng.choice((rng.randint(1900, 2100), rng.randint(1, 9999), rng.randint(1969, 1971)))
        if bc and rng.random() < 0.05:
            return f"{rng.randint(1, 4713):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} BC"
        return f"{year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"

    @staticmethod
    def _time(rng: random.Random, precision: int | None = None, canonical: bool = False) -> str:
        text = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
        digits = 6 if precision is None else precision
        if digits and rng.random() < 0.7:
            frac = f"{rng.randint(0, 10 ** digits - 1):0{digits}d}"
            if canonical:
                frac = frac.rstrip("0")
            if frac:
                text += "." + frac
        return text

    @staticmethod
    def _offset(rng: random.Random) -> str:
        h = rng.randint(-12, 14)
        sign = "+" if h >= 0 else "-"
        return f"{sign}{abs(h):02d}" + rng.choice(("", "", ":30", ":45"))

    @staticmethod
    def _net(rng: random.Random, strict: bool) -> str:
        if rng.random() < 0.6:
            addr, bits = ipaddress.IPv4Address(rng.getrandbits(32)), rng.choice((8, 16, 24, 32, rng.randint(0, 32)))
        else:
            addr, bits = ipaddress.IPv6Address(rng.getrandbits(128)), rng.choice((128, 64, rng.randint(0, 128)))
        if strict:
            return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))
        return str(addr) if bits == addr.max_prefixlen and rng.random() < 0.5 else f"{addr}/{bits}"

    def big_value(self, salt: str) -> str:
        """A large (> 8 kB), hardly compressible value, stored out of line (TOAST)."""
        chunks = f"(SELECT string_agg(md5(g::text || {q(salt)}), '' ORDER BY g) FROM generate_series(1, %d) g)"
        if self.kind == "text":
            return chunks % 400
        if self.kind == "bytea":
            return f"decode({chunks % 600}, 'hex')"
        if self.kind in ("jsonb", "json"):
            return (f"(SELECT {self.kind}_agg(md5(g::text || {q(salt)}) ORDER BY g) "
                    f"FROM generate_series(1, 300) g)")
        raise AssertionError(self.kind)


def _fixed(unscaled: int, scale: int) -> str:
    """``unscaled * 10**-scale`` as a plain decimal literal with exactly `scale` digits after the point."""
    digits = str(abs(unscaled)).rjust(scale + 1, "0")
    text = digits[: len(digits) - scale] + ("." + digits[len(digits) - scale:] if scale else "")
    return ("-" if unscaled < 0 else "") + text


def _bc_last(text: str) -> str:
    return text.replace(" BC", "") + " BC" if " BC" in text else text


def _json_doc(rng: random.Random, depth: int) -> object:
    choice = rng.randint(0, 6 if depth > 0 else 3)
    if choice == 0:
        return rng.choice((None, True, False))
    if choice == 1:
        return rng.choice((rng.randint(-10**6, 10**6), 2**63, -(2**63) - 1, 0))
    if choice == 2:
        return rng.choice((rng.uniform(-1e6, 1e6), 1.5, 1e300, -0.0))
    if choice == 3:
        return rand_text(rng, 12)
    if choice in (4, 5):
        return {rand_text(rng, 8) or "k": _json_doc(rng, depth - 1) for _ in range(rng.randint(0, 4))}
    return [_json_doc(rng, depth - 1) for _ in range(rng.randint(0, 4))]


INT_RANGE = {"int2": (-32768, 32767), "int4": (-2147483648, 2147483647), "int8": (-9223372036854775808, 9223372036854775807)}
KEY_KINDS = ("int2", "int4", "int8", "numeric", "text", "varchar", "char", "uuid", "date", "timestamp", "serial",
             "bigserial")


def rand_type(rng: random.Random, *, key: bool = False) -> ColType:
    kinds = KEY_KINDS if key else ("int2", "int4", "int8", "numeric", "float4", "float8", "bool", "text", "varchar",
                                   "char", "bytea", "date", "time", "timetz", "timestamp", "timestamptz", "interval",
                                   "uuid", "json", "jsonb", "inet", "cidr", "macaddr", "money", "int[]", "text[]",
                                   "enum", "xml")
    if not key and rng.random() < 0.45:
        kinds = tuple(MORE_KINDS) + ("array",) * 4 + ("domain",) * 2 + SERIAL_KINDS_T
    k = rng.choice(kinds)
    if k == "array":
        elem = _array_elem(rng)
        if elem.kind == "int[][]":
            return ColType("int[][]", "integer[][]", elem=ColType("int4", "integer"))
        return ColType(elem.kind + "[]", elem.sql + "[]", elem=elem)
    if k == "domain":
        name, base = rng.choice(DOMAINS)
        return ColType("dom_" + base.kind, name, base=base)
    sql = {"int2": "smallint", "int4": "integer", "int8": "bigint", "float4": "real", "float8": "double precision",
           "bool": "boolean", "int[]": "integer[]", "enum": "rmood"}.get(k, k)
    if k == "numeric" and (key or rng.random() < 0.6):
        p = rng.randint(1, 38)
        s = rng.randint(0, min(p, 18))
        return ColType(k, f"numeric({p},{s})" if s or rng.random() < 0.5 else f"numeric({p})", p, s)
    if k == "varchar":
        p = rng.choice((1, 5, 20, 255))
        return ColType(k, f"varchar({p})", p)
    if k == "char":
        p = rng.choice((1, 3, 10))
        return ColType(k, f"char({p})", p)
    if k in ("time", "timestamp", "timestamptz") and rng.random() < 0.5:
        p = rng.randint(0, 6)
        return ColType(k, f"{k}({p})", p)
    if k == "bit":
        p = rng.choice((1, 1, 3, 8, 16, rng.randint(1, 70)))
        return ColType(k, f"bit({p})", p)
    if k == "varbit":
        p = rng.choice((None, 1, 8, rng.randint(1, 70)))
        return ColType(k, f"varbit({p})" if p else "varbit", p)
    return ColType(k, sql)


def _array_elem(rng: random.Random) -> ColType:
    k = rng.choice(("int2", "int8", "numeric", "float4", "float8", "bool", "date", "time", "timestamp",
                    "timestamptz", "uuid", "varchar", "jsonb", "enum", "int[][]"))
    if k == "int[][]":
        return ColType(k, "integer[][]")
    if k == "numeric" and rng.random() < 0.5:
        return ColType(k, "numeric(10,2)", 10, 2)
    if k == "varchar":
        p = rng.choice((5, 20))
        return ColType(k, f"varchar({p})", p)
    if k in ("time", "timestamp", "timestamptz") and rng.random() < 0.3:
        p = rng.randint(0, 6)
        return ColType(k, f"{k}({p})", p)
    sql = {"int2": "smallint", "int8": "bigint", "float4": "real", "float8": "double precision", "bool": "boolean",
           "enum": "rmood"}.get(k, k)
    return ColType(k, sql)


# -- the kinds added second: extension types, bit strings, ranges, serials, domains ----------------

UNKNOWN_KINDS = ("pg_lsn", "box")  # types Debezium has no converter for (include.unknown.datatypes)
# type names for datatype.propagate.source.type (base types, a domain, an enum, an array)
PROPAGATED_TYPES = ("int2", "int4", "int8", "numeric", "varchar", "bpchar", "text", "float4", "float8", "bool", "bit",
                    "varbit", "money", "date", "timestamp", "timestamptz", "time", "interval", "bytea", "rdint",
                    "rdvc", "rdnum", "rmood", "_int4", "hstore", "citext", "oid", "name")
SERIAL_KINDS = {"smallserial": "int2", "serial": "int4", "bigserial": "int8"}
SERIAL_KINDS_T = tuple(SERIAL_KINDS)
MORE_KINDS = {"bit": None, "varbit": None, "oid": None, "name": None, "citext": None, "hstore": None,
              "ltree": None, "point": None, "int4range": None, "int8range": None, "numrange": None,
              "tsrange": None, "tstzrange": None, "daterange": None, "pg_lsn": None, "box": None}
# (SQL name, base type): created in every workload's setup
DOMAINS = (("rdint", ColType("int4", "integer")), ("rdvc", ColType("varchar", "varchar(10)", 10)),
           ("rdnum", ColType("numeric", "numeric(8,3)", 8, 3)))
EXTENSIONS_AND_DOMAINS = ("CREATE EXTENSION IF NOT EXISTS hstore; CREATE EXTENSION IF NOT EXISTS ltree; "
                          "CREATE EXTENSION IF NOT EXISTS citext;\n"
                          + " ".join(f"CREATE DOMAIN {n} AS {b.sql};" for n, b in DOMAINS))


def _more_value(t: ColType, rng: random.Random, e: bool) -> str:
    k = t.kind
    if k == "bit":
        n = t.p or 1
        return "B'" + ("".join(rng.choice("01") for _ in range(n)) if not e else rng.choice("01") * n) + "'"
    if k == "varbit":
        n = t.p or 80
        length = rng.choice((0, 1, n, rng.randint(0, n))) if e else rng.randint(1, n)
        return "B'" + "".join(rng.choice("01") for _ in range(length)) + "'"
    if k == "oid":
        return str(rng.choice((0, 1, 4294967295, 2147483648)) if e else rng.randint(0, 4294967295))
    if k == "name":
        return q(rand_text(rng, 70))
    if k == "citext":
        return q(rng.choice(("", "MiXeD", "ß")) if e else rand_text(rng, 30))
    if k == "hstore":
        if e:
            return q(rng.choice(("", "a=>NULL", "\"a b\"=>\"c,d\"", "k=>\"\"", "\"\"=>x")))
        pairs = []
        for _ in range(rng.randint(1, 4)):
            key = "".join(rng.choice(string.ascii_lowercase + "é ") for _ in range(rng.randint(1, 6)))
            val = "NULL" if rng.random() < 0.2 else \
                '"' + rand_text(rng, 8).replace("\\", "\\\\").replace('"', '\\"') + '"'
            pairs.append(f'"{key}"=>{val}')
        return q(", ".join(pairs))
    if k == "ltree":
        if e:
            return q(rng.choice(("", "a", "Top.Science.Astronomy", "_._")))
        labels = ["".join(rng.choice(string.ascii_letters + string.digits + "_") for _ in range(rng.randint(1, 8)))
                  for _ in range(rng.randint(1, 5))]
        return q(".".join(labels))
    if k == "point":
        if e:
            return q(rng.choice(("(0,0)", "(-0,1e300)", "(1.5,-2.25)", "(NaN,1)", "(Infinity,-Infinity)")))
        return q(f"({_num(rng)},{_num(rng)})")
    if k == "box":
        return q(f"(({_num(rng)},{_num(rng)}),({_num(rng)},{_num(rng)}))")
    if k == "pg_lsn":
        return q(f"{rng.randint(0, 0xFFFFFFFF):X}/{rng.randint(0, 0xFFFFFFFF):X}")
    if k in ("int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange"):
        if e:
            return q(rng.choice(("empty", "(,)", "[,5]" if k[:3] in ("int", "num") else "(,)")))
        lo, hi = sorted((_range_bound(k, rng), _range_bound(k, rng)), key=_range_key(k))
        lo_s = "" if rng.random() < 0.1 else lo
        hi_s = "" if rng.random() < 0.1 else hi
        return q(rng.choice("[(") + (f'"{lo_s}"' if lo_s and " " in lo_s else lo_s) + ","
                 + (f'"{hi_s}"' if hi_s and " " in hi_s else hi_s) + rng.choice(")]"))
    raise AssertionError(k)


def _num(rng: random.Random) -> str:
    return rng.choice((str(rng.randint(-100, 100)), repr(round(rng.uniform(-1e3, 1e3), rng.randint(0, 4)))))


def _range_bound(kind: str, rng: random.Random) -> str:
    if kind == "int4range":
        return str(rng.randint(-2147483647, 2147483646))
    if kind == "int8range":
        return str(rng.choice((rng.randint(-1000, 1000), rng.randint(-2**63 + 1, 2**63 - 2))))
    if kind == "numrange":
        return _fixed(rng.randint(-10**8, 10**8), rng.randint(0, 4))
    date = f"{rng.randint(1900, 2100):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == "daterange":
        return date
    text = date + f" {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    return text + ("+00" if kind == "tstzrange" else "")


def _range_key(kind: str) -> Callable[[str], object]:
    if kind in ("int4range", "int8range"):
        return int
    if kind == "numrange":
        return float
    return str


# -- the model of the database ------------------------------------------------------------------


@dataclass
class Column:
    name: str
    type: ColType
    not_null: bool = False
    default: str | None = None


@dataclass
class Table:
    name: str
    columns: list[Column]
    address: list[str]  # the columns whose values identify a row (kept unique by the generator)
    pk: list[str]
    identity: str  # "default" | "full" | "index"
    rows: list[dict[str, str]] = field(default_factory=list)  # address column -> literal, of live rows
    used: dict[str, set[str]] = field(default_factory=dict)  # address column -> literals ever used
    added: int = 0

    @property
    def sql_name(self) -> str:
        return _ident(self.name)

    def col(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def where(self, row: dict[str, str]) -> str:
        return " AND ".join(f"{_ident(c)} = {row[c]}" for c in self.address)


@dataclass
class Workload:
    seed: int
    properties: dict[str, str]
    setup: str
    transactions: list[str]
    tables: list[str]  # schema.table, as topics name them


class Generator:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.props: dict[str, str] = {"topic.prefix": f"sbs_rand{seed}"}
        rng = self.rng
        self.enum = rng.sample(["sad", "ok", "happy", "très", "a b", "Q", "x'y", "中"], rng.randint(1, 5))
        self.tables: list[Table] = []
        self.salt = 0

    # schema -----------------------------------------------------------------------------

    def make_table(self, index: int) -> tuple[Table, str]:
        rng = self.rng
        ncols = rng.randint(1, 20)
        identity = rng.choices(("default", "full", "index"), (6, 2, 2))[0]
        nkey = min(ncols, rng.choice((1, 1, 1, 2, 3)))
        if identity == "full" and ncols == 1:
            identity = "default"
        columns: list[Column] = []
        key_names: list[str] = []
        key_positions = set(rng.sample(range(ncols), nkey))
        for i in range(ncols):
            is_key = i in key_positions
            ctype = rand_type(rng, key=is_key)
            name = f"c{i}_{ctype.kind.replace('[]', '_arr')}"
            if rng.random() < 0.1:  # names that schema/field name adjustment rewrites
                name = rng.choice((f"Col {i} Mixed", f"{i}st-col", f"naïve_{i}", f'Quo"te{i}', f"UPPER{i}",
                                   f"ü{i}-x", f"{i}"))
            col = Column(name, ctype)
            if is_key:
                key_names.append(name)
                col.not_null = True
            else:
                col.not_null = rng.random() < 0.2
                if col.not_null or rng.random() < 0.25:
                    col.default = self.debezium_safe(col, ctype.value(rng, self.enum))
                if col.not_null and ctype.kind == "bytea" and "binary.handling.mode" in self.props:
                    # Debezium stops on a NOT NULL bytea as base64/hex text when a change leaves it
                    # out (a delete's old tuple): keep such columns nullable
                    col.not_null = False
            if ctype.serial:  # NOT NULL DEFAULT nextval(...) by itself
                col.not_null, col.default = True, None
            columns.append(col)
        name = f"t{index}" if rng.random() < 0.85 else \
            rng.choice((f"T{index} Mixed", f"{index}-tbl", f"tåble{index}", f"Tab{index}"))
        pk = key_names if identity != "full" and not (identity == "index" and rng.random() < 0.5) else []
        table = Table(name, columns, key_names, pk, identity)
        defs = []
        for c in columns:
            d = f"{_ident(c.name)} {c.type.sql}"
            if c.not_null:
                d += " NOT NULL"
            if c.default is not None:
                d += f" DEFAULT {c.default}"
            defs.append(d)
        if pk:
            defs.append("PRIMARY KEY (" + ", ".join(_ident(k) for k in pk) + ")")
        ddl = [f"CREATE TABLE {table.sql_name} ({', '.join(defs)});"]
        if identity == "full":
            ddl.append(f"ALTER TABLE {table.sql_name} REPLICA IDENTITY FULL;")
        elif identity == "index":
            if pk and ncols > nkey and rng.random() < 0.5:
                # a primary key, and another unique column as the replica identity
                other = rng.choice([c for c in columns if c.name not in key_names and c.type.keyable])  \
                    if any(c.name not in key_names and c.type.keyable for c in columns) else None
                if other is not None:
                    other.not_null, other.default = True, None
                    ddl[0] = ddl[0].replace(f"{_ident(other.name)} {other.type.sql}",
                                            f"{_ident(other.name)} {other.type.sql} NOT NULL", 1)
                    ddl[0] = ddl[0].replace(" NOT NULL NOT NULL", " NOT NULL")
                    table.address = key_names + [other.name]
                    index_cols = [other.name]
                else:
                    index_cols = key_names
            else:
                index_cols = key_names
            iname = _ident(f"{table.name.lower().replace(' ', '_')}_ri")
            ddl.append(f"CREATE UNIQUE INDEX {iname} ON {table.sql_name} ({', '.join(_ident(c) for c in index_cols)});")
            ddl.append(f"ALTER TABLE {table.sql_name} REPLICA IDENTITY USING INDEX {iname};")
        table.used = {c: set() for c in table.address}
        return table, "\n".join(ddl)

    # rows -------------------------------------------------------------------------------

    def fresh(self, table: Table, column: str) -> str:
        ctype = table.col(column).type
        for _ in range(200):
            v = ctype.key_value(self.rng)
            if v not in table.used[column]:
                table.used[column].add(v)
                return v
        raise AssertionError(f"no fresh value for {table.name}.{column}")

    def value(self, table: Table, col: Column, *, big_ok: bool = True) -> str:
        rng = self.rng
        if col.type.toastable and big_ok and rng.random() < 0.15:
            self.salt += 1
            return col.type.big_value(f"{self.seed}-{self.salt}")
        if not col.not_null and rng.random() < 0.12:
            return "NULL"
        return self.debezium_safe(col, col.type.value(rng, self.enum))

    def debezium_safe(self, col: Column, value: str) -> str:
        """Debezium stops on NaN/Infinity in a NOT NULL numeric column under decimal.handling.mode=precise
        (the connector fails: nothing to compare); such a value becomes 0 (no random draw, so the seed's
        other choices stay as they were)."""
        elem = col.type.elem
        if col.not_null and elem is not None and (elem.kind == "numeric" and ("NaN" in value or "Infinity" in value)
                                                  or elem.kind == "enum" and "NULL" in value):
            # Debezium cannot convert such an array (pgjdbc's BigDecimal; Connect's required enum
            # elements) and emits NULL, which a NOT NULL column's required field refuses: it stops
            return "'{}'"
        if col.not_null and col.type.kind == "varbit" and col.type.p == 1 and value == "B''":
            return "B'0'"  # an empty varbit(1) is NULL to Debezium, which a NOT NULL column refuses: it stops
        precise = self.props.get("decimal.handling.mode", "precise") == "precise"
        if precise and col.not_null and col.type.kind in ("numeric", "dom_numeric") \
                and value in ("'NaN'", "'Infinity'", "'-Infinity'"):
            return "0"
        return value

    def insert(self, table: Table, nrows: int) -> str:
        rng = self.rng
        cols = table.columns
        if rng.random() < 0.3:  # leave out some columns (their default or NULL)
            cols = [c for c in cols if c.name in table.address
                    or (c.not_null and c.default is None and not c.type.serial) or rng.random() < 0.6]
        rows = []
        for _ in range(nrows):
            row = {c: self.fresh(table, c) for c in table.address}
            table.rows.append(row)
            values = []
            for c in cols:
                if c.name in row:
                    values.append(row[c.name])
                elif (c.default is not None or c.type.serial) and rng.random() < 0.15:
                    values.append("DEFAULT")
                else:
                    values.append(self.value(table, c))
            rows.append("(" + ", ".join(values) + ")")
        names = "" if cols == table.columns and rng.random() < 0.5 else \
            " (" + ", ".join(_ident(c.name) for c in cols) + ")"
        if not cols:
            return f"INSERT INTO {table.sql_name} DEFAULT VALUES"
        return f"INSERT INTO {table.sql_name}{names} VALUES " + ", ".join(rows)

    def statement(self) -> str | None:
        rng = self.rng
        table = rng.choice(self.tables)
        ops = ["insert"] * 4
        if table.rows:
            ops += ["update"] * 5 + ["update_key"] * 2 + ["delete"] * 2
        op = rng.choice(ops)
        if op == "insert":
            return self.insert(table, rng.choice((1, 1, 2, 3, 5)))
        row = rng.choice(table.rows)
        if op == "delete":
            table.rows.remove(row)
            return f"DELETE FROM {table.sql_name} WHERE {table.where(row)}"
        if op == "update_key":
            col = rng.choice(table.address)
            new = dict(row)
            new[col] = self.fresh(table, col)
            table.rows[table.rows.index(row)] = new
            return f"UPDATE {table.sql_name} SET {_ident(col)} = {new[col]} WHERE {table.where(row)}"
        others = [c for c in table.columns if c.name not in table.address]
        if not others:
            return f"UPDATE {table.sql_name} SET {_ident(table.address[0])} = {_ident(table.address[0])} " \
                   f"WHERE {table.where(row)}"
        chosen = rng.sample(others, min(len(others), rng.choice((1, 1, 2, 3))))
        sets = ", ".join(f"{_ident(c.name)} = {self.value(table, c)}" for c in chosen)
        return f"UPDATE {table.sql_name} SET {sets} WHERE {table.where(row)}"

    def ddl(self) -> str:
        rng = self.rng
        table = rng.choice(self.tables)
        droppable = [c for c in table.columns if c.name not in table.address]
        if droppable and rng.random() < 0.4:
            col = rng.choice(droppable)
            table.columns.remove(col)
            return f"ALTER TABLE {table.sql_name} DROP COLUMN {_ident(col.name)}"
        ctype = rand_type(rng)
        table.added += 1
        col = Column(f"added{table.added}_{ctype.kind.replace('[]', '_arr')}", ctype)
        text = f"ALTER TABLE {table.sql_name} ADD COLUMN {_ident(col.name)} {ctype.sql}"
        if ctype.serial:
            col.not_null = True
        elif rng.random() < 0.5:
            col.default = ctype.value(rng, self.enum)
            col.not_null = rng.random() < 0.3
            col.default = self.debezium_safe(col, col.default)
            if col.not_null and ctype.kind == "bytea" and "binary.handling.mode" in self.props:
                col.not_null = False
            text += (" NOT NULL" if col.not_null else "") + f" DEFAULT {col.default}"
        table.columns.append(col)
        return text

    def truncate(self) -> str:
        tables = self.rng.sample(self.tables, self.rng.choice((1, 1, 2)) if len(self.tables) > 1 else 1)
        for t in tables:
            t.rows.clear()
        return "TRUNCATE " + ", ".join(t.sql_name for t in tables)

    # column properties ----------------------------------------------------------------

    def column_properties(self) -> None:
        """Debezium's column.* and message.key.columns properties, on random columns of the tables made.

        Key columns (primary key, replica identity index, message.key.columns) are never left out by
        column.exclude.list/column.include.list: Debezium then keeps the key field but fills it with
        the type's zero (its key is read from the filtered value), so the key loses the row's identity.
        message.key.columns names only columns of types Debezium converts: a column it leaves out
        (pg_lsn, box without include.unknown.datatypes) gives Debezium an empty key struct."""
        rng, props = self.rng, self.props
        keyed: set[tuple[str, str]] = {(t.name, c) for t in self.tables for c in t.address + t.pk}
        if rng.random() < 0.15:
            plain = re.compile(r"[A-Za-z0-9_]+$")
            entries = []
            for t in rng.sample(self.tables, rng.randint(1, len(self.tables))):
                # a value Debezium cannot convert stops it when it is in the key: not varbit (an empty
                # varbit(1): Integer.valueOf("", 2)), not numeric (NaN/Infinity under precise)
                names = [c.name for c in t.columns if plain.match(c.name)
                         and c.type.kind not in UNKNOWN_KINDS + ("varbit", "numeric", "dom_numeric")]
                if plain.match(t.name) and names:
                    chosen = rng.sample(names, min(len(names), rng.randint(1, 2)))
                    keyed.update((t.name, c) for c in chosen)
                    entries.append(f"public.{t.name}:" + ",".join(chosen))
            if entries:
                props["message.key.columns"] = ";".join(entries)
        columns = [(t, c) for t in self.tables for c in t.columns]

        def pick(n: int, only: Callable[[Table, Column], bool] = lambda t, c: True) -> list[str]:
            chosen = [tc for tc in columns if only(*tc)]
            return [re.escape(f"public.{t.name}.{c.name}") for t, c in rng.sample(chosen, min(len(chosen), n))]

        def value_column(t: Table, c: Column) -> bool:
            return (t.name, c.name) not in keyed

        if rng.random() < 0.12:
            chosen = pick(rng.randint(1, 3), value_column)
            if chosen:
                props["column.exclude.list"] = ",".join(chosen)
        elif rng.random() < 0.1:
            # the harness's fence rows must keep their "what" column
            chosen = pick(rng.randint(1, 2 * len(columns) // 3 + 1), value_column)
            chosen += [re.escape(f"public.{t}.{c}") for t, c in sorted(keyed)] + [r"public\.harness_fence\..*"]
            props["column.include.list"] = ",".join(chosen)
        for prop in (f"column.mask.with.{rng.randint(0, 8)}.chars", f"column.truncate.to.{rng.randint(0, 8)}.chars",
                     f"column.mask.hash.SHA-256.with.salt.{rng.choice(('pepper', 'CzQMA0cB5K', 's4lt-x'))}",
                     "column.propagate.source.type"):
            if rng.random() < 0.15:
                chosen = pick(rng.randint(1, 3), value_column)
                if chosen:
                    props[prop] = ",".join(chosen)
        if rng.random() < 0.15:
            props["datatype.propagate.source.type"] = ",".join(
                r".+\." + n for n in rng.sample(PROPAGATED_TYPES, rng.randint(1, 4)))

    # all of it --------------------------------------------------------------------------

    def generate(self) -> Workload:
        rng = self.rng
        props = self.props
        if rng.random() < 0.3:
            props["provide.transaction.metadata"] = "true"
        if rng.random() < 0.25:
            props["tombstones.on.delete"] = "false"
        for prop, options, weights in (
            ("decimal.handling.mode", ("precise", "string", "double"), (6, 2, 2)),
            ("time.precision.mode", ("adaptive", "connect", "adaptive_time_microseconds"), (6, 2, 2)),
            ("binary.handling.mode", ("bytes", "base64", "hex", "base64-url-safe"), (6, 2, 2, 1)),
            ("interval.handling.mode", ("numeric", "string"), (7, 3)),
            ("hstore.handling.mode", ("json", "map"), (7, 3)),
            ("include.unknown.datatypes", ("false", "true"), (7, 3)),
            ("money.fraction.digits", ("2", "0", "1", "3", "4"), (12, 1, 1, 1, 1)),
            ("field.name.adjustment.mode", ("none", "avro"), (7, 3)),
            ("schema.name.adjustment.mode", ("none", "avro"), (7, 3)),
        ):
            choice = rng.choices(options, weights)[0]
            if choice != options[0]:
                props[prop] = choice
        truncates = rng.random() < 0.5
        if truncates:
            props["skipped.operations"] = "none"

        setup = [EXTENSIONS_AND_DOMAINS, "CREATE TYPE rmood AS ENUM (" + ", ".join(q(e) for e in self.enum) + ");"]
        for i in range(rng.randint(2, 5)):
            table, ddl = self.make_table(i)
            self.tables.append(table)
            setup.append(ddl)
        self.column_properties()
        for table in self.tables:
            for _ in range(rng.randint(0, 3)):
                setup.append(self.insert(table, rng.randint(1, 4)) + ";")

        txns: list[str] = []
        # every table gets a streamed insert first, so no table's topic stays empty
        txns.append("; ".join(self.insert(t, 1) for t in self.tables))
        for _ in range(rng.randint(8, 20)):
            r = rng.random()
            if r < 0.1:
                # Debezium reads a changed table's columns (defaults, nullability) from the
                # catalog when it meets the change, not as of it: DDL waits until both
                # connectors have caught up, or the catalog they read depends on timing
                txns.append(SYNC)
                txns.append(self.ddl())
            elif r < 0.14 and truncates:
                txns.append(self.truncate())
            else:
                stmts = [self.statement() for _ in range(rng.randint(1, 6))]
                txns.append("; ".join(s for s in stmts if s))
        tables = [f"public.{t.name}" for t in self.tables]
        return Workload(self.seed, props, "\n".join(setup), txns, tables)


def generate(seed: int) -> Workload:
    return Generator(seed).generate()


def parse_seeds(text: str) -> list[int]:
    """``"1,5,100-119"`` -> [1, 5, 100, ..., 119]."""
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if "-" in part[1:]:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


if __name__ == "__main__":
    for s in parse_seeds(sys.argv[1] if len(sys.argv) > 1 else "1"):
        w = generate(s)
        print(f"-- seed {s}: {json.dumps(w.properties)}")
        print(w.setup)
        for t in w.transactions:
            print(t if t == SYNC else t + ";")
