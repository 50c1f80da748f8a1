"""Real pgoutput messages for the micro-benchmarks, captured once and kept in bench/data/.

    python3 bench/micro.py --capture     # needs PostgreSQL; rewrites bench/data/pgoutput-sample.json

For the narrow and the wide table: the Relation message, then one transaction
of 20 inserts, 10 updates and 3 deletes as pgoutput (proto_version 1) sends it,
with the session settings cdcd's walsender uses (UTC, ISO dates, hex bytea,
``extra_float_digits=3``), and the ``TableInfo`` cdcd's catalog builds for it.
``frames()`` turns them into XLogData CopyData frames, repeated to any length.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cdcd.source.tables import ColumnInfo, TableInfo

SAMPLE = Path(__file__).resolve().parent / "data" / "pgoutput-sample.json"
_XLOG = struct.Struct(">cQQq")
_BEGIN = struct.Struct(">QqI")
_COMMIT = struct.Struct(">BQQq")


def capture() -> None:
    import _workload as wl
    from _harness import Bench

    from cdcd.decode.pgoutput import PgOutputDecoder
    from cdcd.source.catalog import Catalog, connect
    from cdcd.wire.replication import SESSION_OPTIONS

    out: dict[str, Any] = {}
    with Bench() as bench:
        for shape in (wl.NARROW, wl.WIDE):
            s = bench.scenario(shape)
            try:
                s.create_slots([f"{s.db}_sample"])
                with s.connect() as conn:
                    with conn.transaction():
                        wl.insert_live(conn, shape, shape.name, 1, 20)
                        conn.execute(f"UPDATE {shape.name} SET {shape.update_set} WHERE id <= 10")
                        conn.execute(f"DELETE FROM {shape.name} WHERE id > 17")
                dsn = bench.cluster.dsn(s.db, options=SESSION_OPTIONS)
                with connect(dsn) as conn:
                    rows = conn.execute(
                        "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, 'proto_version', '1', "
                        "'publication_names', 'bench')", (f"{s.db}_sample",)).fetchall()
                    messages = [bytes(r[0]) for r in rows]  # type: ignore[arg-type]
                    decoder = PgOutputDecoder()
                    relation = next(m for m in map(decoder.decode, messages) if type(m).__name__ == "Relation")
                    table = Catalog(conn).table_info(relation)  # type: ignore[arg-type]
                out[shape.name] = {"messages": [m.hex() for m in messages], "table": asdict(table)}
            finally:
                s.drop()
    SAMPLE.parent.mkdir(exist_ok=True)
    SAMPLE.write_text(json.dumps(out, indent=1) + "\n")


def load(shape: str) -> tuple[list[bytes], TableInfo]:
    data = json.loads(SAMPLE.read_text())[shape]
    t = data["table"]
    table = TableInfo(t["oid"], t["schema"], t["name"], tuple(ColumnInfo(**c) for c in t["columns"]),
                      tuple(t["primary_key"]), t["replica_identity"])
    return [bytes.fromhex(m) for m in data["messages"]], table


def frames(messages: list[bytes], events: int) -> tuple[list[bytes], int]:
    """XLogData frames: the Relation once, then the sample transaction repeated until ``events`` changes.

    Begin/Commit get increasing LSNs and xids; returns (frames, number of changes).
    """
    relation = next(m for m in messages if m[:1] == b"R")
    body = [m for m in messages if m[:1] in (b"I", b"U", b"D")]
    ts = _BEGIN.unpack_from(next(m for m in messages if m[:1] == b"B"), 1)[1]
    lsn, xid, n = 0x1000000, 1000, 0
    out = [_XLOG.pack(b"w", lsn, lsn, ts) + relation]
    while n < events:
        xid += 1
        out.append(_XLOG.pack(b"w", lsn, lsn, ts) + b"B" + _BEGIN.pack(lsn + 100 * len(body), ts, xid))
        for change in body:
            lsn += 100
            out.append(_XLOG.pack(b"w", lsn, lsn, ts) + change)
        n += len(body)
        out.append(_XLOG.pack(b"w", lsn, lsn, ts) + b"C" + _COMMIT.pack(0, lsn, lsn + 50, ts))
        lsn += 100
    return out, n
