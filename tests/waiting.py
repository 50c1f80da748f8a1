"""Waiting for a condition, the one way tests wait: never a bare ``sleep()`` that decides.

The deadline only turns a hang into a failure with a message; the test decides by the
condition, however slow the machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0, poll: float = 0.05) -> None:
    """Return once ``condition()`` is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(poll)
