"""The test fixtures themselves: PostgreSQL cluster, per-test databases, mock Kafka broker."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from typing import Any

import psycopg
import pytest
from confluent_kafka import KafkaError, Producer

from tests.fix_kafka import MockKafka, RealKafka, consume_all
from tests.fix_pg import DB_PREFIX, SUPPORTED_VERSIONS, PgCluster, PgDatabase, find_installs, requested_versions
from tests.tcpproxy import TcpProxy

# -- PostgreSQL -----------------------------------------------------------------------


def test_cluster_is_logical_and_not_root(pg_cluster: PgCluster) -> None:
    assert pg_cluster.show("wal_level") == "logical"
    assert pg_cluster.show("max_replication_slots") == "64"
    assert pg_cluster.show("TimeZone") == "UTC"
    assert pg_cluster.show("synchronous_commit") == "on"
    assert pg_cluster.execute("SELECT current_user")[0][0] == "postgres"
    pid = pg_cluster.postmaster_pid
    assert pid is not None and os.stat(f"/proc/{pid}").st_uid != 0


def test_cluster_runs_the_version_its_id_names(pg_cluster: PgCluster, request: pytest.FixtureRequest) -> None:
    server = int(pg_cluster.show("server_version_num"))
    assert server // 10000 == pg_cluster.version
    assert f"[pg{pg_cluster.version}]" in request.node.name
    # The binaries the fixture found for this version, or the readable copy made of them.
    assert pg_cluster.bindir in (find_installs()[pg_cluster.version],) or "cdcd-pgserver-" in str(pg_cluster.bindir)


def test_version_selection(pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch) -> None:
    class Options:
        def __init__(self, value: str | None) -> None:
            self.value = value

        def getoption(self, name: str, default: Any = None) -> Any:
            return self.value

    monkeypatch.delenv("CDCD_TEST_PG_VERSIONS", raising=False)
    assert requested_versions(Options(None)) == (list(SUPPORTED_VERSIONS), False)  # type: ignore[arg-type]
    assert requested_versions(Options("16, 15")) == ([15, 16], True)  # type: ignore[arg-type]
    monkeypatch.setenv("CDCD_TEST_PG_VERSIONS", "16")
    assert requested_versions(Options(None)) == ([16], True)  # type: ignore[arg-type]
    for bad in ("14", "sixteen"):
        with pytest.raises(pytest.UsageError):
            requested_versions(Options(bad))  # type: ignore[arg-type]


def test_pg_db_is_a_fresh_database(pg_db: PgDatabase, pg_cluster: PgCluster) -> None:
    assert pg_db.execute("SELECT current_database()") == [(pg_db.dbname,)]
    pg_db.execute("CREATE TABLE only_here (id int PRIMARY KEY)")
    assert pg_cluster.execute("SELECT to_regclass('only_here')") == [(None,)]
    with psycopg.connect(pg_db.dsn_with(application_name="probe")) as conn:
        assert conn.execute("SELECT count(*) FROM only_here").fetchone() == (0,)
    # No database (so no slot) of an earlier pg_db is left behind.
    others = pg_cluster.execute(
        "SELECT datname FROM pg_database WHERE starts_with(datname, %s) AND datname <> %s",
        (DB_PREFIX, pg_db.dbname),
    )
    assert others == []


def test_logical_slot_in_pg_db(pg_db: PgDatabase) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t")
    pg_db.execute("SELECT pg_create_logical_replication_slot('s', 'pgoutput')")
    pg_db.execute("INSERT INTO t VALUES (1)")
    changes = pg_db.execute(
        "SELECT count(*) FROM pg_logical_slot_peek_binary_changes("
        "'s', NULL, NULL, 'proto_version', '1', 'publication_names', 'p')"
    )
    assert changes[0][0] >= 3  # BEGIN, RELATION, INSERT, COMMIT
    # The slot stays behind: the fixture must drop it before DROP DATABASE.


def test_drop_terminates_an_active_walsender(pg_cluster: PgCluster) -> None:
    db = PgDatabase(pg_cluster, f"drop_{uuid.uuid4().hex[:8]}")
    db.create()
    db.execute("SELECT pg_create_logical_replication_slot('busy', 'pgoutput')")
    recv = subprocess.Popen(
        [str(pg_cluster.bindir / "pg_recvlogical"), "-d", db.dsn, "--slot", "busy",
         "--start", "--no-loop", "-f", "-",
         "-o", "proto_version=1", "-o", "publication_names=none"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while db.execute("SELECT active FROM pg_replication_slots") != [(True,)]:
            assert time.monotonic() < deadline, "pg_recvlogical never took the slot"
            time.sleep(0.05)
        db.drop()
        assert recv.wait(timeout=10) is not None
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    gone = pg_cluster.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db.dbname,))
    assert gone == []


def test_stop_start_restart_keep_port_and_data(pg_cluster: PgCluster, pg_db: PgDatabase) -> None:
    pg_db.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('x')")
    port, pid = pg_cluster.port, pg_cluster.postmaster_pid
    pg_cluster.stop()
    assert not pg_cluster.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_db.dsn_with(connect_timeout=2)).close()
    pg_cluster.start()
    pg_cluster.restart(mode="immediate")  # a crash: recovery must keep committed data
    assert pg_cluster.port == port and pg_cluster.postmaster_pid != pid
    assert pg_db.execute("SELECT v FROM kept") == [("x",)]


def test_set_config_then_heal(pg_cluster: PgCluster) -> None:
    pg_cluster.set_config("wal_level", "replica")
    assert pg_cluster.show("wal_level") == "replica"
    pg_cluster.heal()  # what the fixture does after each test
    assert pg_cluster.show("wal_level") == "logical"


# -- Kafka ----------------------------------------------------------------------------


def _topic() -> str:
    return f"fixtures.{uuid.uuid4().hex[:10]}"


def _deliver(bootstrap: str, topic: str, values: list[bytes], **conf: Any) -> list[KafkaError]:
    """Produce `values`, flush, return the delivery errors."""
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 1500,
                         "log_level": 2, **conf})  # fmt: skip
    for value in values:
        producer.produce(topic, value, on_delivery=on_delivery)
    producer.flush(5)
    return errors


def test_mock_broker_transactional_produce(kafka_broker: MockKafka) -> None:
    topic = _topic()
    kafka_broker.create_topic(topic, partitions=2)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap,
                         "transactional.id": f"fixtures-{uuid.uuid4().hex}", "log_level": 2})  # fmt: skip
    producer.init_transactions(10)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, f"v{i}".encode(), key=f"k{i}".encode())
    producer.commit_transaction(10)

    records = consume_all(kafka_broker.bootstrap, topic, expect=3, timeout=10, connect=False)
    assert sorted((r.key, r.value) for r in records) == [(b"k0", b"v0"), (b"k1", b"v1"), (b"k2", b"v2")]
    assert {r.partition for r in records} <= {0, 1}
    assert kafka_broker.stable_address  # clients go through the fixed-port proxy


def test_mock_broker_stop_loses_delivery_and_data(fresh_kafka_broker: MockKafka) -> None:
    broker, topic = fresh_kafka_broker, _topic()
    bootstrap = broker.bootstrap
    assert _deliver(bootstrap, topic, [b"before"]) == []
    broker.stop()
    errors = _deliver(bootstrap, topic, [b"during"])
    assert [e.code() for e in errors] == [KafkaError._MSG_TIMED_OUT]
    broker.start()
    assert broker.bootstrap == bootstrap
    assert _deliver(bootstrap, topic, [b"after"]) == []
    records = consume_all(bootstrap, topic, timeout=5, connect=False)
    assert [r.value for r in records] == [b"after"]  # a new, empty broker


def test_mock_broker_down_up_keeps_data(fresh_kafka_broker: MockKafka) -> None:
    broker, topic = fresh_kafka_broker, _topic()
    assert _deliver(broker.bootstrap, topic, [b"kept"]) == []
    broker.down()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", broker.proxy.port), timeout=2).close()
    errors = _deliver(broker.bootstrap, topic, [b"lost"])
    assert [e.code() for e in errors] == [KafkaError._MSG_TIMED_OUT]
    broker.up()
    assert _deliver(broker.bootstrap, topic, [b"again"]) == []
    records = consume_all(broker.bootstrap, topic, timeout=5, connect=False)
    assert sorted(r.value for r in records if r.value) == [b"again", b"kept"]


def test_tcpproxy_cut_refuses_and_restore_reuses_the_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        with TcpProxy(server.getsockname()) as proxy:
            port = proxy.port
            client = socket.create_connection(("127.0.0.1", port), timeout=2)
            upstream, _ = server.accept()
            client.sendall(b"ping")
            assert upstream.recv(4) == b"ping"
            proxy.cut()
            assert client.recv(4) == b""  # dropped
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2)
            proxy.restore()
            assert proxy.port == port
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            client.close()
            upstream.close()


def test_real_kafka_hides_aborted_transactions(real_kafka: RealKafka) -> None:
    topic = _topic()
    real_kafka.create_topic(topic)
    producer = Producer({"bootstrap.servers": real_kafka.bootstrap,
                         "transactional.id": f"fixtures-{uuid.uuid4().hex}"})  # fmt: skip
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"aborted")
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b"committed")
    producer.commit_transaction(30)
    records = consume_all(real_kafka.bootstrap, topic, expect=1, timeout=30, connect=False)
    assert [r.value for r in records] == [b"committed"]
