"""``cdcd check``: a preflight that says, line by line, whether ``run`` would work.

Every check prints ``ok``, ``warn`` or ``FAIL`` with what it saw and, on
failure, how to fix it. Nothing is created or changed, and the broker check
does not register the transactional id (that would fence a running cdcd).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from cdcd.config import Config
from cdcd.errors import CdcdError, SourceError
from cdcd.ops.logs import quiet_librdkafka_logger
from cdcd.source.catalog import Catalog, connect
from cdcd.wire.standby import invalidation_message, primary_wal_level, server_role, slot_state_columns, standby_findings


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str  # "ok" | "warn" | "FAIL"
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


def run_checks(config: Config) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        catalog = Catalog(connect(config.dsn))
    except CdcdError as exc:
        results.append(CheckResult("postgresql", "FAIL", str(exc)))
    else:
        try:
            results.append(CheckResult("postgresql", "ok", f"connected to {config.redacted_dsn() or 'defaults'}"))
            results.extend(_source_checks(config, catalog))
        finally:
            catalog.close()
    if config.sink == "kafka":
        results.append(check_broker(config))
        if results[-1].status == "ok":
            results.append(_offsets_topic_check(config))
        results.extend(check_converters(config))
    else:
        results.append(CheckResult("sink", "ok", "stdout (no broker needed)"))
    return results


def check_converters(config: Config) -> list[CheckResult]:
    """One line per side: the converter, and for AvroConverter whether its Schema Registry answers."""
    from cdcd.config import converter_settings

    out = []
    for settings in converter_settings(config):
        name = f"{settings.side}.converter"
        if not settings.is_avro:
            what = "JsonConverter" + ("" if settings.schemas_enable else " without schemas")
            out.append(CheckResult(name, "ok", what))
            continue
        from cdcd.converters.avro import check_registry, registry_urls

        problem = check_registry(settings)
        out.append(CheckResult(name, "FAIL", f"AvroConverter: cannot reach the schema registry {problem}") if problem
                   else CheckResult(name, "ok", f"AvroConverter, schema registry {registry_urls(settings)} answers"))
    return out


def _source_checks(config: Config, catalog: Catalog) -> list[CheckResult]:
    out = []
    wal_level = catalog.setting("wal_level")
    out.append(CheckResult("wal_level", "ok", "logical") if wal_level == "logical" else CheckResult(
        "wal_level", "FAIL", f"{wal_level}: set wal_level = logical in postgresql.conf and restart PostgreSQL"))
    out.append(CheckResult("replication privilege", "ok", "granted") if catalog.can_replicate() else CheckResult(
        "replication privilege", "FAIL", "missing: ALTER ROLE <user> WITH REPLICATION"))
    role = server_role(catalog.conn)
    if role.standby:
        wal = primary_wal_level(config.primary_dsn)
        out.extend(CheckResult(f.name, f.status, f.detail) for f in standby_findings(
            role, wal, primary_dsn_given=bool(config.primary_dsn), signal_table=bool(config.signal_data_collection)))
    pub = catalog.publication(config.publication_name)
    if pub is not None:
        tables = "ALL TABLES" if pub.all_tables else (", ".join(pub.tables) or "no tables")
        status = "ok" if (pub.all_tables or pub.tables) else "warn"
        out.append(CheckResult("publication", status,
                               f"{pub.name} publishes {'/'.join(pub.publishes)} of {tables}"))
    elif role.standby:
        out.append(CheckResult("publication", "FAIL",
                               f"{config.publication_name} does not exist and a standby cannot create it: "
                               f"CREATE PUBLICATION {config.publication_name} FOR ALL TABLES (or FOR TABLE ...) "
                               "on the primary"))
    elif config.publication_autocreate_mode == "disabled":
        out.append(CheckResult("publication", "FAIL",
                               f"{config.publication_name} does not exist: CREATE PUBLICATION "
                               f"{config.publication_name} FOR ALL TABLES (or FOR TABLE ...)"))
    else:
        out.append(CheckResult("publication", "warn",
                               f"{config.publication_name} does not exist; run will create it "
                               f"({config.publication_autocreate_mode})"))
    out.extend(_identity_check(config, catalog, pub is not None))
    out.append(_slot_check(config, catalog, role.version))
    if config.signal_data_collection:
        from cdcd.source.signal_table import check_signal_table

        try:
            check_signal_table(config, catalog)
            out.append(CheckResult("signal table", "ok", f"{config.signal_data_collection} exists and is published"))
        except SourceError as exc:
            out.append(CheckResult("signal table", "FAIL", str(exc)))
    from cdcd.source import ddl_capture
    from cdcd.toast import check as toast_check

    out.extend(CheckResult(*line) for line in toast_check.check(config, catalog.conn))
    ddl_line = ddl_capture.check(catalog.conn, config.schema_changes_mode)
    if ddl_line is not None:
        out.append(CheckResult(*ddl_line))
    return out


def _identity_check(config: Config, catalog: Catalog, exists: bool) -> list[CheckResult]:
    """Tables whose UPDATE/DELETE the publication makes PostgreSQL reject, and how cdcd's pair stays in step."""
    from cdcd.source.publication import FIX, TRIGGER, blocked_tables, layout, tables_without_identity, window_detail

    name = config.publication_name
    if exists:
        current = layout(config, catalog)
        blocked = sorted({t for pub in current.names for t in blocked_tables(catalog, pub)})
        out = []
        if blocked:
            out.append(CheckResult("replica identity", "FAIL",
                                   f"PostgreSQL rejects UPDATE and DELETE on {', '.join(blocked)} because publication "
                                   f"{name} publishes their updates or deletes and they have no replica identity: "
                                   f"{FIX}; or remove them from the publication"))
        else:
            out.append(CheckResult("replica identity", "ok", f"every table {name} publishes updates of has one"))
        if current.updates is not None:
            if current.trigger:
                out.append(CheckResult("publication sync", "ok",
                                       f"event trigger {TRIGGER} keeps {current.updates} in step in each DDL's "
                                       "transaction (no window)"))
            else:
                out.append(CheckResult("publication sync", "warn", window_detail(name)))
        return out
    if config.publication_autocreate_mode == "disabled":
        return []
    missing = tables_without_identity(catalog)
    if missing:
        return [CheckResult("replica identity", "warn",
                            f"{', '.join(missing)} have no replica identity: run will publish only their inserts and "
                            "truncates, so the application's UPDATE and DELETE keep working; to capture those too: "
                            f"{FIX}")]
    return [CheckResult("replica identity", "ok", "every table has one")]


def _slot_check(config: Config, catalog: Catalog, server_version: int) -> CheckResult:
    # On a standby pg_current_wal_lsn() fails: measure the lag from what was replayed.
    with catalog.conn.cursor() as cur:
        cur.execute(f"SELECT plugin, active, {slot_state_columns(server_version)}, "
                    "pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                    "ELSE pg_current_wal_lsn() END, confirmed_flush_lsn)::bigint "
                    "FROM pg_replication_slots WHERE slot_name = %s", (config.slot_name,))
        row = cur.fetchone()
    if row is None:
        return CheckResult("slot", "ok", f"{config.slot_name} does not exist yet; run will create it")
    plugin, active, wal_status, invalidation, _failover, _synced, lag = row
    if plugin != "pgoutput":
        return CheckResult("slot", "FAIL", f"{config.slot_name} uses plugin {plugin}: drop it or pick another slot.name")
    if invalidation is not None or wal_status == "lost":
        return CheckResult("slot", "FAIL", invalidation_message(config.slot_name, invalidation or "wal_removed"))
    state = "active (another client is streaming from it)" if active else "inactive"
    return CheckResult("slot", "warn" if active else "ok", f"{config.slot_name} exists, {state}, lag {lag} bytes")


def check_broker(config: Config, timeout: float = 5.0) -> CheckResult:
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient

    props = {k: v for k, v in config.kafka.items() if not k.startswith(("transactional.", "linger", "queue."))}
    props["bootstrap.servers"] = config.bootstrap_servers
    props["logger"] = quiet_librdkafka_logger("check")
    try:
        metadata = AdminClient(props).list_topics(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - report any client failure as unreachable
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and err.code() == KafkaError._INVALID_ARG:  # a bad [kafka] property
            return CheckResult("kafka", "FAIL", f"[kafka] properties: {err.str()}")
        return CheckResult("kafka", "FAIL", f"{config.bootstrap_servers} unreachable: {exc} "
                           "(check bootstrap.servers, the network and [kafka] security settings)")
    return CheckResult("kafka", "ok", f"{config.bootstrap_servers}: {len(metadata.brokers)} broker(s)")


def _offsets_topic_check(config: Config) -> CheckResult:
    from cdcd.delivery.offsets import not_compacted_fix, topic_cleanup_policy

    topic = config.effective_offsets_topic
    try:
        policy = topic_cleanup_policy(config.bootstrap_servers, topic, dict(config.kafka))
    except Exception as exc:  # noqa: BLE001 - e.g. no DescribeConfigs permission
        return CheckResult("offsets topic", "warn", f"cannot read the configuration of {topic}: {exc}")
    if policy is None:
        return CheckResult("offsets topic", "ok", f"{topic} does not exist yet; run creates it compacted")
    if "compact" not in policy.split(","):
        return CheckResult("offsets topic", "FAIL", not_compacted_fix(topic, policy))
    return CheckResult("offsets topic", "ok", f"{topic} is compacted")


def report(results: list[CheckResult], out: TextIO, write: Callable[[str], None] | None = None) -> bool:
    for result in results:
        (write or (lambda s: print(s, file=out)))(result.line())
    return all(r.status != "FAIL" for r in results)
