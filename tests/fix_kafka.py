"""Kafka fixtures: an embedded mock broker, a real-broker opt-in, and reading helpers.

Fixtures (loaded as a plugin from ``tests/conftest.py``):

``kafka_broker`` (session)
    A `MockKafka`: librdkafka's mock cluster in a subprocess (`tests/mock_broker.py`)
    behind a `TcpProxy`, so ``bootstrap`` stays the same across restarts.  After every
    test it is healed (started / brought up / latency cleared) if the test broke it;
    data written before a ``stop()`` is gone.
``fresh_kafka_broker`` (function)
    A private `MockKafka` for one test, closed at teardown.
``real_kafka`` (function)
    A `RealKafka` for ``CDCD_TEST_KAFKA=host:port``; skips when unset.  Needed wherever
    read_committed isolation matters: the mock does not hide aborted transactions.  Nor
    does it fence: a second producer with the same transactional id gets a new producer
    id, not the old one's with a bumped epoch, so a producer still alive keeps writing.

Outages the mock supports (``MockKafka``):

* ``down()`` / ``up()``: the broker closes every connection and refuses new ones, then
  accepts again at the same address with all topics, offsets and transactions kept;
* ``stop()`` / ``start()``: the broker process dies (SIGTERM) and a new, empty one comes
  back behind the same bootstrap address.  Everything is lost, including producer ids and
  transactional state, as if the whole cluster had been wiped;
* ``set_rtt(ms)``: a slow broker.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from tests.tcpproxy import TcpProxy

REAL_KAFKA_ENV = "CDCD_TEST_KAFKA"
REAL_KAFKA_SKIP = (
    "transactional isolation needs a real Apache Kafka broker: set CDCD_TEST_KAFKA=host:port "
    "(the embedded mock broker does not hide aborted transactions)"
)
_MOCK_SCRIPT = Path(__file__).with_name("mock_broker.py")
_START_TIMEOUT_S = 30.0
_COMMAND_TIMEOUT_S = 10.0


class MockKafka:
    """The embedded broker: a `tests/mock_broker.py` process behind a fixed-port proxy.

    ``bootstrap`` is the proxy address ``127.0.0.1:PORT``; the broker advertises it in
    Metadata, so every client connection goes through the proxy.  ``direct_bootstrap`` is
    the broker's own (random, per-process) listener.
    """

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="cdcd-kafka-"))
        self.logfile = self.workdir / "mock_broker.log"
        self.proxy = TcpProxy()
        self.proxy.cut()  # refuse connections until a broker is behind it
        self.direct_bootstrap: str | None = None
        self.is_down = False
        self.rtt_ms = 0
        self._proc: subprocess.Popen[str] | None = None
        self._advertised = False

    # -- state ------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """What clients use as ``bootstrap.servers``: stable for this object's life."""
        if self._advertised or self.direct_bootstrap is None:
            return self.proxy.address
        return self.direct_bootstrap  # old librdkafka: cannot advertise the proxy

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def stable_address(self) -> bool:
        """Whether ``bootstrap`` survives ``stop()``/``start()`` (needs the advertise API)."""
        return self._advertised

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start a new, empty broker behind ``bootstrap`` (no-op when running)."""
        if self.running:
            return
        with open(self.logfile, "a") as log:
            log.write(f"--- mock broker start {time.strftime('%H:%M:%S')}\n")
            log.flush()
            proc = subprocess.Popen(
                [sys.executable, "-u", str(_MOCK_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
            )
        self._proc = proc
        line = self._read_line(_START_TIMEOUT_S)
        if line is None or line.startswith("error"):
            self._kill()
            raise RuntimeError(f"mock Kafka broker failed to start: {line}\n{self.log_text()}")
        self.direct_bootstrap = line
        self.is_down = False
        self.rtt_ms = 0
        host, port = line.rsplit(":", 1)
        reply = self._command(f"advertise {self.proxy.host} {self.proxy.port}")
        self._advertised = reply == "ok"
        self.proxy.restore(target=(host, int(port)))

    def stop(self) -> None:
        """Crash the broker: connections drop, connects are refused, all data is lost."""
        self.proxy.cut()
        self._kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def down(self) -> None:
        """Outage keeping data: drop connections and refuse new ones until `up()`."""
        self.proxy.cut()
        self._checked("down")
        self.is_down = True

    def up(self) -> None:
        """End a `down()` outage: same address, same topics, offsets and transactions."""
        self._checked("up")
        self.is_down = False
        self.proxy.restore()

    def set_rtt(self, rtt_ms: int) -> None:
        """Delay every broker reply by `rtt_ms` milliseconds (0 to clear)."""
        self._checked(f"rtt {int(rtt_ms)}")
        self.rtt_ms = int(rtt_ms)

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create a topic (the mock has no CreateTopics API; auto-created topics get 4)."""
        self._checked(f"topic {name} {int(partitions)}")

    def heal(self) -> None:
        """Bring the broker back to running, up, no latency, proxy listening."""
        if not self.running:
            self.start()
            return
        if self.is_down:
            self.up()
        if self.rtt_ms:
            self.set_rtt(0)
        if self.proxy.is_cut:
            self.proxy.restore()

    def close(self) -> None:
        self.stop()
        self.proxy.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        if self.is_down:
            state = "down"
        return f"<MockKafka {self.bootstrap} {state}>"

    # -- subprocess protocol ----------------------------------------------------------

    def _checked(self, line: str) -> None:
        reply = self._command(line)
        if reply != "ok":
            raise RuntimeError(f"mock broker command {line!r} failed: {reply}")

    def _command(self, line: str) -> str | None:
        proc = self._proc
        if proc is None or proc.poll() is not None or proc.stdin is None:
            raise RuntimeError("mock Kafka broker is not running (call start())")
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        return self._read_line(_COMMAND_TIMEOUT_S)

    def _read_line(self, timeout: float) -> str | None:
        assert self._proc is not None
        out: IO[str] | None = self._proc.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], timeout)
        if not ready:
            return None
        line = out.readline()
        return line.strip() if line else None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


@dataclass(frozen=True)
class RealKafka:
    """A real Apache Kafka broker given in ``CDCD_TEST_KAFKA`` (not started or stopped)."""

    bootstrap: str

    def create_topic(self, name: str, partitions: int = 1) -> None:
        create_topic(self.bootstrap, name, partitions)


@dataclass(frozen=True)
class Record:
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp: int | None = None

    def json(self) -> Any:
        """The value parsed as JSON (None for a tombstone)."""
        return None if self.value is None else json.loads(self.value)

    def key_json(self) -> Any:
        return None if self.key is None else json.loads(self.key)


def consume_all(
    bootstrap: str,
    topics: str | Sequence[str],
    *,
    isolation: str = "read_committed",
    timeout: float = 10.0,
    expect: int | None = None,
    settle: float = 1.0,
    check: Callable[[Record], object] | None = None,
    connect: bool = True,
    connect_every: int = 1,
) -> list[Record]:
    """Read `topics` from the beginning of every partition, without a consumer group.

    Every record read goes through a real Kafka Connect consumer (JsonConverter and
    Debezium's SMTs, ``tests/connect_consumer.py``) and fails the test if rejected; a topic
    that does not hold Debezium JSON (cdcd's offsets topic, a dead-letter topic, raw test
    bytes) is read with ``connect=False``, and `check` adds a check of its own per record
    (e.g. an Avro converter).  ``connect_every=N`` checks the first 1,000 records and then
    one in N: for volume tests of one record shape, where each JVM round trip costs about
    half a millisecond or more.

    Topics that do not exist yet are waited for.  Returns
    * with ``expect=None``: once every partition of every topic reached its end;
    * with ``expect=N``: once at least N records arrived and every partition reached its
      end (or `settle` seconds after the N-th record, if records keep coming);
    * in any case after `timeout` seconds, with what arrived (assert on the result).
    Records keep their per-partition order; partitions are interleaved.
    """
    wanted = [topics] if isinstance(topics, str) else list(topics)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"cdcd-test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            "fetch.wait.max.ms": 50,
            "socket.connection.setup.timeout.ms": 3000,
            "log_level": 3,
        }
    )
    deadline = time.monotonic() + timeout
    missing = set(wanted)
    at_eof: dict[tuple[str, int], bool] = {}
    records: list[Record] = []
    settle_at: float | None = None
    next_metadata = 0.0
    try:
        while True:
            now = time.monotonic()
            if missing and now >= next_metadata:
                _assign_new_topics(consumer, missing, at_eof, max(0.1, min(2.0, deadline - now)))
                next_metadata = time.monotonic() + 0.2
            done_reading = not missing and bool(at_eof) and all(at_eof.values())
            if expect is None and done_reading:
                break
            if expect is not None and len(records) >= expect:
                settle_at = settle_at or time.monotonic() + settle
                if done_reading or time.monotonic() >= settle_at:
                    break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            msg = consumer.poll(min(0.1, remaining))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_eof[(msg.topic() or "", msg.partition() or 0)] = True
                    continue
                if err.retriable() or err.code() in _TRANSIENT:
                    continue
                raise KafkaException(err)
            topic, partition = msg.topic() or "", msg.partition() or 0
            at_eof[(topic, partition)] = False
            _, ts = msg.timestamp()
            records.append(
                Record(
                    topic=topic,
                    partition=partition,
                    offset=msg.offset() or 0,
                    key=msg.key(),
                    value=msg.value(),
                    headers=list(msg.headers() or []),
                    timestamp=ts,
                )
            )
    finally:
        consumer.close()
    if connect:
        from tests.connect_consumer import check_records

        check_records(r for i, r in enumerate(records) if i < 1000 or i % max(1, connect_every) == 0)
    if check is not None:
        for record in records:
            check(record)
    return records


_TRANSIENT = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TIMED_OUT,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def _assign_new_topics(
    consumer: Consumer,
    missing: set[str],
    at_eof: dict[tuple[str, int], bool],
    timeout: float,
) -> None:
    try:
        metadata = consumer.list_topics(timeout=timeout)
    except KafkaException:
        return
    new: list[TopicPartition] = []
    for topic in sorted(missing):
        tmeta = metadata.topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            continue
        missing.discard(topic)
        for partition in sorted(tmeta.partitions):
            new.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
            at_eof[(topic, partition)] = False
    if new:
        consumer.incremental_assign(new)


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    *,
    replication_factor: int = 1,
    timeout: float = 10.0,
) -> None:
    """Create a topic through the Admin API (real Kafka; use MockKafka.create_topic on the mock)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, partitions, replication_factor)], operation_timeout=timeout
    )
    try:
        futures[name].result(timeout)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


# -- fixtures -------------------------------------------------------------------------

_session_broker: MockKafka | None = None


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[MockKafka]:
    """The shared embedded broker; see the module docstring for outage helpers."""
    global _session_broker
    broker = MockKafka()
    try:
        broker.start()
    except Exception:
        broker.close()
        raise
    _session_broker = broker
    try:
        yield broker
    finally:
        _session_broker = None
        broker.close()


@pytest.fixture(autouse=True)
def _heal_kafka_broker() -> Iterator[None]:
    """After each test, undo outages a test left on the shared broker."""
    yield
    if _session_broker is not None:
        _session_broker.heal()


@pytest.fixture
def fresh_kafka_broker() -> Iterator[MockKafka]:
    """A private embedded broker for one test (free to stop, down or slow down)."""
    broker = MockKafka()
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture
def real_kafka() -> RealKafka:
    bootstrap = os.environ.get(REAL_KAFKA_ENV, "").strip()
    if not bootstrap:
        pytest.skip(REAL_KAFKA_SKIP)
    return RealKafka(bootstrap)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the broker they use, so ``-m "not kafka"`` works without decorators."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "kafka_broker" in names or "fresh_kafka_broker" in names:
            item.add_marker(pytest.mark.kafka)
        if "real_kafka" in names:
            item.add_marker(pytest.mark.realkafka)
