"""Waiting, briefly, for what the walsender sent to become visible to ordinary sessions.

The walsender may send a transaction a moment before other sessions see it
committed: the commit record is flushed before the transaction leaves the
process array. Whatever cdcd then asks an ordinary connection about it (the
catalog of a table it created, a row it changed) looks again after short
pauses instead of taking the state from before the transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, TypeVar

T = TypeVar("T")

WAITS_S: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""Pauses between looks (about 1.9 s in all)."""


def look_until_found(look: Callable[[], T | None], waits_s: tuple[float, ...] = WAITS_S,
                     sleep: Callable[[float], None] = time.sleep) -> T | None:
    """``look()`` until it answers something other than None, pausing ``waits_s`` between looks; None if never."""
    found = look()
    for wait in waits_s:
        if found is not None:
            break
        sleep(wait)
        found = look()
    return found
