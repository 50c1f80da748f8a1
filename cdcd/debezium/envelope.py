"""Debezium change-event envelopes, serialized as JsonConverter (``schemas.enable=true``) would.

Everything that depends only on the table version (topic, key and value
schemas as bytes, per-column converters) is computed once in ``TableEncoder``;
per event only the payload dict is built, dumped with orjson and spliced:
``head + payload + b'}'`` (``cdcd.debezium.connect_json``).

One builder per op: ``create`` (c, or r for snapshot reads), ``update`` (u; a
primary-key change becomes d + tombstone + c, as Debezium does), ``delete`` (d
+ tombstone) and ``truncate`` (t, no key). The ``source`` block comes from
``cdcd.debezium.source_info`` (``ts_*`` there are the commit time, the top-level
``ts_*`` the processing time).
Which columns form the value and the key, masking and name adjustment come
from ``cdcd.debezium.column_rules``; ``skipped.operations`` makes a builder return ``[]``.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Final, Mapping, NamedTuple, Sequence

import orjson

from cdcd.debezium.column_rules import ColumnRules
from cdcd.debezium.connect_json import field as _f
from cdcd.debezium.connect_json import head
from cdcd.debezium.envelope_options import EnvelopeOptions
from cdcd.debezium.java import hashmap_order
from cdcd.debezium.source_info import (  # noqa: F401 - SOURCE, CONNECTOR and SourceInfo are part of this API
    CONNECTOR,
    SOURCE,
    SOURCE_SCHEMA,
    SourceBlock,
    SourceInfo,
)
from cdcd.debezium.types import column_codec
from cdcd.debezium.types.row import RowConverter
from cdcd.decode.messages import UNCHANGED_TOAST, TupleData
from cdcd.native import change_lane, chunk_encoder, exact_key, row_image, value_frame
from cdcd.source.tables import TableInfo

# Envelope field names (Debezium's Envelope.FieldName) and ops.
BEFORE: Final = "before"
AFTER: Final = "after"
TRANSACTION: Final = "transaction"
OPERATION: Final = "op"
TIMESTAMP_MS: Final = "ts_ms"
TIMESTAMP_US: Final = "ts_us"
TIMESTAMP_NS: Final = "ts_ns"
OP_CREATE: Final = "c"
OP_READ: Final = "r"
OP_UPDATE: Final = "u"
OP_DELETE: Final = "d"
OP_TRUNCATE: Final = "t"
PK_UPDATE_NEWKEY_HEADER: Final = "__debezium.newkey"
PK_UPDATE_OLDKEY_HEADER: Final = "__debezium.oldkey"


TRANSACTION_BLOCK_SCHEMA: Final[dict[str, Any]] = {
    "type": "struct",
    "fields": [
        _f("string", False, "id"), _f("int64", False, "total_order"), _f("int64", False, "data_collection_order"),
    ],
    "optional": True, "name": "event.block", "version": 1, "field": TRANSACTION,
}
_TX_KEY_HEAD: Final = head({
    "type": "struct", "fields": [_f("string", False, "id")], "optional": False,
    "name": "io.debezium.connector.common.TransactionMetadataKey", "version": 1,
})
_TX_VALUE_HEAD: Final = head({
    "type": "struct",
    "fields": [
        _f("string", False, "status"), _f("string", False, "id"), _f("int64", True, "event_count"),
        {"type": "array", "items": {
            "type": "struct", "fields": [_f("string", False, "data_collection"), _f("int64", False, "event_count")],
            "optional": True, "name": "event.collection", "version": 1,
        }, "optional": True, "field": "data_collections"},
        _f("int64", False, "ts_ms"),
    ],
    "optional": False, "name": "io.debezium.connector.common.TransactionMetadataValue", "version": 1,
})
_TOPIC_CHAR: Final = re.compile(r"[^A-Za-z0-9._-]")


Image = dict[str, Any] | bytes
"""A row image: the ``{column: value}`` dict of the python core, or its JSON bytes from the compiled core."""


def _json(image: Image) -> bytes:
    return image if image.__class__ is bytes else orjson.dumps(image)  # type: ignore[return-value]


def sanitize_topic(name: str) -> str:
    """Debezium replaces characters Kafka does not allow in topic names with ``_``."""
    return _TOPIC_CHAR.sub("_", name)


class Record(NamedTuple):
    """One Kafka record. A named tuple: made once or more per event, it costs a third of a frozen dataclass."""

    topic: str
    key: bytes | None
    """Serialized ``{"schema":..., "payload":...}``, or None (table without PK, truncate)."""
    value: bytes | None
    """Serialized ``{"schema":..., "payload":...}``; None is a tombstone."""
    headers: tuple[tuple[str, bytes], ...] = ()
    """Kafka headers; Debezium sets ``__debezium.newkey``/``oldkey`` on primary-key changes."""
    # What the record is about, set where it is built, for logs and dead letters: the sink
    # never parses key or value (which a converter may have turned into Avro anyway).
    table: str | None = None
    """``schema.table`` of a row event (DDL: the tables it names); None for heartbeats and metadata."""
    key_payload: dict[str, Any] | bytes | None = None
    """The key's payload (primary-key columns): a dict, or its JSON bytes (compiled core); None without a key."""
    lsn: int | None = None
    """``source.lsn``: where the change is in the WAL."""
    txid: int | None = None
    """``source.txId``: the PostgreSQL transaction."""

    @property
    def key_fields(self) -> dict[str, Any] | None:
        """The key's payload as a dict, parsed only when asked (a log line, a dead letter)."""
        payload = self.key_payload
        return payload if payload is None or payload.__class__ is dict else orjson.loads(payload)  # type: ignore[return-value]


class TransactionContext:
    """Debezium's transaction metadata for one PostgreSQL transaction.

    BEGIN's id is ``<txid>:<lsn of BEGIN>``; each event's block has ``<txid>:<lsn of
    the event>`` (Debezium derives it from the event's source, so it changes within a
    transaction), ``total_order`` and per-table ``data_collection_order`` (1-based,
    counting data events only, not tombstones); END gets the per-table counts.
    """

    __slots__ = ("txid", "begin_lsn", "ts_ms", "id", "total_order", "_per_table")

    def __init__(self, txid: int, begin_lsn: int, ts_ms: int) -> None:
        self.txid = txid
        self.begin_lsn = begin_lsn
        self.ts_ms = ts_ms
        self.id = f"{txid}:{begin_lsn}"
        self.total_order = 0
        self._per_table: dict[str, int] = {}

    def next_block(self, data_collection: str, lsn: int | None = None) -> dict[str, Any]:
        """Count one data event of ``data_collection`` ("schema.table") at ``lsn``; return its ``transaction`` block."""
        self.total_order += 1
        order = self._per_table.get(data_collection, 0) + 1
        self._per_table[data_collection] = order
        block_id = self.id if lsn is None else f"{self.txid}:{lsn}"
        return {"id": block_id, "total_order": self.total_order, "data_collection_order": order}

    @property
    def per_table_counts(self) -> dict[str, int]:
        return dict(self._per_table)


def transaction_begin_record(topic_prefix: str, txn: TransactionContext) -> Record:
    return _transaction_record(topic_prefix, txn.id, {
        "status": "BEGIN", "id": txn.id, "event_count": None, "data_collections": None, "ts_ms": txn.ts_ms,
    })


def transaction_end_record(topic_prefix: str, txn: TransactionContext, end_lsn: int) -> Record:
    """END uses ``<txid>:<end_lsn>``; collections come in Java ``HashMap`` order, as Debezium's do."""
    tx_id = f"{txn.txid}:{end_lsn}"
    counts = txn.per_table_counts
    return _transaction_record(topic_prefix, tx_id, {
        "status": "END", "id": tx_id, "event_count": txn.total_order,
        "data_collections": [{"data_collection": dc, "event_count": counts[dc]} for dc in hashmap_order(counts)],
        "ts_ms": txn.ts_ms,
    })


def _transaction_record(prefix: str, tx_id: str, payload: dict[str, Any]) -> Record:
    return Record(
        sanitize_topic(f"{prefix}.transaction"),
        _TX_KEY_HEAD + orjson.dumps({"id": tx_id}) + b"}",
        _TX_VALUE_HEAD + orjson.dumps(payload) + b"}",
    )


class TableEncoder:
    """Everything per table version computed once (topic, key/value schemas serialized to bytes ONCE, converters); per event only the payload is built and spliced: head + orjson.dumps(payload) + b'}'."""

    __slots__ = (
        "topic", "fallback_columns", "_options", "_collection", "_value_head", "_key_head", "_skip",
        "_image", "_key_image", "_key_names", "_key_positions", "_source", "_source_table", "_frame",
    )

    def __init__(
        self, table: TableInfo, options: EnvelopeOptions, *,
        enum_values: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``enum_values`` (enum typname -> labels) upgrades enum columns to ``io.debezium.data.Enum``."""
        self._options = options
        self._skip = frozenset(options.skipped_operations)
        self.topic = sanitize_topic(f"{options.topic_prefix}.{table.schema}.{table.name}")
        self._collection = table.qualified_name
        type_options = options.type_options()
        codecs = [
            column_codec(c, type_options, enum_values, options.replace_null_with_default) for c in table.columns
        ]
        plan = ColumnRules(options).plan(table, codecs, self.topic)
        self.fallback_columns = plan.fallback_columns
        # The images are dicts (python core) or their JSON bytes (compiled core); see cdcd.native.
        self._image = row_image(plan.value)
        reuse = bool(plan.key) and plan.key_in_value and isinstance(self._image, RowConverter)
        self._key_image = row_image(plan.key, count_errors=not plan.key_in_value,
                                    core=None if exact_key(plan.key) else "python")
        self._key_names = tuple(c.name for c, _ in plan.key) if reuse else None
        # optional key columns: their NULL prints as the column's default, but Debezium's key Struct holds
        # it (a required column's NULL becomes its default or zero in the Struct too, as in our images)
        self._key_positions = tuple(i for c, i in plan.key if c.optional)
        value_struct = {
            "type": "struct", "fields": [c.schema for c, _ in plan.value], "optional": True, "name": plan.value_name,
        }
        envelope = {
            "type": "struct",
            "fields": [
                {**value_struct, "field": BEFORE}, {**value_struct, "field": AFTER},
                SOURCE_SCHEMA, TRANSACTION_BLOCK_SCHEMA,
                _f("string", False, OPERATION), _f("int64", True, TIMESTAMP_MS),
                _f("int64", True, TIMESTAMP_US), _f("int64", True, TIMESTAMP_NS),
            ],
            "optional": False, "name": plan.envelope_name, "version": 2,
        }
        self._value_head = head(envelope)
        self._key_head: bytes | None = None
        if plan.key:
            key_schema = {
                "type": "struct", "fields": [c.schema for c, _ in plan.key], "optional": False, "name": plan.key_name,
            }
            self._key_head = head(key_schema)
        self._source = SourceBlock(options.connector_version, options.topic_prefix, options.database)
        self._source_table = SourceBlock.table(table.schema, table.name)
        self._frame = value_frame(self._image, self._value_head, self._source, self._source_table)

    def compiled_lane(self, ncols: int) -> Any:
        """This table's row changes in one compiled call (``cdcd.native.change_lane``), or None.

        ``ncols``: the columns of the relation's tuples, as its Relation message counts them.
        A lane builds the same records as ``create``, ``update`` and ``delete``
        from the same images and frame, for events outside transaction metadata.
        """
        if self._key_names is not None:
            return None
        key_image = self._key_image if self._key_head is not None else None
        return change_lane(self.topic, self._collection, self._image, key_image, self._key_head, self._frame,
                           ncols, self._skip, self._options.tombstones_on_delete, self._key_positions)

    # --- per-op builders -----------------------------------------------------------

    def create(
        self, new: TupleData, source: SourceInfo, txn: TransactionContext | None, op: str = OP_CREATE,
    ) -> list[Record]:
        """An insert (``c``), or a snapshot read (``r``, with ``txn`` None); [] when ``c`` is skipped."""
        if op in self._skip:
            return []
        after = self._image(new)
        key_fields = self._key_payload(new, after) if self._key_head is not None else None
        return [Record(self.topic, self._key(key_fields), self._value(None, after, source, txn, op), (),
                       self._collection, key_fields, source.lsn, source.txid)]

    def update(
        self, old_kind: str | None, old: TupleData | None, new: TupleData,
        source: SourceInfo, txn: TransactionContext | None,
    ) -> list[Record]:
        """``before`` is null without an old tuple; a changed key becomes delete + tombstone + create."""
        if old is not None and old_kind == "O" and UNCHANGED_TOAST in new:
            # Debezium fills unchanged TOAST columns from a full old image when it has one.
            new = tuple(o if n is UNCHANGED_TOAST and o is not None and o is not UNCHANGED_TOAST else n
                        for o, n in zip(old, new))
        after = self._image(new)
        before = None if old is None else self._image(old)
        if old is not None and self._key_head is not None:
            old_key, new_key = self._key_payload(old, before), self._key_payload(new, after)
            # Debezium compares the key Structs before JsonConverter prints a null as the column's
            # default: an optional key column null on one side only (message.key.columns naming a
            # column a key-only old tuple leaves out) is a changed key, even if both print the same
            if old_key != new_key or any((old[i] is None) != (new[i] is None) for i in self._key_positions):
                return self._key_change(old_key, new_key, before, after, source, txn)
        if OP_UPDATE in self._skip:
            return []
        key_fields = self._key_payload(new, after) if self._key_head is not None else None
        return [Record(self.topic, self._key(key_fields), self._value(before, after, source, txn, OP_UPDATE), (),
                       self._collection, key_fields, source.lsn, source.txid)]

    def delete(
        self, old_kind: str, old: TupleData, source: SourceInfo, txn: TransactionContext | None,
    ) -> list[Record]:
        """With a key-only old tuple (``K``), non-key columns are null, or their zero when NOT NULL."""
        if OP_DELETE in self._skip:
            return []
        before = self._image(old)
        key_fields = self._key_payload(old, before) if self._key_head is not None else None
        key = self._key(key_fields)
        table, lsn, txid, fields = self._collection, source.lsn, source.txid, key_fields
        records = [Record(self.topic, key, self._value(before, None, source, txn, OP_DELETE), (),
                          table, fields, lsn, txid)]
        if self._options.tombstones_on_delete:
            records.append(Record(self.topic, key, None, (), table, fields, lsn, txid))
        return records

    def truncate(self, source: SourceInfo, txn: TransactionContext | None) -> list[Record]:
        if OP_TRUNCATE in self._skip:
            return []
        return [Record(self.topic, None, self._value(None, None, source, txn, OP_TRUNCATE), (),
                       self._collection, None, source.lsn, source.txid)]

    def _key_change(
        self, old_image: Image, new_image: Image, before: Image | None,
        after: Image, source: SourceInfo, txn: TransactionContext | None,
    ) -> list[Record]:
        assert self._key_head is not None
        old_bytes, new_bytes = _json(old_image), _json(new_image)
        old_record_key = self._key_head + old_bytes + b"}"
        delete_headers = ((PK_UPDATE_NEWKEY_HEADER, new_bytes),)
        table, lsn, txid = self._collection, source.lsn, source.txid
        records = []
        if OP_DELETE not in self._skip:
            records.append(Record(self.topic, old_record_key, self._value(before, None, source, txn, OP_DELETE),
                                  delete_headers, table, old_image, lsn, txid))
            if self._options.tombstones_on_delete:
                records.append(Record(self.topic, old_record_key, None, delete_headers, table, old_image, lsn, txid))
        if OP_CREATE not in self._skip:
            records.append(Record(
                self.topic, self._key_head + new_bytes + b"}", self._value(None, after, source, txn, OP_CREATE),
                ((PK_UPDATE_OLDKEY_HEADER, old_bytes),), table, new_image, lsn, txid,
            ))
        return records

    def snapshot_chunks(self, source: SourceInfo) -> Callable[[int, int, int], list[Record]] | None:
        """The compiled core's reader of snapshot results: ``(PGresult address, start, stop)`` -> one ``r``
        record per row ``start <= row < stop`` (stop -1: to the end).

        The same records as ``create(row, source, None, "r")`` for each row of
        the result's text values; the rows are encoded in C without the GIL, so
        several snapshot threads encode at once. None where it cannot be used
        (python core, a key or image left to Python): call ``create`` per row.
        """
        prefix = self._value_head + b'{"before":null,"after":'
        middle = (f',"source":{self._source.json(source, self._source_table)},"transaction":null,'
                  f'"op":"{OP_READ}","ts_ms":').encode()
        key_head = self._key_head
        chunk = chunk_encoder(self._image, self._key_image, key_head, prefix, middle)
        if chunk is None:
            return None
        return chunk.records(Record, self.topic, self._collection, source.lsn, source.txid)  # type: ignore[no-any-return]

    # --- payload parts -------------------------------------------------------------

    def _value(
        self, before: Image | None, after: Image | None,
        source: SourceInfo, txn: TransactionContext | None, op: str,
    ) -> bytes:
        """The payload, formatted directly: same JSON as dumping the dict, a third less time.

        Field order is the envelope schema's; every string that is not a known
        constant goes through orjson for escaping.
        """
        b = None if txn is None else txn.next_block(self._collection, source.lsn)
        now = time.time_ns()
        if self._frame is not None:  # the compiled core formats the same bytes
            framed = self._frame(before, after, source, b, op, now)
            if framed is not None:
                return framed  # type: ignore[no-any-return]
        if b is None:
            block = "null"
        else:
            block = (f'{{"id":"{b["id"]}","total_order":{b["total_order"]}'
                     f',"data_collection_order":{b["data_collection_order"]}}}')
        tail = (
            f',"source":{self._source.json(source, self._source_table)},"transaction":{block},"op":"{op}"'
            f',"ts_ms":{now // 1_000_000},"ts_us":{now // 1000},"ts_ns":{now}}}}}'
        )
        return b"".join((
            self._value_head, b'{"before":', b"null" if before is None else _json(before),
            b',"after":', b"null" if after is None else _json(after), tail.encode(),
        ))

    def _key(self, key_fields: Image | None) -> bytes | None:
        if key_fields is None or self._key_head is None:
            return None
        return b"".join((self._key_head, _json(key_fields), b"}"))

    def _key_payload(self, row: TupleData, image: Image | None) -> Image:
        """Key columns are converted like value columns, so reuse the image when it has them all."""
        if image is not None and self._key_names is not None:
            return {name: image[name] for name in self._key_names}
        return self._key_image(row)

    @property
    def conversion_errors(self) -> int:
        """Values that failed to convert (each emitted as its column's NULL value)."""
        return self._image.errors + self._key_image.errors
