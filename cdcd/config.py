"""Configuration: one definition, loaded from file, then environment, then flags.

Each option is a dataclass field whose metadata names its Debezium property
(the TOML key), its environment variable and its flag, so the CLI, the loader
and the reference docs are all derived from this one place and cannot drift.
Later sources win: defaults < TOML file < ``CDCD_*`` environment < flags.

Over 400 lines on purpose: half of it is the option table (``Config``), and the
loader beside it reads that table and nothing else.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cdcd.debezium.column_rules import split_regex_list
from cdcd.errors import ConfigError
from cdcd.ops.logs import redact_dsn


def _opt(key: str, default: Any, help: str, *, flag: str | None = None,
         choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"key": key, "help": help, "flag": flag, "choices": choices})


@dataclass(frozen=True)
class Config:
    dsn: str = _opt("dsn", "", "libpq connection string of the captured database "
                    "(password may come from PGPASSWORD or a ~/.pgpass file)", flag="--dsn")
    primary_dsn: str = _opt(
        "primary.dsn", "", "when dsn is a hot standby (PostgreSQL 16+): libpq string of its primary. Used only "
        "while a slot is created on the standby (cdcd calls pg_log_standby_snapshot() there every second, so "
        "creation does not wait for the primary's next running-transactions record) and by cdcd check (the "
        "primary's wal_level); see docs/operations.md#decoding-from-a-standby")
    bootstrap_servers: str = _opt("bootstrap.servers", "localhost:9092",
                                  "Kafka bootstrap servers (host:port,...)", flag="--bootstrap-servers")
    topic_prefix: str = _opt("topic.prefix", "cdcd", "prefix of every topic name; also source.name",
                             flag="--topic-prefix")
    slot_name: str = _opt("slot.name", "cdcd", "logical replication slot (created when missing)", flag="--slot")
    publication_name: str = _opt("publication.name", "cdcd", "publication streamed from", flag="--publication")
    publication_autocreate_mode: str = _opt(
        "publication.autocreate.mode", "all_tables",
        "all_tables: create FOR ALL TABLES when missing; filtered: FOR the included tables; "
        "disabled: the publication must exist", choices=("all_tables", "filtered", "disabled"))
    publish_via_partition_root: bool = _opt(
        "publish.via.partition.root", False,
        "create the publication WITH (publish_via_partition_root = true): changes of a partition are "
        "published, and emitted, as changes of its partitioned root table")
    sink: str = _opt("sink", "kafka", "kafka, or stdout for JSON lines {topic,key,value}", flag="--sink",
                     choices=("kafka", "stdout"))
    table_include_list: tuple[str, ...] = _opt(
        "table.include.list", (), "regexes matched against schema.table; only these are captured")
    table_exclude_list: tuple[str, ...] = _opt("table.exclude.list", (), "regexes of schema.table never captured")
    column_exclude_list: tuple[str, ...] = _opt(
        "column.exclude.list", (), "regexes of schema.table.column left out of events")
    column_include_list: tuple[str, ...] = _opt(
        "column.include.list", (), "regexes of schema.table.column kept in events (exclusive with the exclude list)")
    message_key_columns: str = _opt(
        "message.key.columns", "", "keys other than the primary key: <table regex>:<col>,<col>;<table regex>:<col>")
    column_propagate_source_type: tuple[str, ...] = _opt(
        "column.propagate.source.type", (), "regexes of columns whose schema carries __debezium.source.column.*")
    datatype_propagate_source_type: tuple[str, ...] = _opt(
        "datatype.propagate.source.type", (), "regexes of schema.table.type names whose columns carry the source type")
    schema_name_adjustment_mode: str = _opt("schema.name.adjustment.mode", "none", "sanitize schema names",
                                            choices=("none", "avro", "avro_unicode"))
    field_name_adjustment_mode: str = _opt("field.name.adjustment.mode", "none", "sanitize field names",
                                           choices=("none", "avro", "avro_unicode"))
    interval_handling_mode: str = _opt("interval.handling.mode", "numeric", "how interval columns are encoded",
                                       choices=("numeric", "string"))
    hstore_handling_mode: str = _opt("hstore.handling.mode", "json", "how hstore columns are encoded",
                                     choices=("json", "map"))
    money_fraction_digits: int = _opt("money.fraction.digits", 2, "scale of money values")
    include_unknown_datatypes: bool = _opt(
        "include.unknown.datatypes", False,
        "columns of types Debezium has no converter for: false leaves them out, true carries their text as bytes")
    unavailable_value_placeholder: str = _opt(
        "unavailable.value.placeholder", "__debezium_unavailable_value",
        "value emitted for a TOASTed column an UPDATE did not change")
    tombstones_on_delete: bool = _opt("tombstones.on.delete", True, "emit a tombstone after each delete")
    decimal_handling_mode: str = _opt("decimal.handling.mode", "precise", "how numeric columns are encoded",
                                      choices=("precise", "double", "string"))
    time_precision_mode: str = _opt("time.precision.mode", "adaptive", "how temporal columns are encoded",
                                    choices=("adaptive", "adaptive_time_microseconds", "connect"))
    binary_handling_mode: str = _opt("binary.handling.mode", "bytes", "how bytea columns are encoded",
                                     choices=("bytes", "base64", "base64-url-safe", "hex"))
    snapshot_mode: str = _opt(
        "snapshot.mode", "initial", "initial: snapshot when the slot is created; initial_only: snapshot, then stop; "
        "no_data (never): stream only; always: snapshot at every start; when_needed: snapshot when Kafka holds no "
        "position", choices=("initial", "initial_only", "no_data", "never", "always", "when_needed"))
    snapshot_max_threads: int = _opt("snapshot.max.threads", 1,
                                     "snapshot threads reading and encoding tables (big ones in parts) in parallel")
    snapshot_fetch_size: int = _opt("snapshot.fetch.size", 10240, "rows fetched per round trip in a snapshot")
    signal_data_collection: str = _opt(
        "signal.data.collection", "", "schema.table of Debezium's signal table (id, type, data): execute-snapshot "
        "and the other signals inserted there are carried out in stream order; see docs/snapshots.md")
    incremental_snapshot_chunk_size: int = _opt("incremental.snapshot.chunk.size", 1024,
                                                "rows per chunk (and window) of an incremental snapshot")
    incremental_snapshot_watermarking_strategy: str = _opt(
        "incremental.snapshot.watermarking.strategy", "insert_insert",
        "insert_insert: open and close watermarks are rows of the signal table; insert_delete: the close deletes "
        "the open row, so watermarks do not pile up", choices=("insert_insert", "insert_delete"))
    toast_handling_mode: str = _opt(
        "toast.handling.mode", "placeholder", "TOASTed columns an UPDATE did not change: placeholder (Debezium's "
        "unavailable.value.placeholder), cache (last value seen, from a local file), refetch (current value, read "
        "by primary key); see docs/toast-and-ddl.md", choices=("placeholder", "cache", "refetch"))
    toast_cache_path: str = _opt("toast.cache.path", "", "SQLite file of toast.handling.mode=cache (default "
                                 "cdcd-toast-<slot.name>.sqlite in $STATE_DIRECTORY, else the working directory)")
    toast_cache_max_bytes: int = _opt("toast.cache.max.bytes", 1073741824,
                                      "size cap of the TOAST cache's values; least recently used go first")
    toast_cache_min_bytes: int = _opt("toast.cache.min.bytes", 2000,
                                      "values shorter than this are not cached (PostgreSQL TOASTs above ~2 kB)")
    schema_changes_mode: str = _opt(
        "schema.changes.mode", "none", "event-trigger: DDL captured by cdcd install-ddl-capture becomes schema "
        "change events on <topic.prefix>; see docs/toast-and-ddl.md", choices=("none", "event-trigger"))
    skipped_operations: tuple[str, ...] = _opt(
        "skipped.operations", ("t",), "operations not emitted: any of c, u, d, t, or none (Debezium's default "
        "skips truncates)")
    heartbeat_interval_ms: int = _opt(
        "heartbeat.interval.ms", 0, "emit a heartbeat record this often (0: never) on <topic.heartbeat.prefix>."
        "<topic.prefix>")
    heartbeat_action_query: str = _opt(
        "heartbeat.action.query", "", "SQL run on the captured database at each heartbeat, e.g. to write to a "
        "heartbeat table so the slot advances even when only other databases are busy")
    topic_heartbeat_prefix: str = _opt("topic.heartbeat.prefix", "__debezium-heartbeat",
                                       "prefix of the heartbeat topic")
    provide_transaction_metadata: bool = _opt(
        "provide.transaction.metadata", False, "BEGIN/END events on <prefix>.transaction and the transaction block")
    transactional_id: str = _opt("transactional.id", "",
                                 "Kafka transactional.id (default cdcd-<topic.prefix>-<slot.name>)")
    offsets_topic: str = _opt("offsets.topic", "",
                              "compacted topic holding the source position, written in each Kafka transaction "
                              "(default <topic.prefix>.offsets)")
    shutdown_timeout_ms: int = _opt("shutdown.timeout.ms", 10000,
                                    "on SIGTERM, how long the final Kafka commit may take before it is abandoned")
    standby_poll_ms: int = _opt("standby.poll.ms", 1000,
                                "while another instance holds the slot, how often to check whether it is free")
    oversized_record_policy: str = _opt(
        "oversized.record.policy", "fail",
        "a record larger than the producer's message.max.bytes: fail (exit 4, nothing confirmed), skip "
        "(log record_skipped_oversized), dead-letter (small JSON record on the dead-letter topic)",
        choices=("fail", "skip", "dead-letter"))
    oversized_record_dead_letter_topic: str = _opt(
        "oversized.record.dead.letter.topic", "", "topic for oversized.record.policy=dead-letter "
        "(default <topic.prefix>.dlq)")
    status_interval_ms: int = _opt("status.interval.ms", 1000,
                                   "how often the confirmed LSN is reported to PostgreSQL")
    max_batch_events: int = _opt("max.batch.events", 20000,
                                 "commit the Kafka transaction after this many events at a transaction boundary")
    max_batch_ms: int = _opt("max.batch.ms", 100,
                             "commit the Kafka transaction after this long at a transaction boundary")
    commit_overlap: bool = _opt(
        "commit.overlap", False,
        "commit each Kafka transaction on a background thread while the next batch is read and encoded "
        "(pays off when commits wait on the network; see docs/performance.md)")
    commit_gap_ms: int = _opt(
        "commit.gap.ms", 2,
        "start the next Kafka transaction no sooner than this after a commit returned: until the "
        "coordinator has written the commit markers, the next transaction's partitions are refused "
        "(CONCURRENT_TRANSACTIONS) and librdkafka retries 20 ms later (docs/delivery.md); 0 starts at once")
    kafka_timeout_ms: int = _opt("kafka.timeout.ms", 30000,
                                 "how long init/commit of a Kafka transaction may take before failing")
    log_level: str = _opt("log.level", "info", "debug, info, warning or error", flag="--log-level",
                          choices=("debug", "info", "warning", "error"))
    log_format: str = _opt("log.format", "auto", "json, console, or auto (console on a TTY)",
                           choices=("auto", "json", "console"))
    http_enabled: bool = _opt("http.enabled", True, "serve /metrics, /healthz and /readyz over HTTP")
    http_host: str = _opt("http.host", "0.0.0.0", "address of the HTTP endpoint (:: for IPv6)")
    http_port: int = _opt("http.port", 8080, "port of the HTTP endpoint (0: any free port)", flag="--http-port")
    health_stall_timeout_ms: int = _opt(
        "health.stall.timeout.ms", 60000, "/healthz fails and the systemd watchdog stops when the main loop "
        "has not iterated this long; keep above kafka.timeout.ms")
    slot_lag_poll_interval_ms: int = _opt(
        "slot.lag.poll.interval.ms", 15000, "how often slot lag and retained WAL are read from pg_replication_slots")
    key_converter: str = _opt(
        "key.converter", "org.apache.kafka.connect.json.JsonConverter",
        "how keys are written: org.apache.kafka.connect.json.JsonConverter, io.confluent.connect.avro.AvroConverter "
        "(Avro with a Schema Registry), org.apache.kafka.connect.storage.StringConverter or "
        "org.apache.kafka.connect.converters.ByteArrayConverter; options as key.converter.* (see Converters below)")
    value_converter: str = _opt(
        "value.converter", "org.apache.kafka.connect.json.JsonConverter",
        "how values are written, as key.converter; options as value.converter.*")
    kafka: Mapping[str, str] = field(default_factory=dict, metadata={
        "key": "kafka", "help": "[kafka] table: librdkafka producer properties passed through "
        "(environment: CDCD_KAFKA_SASL_PASSWORD -> sasl.password)", "flag": None, "choices": None})

    column_rules: Mapping[str, Any] = field(default_factory=dict, metadata={
        "key": "column.mask.*", "help": "column.mask.with.N.chars, column.truncate.to.N.chars and "
        "column.mask.hash.ALG.with.salt.SALT: regex lists, as in Debezium", "flag": None, "choices": None})
    transforms: Mapping[str, Any] = field(default_factory=dict, metadata={
        "key": "transforms", "help": "[transforms.outbox] / [transforms.unwrap] tables: the outbox event router "
        "and new-record-state flattening, with Debezium's property names (see docs/outbox.md)",
        "flag": None, "choices": None})
    converter_properties: Mapping[str, str] = field(default_factory=dict, metadata={
        "key": "key.converter.*", "help": "key.converter.* and value.converter.* options, with Kafka Connect's "
        "names: schemas.enable, schema.registry.url, basic.auth.credentials.source, basic.auth.user.info, "
        "auto.register.schemas, use.latest.version, key/value.subject.name.strategy, ... (environment: "
        "CDCD_VALUE_CONVERTER_BASIC_AUTH_USER_INFO -> value.converter.basic.auth.user.info)",
        "flag": None, "choices": None})

    given: frozenset[str] = field(default=frozenset(), compare=False)
    """The options a source (a Debezium config, the file, the environment, a flag) set, by key: where
    Debezium acts on a property only when it is given (``skipped.operations`` and the publication)."""

    @property
    def effective_offsets_topic(self) -> str:
        return self.offsets_topic or f"{self.topic_prefix}.offsets"

    @property
    def effective_transactional_id(self) -> str:
        return self.transactional_id or f"cdcd-{self.topic_prefix}-{self.slot_name}"

    def redacted_dsn(self) -> str:
        return redact_dsn(self.dsn)


def option_fields() -> list[Any]:
    return [f for f in fields(Config)
            if f.name not in ("kafka", "transforms", "column_rules", "converter_properties", "given")]


_CONVERTER_PREFIXES = ("key.converter.", "value.converter.")


def _converter_key(key: str) -> str | None:
    """``key.converter.class`` (a TOML table's class) is ``key.converter`` itself."""
    for side in ("key", "value"):
        if key == f"{side}.converter.class":
            return f"{side}.converter"
    return None


def env_name(key: str) -> str:
    return "CDCD_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def _coerce(f: Any, value: Any, origin: str) -> Any:
    key = f.metadata["key"]
    default = f.default if f.default is not MISSING else None
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if isinstance(default, int):
            try:
                return int(str(value).strip().replace("_", ""))
            except ValueError:
                raise ValueError(f"expected a whole number, got {value!r}") from None
        if isinstance(default, tuple):
            if isinstance(value, list | tuple):
                return tuple(str(i).strip() for i in value if str(i).strip())
            return split_regex_list(str(value))
        text = str(value)
        choices = f.metadata["choices"]
        if choices and text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text
    except ValueError as exc:
        raise ConfigError(f"{key} ({origin}): {exc}") from None


def load(path: str | None = None, env: Mapping[str, str] | None = None,
         overrides: Mapping[str, Any] | None = None, base: Mapping[str, Any] | None = None) -> Config:
    """Build a Config: ``base`` (a translated Debezium config, keyed by property), then a TOML
    file, the environment and flag overrides (by field name); later sources win."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    kafka: dict[str, str] = {}
    transforms: dict[str, Any] = {}
    column_rules: dict[str, Any] = {}
    converter_properties: dict[str, str] = {}
    by_key = {f.metadata["key"]: f for f in option_fields()}
    sources: list[tuple[str, list[tuple[str, Any]]]] = []
    if base:
        flat: list[tuple[str, Any]] = []
        for key, value in base.items():
            if key in ("kafka", "transforms") and isinstance(value, Mapping):
                flat.extend((f"{key}.{k}", v) for k, v in value.items())
            elif key in by_key or key.startswith(("column.mask.", "column.truncate.", *_CONVERTER_PREFIXES)):
                flat.append((key, value))
        sources.append(("--debezium-config", flat))
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        sources.append((path, _flatten(data)))
    for path, items in sources:
        for key, value in items:
            key = _converter_key(key) or key
            if key.startswith("kafka."):
                kafka[key[len("kafka."):]] = str(value).lower() if isinstance(value, bool) else str(value)
            elif key.startswith("transforms."):
                transforms[key[len("transforms."):]] = value
            elif key.startswith(("column.mask.", "column.truncate.")):
                column_rules[key] = value
            elif key.startswith(_CONVERTER_PREFIXES):
                converter_properties[key] = str(value).lower() if isinstance(value, bool) else str(value)
            elif key in by_key:
                values[by_key[key].name] = _coerce(by_key[key], value, path)
            else:
                raise ConfigError(f"{path}: unknown option {key!r} (see docs/configuration.md)")
    for f in option_fields():
        name = env_name(f.metadata["key"])
        if name in env:
            values[f.name] = _coerce(f, env[name], name)
    for name, value in env.items():
        if name.startswith("CDCD_KAFKA_") and name != "CDCD_KAFKA_TIMEOUT_MS":
            kafka[name[len("CDCD_KAFKA_"):].lower().replace("_", ".")] = value
        for side in ("KEY", "VALUE"):
            prefix = f"CDCD_{side}_CONVERTER_"
            if name.startswith(prefix):
                converter_properties[f"{side.lower()}.converter." + name[len(prefix):].lower().replace("_", ".")] \
                    = value
    for name, value in (overrides or {}).items():
        if value is not None:
            f = next(f for f in option_fields() if f.name == name)
            values[name] = _coerce(f, value, f.metadata["flag"] or name)
    config = replace(Config(), **values, kafka=kafka, transforms=transforms, column_rules=column_rules,
                     converter_properties=converter_properties,
                     given=frozenset(f.metadata["key"] for f in option_fields() if f.name in values))
    _validate(config)
    return config


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """TOML tables and dotted keys both give ``a.b.c`` keys (``[kafka]`` stays one level)."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_flatten(value, full + "."))
        else:
            out.append((full, value))
    return out


# Ranges of numeric options: (minimum, maximum or None). Anything else must be >= 0.
_RANGES: dict[str, tuple[int, int | None]] = {
    "http_port": (0, 65535),
    "money_fraction_digits": (0, 100),
    "snapshot_max_threads": (1, 1024),
    "snapshot_fetch_size": (1, None),
    "incremental_snapshot_chunk_size": (1, None),
    "status_interval_ms": (1, None),
    "max_batch_events": (1, None),
    "max_batch_ms": (1, None),
    "commit_gap_ms": (0, 1000),
    "kafka_timeout_ms": (1, None),
    "shutdown_timeout_ms": (1, None),
    "standby_poll_ms": (1, None),
    "health_stall_timeout_ms": (1, None),
    "slot_lag_poll_interval_ms": (1, None),
}


def _check_ranges(config: Config) -> None:
    for f in option_fields():
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        low, high = _RANGES.get(f.name, (0, None))
        if value < low or (high is not None and value > high):
            expected = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{f.metadata['key']} = {value}: expected {expected}")


def env_warnings(env: Mapping[str, str] | None = None) -> list[str]:
    """``CDCD_*`` variables that name no option (a typo is otherwise silently ignored)."""
    import difflib

    env = os.environ if env is None else env
    known = {env_name(f.metadata["key"]) for f in option_fields()}
    out = []
    for name in sorted(env):
        if not name.startswith("CDCD_") or name in known or name.startswith(_FOREIGN_ENV_PREFIXES):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else " (see docs/configuration.md)"
        out.append(f"environment variable {name} is not a cdcd option and is ignored{hint}")
    return out


# CDCD_KAFKA_<NAME> passes any producer property through; the others are read elsewhere.
_FOREIGN_ENV_PREFIXES = ("CDCD_KAFKA_", "CDCD_TEST_", "CDCD_FAULT_", "CDCD_BENCH_", "CDCD_MOCK_", "CDCD_PG_")


def _validate(config: Config) -> None:
    _check_ranges(config)
    if config.sink == "kafka" and not config.bootstrap_servers:
        raise ConfigError("bootstrap.servers is empty: give --bootstrap-servers or use --sink stdout")
    if not re.fullmatch(r"[a-z0-9_]{1,63}", config.slot_name):
        raise ConfigError(f"slot.name {config.slot_name!r}: PostgreSQL slot names are 1-63 of [a-z0-9_]")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", config.topic_prefix):
        raise ConfigError(f"topic.prefix {config.topic_prefix!r}: use letters, digits, '.', '_' and '-' only")
    for key in ("table_include_list", "table_exclude_list", "column_exclude_list"):
        for pattern in getattr(config, key):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{key.replace('_', '.')}: bad regex {pattern!r}: {exc}") from None
    unknown_ops = set(config.skipped_operations) - {"c", "u", "d", "t", "none"}
    if unknown_ops:
        raise ConfigError(f"skipped.operations: unknown operation(s) {', '.join(sorted(unknown_ops))}; "
                          "use c, u, d, t or none")
    if config.column_include_list and config.column_exclude_list:
        raise ConfigError("column.include.list and column.exclude.list are mutually exclusive (as in Debezium)")
    if config.table_include_list and config.table_exclude_list:
        raise ConfigError("table.include.list and table.exclude.list are mutually exclusive (as in Debezium)")
    converter_settings(config)


def converter_settings(config: Config) -> Any:
    """Both sides' converter settings (checked; raises ConfigError), as a (key, value) pair."""
    from cdcd.converters import converter_settings as settings

    return settings(config.key_converter, config.value_converter, config.converter_properties, config.kafka)
