"""The session's set-up objects are out of the garbage collector's reach while it streams."""

from __future__ import annotations

import gc
import weakref

import pytest

from cdcd.ops.heap import set_up_objects_frozen


def test_everything_alive_is_frozen_inside_and_unfrozen_after() -> None:
    built = [object() for _ in range(10)]
    assert gc.get_freeze_count() == 0
    with set_up_objects_frozen():
        assert gc.get_freeze_count() >= len(built)
        made_while_streaming = [[i] for i in range(10)]
        assert gc.is_tracked(made_while_streaming)
    assert gc.get_freeze_count() == 0


def test_a_session_that_fails_unfreezes_too() -> None:
    with pytest.raises(RuntimeError), set_up_objects_frozen():
        raise RuntimeError("the session failed")
    assert gc.get_freeze_count() == 0


def test_garbage_frozen_with_the_rest_is_collected_once_unfrozen() -> None:
    class Cycle:
        pass

    cycle = Cycle()
    cycle.me = cycle  # type: ignore[attr-defined]
    ref = weakref.ref(cycle)
    with set_up_objects_frozen():
        del cycle  # unreachable from here on, but frozen: collections do not look at it
        gc.collect()
        assert ref() is not None
    gc.collect()
    assert ref() is None
