"""Unchanged TOAST columns against a real PostgreSQL: placeholder, cache (also across restarts), refetch."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_e2e_events import payloads
from tests.fix_cdcd import CdcdProcess, StdoutRun

pytestmark = [pytest.mark.pg]

PLACEHOLDER = "__debezium_unavailable_value"
# ~22 kB of md5 hex: pglz finds nothing to compress, so the values are stored out of line.
BIG_TEXT = "(SELECT string_agg(md5(i::text || {seed}), '') FROM generate_series(1, 700) i)"
TOPIC = "ev.public.docs"


def create_docs(pg_db: Any) -> None:
    pg_db.execute("CREATE TABLE docs (id int PRIMARY KEY, t text, j jsonb, b bytea, n int)")


def insert_big(pg_db: Any, row_id: int, seed: int = 0) -> None:
    big = BIG_TEXT.format(seed=seed)
    pg_db.execute(f"INSERT INTO docs SELECT %s, {big}, jsonb_build_object('k', {big}), decode({big}, 'hex'), 0",
                  (row_id,))


def truth(pg_db: Any, row_id: int) -> dict[str, Any]:
    """The row's values as the event shows them: text, jsonb text, bytea as base64."""
    t, j, b = pg_db.execute("SELECT t, j::text, b FROM docs WHERE id = %s", (row_id,))[0]
    assert len(t) > 20000 and pg_db.execute(
        "SELECT pg_column_size(t) > 20000 FROM docs WHERE id = %s", (row_id,))[0][0], "the value is not compressed"
    return {"t": t, "j": j, "b": base64.b64encode(bytes(b)).decode()}


def updates(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p["after"] for p in payloads(lines, TOPIC) if p["op"] == "u"]


def big_columns(after: dict[str, Any]) -> dict[str, Any]:
    return {k: after[k] for k in ("t", "j", "b")}


def metrics_text(proc: CdcdProcess) -> str:
    port = int(proc.wait_for("http_listening")["port"])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_placeholder_is_the_default(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    create_docs(pg_db)
    insert_big(pg_db, 1)
    run = StdoutRun(cdcd_procs, pg_db)
    pg_db.execute("UPDATE docs SET n = 1 WHERE id = 1")
    lines = run.wait(2)  # the snapshot row, the update
    run.stop()
    (after,) = updates(lines)
    assert after["t"] == PLACEHOLDER and after["j"] == PLACEHOLDER and after["n"] == 1
    assert after["b"] != truth(pg_db, 1)["b"]


def test_cache_fills_unchanged_values_also_after_a_restart(pg_db: Any, cdcd_procs: list[CdcdProcess], tmp_path: Path) -> None:
    create_docs(pg_db)
    env = {"CDCD_TOAST_HANDLING_MODE": "cache", "CDCD_TOAST_CACHE_PATH": str(tmp_path / "toast.sqlite")}
    run = StdoutRun(cdcd_procs, pg_db, env=env)
    insert_big(pg_db, 1)
    pg_db.execute("UPDATE docs SET n = 1 WHERE id = 1")
    pg_db.execute("BEGIN; UPDATE docs SET n = 2 WHERE id = 1; UPDATE docs SET n = 3 WHERE id = 1; COMMIT")
    lines = run.wait(4)
    run.stop()
    expected = truth(pg_db, 1)
    afters = updates(lines)
    assert [a["n"] for a in afters] == [1, 2, 3]
    assert all(big_columns(a) == expected for a in afters)
    assert (tmp_path / "toast.sqlite").exists()

    pg_db.execute("UPDATE docs SET n = 4 WHERE id = 1")  # while cdcd is down
    run = StdoutRun(cdcd_procs, pg_db, env=env)
    pg_db.execute("UPDATE docs SET n = 5 WHERE id = 1")
    pg_db.execute(f"UPDATE docs SET t = {BIG_TEXT.format(seed=9)} WHERE id = 1")  # a new value, learned
    pg_db.execute("UPDATE docs SET n = 6 WHERE id = 1")
    lines = run.wait(4)
    run.stop()
    afters = updates(lines)
    assert [a["n"] for a in afters] == [4, 5, 5, 6]
    assert all(big_columns(a) == expected for a in afters[:2])
    newer = truth(pg_db, 1)
    assert newer["t"] != expected["t"] and big_columns(afters[3]) == newer
    assert run.proc.wait_for("toast_cache_opened")["bytes"] > 0


def test_cache_eviction_falls_back_to_the_placeholder(pg_db: Any, cdcd_procs: list[CdcdProcess], tmp_path: Path) -> None:
    create_docs(pg_db)
    # One row's three values are about 3 x 22 kB of text (bytea comes as hex): the cap holds one row, not two.
    env = {"CDCD_TOAST_HANDLING_MODE": "cache", "CDCD_TOAST_CACHE_PATH": str(tmp_path / "toast.sqlite"),
           "CDCD_TOAST_CACHE_MAX_BYTES": "80000"}
    run = StdoutRun(cdcd_procs, pg_db, env=env)
    insert_big(pg_db, 1, seed=1)
    insert_big(pg_db, 2, seed=2)
    pg_db.execute("UPDATE docs SET n = 1 WHERE id = 1")  # evicted
    pg_db.execute("UPDATE docs SET n = 2 WHERE id = 2")  # kept
    lines = run.wait(4)
    text = metrics_text(run.proc)
    run.stop()
    first, second = updates(lines)
    assert (first["t"], first["j"]) == (PLACEHOLDER, PLACEHOLDER) and first["n"] == 1
    assert big_columns(second) == truth(pg_db, 2)
    assert metric(text, "cdcd_toast_cache_misses_total") == 3
    assert metric(text, "cdcd_toast_cache_hits_total") == 3
    assert (metric(text, "cdcd_toast_cache_evictions_total") or 0) >= 3
    assert (metric(text, "cdcd_toast_cache_bytes") or 0) <= 80000
    miss = run.proc.wait_for("toast_cache_miss", column="t")
    assert miss["table"] == "public.docs"


def test_refetch_reads_the_current_value(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    create_docs(pg_db)
    insert_big(pg_db, 1)  # before cdcd: no cache could know it
    run = StdoutRun(cdcd_procs, pg_db, env={"CDCD_TOAST_HANDLING_MODE": "refetch"})
    pg_db.execute("UPDATE docs SET n = 1 WHERE id = 1")
    lines = run.wait(2)
    text = metrics_text(run.proc)
    run.stop()
    (after,) = updates(lines)
    assert big_columns(after) == truth(pg_db, 1) and after["n"] == 1
    assert 'cdcd_toast_refetch_total{result="found"} 3.0' in text


def test_refetch_of_a_deleted_row_keeps_the_placeholder(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    create_docs(pg_db)
    insert_big(pg_db, 1)
    run = StdoutRun(cdcd_procs, pg_db, env={"CDCD_TOAST_HANDLING_MODE": "refetch"})
    # The row is gone by the time cdcd decodes the update.
    pg_db.execute("BEGIN; UPDATE docs SET n = 1 WHERE id = 1; DELETE FROM docs WHERE id = 1; COMMIT")
    lines = run.wait(4)  # snapshot read, update, delete, tombstone
    run.stop()
    (after,) = updates(lines)
    assert after["t"] == PLACEHOLDER and after["n"] == 1


def test_check_warns_about_toastable_tables_without_full_identity(pg_db: Any) -> None:
    create_docs(pg_db)
    pg_db.execute("CREATE TABLE plain (id int PRIMARY KEY, n int)")
    pg_db.execute("CREATE TABLE full_id (id int PRIMARY KEY, t text)")
    pg_db.execute("ALTER TABLE full_id REPLICA IDENTITY FULL")

    def check(*env: tuple[str, str]) -> str:
        result = subprocess.run([sys.executable, "-m", "cdcd", "check", "--dsn", pg_db.dsn, "--sink", "stdout"],
                                capture_output=True, text=True, timeout=60, env={**_env(), **dict(env)})
        return result.stdout

    out = check()
    toast_lines = [line for line in out.splitlines() if " toast:" in line]
    assert len(toast_lines) == 1, out
    assert toast_lines[0].startswith("warn toast: public.docs (t, j, b) has REPLICA IDENTITY DEFAULT")
    assert "ALTER TABLE public.docs REPLICA IDENTITY FULL" in toast_lines[0]
    out = check(("CDCD_TOAST_HANDLING_MODE", "cache"))
    assert "ok   toast: unchanged TOAST values of 1 table(s)" in out


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CDCD_")}


def test_unavailable_cache_path_fails_clearly(pg_db: Any, cdcd_procs: list[CdcdProcess], tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--sink", "stdout"],
                       env={"CDCD_TOAST_HANDLING_MODE": "cache", "CDCD_TOAST_CACHE_PATH": str(tmp_path / "a-directory")})
    cdcd_procs.append(proc)
    assert proc.wait(60) == 2
    assert "toast.cache.path" in proc.text()
