"""The TOAST handler ``toast.handling.mode`` asks for, ready for one streaming session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import psycopg
import structlog
from prometheus_client import CollectorRegistry

from cdcd.errors import ConfigError
from cdcd.toast.cache import CacheFiller
from cdcd.toast.metrics import ToastMetrics
from cdcd.toast.plans import ToastHandler
from cdcd.toast.refetch import Refetcher
from cdcd.toast.store import ToastStore, default_path

log = structlog.get_logger("cdcd.toast")

def toast_handler(config: Any, conn: psycopg.Connection[Any], registry: CollectorRegistry, *,
                  system_id: str | None, database: str, start_lsn: int) -> ToastHandler | None:
    """The handler ``toast.handling.mode`` asks for (None: placeholder), ready for a session from ``start_lsn``."""
    mode = config.toast_handling_mode
    if mode == "refetch":
        return Refetcher(conn, ToastMetrics.of(registry))
    if mode != "cache":
        return None
    if config.toast_cache_max_bytes <= 0 or config.toast_cache_min_bytes <= 0:
        raise ConfigError("toast.cache.max.bytes and toast.cache.min.bytes must be positive")
    path = Path(config.toast_cache_path) if config.toast_cache_path else default_path(config.slot_name)
    store = ToastStore.shared(path, config.toast_cache_max_bytes)
    # Rows of another server, database, slot or table selection are not these rows.
    owner = orjson.dumps([system_id, database, config.slot_name, config.table_include_list,
                          config.table_exclude_list]).decode()
    reason = store.begin(owner, start_lsn)
    if reason is not None:
        log.warning("toast_cache_emptied", path=str(path), reason=reason)
    log.info("toast_cache_opened", path=str(path), bytes=store.held_bytes, max_bytes=store.max_bytes)
    filler = CacheFiller(store, conn, config.toast_cache_min_bytes, ToastMetrics.of(registry))
    filler.sync_metrics()
    return filler
