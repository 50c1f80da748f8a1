"""cdcd: PostgreSQL logical replication to Debezium-compatible Kafka change events."""

from __future__ import annotations

__version__ = "0.1.0"
