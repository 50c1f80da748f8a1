"""The outbox EventRouter's options: Debezium's property names, checked when built."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Final, Mapping

from cdcd.debezium.transforms._common import (
    as_bool,
    as_list,
    as_optional_str,
    java_regex,
    parse_replacement,
    select_properties,
)
from cdcd.errors import ConfigError

PLACEMENTS: Final = ("header", "envelope", "partition")
INVALID_OP_BEHAVIORS: Final = ("warn", "error", "fatal")
NULL_BEHAVIORS: Final = ("ignore", "optional_bytes")


@dataclass(frozen=True, slots=True)
class AdditionalField:
    """One ``column:placement[:alias]`` of ``table.fields.additional.placement``."""

    column: str
    placement: str  # header | envelope | partition
    alias: str

    @classmethod
    def parse(cls, text: str) -> AdditionalField:
        parts = [p.strip() for p in text.split(":")]
        if len(parts) not in (2, 3) or not parts[0] or parts[1].lower() not in PLACEMENTS:
            raise ConfigError(f"table.fields.additional.placement: {text!r} is not column:"
                              f"{'|'.join(PLACEMENTS)}[:alias]")
        return cls(parts[0], parts[1].lower(), parts[2] if len(parts) == 3 and parts[2] else parts[0])


@dataclass(frozen=True, slots=True)
class OutboxOptions:
    """EventRouter's options (snake_case of the Debezium property names) plus cdcd's own two."""

    table_field_event_id: str = "id"
    table_field_event_key: str = "aggregateid"
    table_field_event_type: str = "type"
    """Accepted for compatibility; like Debezium, the type is only emitted when placed."""
    table_field_event_payload: str = "payload"
    table_field_event_timestamp: str | None = None
    table_field_event_schema_version: str | None = None
    table_fields_additional_placement: tuple[AdditionalField, ...] = ()
    table_fields_additional_error_on_missing: bool = True
    table_expand_json_payload: bool = False
    table_json_payload_null_behavior: str = "ignore"
    table_op_invalid_behavior: str = "warn"
    route_by_field: str = "aggregatetype"
    route_topic_regex: str = "(?<routedByValue>.*)"
    route_topic_replacement: str = "outbox.event.${routedByValue}"
    route_tombstone_on_empty_payload: bool = False
    table_include_list: tuple[str, ...] = ()
    """cdcd: regexes (case-insensitive full match on ``schema.table``) of the outbox tables."""
    message_prefix: str = "outbox"
    """cdcd: the ``pg_logical_emit_message`` prefix whose messages are outbox events."""

    PROPERTIES: ClassVar[Mapping[str, str]] = {}  # Debezium property name -> attribute, filled below

    def __post_init__(self) -> None:
        for name, allowed in (("table_op_invalid_behavior", INVALID_OP_BEHAVIORS),
                              ("table_json_payload_null_behavior", NULL_BEHAVIORS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name.replace('_', '.')}={getattr(self, name)!r}: use one of {', '.join(allowed)}")
        regex = java_regex(self.route_topic_regex, "route.topic.regex")
        parse_replacement(self.route_topic_replacement, regex, "route.topic.replacement")
        for pattern in self.table_include_list:
            java_regex(pattern, "table.include.list")
        if not self.message_prefix:
            raise ConfigError("message.prefix must not be empty")

    @classmethod
    def from_properties(cls, props: Mapping[str, Any], prefix: str = "") -> OutboxOptions:
        """From Debezium property names (``route.by.field``...), e.g. a TOML ``[transforms.outbox]`` table
        flattened with ``prefix="transforms.outbox."``; values may be strings, booleans or lists."""
        kwargs = select_properties(props, prefix, cls.PROPERTIES, "outbox")
        for name, value in list(kwargs.items()):
            if name == "table_fields_additional_placement":
                kwargs[name] = tuple(AdditionalField.parse(p) for p in as_list(value))
            elif name == "table_include_list":
                kwargs[name] = as_list(value)
            elif name in ("table_field_event_timestamp", "table_field_event_schema_version"):
                kwargs[name] = as_optional_str(value)
            elif name in _BOOL_OPTIONS:
                kwargs[name] = as_bool(value, prefix + name.replace("_", "."))
            else:
                kwargs[name] = str(value).strip()
        return cls(**kwargs)


OutboxOptions.PROPERTIES = {f.name.replace("_", "."): f.name for f in fields(OutboxOptions)}
_BOOL_OPTIONS: Final = frozenset(f.name for f in fields(OutboxOptions) if isinstance(f.default, bool))
