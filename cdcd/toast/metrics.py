"""``cdcd_toast_*`` metrics, shared by both strategies."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True, slots=True)
class ToastMetrics:
    """``cdcd_toast_*``: registered once per registry (sessions come and go, the registry stays)."""

    hits: Counter
    misses: Counter
    evictions: Counter
    cache_bytes: Gauge
    refetched: Counter
    refetch_missing: Counter

    @staticmethod
    def of(registry: CollectorRegistry) -> ToastMetrics:
        found = _METRICS.get(registry)
        if found is None:
            refetch = Counter("cdcd_toast_refetch_total", "Unchanged TOAST values read again by primary key, "
                              "by result (found, missing: the row or column is gone)", ("result",), registry=registry)
            found = _METRICS[registry] = ToastMetrics(
                Counter("cdcd_toast_cache_hits_total", "Unchanged TOAST values filled from the cache", registry=registry),
                Counter("cdcd_toast_cache_misses_total", "Unchanged TOAST values not in the cache (the placeholder "
                        "was emitted)", registry=registry),
                Counter("cdcd_toast_cache_evictions_total", "Cache entries evicted to stay under "
                        "toast.cache.max.bytes", registry=registry),
                Gauge("cdcd_toast_cache_bytes", "Value bytes held by the TOAST cache", registry=registry),
                refetch.labels(result="found"), refetch.labels(result="missing"))
        return found


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, ToastMetrics] = weakref.WeakKeyDictionary()
