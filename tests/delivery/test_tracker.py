"""The confirm rule: flush only what Kafka acknowledged (or idle keepalive positions)."""

from __future__ import annotations

from cdcd.delivery.tracker import LsnTracker


def test_commit_is_confirmed_only_after_the_sink_acknowledged() -> None:
    t = LsnTracker(100)
    t.on_begin()
    t.on_frame(150)
    t.on_commit(200)
    assert t.committed == 100 and t.to_confirm() is None
    t.on_sink_committed()
    assert t.committed == 200 and t.to_confirm() == 200
    t.mark_confirmed(200)
    assert t.to_confirm() is None


def test_abort_never_confirms() -> None:
    t = LsnTracker(100)
    t.on_begin()
    t.on_commit(200)
    t.on_sink_aborted()
    t.on_sink_committed()
    assert t.committed == 100


def test_keepalive_advances_only_when_idle() -> None:
    t = LsnTracker(100)
    t.on_keepalive(300)
    assert t.committed == 300 and t.received == 300
    t.on_begin()
    t.on_keepalive(400)
    assert t.committed == 300, "open transaction: keepalive must not confirm"
    t.on_commit(450)
    t.on_keepalive(500)
    assert t.committed == 300, "staged but not acknowledged: keepalive must not confirm"
    t.on_sink_committed()
    assert t.committed == 450
    t.on_keepalive(500)
    assert t.committed == 500


def test_never_moves_backwards() -> None:
    t = LsnTracker(1000)
    t.on_begin()
    t.on_commit(900)
    t.on_sink_committed()
    t.on_keepalive(800)
    assert t.committed == 1000
