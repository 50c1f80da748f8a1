"""Kafka Connect's JsonConverter and Debezium's SMTs over cdcd's records.

The unit tests show the consumer rejects what a real Connect sink rejects; the end-to-end
test runs one cdcd over every type family and every record kind (c/u/d/r/t/m, tombstones,
transaction BEGIN/END, heartbeats, schema changes, outbox rows) and checks what
JsonConverter, ``ExtractNewRecordState`` and ``EventRouter`` make of them, and that
cdcd's own outbox router emits what Debezium's ``EventRouter`` makes of the raw rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from cdcd.outbox_writer import OUTBOX_TABLE_DDL
from tests.connect_consumer import Consumed, check_record, check_stdout_line
from tests.fix_cdcd import CdcdProcess

_KEY = {"schema": {"type": "struct", "optional": False, "name": "p.public.t.Key",
                   "fields": [{"type": "int32", "optional": False, "field": "id"}]}, "payload": {"id": 1}}


def _envelope(after: dict[str, Any] | None, op: str, field_type: str = "int32",
              before: dict[str, Any] | None = None) -> dict[str, Any]:
    row = {"type": "struct", "optional": True, "name": "p.public.t.Value",
           "fields": [{"type": "int32", "optional": False, "field": "id"},
                      {"type": field_type, "optional": True, "field": "x"}]}
    source = {"type": "struct", "optional": False, "name": "io.debezium.connector.postgresql.Source", "fields": [
        {"type": "string", "optional": False, "field": "table"},
        {"type": "int64", "optional": True, "field": "lsn"}]}
    return {"schema": {"type": "struct", "optional": False, "name": "p.public.t.Envelope", "version": 2, "fields": [
        {**row, "field": "before"}, {**row, "field": "after"}, {**source, "field": "source"},
        {"type": "string", "optional": False, "field": "op"}]},
        "payload": {"before": before, "after": after, "source": {"table": "t", "lsn": 5}, "op": op}}


def _b(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_valid_change_event_is_unwrapped(jvm: None) -> None:
    got = check_record("p.public.t", _b(_KEY), _b(_envelope({"id": 1, "x": 7}, "c")))
    assert got.unwrapped is not None and got.unwrapped.value["payload"] == {"id": 1, "x": 7}
    assert got.unwrapped_rewrite is not None
    assert got.unwrapped_rewrite.value["payload"] == {"id": 1, "x": 7, "__op": "c", "__table": "t", "__lsn": 5,
                                                      "__deleted": "false"}
    assert got.routed is None


def test_delete_and_tombstone(jvm: None) -> None:
    deleted = check_record("p.public.t", _b(_KEY), _b(_envelope(None, "d", before={"id": 1, "x": 7})))
    assert deleted.unwrapped is not None  # default mode "tombstone": a null value (with its schema)
    assert deleted.unwrapped.value["payload"] is None and deleted.unwrapped.key == _KEY
    assert deleted.unwrapped_rewrite is not None
    assert deleted.unwrapped_rewrite.value["payload"]["__deleted"] == "true"
    tomb = check_record("p.public.t", _b(_KEY), None)
    assert tomb.value is None


def test_connect_enum_type_name_is_rejected(jvm: None) -> None:
    with pytest.raises(AssertionError, match="Unknown schema type: float32"):
        check_record("p.public.t", _b(_KEY), _b(_envelope({"id": 1, "x": 1.5}, "c", field_type="float32")))


def test_value_the_schema_type_cannot_hold_is_rejected(jvm: None) -> None:
    # JsonConverter reads "seven" as 0 without complaint: the round trip catches it
    with pytest.raises(AssertionError, match="cannot hold"):
        check_record("p.public.t", _b(_KEY), _b(_envelope({"id": 1, "x": "seven"}, "c")))


def test_payload_field_missing_from_schema_is_rejected(jvm: None) -> None:
    value = _envelope({"id": 1, "x": 2}, "c")
    value["payload"]["after"]["extra"] = 3
    with pytest.raises(AssertionError, match="does not declare"):
        check_record("p.public.t", _b(_KEY), _b(value))


def test_stdout_line(jvm: None) -> None:
    line = json.dumps({"topic": "p.public.t", "key": _KEY, "value": _envelope({"id": 1, "x": 2}, "r")})
    got = check_stdout_line(line + "\n")
    assert got is not None and got.value["payload"]["op"] == "r"
    assert check_stdout_line("\n") is None


# -- end to end --------------------------------------------------------------------------

FAMILIES = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE EXTENSION hstore;
CREATE TABLE families (
    id int PRIMARY KEY,
    i2 smallint, i4 int, i8 bigint, n numeric(10,2), nu numeric, r real, d double precision, m money,
    b boolean, t text, vc varchar(20), c char(3), ba bytea, bits bit(4), vbits varbit(8),
    dt date, tm time, tmp time(3), ttz timetz, ts timestamp, ts3 timestamp(3), tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb, x xml, ip inet, net cidr, mac macaddr, rng int4range, trng tstzrange,
    tsv tsvector, hs hstore, e mood, o oid, pt point,
    ai int[], at text[], an numeric[], af double precision[], ar real[], ab bool[], ad date[], ats timestamp[],
    atz timestamptz[], au uuid[], aj jsonb[], ae mood[], a2 int[][]
);
CREATE TABLE nokey (msg text);
CREATE TABLE full_ri (id int PRIMARY KEY, v text);
ALTER TABLE full_ri REPLICA IDENTITY FULL;
"""

ROW = """INSERT INTO families VALUES (
    {id}, -32768, 2147483647, -9223372036854775808, 12345678.91, 3.14159265358979323846, 1.5, -2.25e100, 12.34,
    true, 'unicodé ✓', 'vc', 'ab', '\\x00ff10'::bytea, B'1010', B'101',
    '2024-02-29', '23:59:59.999999', '12:00:00.123', '10:11:12+02', '2024-01-02 03:04:05.123456',
    '1999-12-31 23:59:59.999', '2024-01-02 03:04:05.5+01', '1 year 2 mons 3 days 04:05:06.789',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{"a": [1, 2]}}', '{{"k": "v", "n": null}}', '<a>x</a>',
    '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '[1,10)', '[2024-01-01 00:00+00,2024-02-01 00:00+00)',
    'a fat cat', 'k=>v, n=>NULL', 'happy', 42, '(1.5,2.5)',
    '{{1,NULL,3}}', '{{"a","b c",NULL}}', '{{1.5,NULL}}', '{{1.25,-0.5}}', '{{2.5}}', '{{true,false}}',
    '{{2024-01-01,NULL}}', '{{"2024-01-02 03:04:05.123456"}}', '{{"2024-01-02 03:04:05+00"}}',
    '{{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}}', ARRAY['{{"a":1}}'::jsonb], '{{sad,ok}}', '{{{{1,2}},{{3,4}}}}'
)"""


class Lines:
    """A cdcd stdout run's lines, read (and so checked) on a thread as they arrive."""

    def __init__(self, proc: CdcdProcess) -> None:
        self.proc = proc
        self.consumed: list[tuple[dict[str, Any], Consumed | None]] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for raw in self.proc.stdout._raw:  # checked here, to keep the consumer's output
                self.consumed.append((json.loads(raw), check_stdout_line(raw)))
        except BaseException as exc:  # noqa: BLE001 - reported by wait()
            self.error = exc

    def wait(self, done: Any, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.consumed):
            if self.error is not None:
                raise self.error
            assert time.monotonic() < deadline, f"never saw {what}; got {[d for d, _ in self.consumed]}"
            time.sleep(0.05)
        if self.error is not None:
            raise self.error


def _start(procs: list[CdcdProcess], tmp_path: Path, name: str, body: str) -> CdcdProcess:
    config = tmp_path / f"{name}.toml"
    config.write_text(body)
    proc = CdcdProcess(["run", "--config", str(config), "--sink", "stdout"], stdout=subprocess.PIPE,
                       env={"CDCD_SCHEMA_CHANGES_MODE": "event-trigger"})
    procs.append(proc)
    return proc


def _seen(consumed: list[tuple[dict[str, Any], Consumed | None]], topic: str) -> list[tuple[dict[str, Any], Any]]:
    return [(doc, c) for doc, c in consumed if doc["topic"] == topic]


def test_every_record_kind_passes_connect_and_smts(pg_db: Any, cdcd_procs: list, tmp_path: Path,
                                                    jvm: None) -> None:
    install = subprocess.run([sys.executable, "-m", "cdcd", "install-ddl-capture", "--dsn", pg_db.dsn],
                             capture_output=True, text=True, timeout=60)
    assert install.returncode == 0, install.stderr
    with pg_db.connect() as conn:
        conn.execute(FAMILIES)
        conn.execute(OUTBOX_TABLE_DDL)
        conn.execute(ROW.format(id=1))  # read by the snapshot
    prefix = f"cc{uuid.uuid4().hex[:6]}"
    common = (f'dsn = "{pg_db.dsn}"\n"topic.prefix" = "{prefix}"\n"provide.transaction.metadata" = true\n'
              '"skipped.operations" = "none"\n"snapshot.mode" = "initial"\n')
    raw = _start(cdcd_procs, tmp_path, "raw", common + '"slot.name" = "raw"\n"heartbeat.interval.ms" = 100\n')
    lines = Lines(raw)
    raw.wait_for("streaming", timeout=60)
    routed_proc = _start(cdcd_procs, tmp_path, "routed", common.replace(prefix, f"{prefix}r")
                         + '"slot.name" = "routed"\n[transforms.outbox]\n"table.include.list" = ["public\\\\.outbox"]\n')
    routed = Lines(routed_proc)
    routed_proc.wait_for("streaming", timeout=60)

    event_ids = []
    with pg_db.connect() as conn:
        conn.execute(ROW.format(id=2))
        conn.execute("INSERT INTO families (id) VALUES (3)")  # every nullable column NULL
        conn.execute("UPDATE families SET t = 'updated', ai = '{}' WHERE id = 2")
        conn.execute("UPDATE families SET id = 4 WHERE id = 3")  # key change: d, tombstone, c
        conn.execute("DELETE FROM families WHERE id = 4")
        conn.execute("INSERT INTO nokey VALUES ('no key')")
        conn.execute("INSERT INTO full_ri VALUES (1, 'a'); UPDATE full_ri SET v = 'b'; DELETE FROM full_ri")
        conn.execute("SELECT pg_logical_emit_message(true, 'audit', 'in a transaction')")
        conn.execute("SELECT pg_logical_emit_message(false, 'ping', '\\x0102'::bytea)")
        for i, kind in enumerate(("order", "order", "invoice")):
            event_id = uuid.uuid4()
            event_ids.append(str(event_id))
            conn.execute("INSERT INTO outbox VALUES (%s, %s, %s, 'Created', %s)",
                         (event_id, kind, str(i), json.dumps({"n": i, "kind": kind})))
        conn.execute("ALTER TABLE families ADD COLUMN added text DEFAULT 'dflt'")
        conn.execute("INSERT INTO families (id) VALUES (5)")
        conn.execute("TRUNCATE full_ri")
        conn.execute("INSERT INTO nokey VALUES ('fence')")

    def fenced(consumed: list[tuple[dict[str, Any], Any]]) -> bool:
        return any(d["topic"].endswith(".public.nokey") and d["value"] and (d["value"]["payload"]["after"] or {})
                   .get("msg") == "fence" for d, _ in consumed)

    lines.wait(fenced, "the fence row")
    lines.wait(lambda c: any(d["topic"] == f"__debezium-heartbeat.{prefix}" for d, _ in c), "a heartbeat")
    consumed = lines.consumed
    ops = {d["value"]["payload"].get("op") for d, _ in consumed
           if d["value"] and d["topic"].startswith(f"{prefix}.")
           and isinstance(d["value"]["payload"], dict) and "op" in d["value"]["payload"]}
    assert {"c", "u", "d", "r", "t", "m"} <= ops, ops
    tombstones = [d for d, _ in consumed if d["value"] is None]
    assert tombstones and all(d["key"] is not None for d in tombstones)
    txn = [d["value"]["payload"]["status"] for d, _ in _seen(consumed, f"{prefix}.transaction")]
    assert "BEGIN" in txn and "END" in txn
    ddl = _seen(consumed, prefix)
    assert ddl, "no schema change event"
    families = _seen(consumed, f"{prefix}.public.families")
    assert {d["value"]["payload"]["op"] for d, _ in families if d["value"]} >= {"r", "c", "u", "d"}

    # ExtractNewRecordState: the new row state, and with rewrite the delete markers
    reads = [c for d, c in families if d["value"] and d["value"]["payload"]["op"] == "r"]
    assert reads and reads[0].unwrapped is not None and reads[0].unwrapped.value["payload"]["id"] == 1
    deletes = [c for d, c in families if d["value"] and d["value"]["payload"]["op"] == "d"]
    assert deletes and all(c.unwrapped_rewrite.value["payload"]["__deleted"] == "true" for c in deletes)
    assert all(c.unwrapped_rewrite.value["payload"]["__op"] == "d" for c in deletes)

    # EventRouter over the raw outbox rows equals cdcd's own router
    debezium_routed = [c.routed for d, c in _seen(consumed, f"{prefix}.public.outbox") if c and c.routed]
    assert [r.topic for r in debezium_routed] == ["outbox.event.order", "outbox.event.order", "outbox.event.invoice"]
    routed.wait(lambda c: sum(d["topic"].startswith("outbox.event.") for d, _ in c) >= 3, "routed outbox events")
    ours = [(d["topic"], d["key"], d["value"]) for d, _ in routed.consumed if d["topic"].startswith("outbox.event.")]
    assert ours == [(r.topic, r.key, r.value) for r in debezium_routed]
    assert raw.terminate() == 0 and routed_proc.terminate() == 0


def test_special_floats_as_jackson_writes_them(jvm: None) -> None:
    value = _envelope({"id": 1, "x": "NaN"}, "c", field_type="double")
    assert check_record("p.public.t", _b(_KEY), _b(value)).value["payload"]["after"]["x"] == 0.0


def test_checked_stdout_reports_rejected_lines(jvm: None) -> None:
    import io

    from tests.fix_cdcd import CheckedStdout

    good = {"topic": "p.public.t", "key": _KEY, "value": _envelope({"id": 1, "x": 2}, "c")}
    bad = {"topic": "p.public.t", "key": _KEY, "value": _envelope({"id": 1, "x": 1.5}, "c", field_type="float32")}
    out = CheckedStdout(io.BytesIO((json.dumps(good) + "\n" + json.dumps(bad) + "\n").encode()))
    assert len(list(out)) == 2  # the reader gets every line at once
    rejected = out.finish()
    assert len(rejected) == 1 and "Unknown schema type: float32" in rejected[0] and out.checked == 1
