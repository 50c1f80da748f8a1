"""``EnvelopeOptions``: the Debezium connector options that shape events, checked when built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from cdcd.debezium.column_rules import NAME_ADJUSTMENT_MODES, OPERATIONS, ColumnRules, HashMask
from cdcd.debezium.types import TypeOptions
from cdcd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class EnvelopeOptions:
    """The Debezium connector options that shape events (same names, snake_case); see docs/debezium-compatibility.md.

    Regex lists are already split (``columns.split_regex_list``); the dynamic
    ``column.mask.with.N.chars`` / ``column.truncate.to.N.chars`` /
    ``column.mask.hash.*`` properties become dicts and ``HashMask`` s
    (``columns.column_rule_options``). Invalid values raise ``ConfigError``.
    """

    topic_prefix: str  # also source.name
    database: str  # source.db
    connector_version: str  # source.version
    decimal_handling_mode: str = "precise"
    time_precision_mode: str = "adaptive"
    binary_handling_mode: str = "bytes"
    tombstones_on_delete: bool = True
    column_exclude_list: tuple[str, ...] = ()  # regexes, case-insensitive fullmatch on "schema.table.column"
    unavailable_value_placeholder: str = "__debezium_unavailable_value"
    interval_handling_mode: str = "numeric"
    hstore_handling_mode: str = "json"
    money_fraction_digits: int = 2
    include_unknown_datatypes: bool = False
    snapshot_reads: bool = False
    """Encoders of snapshot rows: dates as Debezium's JDBC snapshot reads them (``cdcd.debezium.types.javasql``)."""
    replace_null_with_default: bool = True
    """JsonConverter's ``replace.null.with.default`` (true by default): NULL prints as the schema default."""
    column_include_list: tuple[str, ...] = ()  # exclusive with column_exclude_list
    column_mask_with: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # N -> column regexes
    column_truncate_to: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # N -> column regexes
    column_mask_hash: tuple[HashMask, ...] = ()
    column_propagate_source_type: tuple[str, ...] = ()  # column regexes
    datatype_propagate_source_type: tuple[str, ...] = ()  # regexes on "schema.table.typname"
    message_key_columns: str = ""  # "<table regex>:<col>,<col>;<table regex>:<col>"
    schema_name_adjustment_mode: str = "none"  # none | avro | avro_unicode
    field_name_adjustment_mode: str = "none"  # none | avro | avro_unicode
    skipped_operations: tuple[str, ...] = ()  # of c, u, d, t (Debezium's default is ("t",))

    def __post_init__(self) -> None:
        """Raise ``ConfigError`` for any invalid option (every regex, length, mode, algorithm, key entry)."""
        if self.column_include_list and self.column_exclude_list:
            raise ConfigError("column.include.list and column.exclude.list are mutually exclusive (as in Debezium)")
        for name in ("schema_name_adjustment_mode", "field_name_adjustment_mode"):
            if getattr(self, name) not in NAME_ADJUSTMENT_MODES:
                raise ConfigError(f"{name.replace('_', '.')}={getattr(self, name)!r}: use one of "
                                  f"{', '.join(NAME_ADJUSTMENT_MODES)}")
        unknown = set(self.skipped_operations) - set(OPERATIONS)
        if unknown:
            raise ConfigError(f"skipped.operations: unknown operation(s) {', '.join(sorted(unknown))}; "
                              "use c, u, d, t or none")
        self.type_options()
        ColumnRules(self)

    def type_options(self) -> TypeOptions:
        return TypeOptions(
            self.decimal_handling_mode, self.time_precision_mode, self.binary_handling_mode,
            self.interval_handling_mode, self.hstore_handling_mode, self.money_fraction_digits,
            self.unavailable_value_placeholder, self.include_unknown_datatypes, self.snapshot_reads,
        )
