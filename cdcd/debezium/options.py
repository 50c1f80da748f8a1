"""The envelope options a ``Config`` stands for (what every table encoder is built with)."""

from __future__ import annotations

from cdcd import __version__
from cdcd.config import Config, converter_settings
from cdcd.debezium.column_rules import column_rule_options
from cdcd.debezium.envelope_options import EnvelopeOptions


def envelope_options(config: Config, database: str) -> EnvelopeOptions:
    return EnvelopeOptions(
        topic_prefix=config.topic_prefix,
        database=database,
        connector_version=__version__,
        decimal_handling_mode=config.decimal_handling_mode,
        time_precision_mode=config.time_precision_mode,
        binary_handling_mode=config.binary_handling_mode,
        tombstones_on_delete=config.tombstones_on_delete,
        column_exclude_list=config.column_exclude_list,
        column_include_list=config.column_include_list,
        message_key_columns=config.message_key_columns,
        column_propagate_source_type=config.column_propagate_source_type,
        datatype_propagate_source_type=config.datatype_propagate_source_type,
        schema_name_adjustment_mode=config.schema_name_adjustment_mode,
        field_name_adjustment_mode=config.field_name_adjustment_mode,
        interval_handling_mode=config.interval_handling_mode,
        hstore_handling_mode=config.hstore_handling_mode,
        money_fraction_digits=config.money_fraction_digits,
        include_unknown_datatypes=config.include_unknown_datatypes,
        unavailable_value_placeholder=config.unavailable_value_placeholder,
        skipped_operations=tuple(op for op in config.skipped_operations if op != "none"),
        # JsonConverter's option; AvroConverter always writes a null field as its default (Struct.get).
        replace_null_with_default=converter_settings(config)[1].replace_null_with_default,
        **column_rule_options(config.column_rules),
    )
