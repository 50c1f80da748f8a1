"""Test configuration: every ``tests/fix_*.py`` module is loaded as a fixture plugin.

``fix_pg`` (PostgreSQL cluster, per-test database) and ``fix_kafka`` (embedded broker,
real-broker opt-in) are always among them.  Markers ``pg``, ``kafka`` and ``realkafka``
are declared in pyproject.toml and applied automatically to tests using the matching
fixtures, e.g. ``python -m pytest -m "not pg"``.
"""

from __future__ import annotations

from pathlib import Path

pytest_plugins = sorted(
    {"tests.fix_pg", "tests.fix_kafka"}
    | {f"tests.{path.stem}" for path in Path(__file__).parent.glob("fix_*.py")}
)
