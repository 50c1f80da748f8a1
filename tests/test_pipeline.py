"""StreamingSession with recorded pgoutput frames, a scripted replication stream and a sink in memory.

The confirm rule seen from outside: what the session reports as ``flush`` to
PostgreSQL never passes what the sink committed (or what held nothing), whatever
happens between produce and commit, during a keepalive or at shutdown. No test
waits or reads a clock: batches are committed when the script says the socket is
idle, and the size/age limits are far away.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest

from cdcd import config as config_mod
from cdcd.delivery.offsets import OffsetRecord, OffsetStore, SourceOffset, TxnPosition
from cdcd.delivery.tracker import LsnTracker
from cdcd.errors import SinkError, SinkUnavailable
from cdcd.ops.health import Health
from cdcd.ops.metrics import Metrics
from cdcd.pipeline import Stats, StreamingSession
from cdcd.session.build import SessionStart, Surfaces, build_parts
from cdcd.wire.frames import XLogData
from tests.fake_stream import (
    IDLE,
    FakeCatalog,
    FakeSink,
    FakeStream,
    OverlappingSink,
    Step,
    Unit,
    captured,
    keepalive,
)

START = 22_000_000
UNITS = captured("v1")
FIRST, SECOND, THIRD = UNITS[0], UNITS[1], UNITS[2]
TX_MESSAGE = next(u for u in UNITS if "LogicalMessage" in u.kinds and u.xid is not None)
NONTX_MESSAGE = next(u for u in UNITS if u.xid is None)


def _config(**overrides: Any) -> Any:
    return config_mod.load(env={}, overrides={
        "dsn": "host=unused", "slot_name": "s", "publication_name": "p", "sink": "kafka",
        "bootstrap_servers": "unused:9092", "topic_prefix": "shop", "log_level": "warning",
        # Far away: a batch is committed when the script says the socket is idle.
        "max_batch_ms": 3_600_000, "max_batch_events": 1_000_000, "status_interval_ms": 3_600_000,
        **overrides})


class Run:
    """One session over a script; ``run()`` returns the exception it ended with (None: it stopped).

    Actions in the script: ``run.fail_next_commit(error)`` and ``run.sigterm`` (the loop
    finishes the frame after it, then shuts down).
    """

    def __init__(self, script: list[Step], *, sink: FakeSink | None = None, start: int = START,
                 offsets: bool = True, skip_until: int = 0, resume: TxnPosition | None = None,
                 **config: Any) -> None:
        self.stop = threading.Event()
        self.stream = FakeStream(script, self.stop)
        self.sink = sink or FakeSink()
        self.tracker = LsnTracker(start)
        self.stats = Stats()
        self.catalog = FakeCatalog.for_capture("v1")
        self.config = _config(**config)
        self.start = SessionStart("shop", "7000000000000000001", skip_until=skip_until, resume=resume)
        self.offsets = OffsetStore("shop.offsets", "shop", "s") if offsets else None

    def script(self, steps: list[Step]) -> Run:
        """Steps that refer to this run (its actions)."""
        self.stream = FakeStream(steps, self.stop)
        return self

    def run(self) -> BaseException | None:
        metrics = Metrics(process_metrics=False)
        surfaces = Surfaces(self.stats, metrics, Health(require_kafka=False, metrics=metrics))
        self.session = StreamingSession(build_parts(
            self.config, self.start, self.stream, self.catalog, self.sink,  # type: ignore[arg-type]
            self.tracker, surfaces, self.offsets))
        try:
            self.session.run(self.stop)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            return exc
        return None

    @property
    def replies(self) -> list[int]:
        """The flush position answering each keepalive of the script, in order."""
        return self.stream.replies

    @property
    def final_flush(self) -> int:
        """The flush position of the last status update (the one sent at shutdown)."""
        return self.stream.flushes[-1]

    def fail_next_commit(self, error: Exception) -> Step:
        def step() -> None:
            self.sink.fail_commit = error  # type: ignore[assignment]
        return step

    def overdue(self, age_s: float) -> Step:
        """From now on the open Kafka transaction is this old (parts after a third of 3 s)."""
        def step() -> None:
            self.sink.transaction_age_s = age_s
        return step

    def sigterm(self) -> None:
        self.stop.set()


def frames(*units: Unit) -> list[Step]:
    return [f for u in units for f in u.frames]


def topics(records: list[Any]) -> list[str]:
    return [r.topic for r in records]


def offset_of(record: Any) -> SourceOffset:
    return SourceOffset.from_json(record.value)


# -- the ordinary path ------------------------------------------------------------------------

def test_every_captured_transaction_is_committed_then_confirmed() -> None:
    script: list[Step] = []
    for unit in UNITS:
        script += [*unit.frames, IDLE, keepalive(unit.end_lsn)]
    run = Run(script)
    assert run.run() is None
    # Each unit was committed at the idle moment after it; the keepalive's reply confirms its end.
    assert run.replies == [u.end_lsn for u in UNITS]
    assert run.final_flush == UNITS[-1].end_lsn == run.tracker.confirmed
    truncate = next(u for u in UNITS if "Truncate" in u.kinds)
    with_records = [u for u in UNITS if u is not truncate]  # skipped.operations=t by default
    assert [offset_of(r).lsn for r in run.sink.offsets] == [u.end_lsn for u in with_records]
    assert not run.sink.aborted and not run.sink.open
    assert {"shop.public.customers", "shop.public.orders_full", "shop.public.parent", "shop.public.child",
            "shop.message"} == set(topics(run.sink.records))
    assert run.stats.transactions == len(UNITS) - 1


def test_transactions_share_one_sink_commit_until_the_socket_is_idle() -> None:
    run = Run([*frames(FIRST, SECOND, THIRD), keepalive(THIRD.end_lsn), IDLE, keepalive(THIRD.end_lsn)])
    assert run.run() is None
    assert run.replies == [START, THIRD.end_lsn]
    assert len(run.sink.committed) == 1
    assert offset_of(run.sink.offsets[0]).lsn == THIRD.end_lsn


def test_the_batch_size_commits_at_a_transaction_boundary_without_waiting_for_idle() -> None:
    run = Run([*frames(FIRST, SECOND), keepalive(SECOND.end_lsn)], max_batch_events=1)
    assert run.run() is None
    assert [offset_of(r).lsn for r in run.sink.offsets] == [FIRST.end_lsn, SECOND.end_lsn]
    assert run.replies == [SECOND.end_lsn]


# -- a sink failure between produce and commit -------------------------------------------------

def test_a_commit_failure_confirms_nothing_of_what_was_produced() -> None:
    run = Run([])
    run.script([*FIRST.frames, keepalive(FIRST.end_lsn), run.fail_next_commit(SinkUnavailable("broker gone")), IDLE,
                keepalive(FIRST.end_lsn)])
    error = run.run()
    assert isinstance(error, SinkUnavailable)
    assert len(run.sink.aborted) == 1 and len(run.sink.aborted[0]) > 1, "produced, then aborted"
    assert not run.sink.committed
    assert run.replies == [START], "the session ended with the error before the second keepalive"
    assert max(run.stream.flushes) == START
    assert run.tracker.confirmable() == START


def test_a_commit_failure_after_an_earlier_commit_keeps_the_earlier_position() -> None:
    run = Run([])
    run.script([*FIRST.frames, IDLE, *SECOND.frames, keepalive(SECOND.end_lsn), run.fail_next_commit(SinkError("x")),
                IDLE])
    assert isinstance(run.run(), SinkError)
    assert run.replies == [FIRST.end_lsn]
    assert run.tracker.confirmable() == FIRST.end_lsn


def test_a_failing_commit_at_shutdown_is_aborted_and_not_confirmed() -> None:
    run = Run([])
    *body, commit_frame = SECOND.frames
    run.script([*FIRST.frames, IDLE, *body, run.fail_next_commit(SinkUnavailable("slow")), run.sigterm,
                commit_frame])
    assert run.run() is None, "a stop is not an error: the failed commit is logged"
    assert len(run.sink.committed) == 1 and len(run.sink.aborted) == 1
    assert run.final_flush == FIRST.end_lsn


# -- keepalives --------------------------------------------------------------------------------

def test_a_keepalive_while_a_transaction_is_open_confirms_nothing_past_it() -> None:
    begin, *changes, commit_frame = FIRST.frames
    far = FIRST.end_lsn + 10_000  # the walsender's WAL end may lie past the open transaction
    run = Run([begin, keepalive(far), *changes, keepalive(far), IDLE, keepalive(far), commit_frame, keepalive(far),
               IDLE, keepalive(far)])
    assert run.run() is None
    # Open (twice, once across an idle moment), then ended but not committed, then committed and idle.
    assert run.replies == [START, START, START, START, far]
    assert len(run.sink.committed) == 1
    assert run.tracker.received == far


def test_idle_keepalives_advance_the_confirmed_position() -> None:
    run = Run([keepalive(START + 100), IDLE, keepalive(START + 200)])
    assert run.run() is None
    assert run.replies == [START + 100, START + 200]
    assert not run.sink.committed


def test_no_idle_advance_while_a_batch_waits_for_its_commit() -> None:
    run = Run([*FIRST.frames, keepalive(FIRST.end_lsn + 500)])
    assert run.run() is None
    assert run.replies == [START]
    assert run.final_flush == FIRST.end_lsn, "committed by the idle moment when the script ended"


# -- logical messages -------------------------------------------------------------------------

def test_a_non_transactional_message_is_committed_as_its_own_unit() -> None:
    before = UNITS[: UNITS.index(NONTX_MESSAGE)]
    run = Run([*frames(*before), IDLE, *NONTX_MESSAGE.frames, keepalive(NONTX_MESSAGE.end_lsn), IDLE,
               keepalive(NONTX_MESSAGE.end_lsn)])
    assert run.run() is None
    message = run.sink.committed[-1]
    assert topics(message) == ["shop.message", "shop.offsets"]
    assert orjson.loads(message[0].value)["payload"]["op"] == "m"
    assert run.replies == [before[-1].end_lsn, NONTX_MESSAGE.end_lsn], "staged, then committed"
    assert NONTX_MESSAGE.end_lsn == NONTX_MESSAGE.frames[0].wal_start + 1, "just past it: never resent"


def test_a_non_transactional_message_inside_an_open_transaction_does_not_end_it() -> None:
    """pgoutput sends such a message as it decodes it; should one arrive between Begin and Commit,
    the transaction stays open: no commit and no confirm until its Commit."""
    begin, *changes, commit_frame = TX_MESSAGE.frames
    before = UNITS[: UNITS.index(TX_MESSAGE)]
    lsn = TX_MESSAGE.final_lsn - 8  # written while the transaction ran
    message = bytearray(NONTX_MESSAGE.frames[0].payload)
    message[2:10] = lsn.to_bytes(8, "big")  # 'M', flags, then the message's LSN
    inside = XLogData(lsn, TX_MESSAGE.end_lsn, 0, memoryview(bytes(message)))
    far = TX_MESSAGE.end_lsn + 100
    run = Run([*frames(*before), IDLE, begin, inside, IDLE, keepalive(far), *changes, IDLE, keepalive(far),
               commit_frame, IDLE, keepalive(far)])
    assert run.run() is None
    assert run.replies == [before[-1].end_lsn, before[-1].end_lsn, far]
    assert len(run.sink.committed) == 2, "the transactions before, then this one after its Commit"
    last = run.sink.committed[-1]
    assert topics(last) == ["shop.message", "shop.message", "shop.public.customers", "shop.offsets"]
    assert offset_of(last[-1]).lsn == TX_MESSAGE.end_lsn


def test_a_transactional_message_goes_with_its_transaction() -> None:
    before = UNITS[: UNITS.index(TX_MESSAGE)]
    run = Run([*frames(*before), IDLE, *TX_MESSAGE.frames, IDLE])
    assert run.run() is None
    assert topics(run.sink.committed[-1]) == ["shop.message", "shop.public.customers", "shop.offsets"]


# -- shutdown ---------------------------------------------------------------------------------

def test_shutdown_with_a_partial_transaction_aborts_it_and_confirms_what_was_committed() -> None:
    run = Run([])
    *body, last_change, commit_frame = SECOND.frames
    run.script([*FIRST.frames, IDLE, *body, run.sigterm, last_change, commit_frame])
    assert run.run() is None
    assert len(run.sink.committed) == 1 and len(run.sink.aborted) == 1
    assert "shop.public.customers" in topics(run.sink.aborted[0])
    assert run.final_flush == FIRST.end_lsn == run.tracker.confirmed


def test_shutdown_commits_complete_transactions_then_confirms_them() -> None:
    run = Run([])
    *body, commit_frame = SECOND.frames
    run.script([*FIRST.frames, *body, run.sigterm, commit_frame, IDLE])
    assert run.run() is None
    assert len(run.sink.committed) == 1 and not run.sink.aborted
    assert run.final_flush == SECOND.end_lsn


# -- what Kafka already holds -----------------------------------------------------------------

def test_transactions_kafka_holds_are_dropped_and_confirmed_without_a_commit() -> None:
    run = Run([*frames(FIRST, SECOND), keepalive(SECOND.end_lsn), *THIRD.frames, IDLE],
              skip_until=SECOND.end_lsn)
    assert run.run() is None
    assert run.replies == [SECOND.end_lsn], "nothing of ours: delivered as they end"
    assert len(run.sink.committed) == 1
    assert offset_of(run.sink.offsets[0]).lsn == THIRD.end_lsn


def test_a_transaction_of_filtered_tables_is_delivered_when_it_ends() -> None:
    run = Run([*FIRST.frames, keepalive(FIRST.end_lsn)], table_exclude_list="public.customers")
    assert run.run() is None
    assert not run.sink.committed
    assert run.replies == [FIRST.end_lsn]


# -- huge transactions committed in parts ------------------------------------------------------

BIG = UNITS[5]  # orders_full: Begin, Relation, two inserts, an update, a delete, Commit
BEFORE_BIG = UNITS[:5]


@pytest.fixture
def general_path(monkeypatch: Any) -> None:
    """No compiled lanes: the general path looks for a part after every change."""
    monkeypatch.setattr("cdcd.session.lanes.change_lanes", lambda record: None)


@pytest.mark.usefixtures("general_path")
def test_a_huge_transaction_is_committed_in_parts_and_confirmed_only_at_its_end() -> None:
    assert BIG.kinds == ("Begin", "Relation", "Insert", "Insert", "Update", "Delete", "Commit")
    run = Run([], sink=FakeSink(transaction_timeout_s=3.0))
    *body, commit_frame = BIG.frames
    run.script([*frames(*BEFORE_BIG), keepalive(BIG.end_lsn + 100), run.overdue(10.0), *body,
                keepalive(BIG.end_lsn + 100), commit_frame, IDLE, keepalive(BIG.end_lsn + 100)])
    assert run.run() is None
    parts = [offset_of(r) for r in run.sink.offsets]
    assert [p.partial.changes for p in parts] == [1, 2, 3, 4]  # type: ignore[union-attr]
    assert {p.partial.final_lsn for p in parts} == {BIG.final_lsn}  # type: ignore[union-attr]
    assert [p.lsn for p in parts] == [BEFORE_BIG[-1].end_lsn] * 4, "each names the last complete transaction"
    # Before the first part the transactions before it were staged only; the parts then committed them
    # but never the open one; its Commit added nothing to the sink, so it is delivered as it ends.
    assert run.replies == [START, BEFORE_BIG[-1].end_lsn, BIG.end_lsn + 100]


def test_the_lanes_look_for_a_part_every_64_rows() -> None:
    """Per row the clock costs more than the row: the compiled lanes look every 64 rows."""
    begin, relation, insert, *_, commit_frame = BIG.frames
    run = Run([], sink=FakeSink(transaction_timeout_s=3.0))
    run.script([*frames(*BEFORE_BIG), IDLE, run.overdue(10.0), begin, relation, *[insert] * 200,
                keepalive(BIG.end_lsn), commit_frame, IDLE, keepalive(BIG.end_lsn)])
    assert run.run() is None
    if run.session.lanes is None:
        pytest.skip("the python core has no lanes: every change is looked at (the test above)")
    changes = [offset_of(r).partial.changes for r in run.sink.offsets if offset_of(r).partial]  # type: ignore[union-attr]
    # The first insert builds the table's encoder the general way (a part after it), then the lane takes over.
    assert changes[0] == 1 and changes[-1] > 200 - 64
    assert all(0 < b - a <= 64 for a, b in zip(changes, changes[1:])) and changes[2] - changes[1] == 64, changes
    assert run.replies[-1] == BIG.end_lsn, "its end is delivered and confirmed"


def test_the_end_of_a_transaction_committed_in_parts_commits_with_its_metadata() -> None:
    run = Run([], sink=FakeSink(transaction_timeout_s=3.0), provide_transaction_metadata="true")
    *body, commit_frame = BIG.frames
    run.script([*frames(*BEFORE_BIG), IDLE, run.overdue(10.0), *body, keepalive(BIG.end_lsn), commit_frame,
                keepalive(BIG.end_lsn), IDLE, keepalive(BIG.end_lsn)])
    assert run.run() is None
    last = run.sink.committed[-1]
    assert topics(last) == ["shop.transaction", "shop.offsets"], "the END record"
    assert offset_of(last[-1]).lsn == BIG.end_lsn and offset_of(last[-1]).partial is None
    assert run.replies == [BEFORE_BIG[-1].end_lsn, BEFORE_BIG[-1].end_lsn, BIG.end_lsn]


def test_a_resumed_transaction_drops_the_changes_kafka_holds() -> None:
    run = Run([*frames(*BEFORE_BIG, BIG), IDLE], skip_until=BEFORE_BIG[-1].end_lsn,
              resume=TxnPosition(BIG.final_lsn, BIG.xid, 2))  # type: ignore[arg-type]
    assert run.run() is None
    ops = [orjson.loads(r.value)["payload"]["op"] for r in run.sink.records if r.topic == "shop.public.orders_full"
           and r.value is not None]
    assert ops == ["u", "d"], "the two inserts are in Kafka already"
    assert run.final_flush == BIG.end_lsn


@pytest.mark.usefixtures("general_path")
@pytest.mark.parametrize("failing_part", [1, 2, 3])
def test_a_failed_part_confirms_nothing_of_its_transaction(failing_part: int) -> None:
    run = Run([], sink=FakeSink(transaction_timeout_s=3.0))
    at = 1 + failing_part  # Begin and Relation, then one frame (and one part) per change
    run.script([*frames(*BEFORE_BIG), IDLE, run.overdue(10.0), *BIG.frames[:at],
                run.fail_next_commit(SinkUnavailable("gone")), *BIG.frames[at:]])
    assert isinstance(run.run(), SinkUnavailable)
    parts = [offset_of(r).partial for r in run.sink.offsets[1:]]  # after the batch before it
    assert [p.changes for p in parts if p is not None] == list(range(1, failing_part))
    assert max(run.stream.flushes) <= BEFORE_BIG[-1].end_lsn
    assert run.tracker.confirmable() == BEFORE_BIG[-1].end_lsn


# -- the commit overlaps the next batch --------------------------------------------------------

def test_the_next_batch_streams_while_a_commit_runs_and_commits_after_it() -> None:
    sink = OverlappingSink()
    run = Run([], sink=sink)
    run.script([*FIRST.frames,  # its Commit: complete and staged; at the idle moment its commit starts
                IDLE, *SECOND.frames, *THIRD.frames,  # decoded and encoded meanwhile: held by the sink
                keepalive(THIRD.end_lsn + 50),
                sink.returns, IDLE,  # FIRST committed; SECOND and THIRD go into the next commit at once
                keepalive(THIRD.end_lsn + 50),
                sink.returns, IDLE, keepalive(THIRD.end_lsn + 50)])
    assert run.run() is None
    # Nothing confirmed while FIRST's commit ran (no idle advance either), then each commit's end.
    assert run.replies == [START, FIRST.end_lsn, THIRD.end_lsn + 50]
    first, second = sink.committed
    assert [offset_of(r).lsn for r in first if isinstance(r, OffsetRecord)] == [FIRST.end_lsn]
    assert [offset_of(r).lsn for r in second if isinstance(r, OffsetRecord)] == [THIRD.end_lsn]
    assert isinstance(first[-1], OffsetRecord) and isinstance(second[-1], OffsetRecord), "last in each"
    held = [r.lsn for r in second[:-1]]
    assert held and held == sorted(held) and min(held) > FIRST.end_lsn, "held in order behind the first commit"
    assert all(r.lsn < FIRST.end_lsn for r in first[:-1])
    assert sink.wake in run.stream.waited_on, "the idle wait also wakes when the running commit returns"


def test_a_returned_commit_lets_the_next_start_at_a_boundary_without_an_idle_socket() -> None:
    sink = OverlappingSink()
    run = Run([], sink=sink)
    run.script([*FIRST.frames, IDLE, *SECOND.frames[:-1], sink.returns, SECOND.frames[-1], *THIRD.frames[:1],
                keepalive(THIRD.end_lsn)])
    assert run.run() is None
    offsets = [offset_of(r).lsn for r in sink.offsets]
    # SECOND's commit started at its own Commit frame (FIRST's had returned), before THIRD began.
    assert offsets[:2] == [FIRST.end_lsn, SECOND.end_lsn]
    assert run.replies == [FIRST.end_lsn], "THIRD is open: nothing of it confirmed"


def test_a_failed_commit_never_commits_the_batch_behind_it() -> None:
    sink = OverlappingSink()
    run = Run([], sink=sink)
    run.script([*FIRST.frames, IDLE, *SECOND.frames, run.fail_next_commit(SinkUnavailable("broker gone")),
                sink.returns, IDLE, keepalive(SECOND.end_lsn)])
    error = run.run()
    assert isinstance(error, SinkUnavailable)
    assert not sink.committed and len(sink.aborted) == 1
    assert not sink.held and not sink.open, "SECOND's records were dropped unsent"
    assert max(run.stream.flushes, default=START) == START
    assert run.tracker.confirmable() == START


def test_shutdown_waits_for_the_running_commit_then_commits_the_rest() -> None:
    sink = OverlappingSink()
    run = Run([], sink=sink)
    run.script([*FIRST.frames, IDLE, *SECOND.frames[:-1], run.sigterm, SECOND.frames[-1]])
    assert run.run() is None
    assert [offset_of(r).lsn for r in sink.offsets] == [FIRST.end_lsn, SECOND.end_lsn]
    assert run.final_flush == SECOND.end_lsn
