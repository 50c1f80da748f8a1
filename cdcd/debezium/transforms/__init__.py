"""Built-in record transforms, in place of Kafka Connect SMTs.

``outbox``: Debezium's outbox EventRouter, for outbox-table rows and for
``pg_logical_emit_message`` events. ``unwrap``: ExtractNewRecordState, change
events flattened to rows. Both are pure: records in, records out, no I/O, so
the pipeline decides where they apply and tests need no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdcd.debezium.envelope_options import EnvelopeOptions
from cdcd.debezium.transforms.outbox import OutboxError, OutboxRecord, OutboxRouter
from cdcd.debezium.transforms.outbox_options import AdditionalField, OutboxOptions
from cdcd.debezium.transforms.unwrap import UnwrapOptions, Unwrapper, unwrap

__all__ = [
    "AdditionalField", "OutboxError", "OutboxOptions", "OutboxRecord", "OutboxRouter",
    "UnwrapOptions", "Unwrapper", "outbox_router", "unwrap", "unwrapper",
]


def outbox_router(transforms: Mapping[str, Any], options: EnvelopeOptions) -> OutboxRouter | None:
    """The router configured by ``[transforms.outbox]``, or None when there is none."""
    if not any(k.startswith("outbox.") for k in transforms):
        return None
    return OutboxRouter(OutboxOptions.from_properties(transforms, prefix="outbox."), options)


def unwrapper(transforms: Mapping[str, Any]) -> Unwrapper | None:
    """The flattening configured by ``[transforms.unwrap]``, or None when there is none."""
    if not any(k.startswith("unwrap.") for k in transforms):
        return None
    return Unwrapper(UnwrapOptions.from_properties(transforms, prefix="unwrap."))
