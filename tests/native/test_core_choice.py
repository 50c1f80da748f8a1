"""Choosing the core (CDCD_CORE), saying which one runs, and building without a compiler."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cdcd import native

ROOT = Path(__file__).resolve().parent.parent.parent


def cdcd(*args: str, core: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != native.ENV}
    if core is not None:
        env[native.ENV] = core
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "cdcd", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_version_names_the_core() -> None:
    assert cdcd("--version", core="python").stdout.strip().endswith("(python core (CDCD_CORE=python))")
    default = cdcd("--version", core=None).stdout.strip()
    assert default.endswith("(compiled core)" if native._core is not None else "(the compiled core is not built))")


def test_a_wrong_core_is_a_config_error() -> None:
    result = cdcd("run", core="turbo")
    assert result.returncode == 2
    assert result.stderr.strip() == "cdcd: CDCD_CORE='turbo': use compiled or python"


def test_choice() -> None:
    built = native._core is not None
    assert native._choose("python") == ("python", None)
    assert native._choose("")[0] == ("compiled" if built else "python")
    core, problem = native._choose("compiled")
    assert (core, problem is None) == (("compiled", True) if built else ("python", False))


def test_build_without_a_compiler_falls_back(tmp_path: Path) -> None:
    """A failing C compiler is a warning: the build succeeds and says the pure-Python core is installed."""
    pytest.importorskip("Cython")
    for rel in ("setup.py", "pyproject.toml", "README.md", "cdcd/native/_core.pyx"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, tmp_path / rel)
    env = {**os.environ, "CC": "false", "LDSHARED": "false"}
    result = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "installing the pure-Python core" in result.stderr
    assert not list((tmp_path / "cdcd" / "native").glob("_core*.so"))
