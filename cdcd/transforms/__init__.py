"""Built-in record transforms, in place of Kafka Connect SMTs.

``outbox``: Debezium's outbox EventRouter, for outbox-table rows and for
``pg_logical_emit_message`` events. ``unwrap``: ExtractNewRecordState, change
events flattened to rows. Both are pure: records in, records out, no I/O, so
the pipeline decides where they apply and tests need no database.
"""

from __future__ import annotations

from cdcd.transforms.outbox import AdditionalField, OutboxError, OutboxOptions, OutboxRecord, OutboxRouter
from cdcd.transforms.unwrap import UnwrapOptions, Unwrapper, unwrap

__all__ = [
    "AdditionalField", "OutboxError", "OutboxOptions", "OutboxRecord", "OutboxRouter",
    "UnwrapOptions", "Unwrapper", "unwrap",
]
