"""Where the tests find the material shared beside the repository (``../shared/``).

CI and developers keep a copy of ``shared/`` next to the clone; in a git worktree the
directory beside the main checkout is used too, and ``CDCD_SHARED_DIR`` overrides both.
A test that needs the material FAILS with `missing` when it is absent: a skipped
compatibility test would hide exactly the regressions it exists to catch.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV = "CDCD_SHARED_DIR"


def candidates() -> list[Path]:
    """The places searched for ``shared/``, in order."""
    found: list[Path] = []
    if env := os.environ.get(ENV, "").strip():
        found.append(Path(env))
    found.append(REPO_ROOT.parent / "shared")
    try:
        common = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        common = ""
    if common:  # a worktree: the main checkout is the common .git dir's parent
        main_parent = Path(common).parent.parent / "shared"
        if main_parent not in found:
            found.append(main_parent)
    return found


def shared_file(relative: str) -> Path:
    """``shared/<relative>``, or fail the calling test saying where it was looked for."""
    tried = candidates()
    for base in tried:
        path = base / relative
        if path.exists():
            return path
    pytest.fail(
        f"shared material {relative!r} not found; looked in: {', '.join(str(p) for p in tried)}. "
        f"Put a copy of shared/ beside the repository root (as CI does) or set {ENV}=/path/to/shared",
        pytrace=False,
    )
