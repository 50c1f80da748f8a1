"""The interpreter's cyclic garbage collector, kept off the streaming path.

A full collection walks every object the collector tracks, on whichever thread
happens to allocate: the streaming thread, with every change in flight waiting.
Once a session is set up that is about 45,000 objects (the imports, the catalog,
the encoders) and a 20–27 ms pause, which a latency run on a real broker caught
mid-stream in every load phase (docs/performance.md). Almost none of them will
ever be garbage, so the session streams with them frozen: collections walk only
what was allocated since, and short-lived records are freed by reference counting
anyway.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def set_up_objects_frozen() -> Iterator[None]:
    """Freeze everything the collector tracks now; unfreeze on the way out.

    No collection first: freezing is a list splice, a collection would cost the pause
    this avoids (more in a test process). Garbage frozen with the rest waits until the
    session ends: unfrozen, it is collected as usual before the next session freezes.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
