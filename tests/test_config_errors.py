"""Configuration errors are exit 2 with the option named, never a traceback or exit 5."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cdcd import config as config_mod
from cdcd.cli import build_parser, load_config
from cdcd.errors import ConfigError


def _cdcd(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("CDCD_") or k == "CDCD_TEST_KAFKA"}
    full.update({"CDCD_LOG_FORMAT": "json", "CDCD_HTTP_ENABLED": "false"})
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "cdcd", *args], capture_output=True, text=True, env=full,
                          timeout=timeout)


@pytest.mark.parametrize("value", ["99999", "-1"])
def test_port_out_of_range_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigError, match=r"http.port = .*expected between 0 and 65535"):
        config_mod.load(env={"CDCD_HTTP_PORT": value})


def test_non_number_says_what_was_expected_and_where(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config_mod.load(env={"CDCD_MAX_BATCH_EVENTS": "lots"})
    assert str(info.value) == "max.batch.events (CDCD_MAX_BATCH_EVENTS): expected a whole number, got 'lots'"
    toml = tmp_path / "c.toml"
    toml.write_text('"status.interval.ms" = "soon"\n')
    with pytest.raises(ConfigError, match=rf"status.interval.ms \({toml}\): expected a whole number, got 'soon'"):
        config_mod.load(str(toml), env={})


def test_ranges_of_durations() -> None:
    with pytest.raises(ConfigError, match="max.batch.ms = 0: expected at least 1"):
        config_mod.load(env={"CDCD_MAX_BATCH_MS": "0"})
    assert config_mod.load(env={"CDCD_HEARTBEAT_INTERVAL_MS": "0"}).heartbeat_interval_ms == 0


def test_misspelled_environment_variable_is_warned_with_the_closest_name() -> None:
    warnings = config_mod.env_warnings({"CDCD_TOPIC_PREFX": "x", "CDCD_TOPIC_PREFIX": "y",
                                        "CDCD_KAFKA_LINGER_MS": "1", "PATH": "/bin", "CDCD_WHATEVER": "1"})
    assert warnings == [
        "environment variable CDCD_TOPIC_PREFX is not a cdcd option and is ignored; did you mean CDCD_TOPIC_PREFIX?",
        "environment variable CDCD_WHATEVER is not a cdcd option and is ignored (see docs/configuration.md)",
    ]


def test_http_port_flag() -> None:
    args = build_parser().parse_args(["run", "--http-port", "9100"])
    assert load_config(args).http_port == 9100


def test_cli_exit_2_for_a_bad_port_and_a_warning_for_a_typo() -> None:
    result = _cdcd("run", "--http-port", "99999", env={"CDCD_TOPIC_PREFX": "x"})
    assert result.returncode == 2, result.stderr
    assert "http.port = 99999: expected between 0 and 65535" in result.stderr
    assert "did you mean CDCD_TOPIC_PREFIX?" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.pg
def test_misspelled_kafka_property_exits_2_naming_it(pg_db: Any, tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[kafka]\n"compresion.type" = "lz4"\n')
    result = _cdcd("run", "--config", str(toml), "--dsn", pg_db.dsn, "--bootstrap-servers", "127.0.0.1:1")
    assert result.returncode == 2, result.stderr
    assert "compresion.type" in result.stderr and "Traceback" not in result.stderr
    assert not pg_db.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'cdcd'")
