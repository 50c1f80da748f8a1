"""Bad input: a clear error, a non-zero exit, nothing confirmed."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

from tests.fix_cdcd import CdcdProcess

pytestmark = [pytest.mark.pg]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cdcd(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cdcd", *args], capture_output=True, text=True,
                          timeout=timeout, env={"CDCD_LOG_FORMAT": "json", "CDCD_HTTP_PORT": "0", "PATH": "/usr/bin:/bin", **env})


def slots(pg_db: Any) -> list[str]:
    with pg_db.connect() as conn:
        return [r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots WHERE database = %s",
                                           (pg_db.dbname,)).fetchall()]


def test_wrong_dsn() -> None:
    port = free_port()
    result = run_cdcd("run", "--dsn", f"host=127.0.0.1 port={port} dbname=x user=x connect_timeout=2",
                      "--sink", "stdout")
    assert result.returncode == 5
    assert "cannot connect to PostgreSQL" in result.stderr and "is PostgreSQL running" in result.stderr


def test_wrong_database_name(pg_cluster: Any) -> None:
    result = run_cdcd("run", "--dsn", pg_cluster.dsn(dbname="no_such_db"), "--sink", "stdout")
    assert result.returncode == 3
    assert "does not exist" in result.stderr


def test_missing_publication_with_autocreate_disabled(pg_db: Any) -> None:
    result = run_cdcd("run", "--dsn", pg_db.dsn, "--sink", "stdout", "--publication", "nopub",
                      CDCD_PUBLICATION_AUTOCREATE_MODE="disabled")
    assert result.returncode == 3
    assert "publication 'nopub' does not exist" in result.stderr and "CREATE PUBLICATION" in result.stderr
    assert slots(pg_db) == []


def test_unreachable_broker_exits_before_creating_a_slot(pg_db: Any) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    port = free_port()
    result = run_cdcd("run", "--dsn", pg_db.dsn, "--bootstrap-servers", f"127.0.0.1:{port}",
                      CDCD_KAFKA_TIMEOUT_MS="3000")
    assert result.returncode == 5
    assert f"cannot reach Kafka: 127.0.0.1:{port} unreachable" in result.stderr
    assert slots(pg_db) == [], "no slot may be created (and retain WAL) when the broker is unreachable"


def test_check_reports_each_item(pg_db: Any, kafka_broker: Any) -> None:
    result = run_cdcd("check", "--dsn", pg_db.dsn, "--bootstrap-servers", kafka_broker.bootstrap)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    names = [line.split(":", 1)[0].split(None, 1)[1] for line in lines]
    assert names == ["postgresql", "wal_level", "replication privilege", "publication", "replica identity", "slot",
                     "kafka", "offsets topic", "key.converter", "value.converter"]
    assert lines[1].startswith("ok") and "logical" in lines[1]


def test_check_fails_on_missing_publication_and_broker(pg_db: Any) -> None:
    port = free_port()
    result = run_cdcd("check", "--dsn", pg_db.dsn, "--bootstrap-servers", f"127.0.0.1:{port}",
                      CDCD_PUBLICATION_AUTOCREATE_MODE="disabled")
    assert result.returncode == 1
    assert "FAIL publication: cdcd does not exist: CREATE PUBLICATION" in result.stdout
    assert "FAIL kafka" in result.stdout


def test_wal_level_not_logical(pg_cluster: Any, pg_db: Any) -> None:
    pg_cluster.set_config("wal_level", "replica")
    pg_cluster.restart()
    try:
        result = run_cdcd("run", "--dsn", pg_db.dsn, "--sink", "stdout")
        assert result.returncode == 3
        assert "wal_level is 'replica'" in result.stderr and "wal_level = logical" in result.stderr
        check = run_cdcd("check", "--dsn", pg_db.dsn, "--sink", "stdout")
        assert check.returncode == 1 and "FAIL wal_level" in check.stdout
    finally:
        pg_cluster.set_config("wal_level", "logical")
        pg_cluster.restart()


def test_dropped_slot_while_running_is_reported_not_recreated(pg_db: Any, cdcd_procs: list) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--sink", "stdout"])
    cdcd_procs.append(proc)
    proc.wait_for("streaming")
    with pg_db.connect() as conn:
        conn.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'cdcd'")
        for _ in range(50):
            try:
                conn.execute("SELECT pg_drop_replication_slot('cdcd')")
                break
            except Exception:  # noqa: BLE001 - the walsender may still hold it for a moment
                import time

                time.sleep(0.1)
    code = proc.wait(60)
    assert code == 3, proc.text()
    assert "disappeared while cdcd was using it" in proc.text()
    assert slots(pg_db) == []
