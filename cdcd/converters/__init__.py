"""Converters: how a record's key and value become bytes, as Kafka Connect's ``key.converter`` / ``value.converter``.

cdcd builds every record as JsonConverter with ``schemas.enable=true`` (the
Connect schema travels with the payload). A converter is the last stage before
the sink and turns that into the configured format, separately for key and value:

* ``org.apache.kafka.connect.json.JsonConverter``: ``schemas.enable=true`` leaves
  the record as it is; ``false`` keeps the payload alone (`cdcd.converters.json`);
* ``io.confluent.connect.avro.AvroConverter``: Avro in the Confluent wire format with
  the schema in a Schema Registry (`cdcd.converters.avro`);
* ``org.apache.kafka.connect.storage.StringConverter`` and
  ``org.apache.kafka.connect.converters.ByteArrayConverter`` (`cdcd.converters.string`),
  e.g. for outbox keys and payloads.

Records that are not Connect records are cdcd's own and pass unchanged: the
offsets record (always JSON) and the dead-letter records of the Kafka sink.
Headers are not converted (Connect's ``SimpleHeaderConverter``).
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol

from cdcd.converters.settings import (
    AVRO_CONVERTER,
    BYTE_ARRAY_CONVERTER,
    JSON_CONVERTER,
    STRING_CONVERTER,
    ConverterSettings,
    parse,
    split_properties,
)
from cdcd.debezium.envelope import Record

__all__ = [
    "AVRO_CONVERTER", "BYTE_ARRAY_CONVERTER", "JSON_CONVERTER", "STRING_CONVERTER", "Converter", "ConverterSettings", "RecordConverter", "build",
    "converter_settings",
]


class Converter(Protocol):
    def convert(self, topic: str, data: bytes | None) -> bytes | None:
        """The bytes to write for one key or value in JsonConverter-with-schemas form (None stays None)."""


def converter_settings(key_class: str, value_class: str, properties: Mapping[str, Any],
                       kafka: Mapping[str, str] | None = None) -> tuple[ConverterSettings, ConverterSettings]:
    """Both sides' settings from the classes and the ``key.converter.*`` / ``value.converter.*`` options."""
    key_props, value_props = split_properties(properties)
    return parse(True, key_class, key_props, kafka), parse(False, value_class, value_props, kafka)


def build(settings: ConverterSettings, clients: dict[str, Any] | None = None) -> Converter:
    """The converter for one side; ``clients`` shares registry clients between sides (same conf, same client)."""
    if settings.is_avro:
        from cdcd.converters.avro import AvroConverter, registry_client

        clients = {} if clients is None else clients
        key = repr(sorted(settings.registry_conf.items()))
        client = clients.get(key)
        if client is None:
            client = clients[key] = registry_client(dict(settings.registry_conf))
        return AvroConverter(settings, client)
    if settings.class_name == STRING_CONVERTER:
        from cdcd.converters.string import StringConverter

        return StringConverter(settings.encoding)
    if settings.class_name == BYTE_ARRAY_CONVERTER:
        from cdcd.converters.string import ByteArrayConverter

        return ByteArrayConverter()
    from cdcd.converters.json import JsonConverter

    return JsonConverter(settings.schemas_enable)


class RecordConverter:
    """Applies the key and value converters to a record; ``identity`` when both are JsonConverter with schemas."""

    def __init__(self, key: ConverterSettings, value: ConverterSettings,
                 clients: dict[str, Any] | None = None) -> None:
        clients = {} if clients is None else clients
        self.key_settings, self.value_settings = key, value
        self.identity = key.is_json_with_schemas and value.is_json_with_schemas
        self.key = build(key, clients)
        self.value = build(value, clients)

    def __call__(self, record: Record) -> Record:
        if self.identity:
            return record
        return record._replace(key=self.key.convert(record.topic, record.key),
                              value=self.value.convert(record.topic, record.value))
