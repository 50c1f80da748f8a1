"""SlotKeeper against a scripted replication connection: owned by streaming, created once, never re-created."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cdcd import config as config_mod
from cdcd.delivery.offsets import SourceOffset
from cdcd.errors import SourceError
from cdcd.source.slot import RetriableErrorActiveSlot, SlotKeeper
from cdcd.wire.replication import ReplicationCommandError, SlotInfo

USABLE = SlotInfo("cdcd", "pgoutput", "shop", False, 0x5000, "reserved")


class Repl:
    def __init__(self, info: SlotInfo | None = None, start_error: Exception | None = None) -> None:
        self.info = info
        self.start_error = start_error
        self.started: list[tuple[str, int, list[str]]] = []
        self.created: list[str] = []

    def slot_info(self, slot: str) -> SlotInfo | None:
        return self.info

    def start(self, slot: str, start: int, publications: list[str]) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.started.append((slot, start, publications))

    def create_slot(self, slot: str, *, on_wait: Any = None) -> tuple[int, str | None]:
        self.created.append(slot)
        self.info = SlotInfo(slot, "pgoutput", "shop", False, 0x7000, "reserved")
        return 0x7000, None


def keeper(**overrides: Any) -> SlotKeeper:
    cfg = config_mod.load(env={}, overrides={"dsn": "host=x", "sink": "kafka", "topic_prefix": "shop",
                                             "slot_name": "cdcd", **overrides})
    return SlotKeeper(cfg, threading.Event())


def test_acquire_streams_from_a_usable_slot_at_the_later_of_both_positions() -> None:
    slots, repl = keeper(), Repl()
    assert slots.acquire(repl, USABLE, 0x4000) == 0x5000
    assert slots.acquire(repl, USABLE, 0x6000) == 0x6000
    assert repl.started == [("cdcd", 0x5000, ["cdcd"]), ("cdcd", 0x6000, ["cdcd"])]
    assert slots.seen


@pytest.mark.parametrize("info", [
    None,
    SlotInfo("cdcd", "test_decoding", "shop", False, 0x5000, "reserved"),
    SlotInfo("cdcd", "pgoutput", "shop", False, 0x5000, "lost"),
    SlotInfo("cdcd", "pgoutput", "shop", False, 0x5000, "reserved", invalidation="wal_removed"),
])
def test_acquire_leaves_missing_or_unusable_slots_to_open(info: SlotInfo | None) -> None:
    slots, repl = keeper(), Repl()
    assert slots.acquire(repl, info, 0) is None
    assert not repl.started and not slots.seen


def test_acquire_leaves_snapshot_mode_always_to_the_snapshot() -> None:
    assert keeper(snapshot_mode="always").acquire(Repl(), USABLE, 0) is None


def test_a_slot_active_elsewhere_is_retried_as_a_standby() -> None:
    error = ReplicationCommandError("START_REPLICATION", 'replication slot "cdcd" is active for PID 42', "55006")
    with pytest.raises(RetriableErrorActiveSlot):
        keeper().acquire(Repl(start_error=error), USABLE, 0)


def test_open_creates_a_missing_slot_on_a_first_start() -> None:
    slots, repl = keeper(), Repl()
    assert slots.open(repl, None, 0) == 0x7000
    assert repl.created == ["cdcd"] and slots.seen


def test_open_never_recreates_a_slot_kafka_holds_a_position_of() -> None:
    with pytest.raises(SourceError, match="does not exist, but Kafka holds events up to 0/2000") as info:
        keeper().open(Repl(), SourceOffset(0x2000, 1), 0)
    assert '{"server":"shop","slot":"cdcd"}' in str(info.value), "names the offsets key to delete"


def test_open_never_recreates_a_slot_this_process_used() -> None:
    slots, repl = keeper(), Repl()
    slots.seen = True
    with pytest.raises(SourceError, match="disappeared while cdcd was using it: the changes since 0/3000"):
        slots.open(repl, None, 0x3000)
    assert not repl.created


def test_open_refuses_another_plugin_and_an_invalidated_slot() -> None:
    with pytest.raises(SourceError, match="uses plugin 'wal2json'"):
        keeper().open(Repl(SlotInfo("cdcd", "wal2json", "shop", False, 1, "reserved")), None, 0)
    with pytest.raises(SourceError, match="invalidated"):
        keeper().open(Repl(SlotInfo("cdcd", "pgoutput", "shop", False, 1, "lost")), None, 0)


def test_open_returns_an_existing_slots_position() -> None:
    slots = keeper()
    assert slots.open(Repl(USABLE), SourceOffset(0x2000, 1), 0) == 0x5000
    assert slots.seen
