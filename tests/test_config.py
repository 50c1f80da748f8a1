from __future__ import annotations

from pathlib import Path

import pytest

from cdcd.config import Config, env_name, load
from cdcd.errors import ConfigError
from cdcd.ops.logs import redact_dsn


def test_defaults() -> None:
    c = load(env={})
    assert (c.slot_name, c.publication_name, c.sink, c.topic_prefix) == ("cdcd", "cdcd", "kafka", "cdcd")
    assert c.effective_transactional_id == "cdcd-cdcd-cdcd"


def test_precedence_file_env_flag(tmp_path: Path) -> None:
    path = tmp_path / "cdcd.toml"
    path.write_text(
        'topic.prefix = "file"\nslot.name = "fileslot"\ntombstones.on.delete = false\n'
        'table.include.list = ["public\\\\.a", "public\\\\.b"]\n'
        '[kafka]\n"compression.type" = "lz4"\n"enable.idempotence" = true\n')
    env = {"CDCD_SLOT_NAME": "envslot", "CDCD_PUBLICATION_NAME": "envpub", "CDCD_KAFKA_SASL_PASSWORD": "pw"}
    c = load(str(path), env=env, overrides={"publication_name": "flagpub", "dsn": None})
    assert c.topic_prefix == "file"
    assert c.slot_name == "envslot"
    assert c.publication_name == "flagpub"
    assert c.tombstones_on_delete is False
    assert c.table_include_list == (r"public\.a", r"public\.b")
    assert c.kafka == {"compression.type": "lz4", "enable.idempotence": "true", "sasl.password": "pw"}


def test_dotted_toml_tables(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[topic]\nprefix = "nested"\n')
    assert load(str(path), env={}).topic_prefix == "nested"


@pytest.mark.parametrize("content, message", [
    ('nope = 1\n', "unknown option 'nope'"),
    ('decimal.handling.mode = "fancy"\n', "expected one of precise, double, string"),
    ('tombstones.on.delete = "maybe"\n', "expected true or false"),
    ('slot.name = "Bad-Slot"\n', "slot.name"),
    ('table.include.list = ["("]\n', "bad regex"),
    ('= broken', "not valid TOML"),
])
def test_bad_config_is_explained(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load(str(path), env={})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load("/nonexistent/cdcd.toml", env={})


def test_env_names_follow_keys() -> None:
    assert env_name("topic.prefix") == "CDCD_TOPIC_PREFIX"
    assert env_name("bootstrap.servers") == "CDCD_BOOTSTRAP_SERVERS"


def test_redaction() -> None:
    assert redact_dsn("host=db password=s3cr3t user=x") == "host=db password=*** user=x"
    assert redact_dsn("host=db password='a b' user=x") == "host=db password=*** user=x"
    assert redact_dsn("postgresql://u:pw@db/x") == "postgresql://u:***@db/x"
    assert "s3cr3t" not in repr(Config(dsn="password=s3cr3t").redacted_dsn())
