"""A sink that runs the key/value converters on each record before the real sink stages it.

Converting at the sink's door keeps everything upstream (envelopes, transforms,
heartbeats, transaction metadata, DDL events) in one form, JsonConverter with
schemas, as Kafka Connect converts after the SMTs. A converter error (registry
down: ``SinkUnavailable``; schema refused: ``SinkError``) is raised from ``send``
like a broker error, so the pipeline aborts the Kafka transaction and confirms
nothing of it.
"""

from __future__ import annotations

from typing import Any

from cdcd.converters import RecordConverter
from cdcd.debezium.envelope import Record
from cdcd.delivery.offsets import OffsetRecord
from cdcd.delivery.sinks import Sink


class ConvertingSink:
    def __init__(self, sink: Sink, converter: RecordConverter) -> None:
        self.sink = sink
        self.converter = converter

    @property
    def in_transaction(self) -> bool:
        return self.sink.in_transaction

    def start(self) -> None:
        self.sink.start()

    def send(self, record: Record) -> None:
        # cdcd's own offsets record stays JSON whatever the converters: cdcd reads it back.
        self.sink.send(record if type(record) is OffsetRecord else self.converter(record))

    @property
    def committing(self) -> bool:
        return self.sink.committing

    @property
    def wake_fd(self) -> int | None:
        return self.sink.wake_fd

    def commit(self, timeout_s: float | None = None) -> None:
        self.sink.commit(timeout_s)

    def commit_start(self, timeout_s: float | None = None) -> None:
        self.sink.commit_start(timeout_s)

    def commit_finished(self) -> bool:
        return self.sink.commit_finished()

    def commit_wait(self) -> None:
        self.sink.commit_wait()

    def abort(self) -> None:
        self.sink.abort()

    def poll(self) -> None:
        self.sink.poll()

    def close(self) -> None:
        self.sink.close()

    def __getattr__(self, name: str) -> Any:
        # brokers_down, staged, counters: whatever the wrapped sink exposes
        return getattr(self.sink, name)
