"""A Schema Registry test double over HTTP, for cdcd subprocesses (``mock://`` lives in one process only).

``schema_registry`` (function fixture) serves the part of Confluent's REST API the
serializers use: register (``POST /subjects/<s>/versions``), look up
(``POST /subjects/<s>``), ``GET /schemas/ids/<id>``, ``GET /subjects`` and
``GET /subjects/<s>/versions/latest``. Ids are global per schema text, versions per
subject, with no compatibility checks. ``mode`` makes it answer 503 (``unavailable``)
or 409 to new versions (``incompatible``); ``stop()`` / ``start()`` take it off the
network and back on the same port. ``basic_auth`` ("user:password") makes every
request need those credentials.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest


class SchemaRegistry:
    def __init__(self, basic_auth: str | None = None) -> None:
        self.ids: dict[str, int] = {}
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.mode = "ok"
        self.basic_auth = basic_auth
        self.requests = 0
        self.port = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        registry = self

        class Handler(_Handler):
            owner = registry
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="schema-registry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join()
            self._server = None

    def register(self, subject: str, schema: str) -> tuple[int, int]:
        schema_id = self.ids.setdefault(schema, len(self.ids) + 1)
        self.schemas[schema_id] = schema
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id, versions.index(schema_id) + 1


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: SchemaRegistry

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refused(self) -> bool:
        registry = self.owner
        registry.requests += 1
        if registry.basic_auth is not None:
            expected = "Basic " + base64.b64encode(registry.basic_auth.encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._send(401, {"error_code": 40101, "message": "Unauthorized"})
                return True
        if registry.mode == "unavailable":
            self._send(503, {"error_code": 50003, "message": "the registry is unavailable"})
            return True
        return False

    def _path(self) -> list[str]:
        path = urllib.parse.urlparse(self.path).path
        return [urllib.parse.unquote(p) for p in path.strip("/").split("/")]

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self._refused():
            return
        registry, parts = self.owner, self._path()
        if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
            subject, schema = parts[1], body["schema"]
            known = registry.ids.get(schema)
            if registry.mode == "incompatible" and known not in registry.subjects.get(subject, []):
                self._send(409, {"error_code": 409, "message": "Schema being registered is incompatible with "
                                 "an earlier schema for subject " + subject})
                return
            schema_id, version = registry.register(subject, schema)
            self._send(200, {"id": schema_id, "version": version, "subject": subject})
        elif len(parts) == 2 and parts[0] == "subjects":
            subject, schema = parts[1], body["schema"]
            schema_id = registry.ids.get(schema)
            if schema_id is None or schema_id not in registry.subjects.get(subject, []):
                self._send(404, {"error_code": 40403, "message": "Schema not found"})
                return
            self._send(200, {"subject": subject, "id": schema_id, "schema": schema,
                             "version": registry.subjects[subject].index(schema_id) + 1})
        else:
            self._send(404, {"error_code": 404, "message": "not found"})

    def do_GET(self) -> None:  # noqa: N802
        if self._refused():
            return
        registry, parts = self.owner, self._path()
        if parts == ["subjects"]:
            self._send(200, sorted(registry.subjects))
        elif len(parts) == 3 and parts[:2] == ["schemas", "ids"] and int(parts[2]) in registry.schemas:
            self._send(200, {"schema": registry.schemas[int(parts[2])]})
        elif len(parts) == 4 and parts[0] == "subjects" and parts[2:] == ["versions", "latest"] \
                and registry.subjects.get(parts[1]):
            schema_id = registry.subjects[parts[1]][-1]
            self._send(200, {"subject": parts[1], "id": schema_id, "schema": registry.schemas[schema_id],
                             "version": len(registry.subjects[parts[1]])})
        else:
            self._send(404, {"error_code": 40401, "message": "not found"})


@pytest.fixture
def schema_registry() -> Iterator[SchemaRegistry]:
    registry = SchemaRegistry()
    try:
        yield registry
    finally:
        registry.stop()
