"""What must hold on the PostgreSQL side before cdcd touches a slot; each failure says how to fix it."""

from __future__ import annotations

import structlog

from cdcd.config import Config
from cdcd.errors import SourceError
from cdcd.source.catalog import Catalog
from cdcd.source.publication import ensure_publication
from cdcd.source.signal_table import check_signal_table
from cdcd.wire.standby import ServerRole, primary_wal_level, server_role, standby_findings

log = structlog.get_logger("cdcd.daemon")


def preflight_source(config: Config, catalog: Catalog) -> ServerRole:
    """What must hold before touching the slot; each failure says how to fix it."""
    wal_level = catalog.setting("wal_level")
    if wal_level != "logical":
        raise SourceError(f"wal_level is {wal_level!r}, logical decoding needs 'logical': "
                          "set wal_level = logical in postgresql.conf and restart PostgreSQL")
    if not catalog.can_replicate():
        raise SourceError("the database user lacks the REPLICATION attribute: "
                          "ALTER ROLE <user> WITH REPLICATION (or connect as a superuser)")
    role = server_role(catalog.conn)
    if role.standby:
        # Only what cannot work is fatal here; `cdcd check` also reports the risks (warn).
        findings = standby_findings(role, primary_wal_level(config.primary_dsn),
                                    primary_dsn_given=bool(config.primary_dsn),
                                    signal_table=bool(config.signal_data_collection))
        for finding in findings:
            if finding.status == "FAIL" and finding.name != "hot_standby_feedback":
                raise SourceError(f"{finding.name}: {finding.detail}")
            if finding.status != "ok":
                log.warning("standby_setting", setting=finding.name, detail=finding.detail)
    if role.standby and catalog.publication(config.publication_name) is None:
        name = config.publication_name
        raise SourceError(f"publication {name!r} does not exist, and this server is a standby where nothing can "
                          f"be created: CREATE PUBLICATION {name} FOR ALL TABLES (or FOR TABLE ...) on the "
                          "primary; the standby sees it once it replayed that")
    ensure_publication(config, catalog)
    if config.signal_data_collection:
        check_signal_table(config, catalog)
    return role
