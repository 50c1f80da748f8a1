"""The operations endpoint, over real HTTP on a free port."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from cdcd.errors import ConfigError
from cdcd.ops.health import Health
from cdcd.ops.httpserver import OpsServer, serve
from cdcd.ops.metrics import Metrics


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ops(clock: Clock) -> Iterator[tuple[OpsServer, Metrics, Health]]:
    metrics = Metrics()
    health = Health(stall_after_s=30, metrics=metrics, clock=clock)
    server = serve("127.0.0.1", 0, metrics=metrics, health=health)
    try:
        yield server, metrics, health
    finally:
        server.close()


def get(server: OpsServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_metrics_exposition(ops: tuple[OpsServer, Metrics, Health]) -> None:
    server, metrics, _ = ops
    assert server.port > 0
    status, content_type, body = get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=") and "charset=utf-8" in content_type
    for name in ("cdcd_transactions_total", "cdcd_slot_lag_bytes", "cdcd_kafka_commit_duration_seconds_bucket",
                 "cdcd_build_info", "cdcd_connected", "process_cpu_seconds_total"):
        assert name in body
    assert 'cdcd_events_total{op="c",table="public.orders"}' not in body

    metrics.events_counter("public.orders", "c").inc(3)
    metrics.transactions.inc()
    _, _, body = get(server, "/metrics")
    assert 'cdcd_events_total{op="c",table="public.orders"} 3.0' in body
    assert "cdcd_transactions_total 1.0" in body


def test_openmetrics_negotiation(ops: tuple[OpsServer, Metrics, Health]) -> None:
    server, _, _ = ops
    status, content_type, body = get(server, "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200 and content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


def test_healthz_follows_the_loop(ops: tuple[OpsServer, Metrics, Health], clock: Clock) -> None:
    server, _, health = ops
    assert get(server, "/healthz")[::2] == (200, "ok\n")
    clock.now += 45
    status, _, body = get(server, "/healthz")
    assert status == 503 and "stalled" in body
    health.loop_tick()
    assert get(server, "/healthz")[0] == 200


def test_readyz_follows_connections(ops: tuple[OpsServer, Metrics, Health]) -> None:
    server, _, health = ops
    status, _, body = get(server, "/readyz")
    assert status == 503 and "postgresql not connected" in body
    health.set_connected("postgresql", True)
    health.set_connected("kafka", True)
    health.set_streaming(True)
    assert get(server, "/readyz")[::2] == (200, "ok\n")
    assert "cdcd_streaming 1.0" in get(server, "/metrics")[2]


def test_unknown_path_and_head(ops: tuple[OpsServer, Metrics, Health]) -> None:
    server, _, _ = ops
    assert get(server, "/nope")[0] == 404
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/healthz", method="HEAD")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200 and response.read() == b""
        assert response.headers["Content-Length"] == "3"


def test_port_in_use_is_a_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*http.port"):
            OpsServer("127.0.0.1", port, metrics=Metrics(), health=Health())


def test_close_releases_the_port() -> None:
    server = serve("127.0.0.1", 0, metrics=Metrics(), health=Health())
    port = server.port
    server.close()
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    try:
        server = serve("::1", 0, metrics=Metrics(), health=Health())
    except ConfigError as exc:
        pytest.skip(f"::1 not bindable here: {exc}")
    try:
        with urllib.request.urlopen(f"http://[::1]:{server.port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        server.close()
