"""Operations surface of a running ``cdcd run``: /metrics, /healthz, /readyz, sd_notify."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fix_cdcd import CdcdProcess
from tests.waiting import wait_until

pytestmark = [pytest.mark.pg, pytest.mark.kafka]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + ("{" if labels else "")) and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def start(procs: list[CdcdProcess], pg_db: Any, bootstrap: str, env: dict[str, str] | None = None) -> tuple[CdcdProcess, int]:
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--bootstrap-servers", bootstrap,
                        "--topic-prefix", f"ops{uuid.uuid4().hex[:8]}"], env=env)
    procs.append(proc)
    port = int(proc.wait_for("http_listening")["port"])
    proc.wait_for("streaming")
    return proc, port


def test_metrics_move_with_the_workload(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    _, port = start(cdcd_procs, pg_db, kafka_broker.bootstrap)
    status, before = get(port, "/metrics")
    assert status == 200 and "cdcd_build_info" in before
    assert metric(before, "cdcd_events_total", table="public.t", op="c") in (None, 0.0)
    pg_db.execute("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 25) g")
    pg_db.execute("UPDATE t SET v = 'y' WHERE id <= 5")

    def moved() -> bool:
        text = get(port, "/metrics")[1]
        return (metric(text, "cdcd_events_total", table="public.t", op="c") == 25
                and metric(text, "cdcd_events_total", table="public.t", op="u") == 5)

    wait_until(moved, "event counters to reach 25 creates and 5 updates", 20)
    wait_until(lambda: (metric(get(port, "/metrics")[1], "cdcd_kafka_transactions_total", outcome="committed")
                        or 0) >= 1, "a committed Kafka transaction", 10)
    text = get(port, "/metrics")[1]
    assert (metric(text, "cdcd_transactions_total") or 0) >= 2
    wait_until(lambda: (metric(get(port, "/metrics")[1], "cdcd_lsn", position="confirmed") or 0)
               > (metric(before, "cdcd_lsn", position="confirmed") or 0), "the confirmed LSN gauge to move", 10)
    assert metric(text, "cdcd_connected", peer="postgresql") == 1
    assert metric(text, "cdcd_streaming") == 1
    assert get(port, "/healthz")[0] == 200


def test_readiness_follows_broker_and_postgresql(pg_db: Any, pg_cluster: Any, fresh_kafka_broker: Any,
                                                 cdcd_procs: list) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    _, port = start(cdcd_procs, pg_db, fresh_kafka_broker.bootstrap)
    wait_until(lambda: get(port, "/readyz")[0] == 200, "ready", 10)

    fresh_kafka_broker.down()
    wait_until(lambda: get(port, "/readyz")[0] == 503, "not ready while the broker is down", 20)
    assert "kafka" in get(port, "/readyz")[1]
    fresh_kafka_broker.up()
    wait_until(lambda: get(port, "/readyz")[0] == 200, "ready again after the broker came back", 30)

    pg_cluster.stop()
    wait_until(lambda: get(port, "/readyz")[0] == 503, "not ready while PostgreSQL is down", 20)
    assert get(port, "/healthz")[0] == 200, "a process waiting to reconnect is alive, not stuck"
    pg_cluster.start()
    wait_until(lambda: get(port, "/readyz")[0] == 200, "ready again after PostgreSQL came back", 60)


def test_sd_notify_ready_watchdog_stopping(pg_db: Any, kafka_broker: Any, cdcd_procs: list,
                                          tmp_path: Path) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    proc, _ = start(cdcd_procs, pg_db, kafka_broker.bootstrap,
                    env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
    seen: list[str] = []

    def drain() -> None:
        while True:
            try:
                seen.extend(sock.recv(4096).decode().splitlines())
            except TimeoutError:
                return

    wait_until(lambda: (drain(), "READY=1" in seen and "WATCHDOG=1" in seen)[1], "READY=1 and WATCHDOG=1", 10)
    assert any(re.match(r"STATUS=streaming slot cdcd from \d+/[0-9A-F]+", s) for s in seen), seen
    assert proc.terminate() == 0
    drain()
    assert "STOPPING=1" in seen
    sock.close()
