"""The confirm rule: flush only what the sink committed, or what held nothing, or idle keepalive positions."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from cdcd.delivery.tracker import LsnTracker


def staged_transaction(t: LsnTracker, end: int, *, records: bool = True) -> None:
    """A PostgreSQL transaction ending at ``end``, its records (if any) handed to the sink."""
    t.transaction_began()
    if records:
        t.sink_pending()
    t.transaction_ended(end)


def commit(t: LsnTracker) -> int | None:
    position = t.commit_started()
    t.commit_succeeded()
    return position


# -- positions and reporting -----------------------------------------------------------------

def test_starts_at_the_given_position() -> None:
    t = LsnTracker(100)
    assert (t.received, t.staged, t.committing, t.committed, t.confirmed) == (100, None, None, 100, 100)
    assert not t.commit_running
    assert t.confirmable() == 100 and t.idle and not t.in_transaction and not t.pending and not t.commit_due


def test_received_is_the_highest_wal_end_seen() -> None:
    t = LsnTracker(100)
    t.frame(300)
    t.frame(200)
    assert t.received == 300
    t.transaction_began()
    t.keepalive(250)
    assert t.received == 300
    t.keepalive(400)
    assert t.received == 400
    assert t.committed == 100, "a frame alone never confirms anything"


def test_reported_tells_whether_the_confirmed_position_moved() -> None:
    t = LsnTracker(100)
    assert not t.reported(100)
    staged_transaction(t, 200)
    commit(t)
    assert t.confirmable() == 200 and t.confirmed == 100
    assert t.reported(200) and t.confirmed == 200
    assert not t.reported(200)


# -- commits ----------------------------------------------------------------------------------

def test_commit_is_confirmed_only_after_the_sink_acknowledged() -> None:
    t = LsnTracker(100)
    t.transaction_began()
    t.frame(150)
    t.sink_pending()
    assert t.in_transaction and not t.commit_due
    t.transaction_ended(200)
    assert t.staged == 200 and t.committed == 100 and t.confirmable() == 100 and t.commit_due
    assert t.commit_started() == 200
    assert t.committing == 200 and t.staged is None and t.confirmable() == 100 and not t.pending
    t.commit_succeeded()
    assert t.committed == 200 and t.confirmable() == 200 and t.committing is None and t.idle


def test_many_transactions_share_one_commit() -> None:
    t = LsnTracker(100)
    for end in (200, 300, 400):
        staged_transaction(t, end)
        assert t.committed == 100
    assert commit(t) == 400
    assert t.committed == 400


def test_abort_never_confirms() -> None:
    t = LsnTracker(100)
    staged_transaction(t, 200)
    t.sink_aborted()
    assert t.staged is None and not t.pending and not t.commit_due
    t.commit_succeeded()  # a stray acknowledgement covers nothing
    assert t.committed == 100


def test_a_failed_commit_confirms_nothing() -> None:
    t = LsnTracker(100)
    staged_transaction(t, 200)
    assert t.commit_started() == 200
    t.sink_aborted()  # commit raised: the sink transaction is gone
    assert t.committing is None and t.committed == 100
    t.keepalive(500)
    assert t.committed == 500, "afterwards nothing is in flight: PostgreSQL resends from the confirmed position"


def test_a_transaction_that_left_nothing_in_the_sink_is_delivered_when_it_ends() -> None:
    t = LsnTracker(100)
    staged_transaction(t, 200, records=False)
    assert t.committed == 200 and t.staged is None and not t.commit_due


def test_a_transaction_without_records_waits_behind_one_with_records() -> None:
    t = LsnTracker(100)
    staged_transaction(t, 200)
    staged_transaction(t, 300, records=False)
    assert t.committed == 100 and t.staged == 300
    assert commit(t) == 300
    assert t.committed == 300


def test_records_outside_a_transaction_make_a_commit_due_but_confirm_nothing() -> None:
    t = LsnTracker(100)
    t.sink_pending()  # a heartbeat record
    assert t.commit_due
    assert commit(t) is None
    assert t.committed == 100 and not t.commit_due


def test_never_moves_backwards() -> None:
    t = LsnTracker(1000)
    staged_transaction(t, 900)
    commit(t)
    assert t.committed == 1000
    staged_transaction(t, 950, records=False)
    assert t.committed == 1000
    t.keepalive(800)
    assert t.committed == 1000


def test_only_one_commit_in_flight() -> None:
    t = LsnTracker(100)
    staged_transaction(t, 200)
    t.commit_started()
    with pytest.raises(AssertionError):
        t.commit_started()


# -- a commit in flight ----------------------------------------------------------------------

def test_a_commit_in_flight_covers_only_what_was_staged_when_it_started() -> None:
    t = LsnTracker(100)
    staged_transaction(t, 200)
    assert t.commit_started() == 200
    staged_transaction(t, 300)  # the next batch fills while the commit runs
    assert t.staged == 300 and t.committed == 100
    t.commit_succeeded()
    assert t.committed == 200 and t.staged == 300 and t.commit_due
    assert commit(t) == 300 and t.committed == 300


def test_a_transaction_without_records_waits_for_the_commit_in_flight() -> None:
    t = LsnTracker(100)
    staged_transaction(t, 200)
    t.commit_started()
    staged_transaction(t, 300, records=False)
    assert t.committed == 100, "the commit before it has not returned"
    t.commit_succeeded()
    assert t.committed == 300 and t.staged is None


def test_a_transaction_without_records_after_a_failed_commit_in_flight() -> None:
    t = LsnTracker(100)
    staged_transaction(t, 200)
    t.commit_started()
    staged_transaction(t, 300, records=False)
    t.sink_aborted()
    assert t.committed == 100 and t.staged is None


def test_a_part_in_flight_holds_back_the_end_of_its_transaction() -> None:
    t = LsnTracker(100)
    t.transaction_began()
    t.sink_pending()
    assert t.commit_started() is None and t.commit_running
    t.transaction_ended(300)  # nothing more of it in the sink, but the part is not durable yet
    assert t.committed == 100 and not t.idle
    t.commit_succeeded()
    assert t.committed == 300


def test_keepalive_does_not_advance_while_a_commit_is_in_flight() -> None:
    t = LsnTracker(100)
    staged_transaction(t, 200)
    t.commit_started()
    assert not t.idle
    t.keepalive(500)
    assert t.committed == 100
    t.commit_succeeded()
    t.keepalive(500)
    assert t.committed == 500


# -- the idle keepalive advance ---------------------------------------------------------------

def test_keepalive_advances_only_when_idle() -> None:
    t = LsnTracker(100)
    t.keepalive(300)
    assert t.committed == 300 and t.received == 300
    t.transaction_began()
    t.keepalive(400)
    assert t.committed == 300, "open transaction: keepalive must not confirm"
    t.sink_pending()
    t.transaction_ended(450)
    t.keepalive(500)
    assert t.committed == 300, "staged but not acknowledged: keepalive must not confirm"
    commit(t)
    assert t.committed == 450
    t.keepalive(500)
    assert t.committed == 500


def test_keepalive_in_an_open_transaction_with_nothing_in_the_sink_yet() -> None:
    t = LsnTracker(100)
    t.transaction_began()
    t.keepalive(900)  # the walsender may report WAL beyond the open transaction's commit
    assert t.committed == 100
    t.transaction_ended(800)
    assert t.committed == 800, "delivered (nothing in the sink), but not past its own end"


def test_records_outside_a_transaction_do_not_hold_back_the_idle_advance() -> None:
    t = LsnTracker(100)
    t.sink_pending()  # a heartbeat: nothing PostgreSQL would resend
    t.keepalive(300)
    assert t.committed == 300


# -- huge transactions committed in parts -----------------------------------------------------

def test_a_part_confirms_the_complete_transactions_before_it_never_the_open_one() -> None:
    t = LsnTracker(100)
    staged_transaction(t, 200)
    t.transaction_began()
    t.sink_pending()
    assert commit(t) == 200, "the part's offsets record names the last complete transaction"
    assert t.committed == 200 and t.in_transaction
    t.keepalive(900)
    assert t.committed == 200
    t.sink_pending()  # the next part
    assert commit(t) is None
    assert t.committed == 200
    t.sink_pending()
    t.transaction_ended(1000)
    assert t.committed == 200 and t.commit_due
    assert commit(t) == 1000 and t.committed == 1000


def test_a_part_with_no_complete_transaction_before_it() -> None:
    t = LsnTracker(100)
    t.transaction_began()
    t.sink_pending()
    assert commit(t) is None
    assert t.committed == 100 and t.in_transaction and not t.pending


def test_the_rest_of_a_transaction_after_its_last_part_left_nothing_in_the_sink() -> None:
    t = LsnTracker(100)
    t.transaction_began()
    t.sink_pending()
    commit(t)
    t.transaction_ended(500)
    assert t.committed == 500, "every record of it is in committed parts"


# -- non-transactional logical messages -------------------------------------------------------

def test_a_non_transactional_message_is_its_own_unit() -> None:
    t = LsnTracker(100)
    t.sink_pending()
    t.message_ended(151)
    assert t.staged == 151 and t.committed == 100 and t.commit_due
    assert commit(t) == 151 and t.committed == 151


def test_a_non_transactional_message_inside_an_open_transaction_leaves_it_open() -> None:
    t = LsnTracker(100)
    t.transaction_began()
    t.sink_pending()
    t.message_ended(151)
    assert t.in_transaction and not t.commit_due
    t.keepalive(900)
    assert t.committed == 100
    t.transaction_ended(300)
    assert commit(t) == 300 and t.committed == 300


def test_a_message_routed_to_nothing_is_delivered_at_once() -> None:
    t = LsnTracker(100)
    t.message_ended(151)
    assert t.committed == 151


# -- sessions ---------------------------------------------------------------------------------

def test_a_new_session_forgets_what_was_in_flight_and_keeps_the_positions() -> None:
    t = LsnTracker(100)
    staged_transaction(t, 200)
    commit(t)
    t.reported(200)
    staged_transaction(t, 300)
    t.transaction_began()
    t.commit_started()
    t.new_session()
    assert (t.received, t.committed, t.confirmed) == (100, 200, 200)
    assert t.staged is None and t.committing is None and not t.in_transaction and not t.pending and t.idle
    t.commit_succeeded()  # the old session's commit never counts
    assert t.committed == 200


# -- every sequence at once -------------------------------------------------------------------

@dataclass
class _Unit:
    """A PostgreSQL transaction or non-transactional message: its end, and whether Kafka holds all of it."""

    end: int = 0
    uncommitted: int = 0
    """Its records in the sink not yet covered by a successful commit."""


@dataclass
class _World:
    lsn: int = 1000
    ended: list[_Unit] = field(default_factory=list)
    open: _Unit | None = None
    flushes_while_open: list[int] = field(default_factory=list)
    in_sink: list[_Unit] = field(default_factory=list)
    """One entry per record in the open sink transaction."""
    committing: list[_Unit] | None = None


@pytest.mark.parametrize("seed", range(400))
def test_random_sequences_never_confirm_what_the_sink_did_not_commit(seed: int) -> None:
    """Random orders of every event, judged against what really happened.

    Safety: the flush position is always below the end of every unit with records the
    sink did not commit, and below the end of a transaction that was open meanwhile.
    Liveness: once everything ended and was committed, it reaches the last end.
    """
    rng = random.Random(seed)
    t = LsnTracker(1000)
    w = _World()

    def record(unit: _Unit | None) -> None:
        t.sink_pending()
        if unit is not None:
            unit.uncommitted += 1
            w.in_sink.append(unit)

    for _ in range(rng.randrange(5, 80)):
        event = rng.choice(["frame", "keepalive", "begin", "change", "change", "end", "message", "heartbeat",
                            "commit", "commit", "succeed", "abort", "report"])
        if event == "frame":
            t.frame(w.lsn + rng.randrange(0, 50))
        elif event == "keepalive":
            if w.open is not None:
                t.keepalive(w.lsn + rng.randrange(0, 400))  # may lie past the open transaction's end
            else:
                w.lsn += rng.randrange(0, 50)  # nothing before it is left to send
                t.keepalive(w.lsn)
        elif event == "begin" and w.open is None:
            w.open = _Unit()
            w.flushes_while_open = []
            t.transaction_began()
        elif event == "change" and w.open is not None:
            if rng.random() < 0.7:
                record(w.open)
        elif event == "end" and w.open is not None:
            w.lsn += rng.randrange(1, 100)
            w.open.end = w.lsn
            if rng.random() < 0.3:
                record(w.open)  # transaction metadata END
            t.transaction_ended(w.lsn)
            assert all(flush < w.open.end for flush in w.flushes_while_open), seed
            w.ended.append(w.open)
            w.open = None
        elif event == "message":
            w.lsn += rng.randrange(1, 100)
            unit = _Unit(w.lsn)
            if rng.random() < 0.8:
                record(unit)
            t.message_ended(unit.end)
            w.ended.append(unit)
        elif event == "heartbeat":
            record(None)
        elif event == "commit" and w.committing is None:
            t.commit_started()
            w.committing, w.in_sink = w.in_sink, []
        elif event == "succeed" and w.committing is not None:
            t.commit_succeeded()
            for unit in w.committing:
                unit.uncommitted -= 1
            w.committing = None
        elif event == "abort":
            # The session ends; PostgreSQL resends everything after the confirmed position.
            t.sink_aborted()
            t.new_session()
            flush = t.confirmable()
            w.ended = [u for u in w.ended if u.end <= flush]
            w.in_sink, w.committing, w.open = [], None, None
            w.lsn = max(w.lsn, flush)
        elif event == "report":
            t.reported(t.confirmable())

        flush = t.confirmable()
        for unit in w.ended:
            if unit.uncommitted:
                assert flush < unit.end, (seed, unit, flush)
        if w.open is not None:
            w.flushes_while_open.append(flush)
        assert t.confirmed <= flush

    # Finish what is open, commit everything: the flush position reaches the last end.
    if w.committing is not None:
        t.commit_succeeded()
    if w.open is not None:
        w.lsn += 1
        t.transaction_ended(w.lsn)
        w.ended.append(_Unit(w.lsn))
    if t.commit_due:
        commit(t)
    assert t.idle
    assert t.confirmable() >= max((u.end for u in w.ended), default=1000), seed
