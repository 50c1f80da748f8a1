"""The operations endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` over plain HTTP.

The standard library's ``ThreadingHTTPServer`` in a daemon thread is enough
for a scraper and two probes, and keeps cdcd free of a web framework. A
request never touches the pipeline: it reads the metrics registry and the
``Health`` state, both safe to read from other threads.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client.exposition import choose_encoder

from cdcd.errors import ConfigError
from cdcd.ops.health import Health, Verdict
from cdcd.ops.metrics import Metrics

log = structlog.get_logger("cdcd.http")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    metrics: Metrics
    health: Health

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN: a DNS lookup that may hang offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A scraper hanging up mid-response is routine: no traceback on stderr.
        log.debug("http_request_failed", client=str(client_address), exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a stuck client must not pin a thread forever
    server_version = "cdcd"
    sys_version = ""
    _head = False

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._route(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)

    def _route(self, *, head: bool) -> None:
        self._head = head
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._reply(HTTPStatus.OK, encoder(self.server.metrics.registry), content_type)
        elif path == "/healthz":
            self._verdict(self.server.health.healthy())
        elif path == "/readyz":
            self._verdict(self.server.health.ready())
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"not found: try /metrics, /healthz or /readyz\n")

    def _verdict(self, verdict: Verdict) -> None:
        status = HTTPStatus.OK if verdict.ok else HTTPStatus.SERVICE_UNAVAILABLE
        self._reply(status, f"{verdict.reason}\n".encode())

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not self._head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        log.debug("http_request", client=self.client_address[0], request=format % args)


class OpsServer:
    """Serves the metrics and probes on ``host:port`` (port 0: any free port, see ``port``)."""

    def __init__(self, host: str, port: int, *, metrics: Metrics, health: Health) -> None:
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = server_class((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc} "
                              "(choose another http.port / http.host, or set http.enabled = false)") from exc
        self._server.metrics = metrics
        self._server.health = health
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="cdcd-http", daemon=True)

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("http_listening", host=self.host, port=self.port, paths=["/metrics", "/healthz", "/readyz"])
        return self

    def close(self) -> None:
        """Stop accepting, wait for the serving thread, release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> OpsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(host: str, port: int, *, metrics: Metrics, health: Health) -> OpsServer:
    """Bind and start serving in the background; ``close()`` the result at shutdown."""
    return OpsServer(host, port, metrics=metrics, health=health).start()
