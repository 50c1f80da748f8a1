from __future__ import annotations

import struct

import pytest

from cdcd.errors import DecodeError
from cdcd.wire.frames import (
    PG_EPOCH_OFFSET_US,
    Keepalive,
    XLogData,
    parse_copy_data,
    parse_standby_status_update,
    standby_status_update,
)


def test_xlogdata() -> None:
    buf = b"w" + struct.pack(">QQq", 0x100, 0x200, 5) + b"Bpayload"
    frame = parse_copy_data(buf)
    assert isinstance(frame, XLogData)
    assert (frame.wal_start, frame.wal_end) == (0x100, 0x200)
    assert frame.send_time_us == 5 + PG_EPOCH_OFFSET_US
    assert bytes(frame.payload) == b"Bpayload"


def test_keepalive() -> None:
    frame = parse_copy_data(b"k" + struct.pack(">Qq?", 0x300, 7, True))
    assert frame == Keepalive(0x300, 7 + PG_EPOCH_OFFSET_US, True)


def test_frames_from_a_view_are_not_copied() -> None:
    """The connection hands over libpq's buffer as a view; the payload is a view into it."""
    buf = bytearray(b"w" + struct.pack(">QQq", 0x100, 0x200, 5) + b"Bpayload")
    frame = parse_copy_data(memoryview(buf))
    assert isinstance(frame, XLogData) and frame.wal_end == 0x200
    buf[-1:] = b"!"
    assert bytes(frame.payload) == b"Bpayloa!"
    keepalive = parse_copy_data(memoryview(b"k" + struct.pack(">Qq?", 0x300, 7, False)))
    assert keepalive == Keepalive(0x300, 7 + PG_EPOCH_OFFSET_US, False)


@pytest.mark.parametrize("buf", [b"", b"k\x00", b"w" + b"\x00" * 10, b"z" + b"\x00" * 30])
def test_bad_frames(buf: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_copy_data(buf)
    with pytest.raises(DecodeError):
        parse_copy_data(memoryview(buf))


def test_standby_status_update_layout() -> None:
    msg = standby_status_update(10, 9, 9, now_us=PG_EPOCH_OFFSET_US + 42, reply=True)
    assert len(msg) == 34 and msg[:1] == b"r"
    assert parse_standby_status_update(msg) == (10, 9, 9, PG_EPOCH_OFFSET_US + 42, True)
