"""Logical decoding messages (``pg_logical_emit_message``): ``op: "m"`` events, outbox events, DDL events.

A transactional message belongs to its transaction (same ``source``, its own data
collection in the transaction metadata); a non-transactional one is a unit of delivery
of its own. A transactional ``cdcd.ddl`` message is a schema change event
(docs/toast-and-ddl.md) and invalidates what was built for the tables it names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from cdcd.debezium.envelope import Record, TransactionContext
from cdcd.debezium.message_events import MessageEncoder, message_data_collection
from cdcd.debezium.schema_change import PREFIX as DDL_PREFIX
from cdcd.debezium.schema_change import SchemaChangeEncoder
from cdcd.debezium.schema_change import parse as parse_ddl
from cdcd.debezium.source_info import SourceInfo
from cdcd.debezium.transforms.outbox import OutboxRouter
from cdcd.decode.messages import LogicalMessage
from cdcd.ops.metrics import Metrics
from cdcd.session.relations import RelationState
from cdcd.session.transaction import OpenTransaction
from cdcd.wire.lsn import format_lsn

log = structlog.get_logger("cdcd.pipeline")

Send = Callable[[Record], None]


class LogicalMessages:
    def __init__(self, encoder: MessageEncoder, outbox: OutboxRouter | None,
                 schema_changes: SchemaChangeEncoder | None, relations: RelationState, metrics: Metrics,
                 stats: Any) -> None:
        self._encoder, self._outbox, self._schema_changes = encoder, outbox, schema_changes
        self._relations, self._metrics, self._stats = relations, metrics, stats

    def handle(self, msg: LogicalMessage, txn: OpenTransaction | None, last_commit_lsn: int | None,
               skip_until: int, metadata: Callable[[OpenTransaction], TransactionContext | None],
               send: Send) -> bool:
        """Hand the message's records to ``send``; True when it was a unit of its own (non-transactional)."""
        if self._schema_changes is not None and msg.prefix == DDL_PREFIX and msg.transactional and txn is not None:
            self._schema_change(msg, txn, last_commit_lsn, send)
            return False
        if msg.transactional and txn is not None:
            if txn.skip:
                return False
            source = txn.source(msg.lsn, last_commit_lsn)
            # Debezium counts each message as a data collection of its own (a new LogicalDecodingMessageId).
            context = metadata(txn)
            block = None if context is None else context.next_block(message_data_collection(msg.lsn), msg.lsn)
            self._route(msg, source, block, send)
            return False
        if msg.lsn < skip_until:
            return False
        self._route(msg, SourceInfo.read_now(msg.lsn, last_commit_lsn), None, send)
        return True

    def _schema_change(self, msg: LogicalMessage, txn: OpenTransaction, last_commit_lsn: int | None,
                       send: Send) -> None:
        """A ``cdcd.ddl`` message: forget what was built for its tables, emit one schema change event."""
        try:
            change = parse_ddl(msg.content)
        except ValueError as exc:
            log.warning("ddl_message_invalid", lsn=format_lsn(msg.lsn), error=str(exc))
            self._metrics.error("ddl_message")
            return
        for table in change.tables:  # pgoutput sends a Relation before the next row anyway
            self._relations.invalidate(table.oid, values_rewritten=True)
        assert self._schema_changes is not None
        record = None if txn.skip else self._schema_changes.record(change, txn.source(msg.lsn, last_commit_lsn))
        if record is not None:
            send(record)
            self._stats.events += 1

    def _route(self, msg: LogicalMessage, source: SourceInfo, block: dict[str, Any] | None, send: Send) -> None:
        if self._outbox is not None and self._outbox.handles_message(msg):
            for record in self._outbox.route_message(msg, source):
                send(record)
        else:
            send(self._encoder.record(msg.prefix, msg.content, source, block))
