"""``cdcd run --debezium-config connector.json`` runs with the connector's meaning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cdcd.cli import build_parser, load_config
from tests.fix_cdcd import StdoutRun


def connector_json(tmp_path: Path, **config: str) -> Path:
    path = tmp_path / "connector.json"
    path.write_text(json.dumps({"name": "inventory", "config": {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector", "plugin.name": "pgoutput",
        **config}}))
    return path


def test_translation_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = connector_json(tmp_path, **{
        "database.hostname": "db", "database.port": "5433", "database.user": "u", "database.password": "pw",
        "database.dbname": "shop", "topic.prefix": "shop", "table.include.list": "public.a,public.b",
        "snapshot.mode": "never", "column.mask.with.3.chars": "public.a.secret"})
    monkeypatch.setenv("CDCD_SLOT_NAME", "fromenv")
    args = build_parser().parse_args(["run", "--debezium-config", str(path), "--topic-prefix", "flag"])
    config = load_config(args)
    assert "host=db" in config.dsn and "port=5433" in config.dsn and "pw" not in config.redacted_dsn()
    assert config.topic_prefix == "flag", "flags win over the connector config"
    assert config.slot_name == "fromenv", "the environment wins over the connector config"
    assert config.publication_name == "dbz_publication", "Debezium's defaults, not cdcd's"
    assert config.table_include_list == ("public.a", "public.b") and config.snapshot_mode == "no_data"
    assert config.column_rules == {"column.mask.with.3.chars": ("public.a.secret",)}


@pytest.mark.pg
def test_masked_column_end_to_end(pg_db: Any, tmp_path: Path, cdcd_procs: list) -> None:
    from psycopg.conninfo import conninfo_to_dict

    pg_db.execute("CREATE TABLE a (id int PRIMARY KEY, secret text)")
    params = conninfo_to_dict(pg_db.dsn)
    path = connector_json(tmp_path, **{"database.hostname": str(params["host"]), "database.port": str(params["port"]),
                                       "database.user": str(params["user"]), "database.dbname": str(params["dbname"]),
                                       "topic.prefix": "dbz", "column.mask.with.3.chars": "public.a.secret",
                                       "snapshot.mode": "never", "notification.enabled.channels": "sink"})
    run = StdoutRun(cdcd_procs, pg_db, command=["run", "--debezium-config", str(path), "--sink", "stdout"])
    proc = run.proc
    pg_db.execute("INSERT INTO a VALUES (1, 'hunter2')")
    (line,) = run.through_marker(pg_db)
    run.stop()
    assert line["topic"] == "dbz.public.a" and line["value"]["payload"]["after"] == {"id": 1, "secret": "***"}
    assert "notification.enabled.channels" in proc.text(), "unsupported options are warned about"

