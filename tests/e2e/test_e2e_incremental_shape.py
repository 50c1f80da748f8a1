"""Where incremental snapshot reads sit in the stream and what their source says, as real Debezium 3.6.3.

Debezium emits a chunk's reads when its close watermark arrives: after that
transaction's BEGIN, before the watermark row's own event; the reads carry no
``transaction`` block and null ``txId``/``lsn``, while ``sequence`` names the watermark.
The signal table is captured like any table, so its rows (the signal and the
watermarks) are change events too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fix_cdcd import CdcdProcess, StdoutRun

pytestmark = [pytest.mark.pg]

ENV = {"CDCD_SNAPSHOT_MODE": "no_data", "CDCD_SIGNAL_DATA_COLLECTION": "public.dbz_signal",
       "CDCD_INCREMENTAL_SNAPSHOT_CHUNK_SIZE": "2", "CDCD_PROVIDE_TRANSACTION_METADATA": "true"}


def test_reads_follow_the_close_watermark_begin(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    pg_db.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3) g")
    pg_db.execute("CREATE TABLE dbz_signal (id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL, data text)")
    run = StdoutRun(cdcd_procs, pg_db, env=ENV)
    pg_db.execute("INSERT INTO dbz_signal VALUES ('sig', 'execute-snapshot', "
                  "'{\"data-collections\": [\"public.t\"], \"type\": \"incremental\"}')")
    # signal (3) + per chunk: open (3), BEGIN, reads, close, END; chunks of 2, 1 and 0 rows.
    lines = run.wait(3 + 3 * (3 + 3) + 3)
    run.stop()

    def kind(line: dict[str, Any]) -> str:
        payload = line["value"]["payload"]
        if line["topic"] == "ev.transaction":
            return payload["status"]
        if line["topic"] == "ev.public.t":
            return f"r{payload['after']['id']}"
        return payload["after"]["type"]

    window = ["BEGIN", "snapshot-window-open", "END"]
    assert [kind(line) for line in lines] == [
        "BEGIN", "execute-snapshot", "END",
        *window, "BEGIN", "r1", "r2", "snapshot-window-close", "END",
        *window, "BEGIN", "r3", "snapshot-window-close", "END",
        *window, "BEGIN", "snapshot-window-close", "END",
    ]
    close = lines[9]["value"]["payload"]
    for read in (lines[7], lines[8]):
        payload = read["value"]["payload"]
        source = payload["source"]
        assert payload["op"] == "r" and payload["transaction"] is None
        assert (source["snapshot"], source["txId"], source["lsn"]) == ("incremental", None, None)
        assert json.loads(source["sequence"]) == json.loads(close["source"]["sequence"])
    end = lines[10]["value"]["payload"]
    assert end["event_count"] == 1 and end["data_collections"] == [
        {"data_collection": "public.dbz_signal", "event_count": 1}]
