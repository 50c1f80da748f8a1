"""When a session starts with the initial snapshot (snapshot.mode, the slot, what Kafka holds)."""

from __future__ import annotations

import pytest

from cdcd import config as config_mod
from cdcd.delivery.offsets import SourceOffset
from cdcd.snapshot.initial import snapshot_needed
from cdcd.wire.replication import SlotInfo

SLOT = SlotInfo("cdcd", "pgoutput", "shop", False, 0x1000, "reserved")
STORED = SourceOffset(0x2000, 7)
UNFINISHED = SourceOffset(0x2000, None, snapshot_completed=False)


def needed(mode: str, info: SlotInfo | None, stored: SourceOffset | None, *, seen: bool = False,
           sink: str = "kafka") -> bool:
    cfg = config_mod.load(env={}, overrides={"dsn": "host=x", "sink": sink, "snapshot_mode": mode})
    return snapshot_needed(cfg, info, stored, seen)


@pytest.mark.parametrize("mode", ["no_data", "never"])
def test_never_in_the_stream_only_modes(mode: str) -> None:
    assert not any(needed(mode, info, stored) for info in (None, SLOT) for stored in (None, STORED, UNFINISHED))


@pytest.mark.parametrize("mode", ["initial", "initial_only", "always", "when_needed"])
def test_an_unfinished_snapshot_is_taken_again(mode: str) -> None:
    assert needed(mode, SLOT, UNFINISHED) and needed(mode, None, UNFINISHED)


@pytest.mark.parametrize("mode", ["initial", "initial_only", "always"])
def test_a_new_slot_gets_a_snapshot_on_a_first_start_only(mode: str) -> None:
    assert needed(mode, None, None)
    assert not needed(mode, None, None, seen=True), "a slot this process used is gone: an error, not a snapshot"
    assert not needed(mode, None, STORED), "Kafka holds a position of a slot that is gone: an error"


def test_initial_takes_no_snapshot_for_an_existing_slot() -> None:
    assert not needed("initial", SLOT, None) and not needed("initial", SLOT, STORED)


def test_always_takes_one_at_every_start() -> None:
    assert needed("always", SLOT, STORED)


def test_when_needed_snapshots_whenever_the_position_is_missing() -> None:
    assert needed("when_needed", None, STORED), "the slot is gone: snapshot again"
    assert needed("when_needed", SLOT, None), "Kafka holds nothing"
    assert not needed("when_needed", SLOT, STORED)
    assert not needed("when_needed", SLOT, None, sink="stdout"), "stdout keeps no position to miss"
