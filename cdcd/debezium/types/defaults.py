"""Column defaults: ``pg_get_expr`` text to the literal Debezium puts in the schema.

Debezium (``PostgresDefaultValueConverter``) does not evaluate expressions; it
pattern-matches the default's text, and we reproduce its rules exactly because
the result is part of every schema:

* a quoted literal (``'n/a'::text``, ``'-1'::integer``) yields the text of the
  first quoted literal, its doubled quotes undone (``'it''s'`` yields ``it's``);
* an unquoted text (``42``, ``true``, ``9.99``) is taken as is;
* a function call (``nextval('t_id_seq'::regclass)``, ``now()``,
  ``CURRENT_TIMESTAMP``, ``LOCALTIME``...) yields the type's "zero" placeholder
  (``0``, ``false``, ``''``, ``{}``, epoch), documented by Debezium as "the
  equivalent of 0 for the given data type";
* ``NULL::type`` yields no default for numbers and booleans only;
* anything the type's parser rejects (``(-1)``) yields none.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Final

from cdcd.debezium.types._schema import NO_DEFAULT, Converter

_LITERAL: Final = re.compile(r"'([^']*(?:''[^']*)*)'")
# Debezium's ^[(]?[A-Za-z0-9_.]+\((?:.+(?:, ?.+)*)?\) matched with find(); the
# inner group accepts any single-line text, so this is the same language
# without the exponential backtracking.
_FUNCTION: Final = re.compile(r"\(?[A-Za-z0-9_.]+\(.*\)")
# SQL-standard date/time functions without parentheses (pg_get_expr prints them upper case).
_CURRENT_DATE_TIMES: Final = frozenset({"current_timestamp", "current_time", "current_date", "localtime",
                                        "localtimestamp"})
_INT: Final = re.compile(r"[+-]?[0-9]+")

# The generated-value placeholder per mapper (Debezium's createDefaultValueMappers).
GENERATED: Final[dict[str, str]] = {
    "bit": "00", "varbit": "0", "bool": "false",
    "bpchar": "", "varchar": "", "text": "",
    "numeric": "0.0", "float4": "0.0", "float8": "0.0",
    "int2": "0", "int4": "0", "int8": "0",
    "json": "{}", "jsonb": "{}", "xml": "",
    "uuid": "00000000-0000-0000-0000-000000000000",
    "date": "1970-01-01", "time": "00:00", "timestamp": "1970-01-01", "timestamptz": "1970-01-01",
    "interval": "epoch",
}
_NULLABLE_LITERAL: Final = frozenset({"bool", "numeric", "float4", "float8", "int2", "int4", "int8"})
_INT_RANGES: Final = {"int2": 16, "int4": 32, "int8": 64}


def extract(expr: str, generated: str) -> str:
    """The literal text Debezium reads from a default expression."""
    if _FUNCTION.match(expr) or expr.lower() in _CURRENT_DATE_TIMES:
        return generated
    if "'" not in expr:
        return expr
    m = _LITERAL.search(expr)
    if m is None:  # an unbalanced quote: Debezium's matcher would throw, i.e. no default
        raise ValueError(expr)
    return m.group(1).replace("''", "'")


def default_parser(type_name: str, convert: Converter) -> Callable[[str], Any] | None:
    """The default parser for a Debezium-mapped type (by ``typname``), or None if Debezium has no mapper."""
    generated = GENERATED.get(type_name)
    if generated is None:
        return None
    null_aware = type_name in _NULLABLE_LITERAL
    bits = _INT_RANGES.get(type_name)

    def parse(expr: str) -> Any:
        if null_aware and expr.startswith("NULL::"):
            return NO_DEFAULT
        try:
            text = extract(expr, generated)
            if type_name == "bool":
                return text.lower() == "true"  # Boolean.parseBoolean
            if type_name == "numeric" and text.lstrip("+-").lower() in ("nan", "infinity", "inf"):
                return NO_DEFAULT  # new BigDecimal("NaN") throws, whatever decimal.handling.mode says
            if bits is not None:
                if not _INT.fullmatch(text):
                    return NO_DEFAULT
                value = int(text)
                return value if -(1 << (bits - 1)) <= value < (1 << (bits - 1)) else NO_DEFAULT
            return convert(text)
        except (ValueError, ArithmeticError, IndexError):
            return NO_DEFAULT

    return parse
