"""Column selection, masking and message keys: Debezium's ``column.*`` and ``message.key.columns``.

What goes into a table's value and key, computed once per table version from
the ``EnvelopeOptions`` (``ColumnRules(options).plan(...)``), exactly as
Debezium's ``TableSchemaBuilder``, ``ColumnMappers`` and ``Key`` do it:

* regexes are matched case-insensitively against the *whole* of
  ``schema.table.column`` (``schema.table.typname`` for
  ``datatype.propagate.source.type``); lists are split on commas not escaped
  as ``\\,`` (so ``a{1,3}`` must be written ``a{1\\,3}``, as in Debezium);
* ``column.include.list``/``column.exclude.list`` shape the value only; the
  key always keeps its columns;
* one column mapper per value column, the first rule that matches in this
  order: ``column.truncate.to.N.chars``, ``column.mask.with.N.chars``,
  ``column.propagate.source.type``, ``datatype.propagate.source.type``,
  ``column.mask.hash.*``. Mappers never touch the key. Truncating and masking
  keep the field's type; they add the schema parameter ``truncateLength`` /
  ``masked``; masking and hashing change only CHAR/VARCHAR columns (text
  types, enums), truncation only string values;
* ``message.key.columns`` (``<table regex>:<col>,<col>;...``) picks key
  columns in the order listed; a table it does not match keeps its primary
  key, and a table with neither has a null key;
* ``schema.name.adjustment.mode``/``field.name.adjustment.mode`` (``none``,
  ``avro``, ``avro_unicode``) rewrite schema and field names for Avro.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Final, Iterable, Mapping, Pattern, Protocol

from cdcd.debezium.java import java_hex_char, java_prefix, java_serialized_string
from cdcd.debezium.types.registry import ColumnCodec
from cdcd.debezium.types.source import is_character, length_and_scale, snapshot_length_and_scale, snapshot_type_name
from cdcd.errors import ConfigError
from cdcd.source.tables import ColumnInfo, TableInfo

NAME_ADJUSTMENT_MODES: Final = ("none", "avro", "avro_unicode")
OPERATIONS: Final = ("c", "u", "d", "t")
# Java MessageDigest standard names -> hashlib names (MD2 has no hashlib counterpart).
_DIGESTS: Final = {
    "MD5": "md5", "SHA": "sha1", "SHA1": "sha1", "SHA-1": "sha1", "SHA-224": "sha224", "SHA-256": "sha256",
    "SHA-384": "sha384", "SHA-512": "sha512", "SHA-512/224": "sha512_224", "SHA-512/256": "sha512_256",
    "SHA3-224": "sha3_224", "SHA3-256": "sha3_256", "SHA3-384": "sha3_384", "SHA3-512": "sha3_512",
}
_RULE_PROPERTIES: Final = (
    (re.compile(r"column\.truncate\.to\.(\d+)\.chars"), "truncate"),
    (re.compile(r"column\.mask\.with\.(\d+)\.chars"), "mask"),
    (re.compile(r"column\.mask\.hash\.v2\.([^.]+)\.with\.salt\.(.+)"), "hash2"),
    (re.compile(r"column\.mask\.hash\.([^.]+)\.with\.salt\.(.+)"), "hash1"),
)
_KEY_ENTRY: Final = re.compile(r"\s*([^\s:]+):([^:\s]+)\s*")


@dataclass(frozen=True, slots=True)
class HashMask:
    """One ``column.mask.hash[.v2].<algorithm>.with.salt.<salt>`` property.

    Version 1 hashes Java's serialized form of the string (what Debezium's
    ``HashingByteArrayStrategy.V1`` feeds the digest), version 2 its UTF-8 bytes.
    """

    algorithm: str
    salt: str
    columns: tuple[str, ...]
    version: int = 1


def split_regex_list(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """A Debezium comma-separated regex list: split on ``,`` unless escaped as ``\\,``; trimmed, empties dropped."""
    if value is None:
        return ()
    if not isinstance(value, str):
        return tuple(v for item in value for v in split_regex_list(item))
    parts: list[str] = []
    start = i = 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == ",":
            parts.append(value[start:i])
            start = i + 1
        i += 1
    parts.append(value[start:])
    return tuple(p.strip().replace("\\,", ",") for p in parts if p.strip())


def parse_message_key_columns(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``inventory.customers:pk1,pk2;(.*).purchaseorders:pk3`` to ``((table_regex, (column_regex, ...)), ...)``."""
    entries = []
    for part in text.split(";"):
        if not part.strip():
            continue
        match = _KEY_ENTRY.fullmatch(part)
        if match is None:
            raise ConfigError(f"message.key.columns: {part!r} is not <schema.table regex>:<column>[,<column>...] "
                              "(entries separated by ';', no spaces)")
        entries.append((match[1], tuple(c for c in match[2].split(",") if c)))
    return tuple(entries)


def column_rule_options(properties: Mapping[str, Any]) -> dict[str, Any]:
    """``EnvelopeOptions`` arguments from the dynamic properties (``column.mask.with.5.chars`` ...); others ignored."""
    truncate: dict[int, tuple[str, ...]] = {}
    mask: dict[int, tuple[str, ...]] = {}
    hashes: list[HashMask] = []
    for key, value in properties.items():
        for pattern, kind in _RULE_PROPERTIES:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            columns = split_regex_list(value)
            if kind == "truncate":
                truncate[int(match[1])] = truncate.get(int(match[1]), ()) + columns
            elif kind == "mask":
                mask[int(match[1])] = mask.get(int(match[1]), ()) + columns
            else:
                hashes.append(HashMask(match[1], match[2], columns, 2 if kind == "hash2" else 1))
            break
    return {"column_truncate_to": truncate, "column_mask_with": mask, "column_mask_hash": tuple(hashes)}


def digest_name(algorithm: str) -> str:
    """The hashlib name of a Java ``MessageDigest`` algorithm (case-insensitive), or ConfigError."""
    name = _DIGESTS.get(algorithm.upper())
    if name is None:
        raise ConfigError(f"column.mask.hash: hash algorithm {algorithm!r} is not supported; use one of "
                          f"{', '.join(sorted(_DIGESTS))}")
    return name


def adjust_name(name: str, mode: str, *, field: bool = False) -> str:
    """Debezium's ``SchemaNameAdjuster``: Avro-safe names (fields may not contain ``.``).

    ``avro`` replaces each invalid UTF-16 unit with ``_`` (a leading digit becomes ``_`` + the
    digit: ``1st`` -> ``_1st``); ``avro_unicode`` with ``_u`` + its hex (``_`` itself becomes ``_u005f``).
    """
    if mode == "none" or not name or (name.isascii() and _valid(name, mode, field)):
        return name
    unicode = mode == "avro_unicode"
    data = name.encode("utf-16-le", "surrogatepass")
    out = []
    for i in range(0, len(data), 2):
        unit = data[i] | data[i + 1] << 8
        if _valid_unit(unit, i == 0, unicode, field):
            out.append(chr(unit))
        elif unicode:
            out.append("_u" + java_hex_char(unit))
        else:
            # a leading digit is kept after the "_" (Debezium's validFullname, so that "1a" and "2a" differ)
            out.append("_" + chr(unit) if i == 0 and chr(unit).isdecimal() else "_")
    return "".join(out)


def _valid(name: str, mode: str, field: bool) -> bool:
    unicode = mode == "avro_unicode"
    return all(_valid_unit(ord(c), i == 0, unicode, field) for i, c in enumerate(name))


def _valid_unit(unit: int, first: bool, unicode: bool, field: bool) -> bool:
    if 65 <= unit <= 90 or 97 <= unit <= 122 or (unit == 95 and not unicode):
        return True
    return not first and (48 <= unit <= 57 or (unit == 46 and not field))


def _patterns(regexes: Iterable[str], prop: str) -> list[Pattern[str]]:
    out = []
    for regex in regexes:
        try:
            out.append(re.compile(regex, re.IGNORECASE))
        except re.error as exc:
            raise ConfigError(f"{prop}: bad regex {regex!r}: {exc}") from None
    return out


def with_parameters(schema: Mapping[str, Any], extra: Mapping[str, str]) -> dict[str, Any]:
    """The field schema with ``extra`` appended to its parameters, keeping JsonConverter's key order."""
    out: dict[str, Any] = {}
    done = False
    for key, value in schema.items():
        if key == "parameters":
            out[key] = {**value, **extra}
            done = True
            continue
        if not done and key in ("default", "field"):
            out["parameters"] = dict(extra)
            done = True
        out[key] = value
    if not done:
        out["parameters"] = dict(extra)
    return out


Mapper = Callable[[ColumnCodec, ColumnInfo], ColumnCodec]


def _mapped_values(codec: ColumnCodec, schema: dict[str, Any], fn: Callable[[Any], Any],
                   null_too: bool = False) -> ColumnCodec:
    """``fn`` after the column's converter; also on the NOT NULL fallback and the TOAST placeholder."""
    convert = codec.convert
    null_value = fn(codec.null_value) if null_too or not codec.optional else codec.null_value
    return replace(codec, schema=schema, convert=lambda text: fn(convert(text)), null_value=null_value,
                   unavailable=fn(codec.unavailable))


def _cut_base64(value: str, n: int) -> str:
    data = binascii.a2b_base64(value)
    return value if len(data) <= n else binascii.b2a_base64(data[:n], newline=False).decode("ascii")


def truncate_mapper(n: int, snapshot: bool = False) -> Mapper:
    """``TruncateStrings``: applies when the column may be longer than ``n``; cuts string values to ``n`` UTF-16 units.

    Snapshot rows have the JDBC length (an unconstrained ``numeric`` is 0 there: never truncated)."""
    def apply(codec: ColumnCodec, column: ColumnInfo) -> ColumnCodec:
        length = (snapshot_length_and_scale(column) if snapshot else length_and_scale(column))[0]
        if 0 <= length <= n:
            return codec
        schema = with_parameters(codec.schema, {"truncateLength": str(n)})
        if codec.schema["type"] == "bytes" and codec.schema.get("name") is None:
            # a ByteBuffer (bytea in bytes mode, unknown types as bytes) is cut to n bytes too
            return _mapped_values(codec, schema, lambda v: _cut_base64(v, n) if isinstance(v, str) else v)
        if codec.schema["type"] != "string":
            return replace(codec, schema=schema)
        return _mapped_values(codec, schema, lambda v: java_prefix(v, n) if isinstance(v, str) else v)
    return apply


def mask_mapper(n: int) -> Mapper:
    """``MaskStrings``: a character column's every value (NULL included) becomes ``n`` asterisks."""
    mask = "*" * n

    def apply(codec: ColumnCodec, column: ColumnInfo) -> ColumnCodec:
        schema = with_parameters(codec.schema, {"masked": "true"})
        if not is_character(column):
            return replace(codec, schema=schema)
        return _mapped_values(codec, schema, lambda v: mask, null_too=True)
    return apply


def hash_mapper(rule: HashMask) -> Mapper:
    """``MaskStrings`` by hashing: hex digest of salt + value, cut to the column length."""
    name, salt = digest_name(rule.algorithm), rule.salt.encode("utf-8")

    def apply(codec: ColumnCodec, column: ColumnInfo) -> ColumnCodec:
        schema = with_parameters(codec.schema, {"masked": "true"})
        if not is_character(column):
            return replace(codec, schema=schema)
        length = length_and_scale(column)[0]

        def pseudonym(value: Any) -> Any:
            if not isinstance(value, str):
                return value
            data = java_serialized_string(value) if rule.version == 1 else value.encode("utf-8")
            digest = hashlib.new(name, salt + data).hexdigest()
            return java_prefix(digest, length) if length > 0 else digest
        return _mapped_values(codec, schema, pseudonym)
    return apply


def propagate_mapper(codec: ColumnCodec, column: ColumnInfo, snapshot: bool = False) -> ColumnCodec:
    """``PropagateSourceMetadataToSchemaParameter``: type, length, scale and name as schema parameters.

    Snapshot rows have the column as JDBC metadata describes it (``snapshot_length_and_scale``).
    """
    length, scale = snapshot_length_and_scale(column) if snapshot else length_and_scale(column)
    type_name = snapshot_type_name(column) if snapshot else column.type_name
    params = {"__debezium.source.column.type": type_name.upper()}
    if length != -1:
        params["__debezium.source.column.length"] = str(length)
    if scale is not None:
        params["__debezium.source.column.scale"] = str(scale)
    params["__debezium.source.column.name"] = column.name
    return replace(codec, schema=with_parameters(codec.schema, params))


def snapshot_propagate_mapper(codec: ColumnCodec, column: ColumnInfo) -> ColumnCodec:
    return propagate_mapper(codec, column, snapshot=True)


@dataclass(frozen=True, slots=True)
class TablePlan:
    """What a table version's key and value hold: (codec, tuple index) pairs and the schema names."""

    value: tuple[tuple[ColumnCodec, int], ...]
    key: tuple[tuple[ColumnCodec, int], ...]
    key_in_value: bool
    """The key payload can be taken from the value image (all key columns there, unmapped)."""
    fallback_columns: tuple[str, ...]
    value_name: str
    key_name: str
    envelope_name: str


class RuleOptions(Protocol):
    """What ``ColumnRules`` reads; ``EnvelopeOptions`` has it all (a protocol: the options import the rules)."""

    @property
    def column_include_list(self) -> tuple[str, ...]: ...
    @property
    def column_exclude_list(self) -> tuple[str, ...]: ...
    @property
    def column_truncate_to(self) -> Mapping[int, tuple[str, ...]]: ...
    @property
    def column_mask_with(self) -> Mapping[int, tuple[str, ...]]: ...
    @property
    def column_mask_hash(self) -> tuple[HashMask, ...]: ...
    @property
    def column_propagate_source_type(self) -> tuple[str, ...]: ...
    @property
    def datatype_propagate_source_type(self) -> tuple[str, ...]: ...
    @property
    def message_key_columns(self) -> str: ...
    @property
    def schema_name_adjustment_mode(self) -> str: ...
    @property
    def field_name_adjustment_mode(self) -> str: ...
    @property
    def snapshot_reads(self) -> bool: ...


class ColumnRules:
    """The column options of one ``EnvelopeOptions``, compiled (raises ``ConfigError`` on bad ones)."""

    def __init__(self, options: RuleOptions) -> None:
        self._snapshot = options.snapshot_reads
        self._schema_mode = options.schema_name_adjustment_mode
        self._field_mode = options.field_name_adjustment_mode
        self._include = _patterns(options.column_include_list, "column.include.list")
        self._exclude = _patterns(options.column_exclude_list, "column.exclude.list")
        rules: list[tuple[list[Pattern[str]], bool, Mapper]] = []
        for n, regexes in options.column_truncate_to.items():
            if n < 0:  # 0 is allowed, as in Debezium's TruncateColumn: every string value becomes ""
                raise ConfigError(f"column.truncate.to.{n}.chars: the length must be 0 or more")
            rules.append((_patterns(regexes, f"column.truncate.to.{n}.chars"), False, truncate_mapper(n, options.snapshot_reads)))
        for n, regexes in options.column_mask_with.items():
            if n < 0:
                raise ConfigError(f"column.mask.with.{n}.chars: the length must be 0 or more")
            rules.append((_patterns(regexes, f"column.mask.with.{n}.chars"), False, mask_mapper(n)))
        propagate = snapshot_propagate_mapper if options.snapshot_reads else propagate_mapper
        rules.append((_patterns(options.column_propagate_source_type, "column.propagate.source.type"),
                      False, propagate))
        rules.append((_patterns(options.datatype_propagate_source_type, "datatype.propagate.source.type"),
                      True, propagate))
        for h in sorted(options.column_mask_hash, key=lambda h: h.version):
            rules.append((_patterns(h.columns, "column.mask.hash"), False, hash_mapper(h)))
        self._rules = [r for r in rules if r[0]]
        self._keys = [
            pattern for table, columns in parse_message_key_columns(options.message_key_columns)
            for pattern in _patterns([f"{table}.{c}" for c in columns], "message.key.columns")
        ]

    def _selected(self, qualified_column: str) -> bool:
        if self._include:
            return any(p.fullmatch(qualified_column) for p in self._include)
        return not any(p.fullmatch(qualified_column) for p in self._exclude)

    def _mapper(self, prefix: str, column: ColumnInfo) -> Mapper | None:
        for patterns, by_type, mapper in self._rules:
            type_name = snapshot_type_name(column) if self._snapshot else column.type_name
            target = f"{prefix}{type_name if by_type else column.name}"
            if any(p.fullmatch(target) for p in patterns):
                return mapper
        return None

    def key_indexes(self, table: TableInfo) -> list[int]:
        """``message.key.columns`` matches in the order listed, else the primary key."""
        found: list[int] = []
        for pattern in self._keys:
            for i, column in enumerate(table.columns):
                if i not in found and pattern.fullmatch(f"{table.schema}.{table.name}.{column.name}"):
                    found.append(i)
        if found:
            return found
        position = {c.name: i for i, c in enumerate(table.columns)}
        return [position[k] for k in table.primary_key if k in position]

    def _rename(self, codec: ColumnCodec) -> ColumnCodec:
        name = adjust_name(codec.name, self._field_mode, field=True)
        if name == codec.name:
            return codec
        return replace(codec, name=name, schema={**codec.schema, "field": name})

    def plan(self, table: TableInfo, codecs: list[ColumnCodec], topic: str) -> TablePlan:
        prefix = f"{table.schema}.{table.name}."
        value: list[tuple[ColumnCodec, int]] = []
        mapped: set[int] = set()
        for i, column in enumerate(table.columns):
            codec = codecs[i]
            if codec.dropped or not self._selected(prefix + column.name):
                continue
            mapper = self._mapper(prefix, column)
            if mapper is not None:
                codec = mapper(codec, column)
                mapped.add(i)
            value.append((self._rename(codec), i))
        key = [(self._rename(codecs[i]), i) for i in self.key_indexes(table) if not codecs[i].dropped]
        for columns in (value, key):
            names = [c.name for c, _ in columns]
            if len(set(names)) != len(names):
                raise ConfigError(f"field.name.adjustment.mode={self._field_mode} gives two columns of "
                                  f"{table.qualified_name} the same field name ({', '.join(names)}); "
                                  "rename a column or use another mode")
        in_value = {i for _, i in value}

        adjust = self._schema_mode
        return TablePlan(
            tuple(value), tuple(key), all(i in in_value and i not in mapped for _, i in key),
            tuple(table.columns[i].name for i, c in enumerate(codecs) if c.is_fallback and (c.dropped or i in in_value)),
            adjust_name(f"{topic}.Value", adjust), adjust_name(f"{topic}.Key", adjust),
            adjust_name(f"{topic}.Envelope", adjust),
        )
