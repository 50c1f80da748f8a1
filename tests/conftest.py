"""Test configuration: every ``tests/fix_*.py`` module is loaded as a fixture plugin.

``fix_pg`` (PostgreSQL cluster, per-test database) and ``fix_kafka`` (embedded broker,
real-broker opt-in) are always among them.  Markers ``pg``, ``kafka`` and ``realkafka``
are declared in pyproject.toml and applied automatically to tests using the matching
fixtures, e.g. ``python -m pytest -m "not pg"``.
"""

from __future__ import annotations

from pathlib import Path

# fix_jvm first: other fixture modules import it, and pytest must load it as a plugin
# (with assertion rewriting) before any of them does.
_FIRST = ["tests.fix_jvm"]
pytest_plugins = _FIRST + sorted(
    ({"tests.fix_pg", "tests.fix_kafka"}
     | {f"tests.{path.stem}" for path in Path(__file__).parent.glob("fix_*.py")}) - set(_FIRST)
)
