"""Read a Debezium PostgreSQL connector configuration and translate it into cdcd settings.

Accepts what you would POST to Kafka Connect (``{"name": ..., "config": {...}}``)
or the bare ``config`` map; values are strings as Connect stores them (JSON
numbers and booleans are accepted too). ``translate`` returns a
``DebeziumConfig``:

* ``dsn``: a libpq connection string built from ``database.hostname``,
  ``database.port``, ``database.user``, ``database.password``,
  ``database.dbname`` and ``database.ssl*``; never log it, use
  ``redacted_dsn``;
* ``values``: settings keyed by cdcd / Debezium property names
  (``topic.prefix``, ``table.include.list``, ``column.mask.with.5.chars``...),
  already typed (bool, int, tuple of regexes, str); Debezium defaults that
  differ from cdcd's are filled in (``slot.name``, ``publication.name``,
  ``snapshot.mode``); ``transforms`` holds the
  EventRouter / ExtractNewRecordState properties as ``Config.transforms`` does
  (``outbox.route.by.field``, ``unwrap.add.fields``) and ``kafka`` the
  ``producer.override.*`` properties;
* ``warnings``: one line per option cdcd does not support, naming it and why.

Kafka Connect config-provider placeholders are resolved for ``env``
(``${env:NAME}``), ``file`` (``${file:/path.properties:key}``) and
``directory`` (``${directory:/dir:file}``). The compatibility of every
property is documented in docs/debezium-compatibility.md.

About 400 lines on purpose: a third is the tables saying what becomes of each
Debezium property (typed, renamed, legacy, unsupported and why), and the rest
are the small functions that read them for one translation.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Mapping

from cdcd.debezium.column_rules import column_rule_options, digest_name, parse_message_key_columns, split_regex_list
from cdcd.debezium.transforms import OutboxOptions, UnwrapOptions
from cdcd.debezium.types import BINARY_MODES, DECIMAL_MODES, HSTORE_MODES, INTERVAL_MODES, TIME_MODES
from cdcd.errors import ConfigError
from cdcd.ops.logs import redact_dsn

CONNECTOR_CLASS: Final = "io.debezium.connector.postgresql.PostgresConnector"
JSON_CONVERTER: Final = "org.apache.kafka.connect.json.JsonConverter"
TRANSFORM_KINDS: Final = {
    "io.debezium.transforms.outbox.EventRouter": "outbox",
    "io.debezium.transforms.ExtractNewRecordState": "unwrap",
}
# Debezium defaults that differ from cdcd's and change what is read or emitted.
DEBEZIUM_DEFAULTS: Final[Mapping[str, Any]] = {
    "slot.name": "debezium", "publication.name": "dbz_publication", "snapshot.mode": "initial",
}
_STRINGS: Final = frozenset({
    "topic.prefix", "slot.name", "publication.name", "message.key.columns", "unavailable.value.placeholder",
    "heartbeat.action.query", "topic.heartbeat.prefix", "signal.data.collection",
})
_LISTS: Final = frozenset({
    "table.include.list", "table.exclude.list", "column.include.list", "column.exclude.list",
    "column.propagate.source.type", "datatype.propagate.source.type", "message.prefix.include.list",
    "message.prefix.exclude.list",
})
_BOOLS: Final = frozenset({
    "tombstones.on.delete", "provide.transaction.metadata", "publish.via.partition.root", "include.unknown.datatypes",
})
_INTS: Final = frozenset({"heartbeat.interval.ms", "money.fraction.digits", "incremental.snapshot.chunk.size"})
_CHOICES: Final[Mapping[str, tuple[str, ...]]] = {
    "decimal.handling.mode": DECIMAL_MODES, "time.precision.mode": TIME_MODES,
    "binary.handling.mode": BINARY_MODES, "interval.handling.mode": INTERVAL_MODES,
    "hstore.handling.mode": HSTORE_MODES, "schema.name.adjustment.mode": ("none", "avro", "avro_unicode"),
    "field.name.adjustment.mode": ("none", "avro", "avro_unicode"),
    "publication.autocreate.mode": ("all_tables", "filtered", "disabled"),
    "incremental.snapshot.watermarking.strategy": ("insert_insert", "insert_delete"),
}
_RENAMED: Final = {"status.update.interval.ms": "status.interval.ms"}
_LEGACY: Final = {
    "database.server.name": "topic.prefix", "table.whitelist": "table.include.list",
    "table.blacklist": "table.exclude.list", "schema.whitelist": "schema.include.list",
    "schema.blacklist": "schema.exclude.list", "column.whitelist": "column.include.list",
    "column.blacklist": "column.exclude.list",
}
_SILENT: Final = frozenset({
    "name", "connector.class", "tasks.max", "topic.cache.size", "schema.refresh.mode", "header.converter",
    "plugin.name", "database.hostname", "database.port", "database.user", "database.password", "database.dbname",
    "key.converter", "value.converter", "database.tcpKeepAlive", "schema.include.list", "schema.exclude.list", "transforms", "predicates",
})
_LIBPQ: Final = {
    "database.sslmode": "sslmode", "database.sslcert": "sslcert", "database.sslkey": "sslkey",
    "database.sslpassword": "sslpassword", "database.sslrootcert": "sslrootcert",
    "database.connectTimeout": "connect_timeout", "database.ApplicationName": "application_name",
    "database.options": "options", "database.gssEncMode": "gssencmode",
}
_WHY: Final[Mapping[str, str]] = {
    "topic.creation.": "topics are created by the broker (auto.create.topics.enable); cdcd creates none",
    "signal.enabled.channels": "only the source channel (the signal table) is supported",
    "signal.": "only the source channel (the signal table) is supported",
    "incremental.snapshot.allow.schema.changes": "not configurable: a chunk is read with the table's columns "
                                                 "at that moment",
    "notification.": "notifications are not supported",
    "errors.": "Kafka Connect error handling (dead letter queue, tolerance) does not exist in cdcd",
    "openlineage.": "OpenLineage integration is not supported",
    "guardrail.": "guardrails are not supported",
    "converters": "custom converters are Java classes; cdcd cannot load them",
    "post.processors": "post processors are Java classes; cdcd cannot load them",
    "errors.max.retries": "cdcd retries retriable errors without limit (capped exponential backoff)",
    "custom.metric.tags": "metrics are Prometheus /metrics, not JMX MBeans",
    "slot.stream.params": "cdcd passes only proto_version and publication_names to pgoutput",
    "slot.failover": "not built yet (docs/operations.md#slot-failover-postgresql-17)",
    "slot.max.retries": "not configurable: cdcd retries connection errors itself",
    "slot.retry.delay.ms": "not configurable: cdcd retries connection errors itself",
    "retriable.restart.connector.wait.ms": "not configurable: cdcd retries retriable errors itself",
    "replica.identity.autoset.values": "cdcd never alters tables; set REPLICA IDENTITY yourself",
    "database.initial.statements": "not supported; set session parameters with the DSN's options",
    "database.query.timeout.ms": "not configurable",
    "database.sslfactory": "a Java class; use database.sslmode and database.sslrootcert",
    "event.processing.failure.handling.mode": "cdcd turns a value it cannot convert into the column's NULL "
                                              "value and counts it; it neither fails nor skips the event",
    "max.batch.size": "cdcd has no internal queue; tune max.batch.events / max.batch.ms",
    "max.queue.size": "cdcd has no internal queue; tune max.batch.events / max.batch.ms",
    "max.queue.size.in.bytes": "cdcd has no internal queue; tune max.batch.events / max.batch.ms",
    "poll.interval.ms": "cdcd has no internal queue; tune max.batch.events / max.batch.ms",
    "xmin.fetch.interval.ms": "source.xmin is always null",
    "read.only": "read-only incremental snapshots (without writes to the signal table) are not supported",
    "skip.messages.without.change": "not supported: every change is emitted",
    "topic.naming.strategy": "topics are always <topic.prefix>.<schema>.<table>",
    "topic.delimiter": "the delimiter is always '.'",
    "topic.transaction": "the transaction topic is always <topic.prefix>.transaction",
    "slot.drop.on.stop": "cdcd never drops its slot",
    "flush.lsn.source": "cdcd always confirms the LSN once Kafka holds the events",
    "offset.mismatch.strategy": "offsets live in the slot; cdcd has no Connect offsets",
}
# Values with which cdcd behaves as Debezium does: no warning for these.
_SAME: Final[Mapping[str, frozenset[str]]] = {
    "slot.drop.on.stop": frozenset({"false"}), "flush.lsn.source": frozenset({"true"}),
    "skip.messages.without.change": frozenset({"false"}), "xmin.fetch.interval.ms": frozenset({"0"}),
    "read.only": frozenset({"false"}), "signal.enabled.channels": frozenset({"source"}), "topic.delimiter": frozenset({"."}),
    "topic.transaction": frozenset({"transaction"}), "errors.max.retries": frozenset({"-1"}),
    "topic.naming.strategy": frozenset({"io.debezium.schema.SchemaTopicNamingStrategy",
                                        "io.debezium.schema.DefaultTopicNamingStrategy"}),
}
_PLACEHOLDER: Final = re.compile(r"\$\{([^:}]+):(?:([^:}]*):)?([^}]*)\}")


@dataclass(frozen=True)
class DebeziumConfig:
    """The translation of one connector configuration (see the module docstring)."""

    values: dict[str, Any]
    dsn: str = field(repr=False)
    warnings: list[str] = field(default_factory=list)
    name: str | None = None

    @property
    def redacted_dsn(self) -> str:
        return redact_dsn(self.dsn)


def load(path: str | Path) -> DebeziumConfig:
    """``translate`` the JSON file at ``path``."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"Debezium config {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Debezium config {path} is not valid JSON: {exc}") from None
    return translate(document)


def translate(document: Mapping[str, Any]) -> DebeziumConfig:
    """Translate a Kafka Connect REST body or a bare connector config map."""
    if not isinstance(document, Mapping):
        raise ConfigError("a Debezium config is a JSON object: {\"name\": ..., \"config\": {...}} or the config map")
    name = document.get("name")
    raw = document["config"] if isinstance(document.get("config"), Mapping) else document
    props = {str(k): _text(v) for k, v in raw.items()}
    name = name if isinstance(name, str) else props.get("name")
    warnings: list[str] = []
    for old, new in _LEGACY.items():
        if old in props:
            if new not in props:
                props[new] = props[old]
            warnings.append(f"{old}: legacy name, read as {new}")
    props = {k: v for k, v in props.items() if k not in _LEGACY}
    _check_connector(props, warnings)
    dsn = _dsn(props, warnings)
    values: dict[str, Any] = dict(DEBEZIUM_DEFAULTS)
    for key, value in props.items():
        if key in _SILENT or key == "database.password":
            continue
        if "${" in value:
            value = _resolve(key, value)
        _translate_one(key, value, props, values, warnings)
    _schema_filters(props, values)
    values["transforms"] = _transforms(props, values, warnings)
    _converters(props, values, warnings)
    if "topic.prefix" not in values:
        raise ConfigError("topic.prefix is required (or the legacy database.server.name)")
    return DebeziumConfig(values, dsn, warnings, name)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _translate_one(key: str, value: str, props: Mapping[str, str], values: dict[str, Any],
                   warnings: list[str]) -> None:
    text = value.strip()
    if key in _STRINGS:
        values[key] = value if key in ("unavailable.value.placeholder", "heartbeat.action.query") else text
        if key == "message.key.columns":
            parse_message_key_columns(text)
    elif key in _LISTS:
        values[key] = split_regex_list(value)
    elif key in _BOOLS:
        values[key] = _bool(key, text)
    elif key in _INTS or key in _RENAMED:
        values[_RENAMED.get(key, key)] = _int(key, text)
    elif key in _CHOICES:
        if text not in _CHOICES[key]:
            raise ConfigError(f"{key}={text!r} is not supported by cdcd; use one of {', '.join(_CHOICES[key])}")
        values[key] = text
    elif key == "skipped.operations":
        ops = tuple(o.strip().lower() for o in text.split(",") if o.strip())
        if set(ops) - {"c", "u", "d", "t", "none"}:
            raise ConfigError(f"skipped.operations={text!r}: use a comma-separated list of c, u, d, t, or none")
        values[key] = tuple(o for o in ops if o != "none")
    elif key == "snapshot.mode" or key.startswith("snapshot.") or key == "streaming.delay.ms":
        values[key] = int(text) if text.isdigit() else "no_data" if key == "snapshot.mode" and text == "never" else text
        if key == "snapshot.mode" and text in ("custom", "configuration_based"):
            warnings.append(f"snapshot.mode={text}: needs Java classes or Debezium-only properties; "
                            "see docs/snapshots.md for cdcd's modes")
    elif _is_column_rule(key):
        for rule in column_rule_options({key: value})["column_mask_hash"]:
            digest_name(rule.algorithm)
        values[key] = split_regex_list(value)
    elif key.startswith(("key.converter.", "value.converter.")):
        pass  # read by _converters
    elif key.startswith("producer.override."):
        values.setdefault("kafka", {})[key[len("producer.override."):]] = value
    elif key.startswith("transforms.") or key.startswith("predicates."):
        pass  # read by _transforms
    elif key in _LIBPQ or text.lower() in _SAME.get(key, ()) or text in _SAME.get(key, ()):
        pass  # in the DSN, or a setting cdcd matches
    else:
        warnings.append(f"{key}: {_why(key)}")


def _is_column_rule(key: str) -> bool:
    rules = column_rule_options({key: ""})
    return bool(rules["column_truncate_to"] or rules["column_mask_hash"] or rules["column_mask_with"])


def _why(key: str) -> str:
    if key in _WHY:
        return _WHY[key]
    for prefix, why in _WHY.items():
        if prefix.endswith(".") and key.startswith(prefix):
            return why
    if key.startswith("database."):
        return "JDBC driver property; cdcd connects with libpq and does not use it"
    return "not a Debezium PostgreSQL connector property cdcd knows; ignored"


def _bool(key: str, text: str) -> bool:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise ConfigError(f"{key}: expected true or false, got {text!r}")


def _int(key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{key}: expected an integer, got {text!r}") from None


def _check_connector(props: Mapping[str, str], warnings: list[str]) -> None:
    cls = props.get("connector.class", CONNECTOR_CLASS).strip()
    if cls not in (CONNECTOR_CLASS, "PostgresConnector"):
        raise ConfigError(f"connector.class={cls}: cdcd replaces only {CONNECTOR_CLASS}")
    plugin = props.get("plugin.name")
    if plugin is None:
        warnings.append("plugin.name: not set, so Debezium would use decoderbufs; cdcd always uses pgoutput "
                        "(an existing decoderbufs slot must be replaced)")
    elif plugin.strip() != "pgoutput":
        raise ConfigError(f"plugin.name={plugin}: cdcd decodes only pgoutput; set plugin.name=pgoutput and use a "
                          "slot created with the pgoutput plugin")


def _converters(props: Mapping[str, str], values: dict[str, Any], warnings: list[str]) -> None:
    """``key.converter`` / ``value.converter`` and their options, checked as cdcd will use them."""
    options: dict[str, str] = {}
    for key in ("key.converter", "value.converter"):
        if key in props:
            values[key] = _resolve(key, props[key]).strip() if "${" in props[key] else props[key].strip()
    for key, value in props.items():
        if key.startswith(("key.converter.", "value.converter.")):
            options[key] = _resolve(key, value) if "${" in value else value
    values.update(options)
    from cdcd.converters import converter_settings

    for settings in converter_settings(values.get("key.converter", JSON_CONVERTER),
                                       values.get("value.converter", JSON_CONVERTER),
                                       options, values.get("kafka", {})):
        warnings.extend(settings.warnings)


def _resolve(key: str, value: str) -> str:
    """Kafka Connect config providers: ``${env:NAME}``, ``${file:path:key}``, ``${directory:dir:file}``."""
    def one(match: re.Match[str]) -> str:
        provider, path, item = match[1], match[2], match[3]
        try:
            if provider == "env" and not path:
                return os.environ[item]
            if provider == "file" and path:
                for line in Path(path).read_text().splitlines():
                    found = re.match(r"\s*([^#!=:\s][^=:\s]*)\s*[=:]\s*(.*)", line)
                    if found and found[1] == item:
                        return found[2].rstrip()
                raise KeyError(item)
            if provider == "directory" and path:
                return (Path(path) / item).read_text()
        except (KeyError, OSError):
            raise ConfigError(f"{key}: cannot resolve {match[0]} ({provider} provider)") from None
        raise ConfigError(f"{key}: config provider {provider!r} is not supported by cdcd (env, file, directory are)")
    return _PLACEHOLDER.sub(one, value)


def _quote(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _dsn(props: Mapping[str, str], warnings: list[str]) -> str:
    """The libpq conninfo; the password stays out of warnings and errors."""
    parts: list[tuple[str, str]] = []
    for key, word in (("database.hostname", "host"), ("database.port", "port"), ("database.user", "user"),
                      ("database.dbname", "dbname")):
        if props.get(key, "").strip():
            parts.append((word, _resolve(key, props[key].strip())))
    if "database.password" in props:
        try:
            parts.append(("password", _resolve("database.password", props["database.password"])))
        except ConfigError as exc:
            warnings.append(f"{exc}; the password is left out of the DSN (give it with PGPASSWORD or ~/.pgpass)")
    for key, word in _LIBPQ.items():
        if props.get(key, "").strip():
            parts.append((word, _resolve(key, props[key].strip())))
    if props.get("database.tcpKeepAlive", "true").strip().lower() == "false":
        parts.append(("keepalives", "0"))
    if "database.dbname" not in props:
        raise ConfigError("database.dbname is required")
    return " ".join(f"{word}={_quote(value)}" for word, value in parts)


def _schema_filters(props: Mapping[str, str], values: dict[str, Any]) -> None:
    """``schema.include.list``/``exclude.list`` folded into the table lists (cdcd filters on schema.table)."""
    s_in = split_regex_list(props.get("schema.include.list"))
    s_ex = split_regex_list(props.get("schema.exclude.list"))
    if s_in and s_ex:
        raise ConfigError("schema.include.list and schema.exclude.list are mutually exclusive (as in Debezium)")
    if not (s_in or s_ex):
        return
    schemas = "|".join(f"(?:{s})" for s in s_in or s_ex)
    t_in, t_ex = values.pop("table.include.list", ()), values.pop("table.exclude.list", ())
    if s_in and t_in:
        values["table.include.list"] = tuple(f"(?=(?:{schemas})\\.)(?:{t})" for t in t_in)
    elif s_in and t_ex:
        tables = "|".join(f"(?:{t})" for t in t_ex)
        values["table.include.list"] = (f"(?=(?:{schemas})\\.)(?!(?:{tables})\\Z).+",)
    elif s_in:
        values["table.include.list"] = (f"(?:{schemas})\\..+",)
    elif t_in:
        values["table.include.list"] = tuple(f"(?!(?:{schemas})\\.)(?:{t})" for t in t_in)
    else:
        values["table.exclude.list"] = tuple(t_ex) + (f"(?:{schemas})\\..+",)


def _transforms(props: Mapping[str, str], values: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The SMTs cdcd has, flattened as ``Config.transforms`` holds them: ``unwrap.<property>``, ``outbox.<property>``."""
    flat: dict[str, Any] = {}
    for alias in (a.strip() for a in props.get("transforms", "").split(",") if a.strip()):
        prefix = f"transforms.{alias}."
        options: dict[str, Any] = {k[len(prefix):]: v for k, v in props.items() if k.startswith(prefix)}
        kind = TRANSFORM_KINDS.get(options.pop("type", "").strip())
        if kind is None or any(k.startswith(kind + ".") for k in flat):
            why = "a second one is not supported" if kind else "not available in cdcd; events are emitted without it"
            warnings.append(f"transforms.{alias}: {props.get(prefix + 'type') or 'no type'}: {why} "
                            "(cdcd has one EventRouter and one ExtractNewRecordState)")
            continue
        if options.pop("predicate", None) is not None or options.pop("negate", None) is not None:
            warnings.append(f"transforms.{alias}.predicate: predicates are not supported; the transform applies "
                            "to every event it can handle")
        if kind == "outbox" and "table.include.list" not in options and values.get("table.include.list"):
            # Debezium routes every captured row: scope cdcd's router to the connector's tables.
            options["table.include.list"] = tuple(values["table.include.list"])
        try:
            (OutboxOptions if kind == "outbox" else UnwrapOptions).from_properties(options)
        except ConfigError as exc:
            warnings.append(f"transforms.{alias}: {exc}")
            continue
        flat.update({f"{kind}.{k}": v for k, v in options.items()})
    if any(key.startswith("predicates") for key in props):
        warnings.append("predicates: Kafka Connect predicates are not supported")
    return flat
