"""Proposed hot-path changes, as drop-in replacements applied by monkeypatching (bench only).

cdcd's own files are not changed here: each ``Proposal`` names the file and
function it would change and swaps in the new version for the duration of a
measurement (``applied``). ``function_table`` times each replacement alone
and checks that it returns what the current code returns.
"""

from __future__ import annotations

import dataclasses
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date as _date, datetime as _datetime, time as _time, timedelta as _timedelta
from typing import Any

import orjson

import cdcd.debezium.envelope as envelope
import cdcd.decode.messages as messages
import cdcd.decode.pgoutput as pgoutput
import cdcd.pipeline as pipeline
import cdcd.wire.frames as protocol
import cdcd.wire.replication as replication
import cdcd.debezium.types.temporal as temporal
from cdcd.debezium.envelope import SourceInfo, TableEncoder


@dataclass(frozen=True)
class Proposal:
    name: str
    where: str
    patches: Callable[[], list[tuple[object, str, object]]]
    emit_flags: tuple[str, ...] = ()


# -- (P1, landed meanwhile) timestamptz without parsing --------------------------------------------


def timestamptz_parsing(typmod: int) -> Callable[[str], str]:
    """The conversion before the '+00' fast path: parse to epoch µs, format back."""
    width = 6 if typmod < 0 else typmod

    def convert(text: str) -> str:
        if text == "infinity" or text == "-infinity":
            return text
        return temporal.format_utc(temporal.parse_timestamp(text), width)
    return convert


# -- P2: the other temporal types through the C date/time parsers --------------------------

_EPOCH_DAYS = _date(1970, 1, 1).toordinal()
_EPOCH = _datetime(1970, 1, 1)
_ONE_US = _timedelta(microseconds=1)
_orig_parse_date, _orig_parse_time = temporal.parse_date, temporal.parse_time
_orig_timestamp_us, _orig_interval_micros = temporal._timestamp_us, temporal.interval_micros


def parse_date_fast(text: str) -> int:
    if len(text) == 10 and text[4] == "-":
        try:
            return _date.fromisoformat(text).toordinal() - _EPOCH_DAYS
        except ValueError:
            pass
    return _orig_parse_date(text)


def parse_time_fast(text: str) -> int:
    if 8 <= len(text) <= 15 and text[2] == ":" and text[5] == ":" and len(text) != 9:
        try:
            t = _time.fromisoformat(text)
        except ValueError:
            return _orig_parse_time(text)  # 24:00:00, which PostgreSQL allows
        if t.tzinfo is None:
            return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond
    return _orig_parse_time(text)


def timestamp_us_fast(text: str) -> int:
    if 19 <= len(text) <= 26 and text[10] == " " and text[4] == "-":
        try:
            dt = _datetime.fromisoformat(text)
        except ValueError:
            return _orig_timestamp_us(text)
        if dt.tzinfo is None:
            return (dt - _EPOCH) // _ONE_US  # type: ignore[no-any-return]
    return _orig_timestamp_us(text)


def interval_micros_fast(text: str) -> int:
    """``[-]H+:MM:SS[.f]`` (no years, months or days): Debezium's double arithmetic without Decimal."""
    parts = text.split(":")
    if len(parts) == 3 and " " not in text:
        hh, mi, ss = parts
        neg = -1 if hh[:1] == "-" else 1
        if hh[:1] in ("-", "+"):
            hh = hh[1:]
        whole, _, frac = ss.partition(".")
        if (hh.isdigit() and len(mi) == 2 and mi.isdigit() and len(whole) == 2 and whole.isdigit()
                and (not frac or (len(frac) <= 6 and frac.isdigit()))):
            w, micros = int(whole) * neg, (int((frac + "00000")[:6]) if frac else 0) * neg
            seconds = w + micros / 1e6
            number_of_days = 0 * temporal._DAYS_PER_MONTH_AVG + 0
            number_of_seconds = ((number_of_days * 24 + int(hh) * neg) * 60 + int(mi) * neg) * 60 + seconds
            return int(number_of_seconds * 1e6 + 0.0)
    return _orig_interval_micros(text)


# -- P3: decoding without helper calls -----------------------------------------------------------
# (A leaner ``_read_tuple`` — text kind first, one bounds check at the end — was tried and
# gained nothing measurable: ~0.2 µs per column is the interpreter's floor for that loop.)

_UINT32 = struct.Struct(">I")
_INSERT_HEAD = struct.Struct(">IBH")
_OID_KIND = struct.Struct(">IB")
_UINT16 = struct.Struct(">H")
_orig_decode = pgoutput.PgOutputDecoder.decode


def decode_fast(self: Any, data: bytes | memoryview) -> Any:
    """``decode`` with ``_check_end`` inlined."""
    buf = data if data.__class__ is bytes else bytes(data)
    handler = self._handlers.get(buf[0]) if buf else None
    if handler is None:
        return _orig_decode(self, buf)  # raises the right error
    try:
        message, end = handler(buf)
    except UnicodeDecodeError as exc:
        raise pgoutput._error(buf, f"invalid UTF-8 ({exc.reason}); is the database encoding UTF8?") from exc
    except (struct.error, IndexError, ValueError) as exc:
        raise pgoutput._error(buf, f"truncated or malformed ({exc})") from exc
    if end != len(buf):
        raise pgoutput._error(buf, f"{len(buf) - end} unexpected bytes after the message")
    return message


def _decode_insert_fast(self: Any, buf: bytes) -> tuple[Any, int]:
    """``_stream_xid`` and ``_relation`` inlined (the common case: outside a stream, known relation)."""
    if self._in_stream:
        return pgoutput.PgOutputDecoder._decode_insert(self, buf)
    oid, marker, ncols = _INSERT_HEAD.unpack_from(buf, 1)
    relation = self.relations.get(oid) or self._relation(oid, buf)
    if marker != 78:  # 'N'
        raise pgoutput._error(buf, f"expected 'N' (new tuple), got {chr(marker)!r}")
    new, pos = pgoutput._read_tuple(buf, 8, ncols, relation)
    return pgoutput.Insert(relation, new, None), pos


def _decode_update_fast(self: Any, buf: bytes) -> tuple[Any, int]:
    if self._in_stream:
        return pgoutput.PgOutputDecoder._decode_update(self, buf)
    oid, marker = _OID_KIND.unpack_from(buf, 1)
    relation = self.relations.get(oid) or self._relation(oid, buf)
    if marker == 78:
        (ncols,) = _UINT16.unpack_from(buf, 6)
        new, pos = pgoutput._read_tuple(buf, 8, ncols, relation)
        return pgoutput.Update(relation, None, None, new, None), pos
    return pgoutput.PgOutputDecoder._decode_update(self, buf)


def _decode_delete_fast(self: Any, buf: bytes) -> tuple[Any, int]:
    if self._in_stream:
        return pgoutput.PgOutputDecoder._decode_delete(self, buf)
    oid, marker = _OID_KIND.unpack_from(buf, 1)
    relation = self.relations.get(oid) or self._relation(oid, buf)
    if marker != 75 and marker != 79:  # 'K', 'O'
        return pgoutput.PgOutputDecoder._decode_delete(self, buf)  # raises
    (ncols,) = _UINT16.unpack_from(buf, 6)
    old, pos = pgoutput._read_tuple(buf, 8, ncols, relation)
    return pgoutput.Delete(relation, chr(marker), old, None), pos


_orig_decoder_init = pgoutput.PgOutputDecoder.__init__


def _decoder_init_fast(self: Any, protocol_version: int = 1) -> None:
    _orig_decoder_init(self, protocol_version)
    self._handlers[ord("I")] = _decode_insert_fast.__get__(self)
    self._handlers[ord("U")] = _decode_update_fast.__get__(self)
    self._handlers[ord("D")] = _decode_delete_fast.__get__(self)


# -- P4: mutable (not frozen) slotted messages --------------------------------------------------


def _unfrozen(cls: type) -> type:
    fields = []
    for f in dataclasses.fields(cls):
        default = {} if f.default is dataclasses.MISSING else {"default": f.default}
        fields.append((f.name, f.type, dataclasses.field(**default)))  # type: ignore[call-overload]
    new = dataclasses.make_dataclass(cls.__name__, fields, slots=True)
    new.__module__ = cls.__module__
    return new


_MESSAGE_PATCH_SITES = {
    "Begin": (messages, pgoutput, pipeline), "Commit": (messages, pgoutput, pipeline),
    "Insert": (messages, pgoutput, pipeline), "Update": (messages, pgoutput, pipeline),
    "Delete": (messages, pgoutput, pipeline),
    "XLogData": (protocol,), "Keepalive": (protocol, pipeline, replication),
    "Record": (envelope,),
}


def _message_patches() -> list[tuple[object, str, object]]:
    out: list[tuple[object, str, object]] = []
    for name, modules in _MESSAGE_PATCH_SITES.items():
        new = _unfrozen(getattr(modules[0], name))
        out += [(module, name, new) for module in modules]
    return out


# -- P5: no memoryview + copy per frame ----------------------------------------------------------

_XLOGDATA_HEADER = struct.Struct(">QQq")


def parse_copy_data_fast(buf: bytes) -> Any:
    if buf[:1] == b"w":
        start, end, ts = _XLOGDATA_HEADER.unpack_from(buf, 1)
        return protocol.XLogData(start, end, ts + protocol.PG_EPOCH_OFFSET_US, buf[25:])  # type: ignore[arg-type]
    return _orig_parse_copy_data(buf)


_orig_parse_copy_data = protocol.parse_copy_data


# -- P6, P7: per-transaction source, counters in plain ints -----------------------------------


class TxnSourceEncoder(TableEncoder):
    """Renders the parts of ``source`` that are constant in a transaction once per transaction."""

    __slots__ = ("_src", "_src_head", "_src_mid", "_src_tail")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._src: SourceInfo | None = None

    def _value(self, before: Any, after: Any, source: SourceInfo, txn: Any, op: str) -> bytes:
        if source is not self._src:  # a new transaction (the pipeline keeps one SourceInfo per transaction)
            self._src = source
            ts_us = source.ts_us
            snapshot = envelope._SNAPSHOT_JSON.get(source.snapshot) or orjson.dumps(source.snapshot).decode()
            last = source.last_commit_lsn
            seq = f'"[\\"{last}\\",\\"' if last is not None else '"[null,\\"'
            self._src_head = f'{self._source_head}{ts_us // 1000},"snapshot":{snapshot}{self._source_db}{seq}'
            self._src_mid = (f'\\"]","ts_us":{ts_us},"ts_ns":{ts_us * 1000}{self._source_table}'
                             f'{envelope._json_int(source.txid)},"lsn":')
            if source.origin is None and source.origin_lsn is None:
                origin = envelope._NO_ORIGIN
            else:
                origin = (f',"origin":{orjson.dumps(source.origin).decode()}'
                          f',"origin_lsn":{envelope._json_int(source.origin_lsn)}}}')
            self._src_tail = f',"xmin":null{origin},"transaction":'
        lsn = source.lsn
        if txn is None:
            block = "null"
        else:
            b = txn.next_block(self._collection)
            block = (f'{{"id":"{b["id"]}","total_order":{b["total_order"]}'
                     f',"data_collection_order":{b["data_collection_order"]}}}')
        now = time.time_ns()
        tail = (f'{self._src_head}{lsn}{self._src_mid}{lsn}{self._src_tail}{block},"op":"{op}"'
                f',"ts_ms":{now // 1_000_000},"ts_us":{now // 1000},"ts_ns":{now}}}}}')
        return b"".join((
            self._value_head, b'{"before":', b"null" if before is None else orjson.dumps(before),
            b',"after":', b"null" if after is None else orjson.dumps(after), tail.encode(),
        ))


def make_emit(flags: set[str]) -> Callable[..., None]:
    """A copy of ``StreamingSession._emit`` (as of this writing) with ``txn_source`` (one SourceInfo per
    transaction) and/or
    ``plain_counters`` (events counted in a dict, handed to Prometheus with the status update)."""
    txn_source, plain_counters = "txn_source" in flags, "plain_counters" in flags

    def _emit(self: Any, encoder: Any, relation: Any, lsn: int, op: str, *args: object) -> None:
        txn = self.txn
        if txn is None:
            raise AssertionError("row change outside a transaction")
        metadata = None
        if self.options_provide_metadata:
            if txn.metadata is None:
                txn.metadata = envelope.TransactionContext(txn.xid, txn.begin_lsn, txn.commit_ts_us // 1000)
                self._send(envelope.transaction_begin_record(self.config.topic_prefix, txn.metadata))
            metadata = txn.metadata
        if txn_source:
            source = self.__dict__.get("_txn_source")
            if source is None or self.__dict__.get("_txn_source_of") is not txn:
                source = SourceInfo(ts_us=txn.commit_ts_us, txid=txn.xid, lsn=lsn,
                                    last_commit_lsn=self.last_commit_lsn, origin=txn.origin, origin_lsn=txn.origin_lsn)
                self._txn_source, self._txn_source_of = source, txn
            else:
                source.lsn = lsn
        else:
            source = SourceInfo(ts_us=txn.commit_ts_us, txid=txn.xid, lsn=lsn, last_commit_lsn=self.last_commit_lsn,
                                origin=txn.origin, origin_lsn=txn.origin_lsn)
        records = getattr(encoder, op)(*args, source, metadata)
        unwrap = self.unwrap
        for record in records:
            if unwrap is not None:
                record = unwrap(record)
                if record is None:
                    continue
            self._send(record)
        self.stats.events += 1
        key = (relation.oid, op)
        if plain_counters:
            pending = self.__dict__.setdefault("_pending_counts", {})
            pending[key] = pending.get(key, 0) + 1  # flushed to Prometheus once per status interval
            return
        counter = self._event_counters.get(key)
        if counter is None:
            counter = self._event_counters[key] = self.metrics.events_counter(
                f"{relation.namespace}.{relation.name}", pipeline._OPS[op])
        counter.inc()
    return _emit


ALL: tuple[Proposal, ...] = (
    Proposal("P2 date/time/timestamp/interval: C parsers, no Decimal", "cdcd/debezium/types/temporal.py",
             lambda: [(temporal, "parse_date", parse_date_fast), (temporal, "parse_time", parse_time_fast),
                      (temporal, "_timestamp_us", timestamp_us_fast),
                      (temporal, "interval_micros", interval_micros_fast)]),
    Proposal("P3 decoder: helper calls inlined on the change path",
             "cdcd/decode/pgoutput.py: decode, _decode_insert/_update/_delete",
             lambda: [(pgoutput.PgOutputDecoder, "decode", decode_fast),
                      (pgoutput.PgOutputDecoder, "__init__", _decoder_init_fast)]),
    Proposal("P4 messages/records: slotted, not frozen", "cdcd/decode/messages.py, protocol.py, envelope.py: Record",
             _message_patches),
    Proposal("P5 frames: bytes payload, no memoryview", "cdcd/wire/frames.py: parse_copy_data",
             lambda: [(protocol, "parse_copy_data", parse_copy_data_fast),
                      (replication, "parse_copy_data", parse_copy_data_fast)]),
    Proposal("P6 source: one SourceInfo and one rendering per transaction",
             "cdcd/pipeline.py: _emit; cdcd/debezium/envelope.py: TableEncoder._value",
             lambda: [(pipeline, "TableEncoder", TxnSourceEncoder)], emit_flags=("txn_source",)),
    Proposal("P7 event counters: plain ints, to Prometheus once a second", "cdcd/pipeline.py: _emit",
             lambda: [], emit_flags=("plain_counters",)),
)


@contextmanager
def applied(proposals: list[Proposal]) -> Iterator[None]:
    saved: list[tuple[object, str, object]] = []
    patches = [patch for p in proposals for patch in p.patches()]
    flags = {flag for p in proposals for flag in p.emit_flags}
    if flags:
        patches.append((pipeline.StreamingSession, "_emit", make_emit(flags)))
    for obj, attr, new in patches:
        saved.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, new)
    try:
        yield
    finally:
        for obj, attr, old in reversed(saved):
            setattr(obj, attr, old)
