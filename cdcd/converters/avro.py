"""Confluent's AvroConverter: Avro in the Confluent wire format, schemas in a Schema Registry.

The registry protocol and the framing (magic byte 0, 4-byte big-endian schema id,
Avro body) are confluent-kafka's own ``SchemaRegistryClient`` and
``AvroSerializer`` (fastavro underneath). cdcd adds the part AvroConverter does
in Java: the Avro schema AvroData derives from the record's Connect schema
(`cdcd.converters.avro_schema`), translated once per Connect schema and cached,
with one serializer per (topic, schema), so a schema is registered once per
relation version, not per record.

Failures are sorted like Kafka's: a registry that cannot be reached (or answers
5xx / 429) raises ``SinkUnavailable`` and cdcd retries from the last confirmed
LSN; a registry that refuses the schema (incompatible, invalid, not registered
with ``auto.register.schemas=false``, unauthorized) raises ``SinkError``. Either
way the Kafka transaction is aborted and nothing is confirmed.
"""

from __future__ import annotations

from typing import Any, Callable, Final

import orjson
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    record_subject_name_strategy,
    topic_record_subject_name_strategy,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from cdcd.converters.avro_schema import AvroOptions, SchemaTranslationError, Translation, translate
from cdcd.converters.settings import ConverterSettings
from cdcd.debezium.connect_json import head as connect_head
from cdcd.errors import ConfigError, SinkError, SinkUnavailable
from cdcd.ops.logs import redact_dsn

_CACHE_LIMIT: Final = 4096
_STRATEGIES: Final[dict[str, Callable[..., Any]]] = {
    "topic": topic_subject_name_strategy,
    "record": record_subject_name_strategy,
    "topic_record": topic_record_subject_name_strategy,
}
# HTTP statuses worth retrying: the registry is there but cannot answer now.
_RETRIABLE_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})


def registry_client(conf: dict[str, Any]) -> SchemaRegistryClient:
    """A client for ``conf`` (``mock://...`` gives confluent-kafka's in-memory registry)."""
    try:
        return SchemaRegistryClient.new_client(dict(conf))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"schema registry client configuration: {exc}") from None


class _Entry:
    """What one (topic, Connect schema) needs per record."""

    __slots__ = ("head", "translation", "serializer", "subject")

    def __init__(self, head: bytes, translation: Translation, serializer: AvroSerializer) -> None:
        self.head, self.translation, self.serializer = head, translation, serializer


class AvroConverter:
    def __init__(self, settings: ConverterSettings, client: SchemaRegistryClient) -> None:
        self.settings = settings
        self.client = client
        self._field = MessageField.KEY if settings.is_key else MessageField.VALUE
        self._options = AvroOptions(settings.connect_meta_data, settings.scrub_invalid_names)
        self._translations: dict[bytes, Translation] = {}  # Connect schema JSON -> Avro
        self._entries: dict[tuple[str, bytes], _Entry] = {}
        self._last: dict[str, _Entry] = {}  # topic -> the entry of its last record

    def convert(self, topic: str, data: bytes | None) -> bytes | None:
        if data is None:
            return None
        entry = self._last.get(topic)
        if entry is not None and data.startswith(entry.head) and data.endswith(b"}"):
            payload = orjson.loads(data[len(entry.head):-1])
        else:
            doc = orjson.loads(data)
            if not isinstance(doc, dict) or "schema" not in doc or "payload" not in doc:
                raise SinkError(f"a record for topic {topic} is not a Connect record (no schema): cannot write it "
                                "with AvroConverter")
            schema_bytes = orjson.dumps(doc["schema"])
            entry = self._entry(topic, doc["schema"], schema_bytes)
            self._last[topic] = entry
            payload = doc["payload"]
        if payload is None:
            return None  # AvroConverter writes no bytes for a null value
        datum = entry.translation.datum(payload)
        return self._serialize(topic, entry, datum)

    def schema_for(self, topic: str, connect_schema: dict[str, Any]) -> Translation:
        """The translation used for ``connect_schema`` (tests and diagnostics)."""
        return self._entry(topic, connect_schema, orjson.dumps(connect_schema)).translation

    def _entry(self, topic: str, schema: Any, schema_bytes: bytes) -> _Entry:
        entry = self._entries.get((topic, schema_bytes))
        if entry is not None:
            return entry
        translation = self._translations.get(schema_bytes)
        if translation is None:
            if not isinstance(schema, dict):
                raise SinkError(f"a record for topic {topic} has no Connect schema: cannot write it with "
                                "AvroConverter")
            try:
                translation = translate(schema, self._options)
            except SchemaTranslationError as exc:
                raise SinkError(f"topic {topic}: the {self.settings.side} schema has no Avro form: {exc}") from None
            if len(self._translations) >= _CACHE_LIMIT:
                self._translations.clear()
            self._translations[schema_bytes] = translation
        conf: dict[str, Any] = {
            "auto.register.schemas": self.settings.auto_register,
            "use.latest.version": self.settings.use_latest_version,
            "normalize.schemas": self.settings.normalize,
            "subject.name.strategy": _STRATEGIES[self.settings.subject_strategy],
        }
        try:
            serializer = self._serializer(translation.schema, conf)
        except Exception as exc:  # noqa: BLE001 - fastavro/parse errors name the schema problem
            raise SinkError(f"topic {topic}: the {self.settings.side} Avro schema was refused by the Avro "
                            f"library: {exc}; schema: {translation.schema[:500]}") from None
        if len(self._entries) >= _CACHE_LIMIT:
            self._entries.clear()
            self._last.clear()
        entry = self._entries[(topic, schema_bytes)] = _Entry(
            connect_head(schema_bytes), translation, serializer)
        return entry

    def _serializer(self, text: str, conf: dict[str, Any]) -> AvroSerializer:
        """An AvroSerializer for ``text``. A Decimal whose scale exceeds its precision (PostgreSQL allows
        numeric(3,5)) keeps AvroData's legacy ``logicalType`` property, which Java's Avro ignores and fastavro
        refuses: such a schema is written as the plain bytes it is and registered with its exact text."""
        try:
            return AvroSerializer(self.client, text, conf=conf)
        except Exception:
            writable = _without_invalid_decimals(orjson.loads(text))
            if writable is None:
                raise
            serializer = AvroSerializer(self.client, orjson.dumps(writable).decode(), conf=conf)
            if not isinstance(getattr(serializer, "_schema", None), Schema):
                raise
            serializer._schema = Schema(text, "AVRO")
            return serializer

    def _serialize(self, topic: str, entry: _Entry, datum: Any) -> bytes | None:
        ctx = SerializationContext(topic, self._field)
        try:
            return entry.serializer(datum, ctx)  # type: ignore[no-any-return]
        except SchemaRegistryError as exc:
            raise _registry_error(exc, topic, self.settings) from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SinkError(f"topic {topic}: a {self.settings.side} does not fit its Avro schema: {exc}; nothing of "
                            "its transaction was confirmed") from None
        except Exception as exc:
            if _is_transport_error(exc):
                raise SinkUnavailable(f"cannot reach the schema registry at {registry_urls(self.settings)} for topic "
                                      f"{topic}: {exc}") from None
            raise


def _without_invalid_decimals(schema: Any) -> Any:
    """``schema`` without the decimal logical types Avro's spec forbids (scale < 0 or > precision), or None."""
    changed = False

    def walk(node: Any) -> Any:
        nonlocal changed
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        if out.get("logicalType") == "decimal":
            scale, precision = int(out.get("scale", 0)), int(out.get("precision", 0))
            if scale < 0 or scale > precision:
                del out["logicalType"]
                changed = True
        return out
    result = walk(schema)
    return result if changed else None


def _is_transport_error(exc: Exception) -> bool:
    module = type(exc).__module__ or ""
    return module.split(".")[0] in ("httpx", "httpx2", "httpcore", "requests") or isinstance(exc, OSError)


def registry_urls(settings: ConverterSettings) -> str:
    """The registry URL(s) without credentials."""
    return redact_dsn(str(settings.registry_conf.get("url", "")))


def _registry_error(exc: SchemaRegistryError, topic: str, settings: ConverterSettings) -> Exception:
    status = exc.http_status_code
    subject = f"the {settings.side} schema of topic {topic}"
    where = f"schema registry {registry_urls(settings)}"
    if status in _RETRIABLE_STATUS or status == -1:
        return SinkUnavailable(f"{where} could not take {subject} now: {exc}")
    if status == 409:
        return SinkError(
            f"{where} refused {subject} as incompatible with the subject's earlier versions: {exc.error_message}. "
            "Nothing of this transaction was confirmed; the change that caused it (e.g. a column type change) "
            "needs the subject's compatibility level relaxed, or a new subject, before cdcd can go on")
    if status in (401, 403):
        return SinkError(f"{where} refused cdcd's credentials for {subject}: {exc}; check "
                         f"{settings.side}.converter.basic.auth.user.info")
    if status == 404 and not settings.auto_register:
        return SinkError(f"{where} has no matching schema for {subject} and auto.register.schemas=false: {exc}; "
                         "register it first or enable auto.register.schemas")
    return SinkError(f"{where} refused {subject}: {exc}")


def check_registry(settings: ConverterSettings) -> str | None:
    """None when the registry answers (any HTTP answer counts), else why it cannot be reached."""
    if str(settings.registry_conf.get("url", "")).startswith("mock://"):
        return None
    client = registry_client({**settings.registry_conf, "max.retries": 0})
    try:
        client.get_subjects()
    except SchemaRegistryError as exc:
        if exc.http_status_code in _RETRIABLE_STATUS:
            return f"{registry_urls(settings)} answered {exc}"
        return None
    except Exception as exc:  # noqa: BLE001 - any transport failure means "not reachable"
        if _is_transport_error(exc):
            return f"{registry_urls(settings)}: {exc}"
        raise
    return None
