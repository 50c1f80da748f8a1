#!/usr/bin/env python3
"""Capture real pgoutput bytes for the decoder's unit tests.

Starts a throwaway PostgreSQL cluster (wal_level=logical, socket-only, in a
temp dir), runs a workload that makes pgoutput send every message kind, and
reads three slots through a walsender (psycopg.pq COPY_BOTH, so each message
keeps its exact bytes; pg_recvlogical appends a newline per message, which is
ambiguous for a binary plugin):

* ``v1.bin``     proto_version 1, messages on: everything but streaming
* ``v2.bin``     proto_version 2, streaming on, logical_decoding_work_mem=64kB:
                 the same plus large transactions streamed (commit, rollback,
                 rolled-back subtransaction)
* ``binary.bin`` proto_version 1, binary on: tuple values in send/recv format

File format: a sequence of records, each a big-endian Int32 length followed by
one pgoutput message (the XLogData payload, header stripped). Each capture
stops at its own non-transactional "end" message, which is not written.

Usage (as root it runs the server as the ``postgres`` user)::

    python scripts/capture_pgoutput.py [--pgbin /usr/lib/postgresql/15/bin] \
        [--out tests/data/pgoutput]

tests/decode/test_pgoutput.py asserts on values this workload writes: change both together.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import pq

PUBLICATION = "cdcd_pub"
END_PREFIX = "cdcd.capture.end."

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email varchar(120),
    mood mood,
    visits posint,
    note text
);
ALTER TABLE customers ALTER COLUMN note SET STORAGE EXTERNAL;
CREATE TABLE orders_full (
    id integer PRIMARY KEY,
    customer integer,
    amount numeric(10, 2),
    placed_at timestamptz
);
ALTER TABLE orders_full REPLICA IDENTITY FULL;
CREATE TABLE parent (id serial PRIMARY KEY, label text);
CREATE TABLE child (id serial PRIMARY KEY, parent_id integer REFERENCES parent (id));
CREATE TABLE bulk (id integer PRIMARY KEY, mood mood, payload text);
CREATE TABLE scratch (id integer);
CREATE TABLE binary_demo (id integer PRIMARY KEY, data bytea, label text, at timestamptz);
CREATE PUBLICATION cdcd_pub FOR ALL TABLES;
"""

# Each entry is one transaction: a single statement runs in autocommit; a list
# runs between BEGIN and COMMIT, or ends the transaction itself with ROLLBACK.
BINARY_WORKLOAD: list[str | list[str]] = [
    (
        "INSERT INTO binary_demo VALUES (1, '\\x00ff'::bytea, 'x', '2024-01-02 03:04:05+00'),"
        " (2, NULL, NULL, NULL)"
    ),
]

# ~12.8 kB of incompressible text, stored out of line (STORAGE EXTERNAL).
BIG_NOTE = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g)"

V1_WORKLOAD: list[str | list[str]] = [
    # Type (enum, domain) + Relation + two Inserts, NULLs.
    (
        "INSERT INTO customers VALUES (1, 'alice', 'alice@example.com', 'happy', 3, NULL),"
        " (2, 'bob', NULL, 'sad', NULL, NULL)"
    ),
    f"INSERT INTO customers VALUES (3, 'carol', 'carol@example.com', 'ok', 1, {BIG_NOTE})",
    # Update, key unchanged: no old tuple.
    "UPDATE customers SET name = 'alice2' WHERE id = 1",
    # Update of the primary key: old key 'K'.
    "UPDATE customers SET id = 20 WHERE id = 2",
    # Update leaving the TOASTed note alone: 'u' in the new tuple.
    "UPDATE customers SET visits = 5 WHERE id = 3",
    # REPLICA IDENTITY FULL: Update 'O' and Delete 'O'.
    [
        (
            "INSERT INTO orders_full VALUES (1, 1, 10.50, '2024-01-02 03:04:05+00'),"
            " (2, 3, NULL, NULL)"
        ),
        "UPDATE orders_full SET amount = 11.25 WHERE id = 1",
        "DELETE FROM orders_full WHERE id = 2",
    ],
    # Delete 'K'.
    "DELETE FROM customers WHERE id = 20",
    [
        "INSERT INTO parent (label) VALUES ('p1'), ('p2')",
        "INSERT INTO child (parent_id) VALUES (1)",
    ],
    "TRUNCATE parent RESTART IDENTITY CASCADE",
    [
        "SELECT pg_logical_emit_message(true, 'cdcd.tx', 'hello in tx')",
        "INSERT INTO customers (id, name) VALUES (4, 'dave')",
    ],
    "SELECT pg_logical_emit_message(false, 'cdcd.nontx', '\\x00ff01'::bytea)",
]
# (the Origin transaction runs between the two, in its own session: see run_origin)
V1_WORKLOAD_AFTER_ORIGIN: list[str | list[str]] = [
    # Relation re-sent after a schema change.
    "ALTER TABLE customers ADD COLUMN tier smallint",
    "INSERT INTO customers (id, name, tier) VALUES (6, 'frank', 2)",
]

STREAM_ROWS = 600  # well over 64kB of reorder-buffer memory

V2_WORKLOAD: list[str | list[str]] = [
    # Streamed, committed: every change kind inside stream blocks.
    [
        f"INSERT INTO bulk SELECT g, 'ok', 'row ' || g FROM generate_series(1, {STREAM_ROWS}) g",
        "UPDATE bulk SET payload = 'changed' WHERE id = 1",
        "DELETE FROM bulk WHERE id = 2",
        "SELECT pg_logical_emit_message(true, 'cdcd.stream', 'in stream')",
        "INSERT INTO scratch VALUES (1)",
        "TRUNCATE scratch",
    ],
    # Streamed, rolled back: Stream Abort with subxid == xid.
    [
        f"INSERT INTO bulk SELECT g, 'sad', 'gone ' || g FROM generate_series(10001, {10000 + STREAM_ROWS}) g",
        "ROLLBACK",
    ],
    # Streamed, rolled-back subtransaction then commit: Stream Abort(xid, subxid).
    [
        "INSERT INTO bulk VALUES (20001, 'happy', 'kept')",
        "SAVEPOINT sp",
        f"INSERT INTO bulk SELECT g, 'sad', 'sub ' || g FROM generate_series(20002, {20001 + STREAM_ROWS}) g",
        "ROLLBACK TO SAVEPOINT sp",
        "INSERT INTO bulk VALUES (30001, 'happy', 'after')",
    ],
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A throwaway cluster; as root every server command runs as ``postgres``."""

    def __init__(self, pgbin: Path) -> None:
        self.pgbin = pgbin
        self.dir = Path(tempfile.mkdtemp(prefix="cdcd-capture-"))
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        else:
            self.prefix = []
        self.conninfo = f"host={self.dir} port={self.port} user=postgres dbname=postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        data = self.dir / "data"
        self._run(str(self.pgbin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        opts = (f"-c port={self.port} -c listen_addresses='' -c unix_socket_directories={self.dir}"
                " -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10"
                " -c logical_decoding_work_mem=64kB -c fsync=off -c timezone=UTC")
        self._run(str(self.pgbin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"),
                  "-o", opts, "-w", "start")

    def stop(self) -> None:
        try:
            self._run(str(self.pgbin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def run_workload(conn: psycopg.Connection[tuple[object, ...]], workload: list[str | list[str]]) -> None:
    for item in workload:
        if isinstance(item, list):
            conn.execute(b"BEGIN")
            for sql in item:
                conn.execute(sql.encode())
            if item[-1] != "ROLLBACK":
                conn.execute(b"COMMIT")
        else:
            conn.execute(item.encode())


def run_origin(conninfo: str) -> None:
    """A transaction replayed "from" origin upstream_a, with a fixed origin LSN and commit time."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_replication_origin_create('upstream_a')")
        conn.execute("SELECT pg_replication_origin_session_setup('upstream_a')")
        with conn.transaction():
            conn.execute("SELECT pg_replication_origin_xact_setup('0/1234ABCD', '2024-01-02 03:04:05+00')")
            conn.execute("INSERT INTO customers (id, name, mood) VALUES (5, 'eve', 'ok')")
        conn.execute("SELECT pg_replication_origin_session_reset()")


def end_marker(conn: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    conn.execute("SELECT pg_logical_emit_message(false, %s, '')", (END_PREFIX + name,))


def capture(conninfo: str, slot: str, options: str, name: str) -> list[bytes]:
    """Read one slot until its end marker; return the raw pgoutput messages."""
    conn = pq.PGconn.connect(f"{conninfo} replication=database".encode())
    if conn.status != pq.ConnStatus.OK:
        raise RuntimeError(conn.get_error_message())
    res = conn.exec_(f"START_REPLICATION SLOT {slot} LOGICAL 0/0 ({options})".encode())
    if res.status != pq.ExecStatus.COPY_BOTH:
        raise RuntimeError(conn.get_error_message())
    marker = (END_PREFIX + name).encode() + b"\0"
    any_marker = END_PREFIX.encode()
    out: list[bytes] = []
    try:
        while True:
            nbytes, data = conn.get_copy_data(0)
            if nbytes < 0:
                raise RuntimeError(f"replication stream ended: {conn.get_error_message()!r}")
            if data[0] != ord("w"):
                continue  # keepalive
            msg = bytes(data[25:])
            # Non-transactional 'M' outside a stream: tag, flags, lsn, prefix.
            if msg[:1] == b"M" and msg[10:].startswith(any_marker):
                if msg[10:].startswith(marker):
                    return out
                continue  # another capture's end marker
            out.append(msg)
    finally:
        conn.finish()


def write_records(path: Path, messages: list[bytes]) -> None:
    path.write_bytes(b"".join(struct.pack(">I", len(m)) + m for m in messages))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pgbin", type=Path, default=Path("/usr/lib/postgresql/15/bin"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests/data/pgoutput")
    args = parser.parse_args()

    cluster = Cluster(args.pgbin)
    cluster.start()
    try:
        with psycopg.connect(cluster.conninfo, autocommit=True) as conn:
            conn.execute(SCHEMA.encode())
            slot_sql = "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')"
            conn.execute(slot_sql, ("cdcd_bin",))
            run_workload(conn, BINARY_WORKLOAD)
            end_marker(conn, "binary")
            conn.execute(slot_sql, ("cdcd_v1",))
            conn.execute(slot_sql, ("cdcd_v2",))
            run_workload(conn, V1_WORKLOAD)
            run_origin(cluster.conninfo)
            run_workload(conn, V1_WORKLOAD_AFTER_ORIGIN)
            end_marker(conn, "v1")
            run_workload(conn, V2_WORKLOAD)
            end_marker(conn, "v2")

        pub = f"publication_names '{PUBLICATION}', messages 'true'"
        captures = {
            "binary": ("cdcd_bin", f"proto_version '1', {pub}, binary 'true'"),
            "v1": ("cdcd_v1", f"proto_version '1', {pub}"),
            "v2": ("cdcd_v2", f"proto_version '2', {pub}, streaming 'on'"),
        }
        args.out.mkdir(parents=True, exist_ok=True)
        for name, (slot, options) in captures.items():
            messages = capture(cluster.conninfo, slot, options, name)
            write_records(args.out / f"{name}.bin", messages)
            print(f"{name}.bin: {len(messages)} messages, {sum(map(len, messages))} bytes")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
