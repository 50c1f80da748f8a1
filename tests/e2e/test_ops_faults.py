"""Ordinary faults end in a reconnect or in the documented exit code, never in a crash (exit 1).

Each test produces one fault: PostgreSQL restarting under a reading cdcd, a broker that
refuses connections while the offsets are read, two instances started at the same moment,
a producer fenced while its commit flushes, and a broker that aborts a transaction on its
timeout.  The huge-transaction tests split a PostgreSQL transaction over several Kafka
transactions and resume it after a SIGKILL in the middle.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from cdcd.debezium.envelope import Record
from cdcd.delivery import offsets as offsets_mod
from cdcd.delivery.offsets import OffsetStore, SourceOffset, TxnPosition
from cdcd.delivery.sinks.kafka import KafkaSink
from cdcd.errors import ConfigError, SinkError, SinkUnavailable
from tests.fix_cdcd import CdcdProcess
from tests.fix_kafka import consume_all

pytestmark = [pytest.mark.pg]


def _count(proc: CdcdProcess, event: str) -> int:
    return sum(1 for e in proc.logs() if e.get("event") == event)


def _wait_count(proc: CdcdProcess, event: str, at_least: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _count(proc, event) < at_least:
        assert proc.proc.poll() is None, f"cdcd exited {proc.proc.poll()}:\n{proc.text()[-4000:]}"
        assert time.monotonic() < deadline, f"fewer than {at_least}x {event} in {timeout} s:\n{proc.text()[-4000:]}"
        time.sleep(0.05)


def _ids(records: list[Any]) -> list[int]:
    return [r.json()["payload"]["after"]["id"] for r in records if r.value]


# -- PostgreSQL restarts while cdcd reads -----------------------------------------------------

@pytest.mark.kafka
def test_postgresql_immediate_restart_is_ridden_out(pg_db: Any, pg_cluster: Any, kafka_broker: Any,
                                                    cdcd_procs: list) -> None:
    """An immediate shutdown closes the socket without a message: libpq raises while reading."""
    prefix = f"pgr{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--bootstrap-servers", kafka_broker.bootstrap,
                        "--topic-prefix", prefix], env={"CDCD_LOG_LEVEL": "info"})
    cdcd_procs.append(proc)
    proc.wait_for("streaming", timeout=60)
    pg_db.execute("INSERT INTO t VALUES (1)")
    assert _ids(consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=1, timeout=30)) == [1]
    for round_ in (2, 3):
        pg_cluster.restart("immediate")
        _wait_count(proc, "streaming", round_, timeout=120)
    pg_db.execute("INSERT INTO t VALUES (2)")
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=2, timeout=30)
    assert set(_ids(records)) == {1, 2}
    assert _count(proc, "stream_interrupted") >= 2 and _count(proc, "crashed") == 0
    assert proc.proc.poll() is None
    assert proc.terminate() == 0


# -- the broker refuses connections while cdcd starts ------------------------------------------

class _DownConsumer:
    """A consumer whose broker went away after the metadata request (as seen in production)."""

    def __init__(self, _props: dict[str, Any]) -> None:
        pass

    def list_topics(self, topic: str, timeout: float) -> Any:
        class _Topic:
            error = None
            partitions = {0: None}

        class _Meta:
            topics = {topic: _Topic()}

        return _Meta()

    def get_watermark_offsets(self, _tp: Any, timeout: float) -> Any:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Connection refused"))

    def close(self) -> None:
        pass


def test_offsets_read_with_the_broker_gone_is_retriable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offsets_mod, "Consumer", _DownConsumer)
    store = OffsetStore("p.offsets", "p", "cdcd")
    with pytest.raises(SinkUnavailable, match="cannot read the offsets topic p.offsets") as info:
        store.read("127.0.0.1:1", timeout_s=1)
    assert info.value.exit_code == 5


@pytest.mark.kafka
def test_broker_refusing_connections_at_start_exits_5(pg_db: Any, fresh_kafka_broker: Any) -> None:
    fresh_kafka_broker.down()
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--bootstrap-servers", fresh_kafka_broker.bootstrap,
                        "--topic-prefix", f"bd{uuid.uuid4().hex[:8]}"],
                       env={"CDCD_KAFKA_TIMEOUT_MS": "3000"})
    try:
        assert proc.proc.wait(120) == 5, proc.text()[-3000:]
    finally:
        proc.terminate()
    assert "cannot reach Kafka" in proc.text() and "crashed" not in proc.text()
    assert not pg_db.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'cdcd'")


@pytest.mark.kafka
def test_broker_outage_during_startup_is_retried(pg_db: Any, fresh_kafka_broker: Any, cdcd_procs: list) -> None:
    """Down after the startup check (while the producer starts or the offsets are read): a reconnect."""
    prefix = f"bo{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    args = ["run", "--dsn", pg_db.dsn, "--bootstrap-servers", fresh_kafka_broker.bootstrap, "--topic-prefix", prefix]
    env = {"CDCD_LOG_LEVEL": "info", "CDCD_KAFKA_TIMEOUT_MS": "3000"}
    first = CdcdProcess(args, env=env)
    cdcd_procs.append(first)
    first.wait_for("streaming", timeout=60)
    assert first.terminate() == 0
    proc = CdcdProcess(args, env=env)
    cdcd_procs.append(proc)
    proc.wait_for("starting", timeout=30)
    deadline = time.monotonic() + 60
    while "kafka_ready" not in proc.text() and _count(proc, "stream_interrupted") == 0:
        assert time.monotonic() < deadline and proc.proc.poll() is None, proc.text()[-3000:]
        time.sleep(0.01)
    fresh_kafka_broker.down()
    pg_db.execute("INSERT INTO t VALUES (7)")
    _wait_count(proc, "stream_interrupted", 1, timeout=90)
    fresh_kafka_broker.up()
    records = consume_all(fresh_kafka_broker.bootstrap, f"{prefix}.public.t", expect=1, timeout=120)
    assert 7 in _ids(records)
    assert proc.proc.poll() is None and "crashed" not in proc.text()
    assert proc.terminate() == 0


# -- two instances started together -----------------------------------------------------------

@pytest.mark.kafka
def test_two_instances_started_together_one_streams_one_waits(pg_db: Any, kafka_broker: Any,
                                                              cdcd_procs: list) -> None:
    prefix = f"race{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    args = ["run", "--dsn", pg_db.dsn, "--bootstrap-servers", kafka_broker.bootstrap, "--topic-prefix", prefix]
    env = {"CDCD_LOG_LEVEL": "info", "CDCD_STANDBY_POLL_MS": "200"}
    setup = CdcdProcess(args, env=env)  # creates the slot (and takes the empty snapshot) alone
    cdcd_procs.append(setup)
    setup.wait_for("streaming", timeout=60)
    assert setup.terminate() == 0
    for round_ in range(3):
        a, b = CdcdProcess(args, env=env), CdcdProcess(args, env=env)
        cdcd_procs.extend((a, b))
        deadline = time.monotonic() + 60
        while not (("streaming" in a.text() or "standby_waiting" in a.text())
                   and ("streaming" in b.text() or "standby_waiting" in b.text())):
            assert a.proc.poll() is None, f"exit {a.proc.poll()}:\n{a.text()[-3000:]}"
            assert b.proc.poll() is None, f"exit {b.proc.poll()}:\n{b.text()[-3000:]}"
            assert time.monotonic() < deadline, a.text()[-2000:] + b.text()[-2000:]
            time.sleep(0.05)
        streaming = [p for p in (a, b) if _count(p, "streaming")]
        waiting = [p for p in (a, b) if _count(p, "standby_waiting")]
        assert len(streaming) == 1 and len(waiting) == 1, (a.text()[-2000:], b.text()[-2000:])
        winner, loser = streaming[0], waiting[0]
        pg_db.execute(f"INSERT INTO t VALUES ({round_})")
        records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=round_ + 1, timeout=30)
        assert round_ in _ids(records)
        # The loser never registered the transactional id, so the winner was never fenced.
        assert "kafka_ready" not in loser.text(), loser.text()[-3000:]
        assert _count(winner, "stream_interrupted") == 0 and _count(winner, "streaming") == 1, winner.text()[-3000:]
        assert a.proc.poll() is None and b.proc.poll() is None
        assert loser.terminate() == 0 and winner.terminate() == 0


@pytest.mark.kafka
def test_two_instances_started_together_on_a_new_database(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    """No slot yet: one creates it and snapshots; the other waits without touching Kafka."""
    prefix = f"race{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    pg_db.execute("INSERT INTO t SELECT generate_series(1, 1000)")
    args = ["run", "--dsn", pg_db.dsn, "--bootstrap-servers", kafka_broker.bootstrap, "--topic-prefix", prefix]
    env = {"CDCD_LOG_LEVEL": "info", "CDCD_STANDBY_POLL_MS": "200"}
    a, b = CdcdProcess(args, env=env), CdcdProcess(args, env=env)
    cdcd_procs.extend((a, b))
    deadline = time.monotonic() + 90
    while not ((_count(a, "streaming") and _count(b, "standby_waiting"))
               or (_count(b, "streaming") and _count(a, "standby_waiting"))):
        assert a.proc.poll() is None, f"exit {a.proc.poll()}:\n{a.text()[-3000:]}"
        assert b.proc.poll() is None, f"exit {b.proc.poll()}:\n{b.text()[-3000:]}"
        assert time.monotonic() < deadline, a.text()[-2000:] + b.text()[-2000:]
        time.sleep(0.05)
    winner, loser = (a, b) if _count(a, "streaming") else (b, a)
    # The winner kept the slot (also while it read the snapshot, when the slot itself is free).
    assert _count(loser, "streaming") == 0 and _count(winner, "standby_waiting") == 0, loser.text()[-3000:]
    assert "kafka_ready" not in loser.text() and _count(winner, "stream_interrupted") == 0
    pg_db.execute("INSERT INTO t VALUES (1001)")
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=1001, timeout=60)
    assert set(_ids(records)) == set(range(1, 1002))
    assert loser.terminate() == 0 and winner.terminate() == 0


# -- fenced while the commit flushes ----------------------------------------------------------

class _FencedProducer:
    """commit_transaction() (which flushes first) fails the way confluent-kafka does when a
    delivery callback meets a fatal error."""

    def __init__(self, sink: KafkaSink) -> None:
        self.sink = sink

    def begin_transaction(self) -> None:
        pass

    def produce(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def poll(self, _timeout: float = 0) -> int:
        return 0

    def flush(self, _timeout: float = 0) -> int:
        return 0

    def purge(self, **_flags: bool) -> None:
        pass

    def commit_transaction(self, _timeout: float = 0) -> None:
        self.sink._on_error(KafkaError(KafkaError._FENCED, "transactional producer fenced by newer producer "
                                       "instance", fatal=True))
        try:
            raise KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
        except KafkaException as exc:
            raise SystemError("<method 'topic' of 'cimpl.Message' objects> returned a result with an "
                              "exception set") from exc

    def abort_transaction(self, _timeout: float = 0) -> None:
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))


def _fake_sink(**kwargs: Any) -> KafkaSink:
    sink = KafkaSink("127.0.0.1:1", "fence-test", **kwargs)
    sink._producer = _FencedProducer(sink)  # type: ignore[assignment]
    sink._state = sink._state.READY
    return sink


def test_fenced_during_commit_flush_is_exit_4_not_a_crash() -> None:
    sink = _fake_sink(timeout_s=5)
    sink.send(Record("t", b"k", b"v"))
    sink.send(OffsetStore("t.offsets", "t", "cdcd").record(SourceOffset(10, 1)))
    with pytest.raises(SinkError, match="fenced") as info:
        sink.commit()
    assert info.value.exit_code == 4
    with pytest.raises(SinkError, match="internal error: cannot send a record while the Kafka producer is failed"):
        sink.send(Record("t", b"k", b"v"))  # a failed producer refuses work instead of dropping it silently
    with pytest.raises(SinkError, match="cannot commit while the Kafka producer is failed"):
        sink.commit()
    sink.close()


def test_a_failed_commit_drops_the_held_records_unsent() -> None:
    """The next transaction never begins when the one before it did not commit."""
    sink = _fake_sink(timeout_s=5, overlap=True)
    produced: list[Any] = []
    sink._producer.produce = lambda *args, **kwargs: produced.append(args)  # type: ignore[method-assign]
    sink.send(Record("t", b"k", b"n"))
    sink.commit_start()
    sink.send(Record("t", b"k", b"held"))
    with pytest.raises(SinkError, match="fenced"):
        sink.commit_wait()
    assert [args[1] for args in produced] == [b"n"] and sink._held == []
    sink.close()


def test_transaction_aborted_by_the_broker_timeout_is_named_and_retried() -> None:
    sink = _fake_sink(timeout_s=5, properties={"transaction.timeout.ms": "1000"})
    sink.send(Record("t", b"k", b"v"))
    sink.send(OffsetStore("t.offsets", "t", "cdcd").record(SourceOffset(10, 1)))
    sink._txn_started -= 2.0  # the transaction has been open for longer than transaction.timeout.ms
    with pytest.raises(SinkUnavailable, match=r"transaction.timeout.ms=1000") as info:
        sink.commit()
    assert info.value.exit_code == 5 and "aborted" in str(info.value)


def test_fenced_while_committing_on_the_broker_is_exit_4(real_kafka: Any) -> None:
    """On a real broker (the embedded one does not fence): the older producer's commit fails with exit 4."""
    kafka_broker = real_kafka
    tid = f"fence-{uuid.uuid4().hex[:8]}"
    first = KafkaSink(kafka_broker.bootstrap, tid, timeout_s=15)
    first.start()
    for i in range(2000):
        first.send(Record(f"fence{tid}", str(i).encode(), b"x" * 100))
    second = KafkaSink(kafka_broker.bootstrap, tid, timeout_s=15)
    second.start()
    try:
        with pytest.raises(SinkError) as info:
            first.send(OffsetStore(f"fence{tid}.offsets", "p", "cdcd").record(SourceOffset(1, 1)))
            first.commit()
        assert info.value.exit_code == 4
    finally:
        first.close()
        second.close()


def test_misspelled_producer_property_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="compresion.type") as info:
        KafkaSink("127.0.0.1:1", "x", properties={"compresion.type": "lz4"})
    assert info.value.exit_code == 2


# -- huge transactions: committed to Kafka in parts ---------------------------------------------

def test_partial_position_round_trips_through_the_offsets_record() -> None:
    offset = SourceOffset(100, 5, 1, "sys", partial=TxnPosition(200, 6, 12345))
    assert SourceOffset.from_json(offset.to_json()) == offset
    assert SourceOffset.from_json(SourceOffset(100, 5).to_json()).partial is None


HUGE_ROWS = 200_000
HUGE_PARTITIONS = 16  # lz4 envelopes of 200k rows: well under 16 x 5 MiB kept by the embedded broker


def _wait_confirmed(pg_db: Any, lsn: int, proc: CdcdProcess, timeout: float) -> None:
    """Until the slot confirmed ``lsn``: cdcd confirms only what Kafka committed."""
    deadline = time.monotonic() + timeout
    while True:
        (confirmed,), = pg_db.execute("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots "
                                      "WHERE slot_name = 'cdcd'")
        if int(confirmed) >= lsn:
            return
        assert proc.proc.poll() is None, f"cdcd exited {proc.proc.poll()}:\n{proc.text()[-4000:]}"
        assert time.monotonic() < deadline, f"not confirmed within {timeout} s:\n{proc.text()[-4000:]}"
        time.sleep(0.2)


def _huge_transaction_killed_mid_way(pg_db: Any, bootstrap: str, create_topic: Any,
                                     cdcd_procs: list) -> tuple[list[Any], tuple[int, int]]:
    """One 200k-row transaction, parts every third of a second, SIGKILL after two parts, then a restart."""
    prefix = f"huge{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.public.big"
    create_topic(topic, HUGE_PARTITIONS)
    pg_db.execute("CREATE TABLE big (id int PRIMARY KEY, v smallint NOT NULL)")
    args = ["run", "--dsn", pg_db.dsn, "--bootstrap-servers", bootstrap, "--topic-prefix", prefix]
    # transaction.timeout.ms = 1 s (librdkafka's least): a part is committed once the Kafka
    # transaction is a third of a second old. Decoding 200k rows takes the walsender itself
    # more than a second, so there are at least two parts however fast cdcd is.
    env = {"CDCD_LOG_LEVEL": "info", "CDCD_KAFKA_COMPRESSION_TYPE": "lz4",
           "CDCD_KAFKA_TRANSACTION_TIMEOUT_MS": "1000", "CDCD_STATUS_INTERVAL_MS": "200"}
    first = CdcdProcess(args, env=env)
    cdcd_procs.append(first)
    first.wait_for("streaming", timeout=60)
    with pg_db.connect() as conn:
        conn.execute(f"INSERT INTO big SELECT g, g % 7 FROM generate_series(1, {HUGE_ROWS}) g")
        conn.commit()
        end = int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0])
    _wait_count(first, "transaction_part_committed", 2, timeout=300)
    first.kill()
    parts = [e for e in first.logs() if e.get("event") == "transaction_part_committed"]
    (confirmed,), = pg_db.execute("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots")
    assert int(confirmed) < end, "a part of the transaction moved the confirmed position"

    second = CdcdProcess(args, env=env)
    cdcd_procs.append(second)
    resumed = second.wait_for("transaction_resumed", timeout=120)
    assert resumed["changes_in_kafka"] >= parts[-1]["changes"] > 0, (resumed, parts)
    _wait_confirmed(pg_db, end, second, timeout=600)
    # One record shape in volume: Kafka Connect checks the first 1,000 and then one in 1,000.
    records = consume_all(bootstrap, topic, timeout=300, connect_every=1000)
    assert second.terminate() == 0
    # The rows a resume from the killed instance's open part would skip: that part's offsets
    # record was never logged as committed. Only the embedded broker shows such a record.
    unlogged = (parts[-1]["changes"], resumed["changes_in_kafka"])
    return records, unlogged


def _row_ids(records: list[Any]) -> list[int]:
    return [int(r.key[r.key.rindex(b":") + 1:-2]) for r in records]


@pytest.mark.kafka
def test_huge_transaction_is_committed_in_parts_and_resumed(pg_db: Any, fresh_kafka_broker: Any,
                                                            cdcd_procs: list) -> None:
    """The embedded broker shows aborted records too: no loss here, exactly once on a real broker.

    One exception, the embedded broker's own: when the killed instance was committing a third
    part, its offsets record may be shown (aborted) while some of that part's rows never
    reached the broker; the restart resumes after it. Rows missing only there are reported.
    """
    records, (logged, resumed) = _huge_transaction_killed_mid_way(pg_db, fresh_kafka_broker.bootstrap,
                                                                  fresh_kafka_broker.create_topic, cdcd_procs)
    missing = sorted(set(range(1, HUGE_ROWS + 1)) - set(_row_ids(records)))
    if missing and resumed > logged and all(logged < i <= resumed for i in missing):
        print(f"{len(missing)} rows missing behind the killed instance's aborted part ({logged}, {resumed}], "
              "which the embedded broker shows (a real broker hides it; not a loss by cdcd)")
        missing = []
    assert missing == [], f"{len(missing)} rows missing, e.g. {missing[:10]}"


def test_huge_transaction_resumed_exactly_once_on_a_real_broker(pg_db: Any, real_kafka: Any,
                                                                cdcd_procs: list) -> None:
    records, _ = _huge_transaction_killed_mid_way(pg_db, real_kafka.bootstrap, real_kafka.create_topic, cdcd_procs)
    ids = _row_ids(records)
    assert len(ids) == HUGE_ROWS and set(ids) == set(range(1, HUGE_ROWS + 1)), (
        f"{len(ids)} records, {len(set(ids))} distinct rows of {HUGE_ROWS}")


# -- the offsets topic on brokers older than 2.4 -------------------------------------------------

def test_offsets_topic_created_compacted_with_an_explicit_replication_factor(real_kafka: Any) -> None:
    """Apache Kafka < 2.4 refuses replication_factor=-1 (KIP-464); the broker's default is read instead."""
    import structlog

    topic = f"rf{uuid.uuid4().hex[:8]}.offsets"
    with structlog.testing.capture_logs() as logs:
        offsets_mod.ensure_offsets_topic(real_kafka.bootstrap, topic)
    created = [e for e in logs if e["event"] == "offsets_topic_created"]
    assert created and created[0]["replication_factor"] >= 1, logs
    assert offsets_mod.topic_cleanup_policy(real_kafka.bootstrap, topic) == "compact"


def test_uncompacted_offsets_topic_is_reported_at_start_and_by_check(real_kafka: Any, pg_db: Any) -> None:
    import structlog

    from tests.e2e.test_e2e_errors import run_cdcd
    from tests.fix_kafka import create_topic

    prefix = f"nc{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.offsets"
    create_topic(real_kafka.bootstrap, topic)  # the broker's defaults: cleanup.policy=delete
    with structlog.testing.capture_logs() as logs:
        offsets_mod.ensure_offsets_topic(real_kafka.bootstrap, topic)
    (error,) = [e for e in logs if e["event"] == "offsets_topic_not_compacted"]
    assert "cleanup.policy=compact" in error["detail"]
    result = run_cdcd("check", "--dsn", pg_db.dsn, "--bootstrap-servers", real_kafka.bootstrap,
                      "--topic-prefix", prefix)
    line = next(x for x in result.stdout.splitlines() if "offsets topic" in x)
    assert line.startswith("FAIL") and "cleanup.policy=compact" in line and result.returncode == 1, result.stdout
