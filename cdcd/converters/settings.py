"""``key.converter`` / ``value.converter`` and their options, read and checked (pure, no I/O).

Names are Kafka Connect's: ``value.converter=io.confluent.connect.avro.AvroConverter``
with ``value.converter.schema.registry.url=...``; the ``<side>.converter.`` prefix
is already stripped from ``properties``. Secrets (``basic.auth.user.info``) live
only in ``registry_conf`` and are never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Mapping

from cdcd.errors import ConfigError

JSON_CONVERTER: Final = "org.apache.kafka.connect.json.JsonConverter"
AVRO_CONVERTER: Final = "io.confluent.connect.avro.AvroConverter"
STRING_CONVERTER: Final = "org.apache.kafka.connect.storage.StringConverter"
BYTE_ARRAY_CONVERTER: Final = "org.apache.kafka.connect.converters.ByteArrayConverter"
CONVERTERS: Final = (JSON_CONVERTER, AVRO_CONVERTER, STRING_CONVERTER, BYTE_ARRAY_CONVERTER)
_STRATEGIES: Final = {
    "io.confluent.kafka.serializers.subject.TopicNameStrategy": "topic",
    "io.confluent.kafka.serializers.subject.RecordNameStrategy": "record",
    "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy": "topic_record",
}
# (option, converter, default, meaning): the reference table in docs/configuration.md is generated from it.
OPTIONS: Final = (
    ("schemas.enable", "JsonConverter", "true", "false: the payload alone, without the schema envelope"),
    ("replace.null.with.default", "JsonConverter", "true", "value side: a NULL column prints as its default "
     "(AvroConverter always does)"),
    ("schema.registry.url", "AvroConverter", "(required)", "registry URL(s), comma-separated; credentials in "
     "the URL are used with basic.auth.credentials.source=URL"),
    ("basic.auth.credentials.source", "AvroConverter", "URL", "URL, USER_INFO (basic.auth.user.info) or "
     "SASL_INHERIT (sasl.username / sasl.password of [kafka])"),
    ("basic.auth.user.info", "AvroConverter", "", "<user>:<password>; never logged (environment: "
     "CDCD_VALUE_CONVERTER_BASIC_AUTH_USER_INFO)"),
    ("auto.register.schemas", "AvroConverter", "true", "register new schemas; false: they must be registered "
     "already (a missing one stops cdcd, exit 4)"),
    ("use.latest.version", "AvroConverter", "false", "with auto.register.schemas=false: write with the "
     "subject's latest schema"),
    ("key.subject.name.strategy / value.subject.name.strategy", "AvroConverter",
     "io.confluent.kafka.serializers.subject.TopicNameStrategy", "TopicNameStrategy (<topic>-key, "
     "<topic>-value), RecordNameStrategy or TopicRecordNameStrategy"),
    ("normalize.schemas", "AvroConverter", "false", "ask the registry to normalize schemas"),
    ("connect.meta.data", "AvroConverter", "true", "false: no connect.* properties in the Avro schemas"),
    ("scrub.invalid.names", "AvroConverter", "false", "true: names Avro refuses are rewritten as AvroData does "
     "(prefer schema.name.adjustment.mode=avro)"),
    ("schema.registry.ssl.ca.location / .certificate.location / .key.location / .key.password",
     "AvroConverter", "", "TLS to the registry with PEM files (Java key stores are not supported)"),
    ("bearer.auth.*", "AvroConverter", "", "passed to confluent-kafka's registry client"),
    ("converter.encoding", "StringConverter", "UTF-8", "the text's encoding"),
)
_JSON_OPTIONS: Final = frozenset({"schemas.enable", "replace.null.with.default", "decimal.format",
                                  "schemas.cache.size"})
# AvroConverter options that change nothing in what cdcd writes.
_AVRO_IGNORED: Final = frozenset({
    "schemas.cache.config", "schemas.enable", "latest.compatibility.strict", "max.schemas.per.subject",
    "enhanced.avro.schema.support", "avro.reflection.allow.null", "avro.use.logical.type.converters",
    "context.name.strategy", "key.subject.name.strategy", "value.subject.name.strategy",
})
_SSL: Final = {
    "schema.registry.ssl.ca.location": "ssl.ca.location",
    "schema.registry.ssl.certificate.location": "ssl.certificate.location",
    "schema.registry.ssl.key.location": "ssl.key.location",
    "schema.registry.ssl.key.password": "ssl.key.password",
}


@dataclass(frozen=True)
class ConverterSettings:
    """One side's converter: its class and what its options mean for cdcd."""

    is_key: bool
    class_name: str = JSON_CONVERTER
    schemas_enable: bool = True
    replace_null_with_default: bool = True
    registry_conf: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """confluent_kafka SchemaRegistryClient configuration (url, auth): secret, never logged."""
    auto_register: bool = True
    use_latest_version: bool = False
    normalize: bool = False
    subject_strategy: str = "topic"  # topic | record | topic_record
    connect_meta_data: bool = True
    scrub_invalid_names: bool = False
    encoding: str = "UTF-8"  # StringConverter's converter.encoding
    warnings: tuple[str, ...] = ()

    @property
    def side(self) -> str:
        return "key" if self.is_key else "value"

    @property
    def is_avro(self) -> bool:
        return self.class_name == AVRO_CONVERTER

    @property
    def is_json_with_schemas(self) -> bool:
        return self.class_name == JSON_CONVERTER and self.schemas_enable


def _bool(key: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def parse(is_key: bool, class_name: str, properties: Mapping[str, Any],
          kafka: Mapping[str, str] | None = None) -> ConverterSettings:
    """One side's settings from its class and its ``<side>.converter.*`` options (prefix stripped)."""
    side = "key" if is_key else "value"
    cls = class_name.strip()
    props = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in properties.items()}
    if cls == JSON_CONVERTER:
        return _json(is_key, side, props)
    if cls == AVRO_CONVERTER:
        return _avro(is_key, side, props, kafka or {})
    if cls in (STRING_CONVERTER, BYTE_ARRAY_CONVERTER):
        encoding = props.get("converter.encoding", "UTF-8").strip()
        try:
            "".encode(encoding)
        except LookupError:
            raise ConfigError(f"{side}.converter.converter.encoding={encoding}: unknown encoding") from None
        warnings = tuple(f"{side}.converter.{k}: option not supported by cdcd; ignored"
                         for k in props if k != "converter.encoding")
        return ConverterSettings(is_key, cls, encoding=encoding, warnings=warnings)
    raise ConfigError(f"{side}.converter={cls}: cdcd writes {JSON_CONVERTER} (schemas.enable true or false), "
                      f"{AVRO_CONVERTER}, {STRING_CONVERTER} or {BYTE_ARRAY_CONVERTER}; other converters are "
                      "Java classes cdcd cannot load")


def _json(is_key: bool, side: str, props: Mapping[str, str]) -> ConverterSettings:
    warnings = []
    for key, value in props.items():
        if key == "decimal.format" and value.strip().upper() != "BASE64":
            warnings.append(f"{side}.converter.{key}={value}: cdcd writes Decimal values as base64 "
                            "(decimal.format=BASE64)")
        elif key not in _JSON_OPTIONS:
            warnings.append(f"{side}.converter.{key}: JsonConverter option not supported by cdcd; ignored")
    return ConverterSettings(
        is_key, JSON_CONVERTER,
        schemas_enable=_bool(f"{side}.converter.schemas.enable", props.get("schemas.enable", "true")),
        replace_null_with_default=_bool(f"{side}.converter.replace.null.with.default",
                                        props.get("replace.null.with.default", "true")),
        warnings=tuple(warnings))


def _avro(is_key: bool, side: str, props: Mapping[str, str], kafka: Mapping[str, str]) -> ConverterSettings:
    prefix = f"{side}.converter."
    url = props.get("schema.registry.url", "").strip()
    if not url:
        raise ConfigError(f"{prefix}schema.registry.url is required with {AVRO_CONVERTER}")
    conf: dict[str, Any] = {"url": url}
    source = props.get("basic.auth.credentials.source", "URL").strip().upper()
    user_info = props.get("basic.auth.user.info", props.get("schema.registry.basic.auth.user.info"))
    if source == "USER_INFO":
        if not user_info or ":" not in user_info:
            raise ConfigError(f"{prefix}basic.auth.credentials.source=USER_INFO needs "
                              f"{prefix}basic.auth.user.info=<user>:<password>")
        conf["basic.auth.user.info"] = user_info
    elif source == "SASL_INHERIT":
        user, password = kafka.get("sasl.username"), kafka.get("sasl.password")
        if not user or password is None:
            raise ConfigError(f"{prefix}basic.auth.credentials.source=SASL_INHERIT needs sasl.username and "
                              "sasl.password in [kafka]")
        conf["basic.auth.user.info"] = f"{user}:{password}"
    elif source != "URL":
        raise ConfigError(f"{prefix}basic.auth.credentials.source={source}: use URL, USER_INFO or SASL_INHERIT")
    for key, target in _SSL.items():
        if key in props:
            conf[target] = props[key]
    for key, value in props.items():
        if key.startswith("bearer.auth."):
            conf[key] = value
    strategy_key = f"{side}.subject.name.strategy"
    strategy_class = props.get(strategy_key, "io.confluent.kafka.serializers.subject.TopicNameStrategy").strip()
    if strategy_class not in _STRATEGIES:
        raise ConfigError(f"{prefix}{strategy_key}={strategy_class}: use one of {', '.join(_STRATEGIES)}")
    warnings = []
    known = {"schema.registry.url", "basic.auth.credentials.source", "basic.auth.user.info",
             "schema.registry.basic.auth.user.info", "auto.register.schemas", "use.latest.version",
             "normalize.schemas", "connect.meta.data", "scrub.invalid.names", *_SSL}
    for key in props:
        if key.startswith("schema.registry.ssl.") and key not in _SSL:
            warnings.append(f"{prefix}{key}: Java key stores are not supported; give PEM files with "
                            f"{prefix}schema.registry.ssl.ca.location / .certificate.location / .key.location")
        elif key not in known and key not in _AVRO_IGNORED and not key.startswith("bearer.auth."):
            warnings.append(f"{prefix}{key}: AvroConverter option not supported by cdcd; ignored")
    auto_register = _bool(prefix + "auto.register.schemas", props.get("auto.register.schemas", "true"))
    use_latest = _bool(prefix + "use.latest.version", props.get("use.latest.version", "false"))
    return ConverterSettings(
        is_key, AVRO_CONVERTER, registry_conf=conf,
        auto_register=auto_register,
        use_latest_version=use_latest and not auto_register,  # as Confluent's serializer: registering wins
        normalize=_bool(prefix + "normalize.schemas", props.get("normalize.schemas", "false")),
        subject_strategy=_STRATEGIES[strategy_class],
        connect_meta_data=_bool(prefix + "connect.meta.data", props.get("connect.meta.data", "true")),
        scrub_invalid_names=_bool(prefix + "scrub.invalid.names", props.get("scrub.invalid.names", "false")),
        warnings=tuple(warnings))


def split_properties(properties: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``key.converter.X`` / ``value.converter.X`` keys -> (key options, value options), prefixes stripped."""
    key: dict[str, Any] = {}
    value: dict[str, Any] = {}
    for name, v in properties.items():
        if name.startswith("key.converter."):
            key[name[len("key.converter."):]] = v
        elif name.startswith("value.converter."):
            value[name[len("value.converter."):]] = v
    return key, value
