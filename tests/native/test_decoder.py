"""The compiled TupleData reader against the pure one: the recorded frames, and corrupted or truncated ones.

A corrupted frame must end in the same ``DecodeError`` (or the same message when
the damage happens to stay well-formed), never in a crash of the process.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdcd import native
from cdcd.decode import pgoutput
from cdcd.decode.pgoutput import PgOutputDecoder
from cdcd.errors import DecodeError
from tests.pgoutput_captures import records

pytestmark = pytest.mark.skipif(native._core is None, reason="the compiled core is not built (setup.py build_ext)")

CAPTURES = (("v1", 1), ("v2", 2), ("binary", 1))



def run(frames: list[bytes], version: int, compiled: bool, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Each frame's message, or its DecodeError text; the decoder goes on with the next frame."""
    monkeypatch.setattr(pgoutput, "_compiled_read_tuple", native._core.read_tuple if compiled else None)
    decoder = PgOutputDecoder(version)
    out: list[Any] = []
    for frame in frames:
        try:
            out.append(decoder.decode(frame))
        except DecodeError as exc:
            out.append(("DecodeError", str(exc)))
    return out


@pytest.mark.parametrize(("name", "version"), CAPTURES)
def test_recorded_frames_decode_the_same(name: str, version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = records(name)
    pure = run(frames, version, False, monkeypatch)
    compiled = run(frames, version, True, monkeypatch)
    assert compiled == pure
    assert not [m for m in pure if isinstance(m, tuple)]  # the captures themselves are well-formed
    assert any(type(m).__name__ in ("Insert", "Update", "Delete") for m in pure)


def _relations_and_changes(name: str) -> tuple[list[bytes], list[bytes]]:
    frames = records(name)
    return [f for f in frames if f[:1] in (b"R", b"Y")], [f for f in frames if f[:1] in (b"I", b"U", b"D")]


@st.composite
def damaged(draw: Any, changes: list[bytes]) -> bytes:
    frame = bytearray(draw(st.sampled_from(changes)))
    how = draw(st.sampled_from(["truncate", "flip", "extend", "length"]))
    if how == "truncate":
        return bytes(frame[: draw(st.integers(0, len(frame) - 1))])
    if how == "extend":
        return bytes(frame + draw(st.binary(min_size=1, max_size=8)))
    if how == "length":  # a column length field far beyond the frame, or negative as int32
        at = draw(st.integers(1, max(1, len(frame) - 4)))
        frame[at: at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x10\x00"]))
        return bytes(frame)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(frame) - 1))
        frame[at] = draw(st.integers(0, 255))
    return bytes(frame)


@pytest.mark.parametrize(("name", "version"), [("v1", 1), ("binary", 1)])
def test_damaged_frames_fail_the_same_way(name: str, version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    relations, changes = _relations_and_changes(name)

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(damaged(changes))
    def check(frame: bytes) -> None:
        pure = run(relations + [frame], version, False, monkeypatch)
        compiled = run(relations + [frame], version, True, monkeypatch)
        assert compiled == pure
    check()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.integers(-3, 70), st.integers(0, 40))
def test_read_tuple_never_overreads(buf: bytes, pos: int, ncols: int) -> None:
    """Arbitrary bytes and offsets: the pure reader's result, or None (or the same error) where the pure one fails."""
    from cdcd.decode.messages import UNCHANGED_TOAST

    try:
        expected: Any = pgoutput.read_tuple_values(buf, pos, ncols) if pos >= 0 else None
    except (DecodeError, IndexError, UnicodeDecodeError, struct.error) as exc:
        expected = type(exc)
    try:
        got: Any = native._core.read_tuple(buf, pos, ncols, UNCHANGED_TOAST)
    except UnicodeDecodeError:
        got = UnicodeDecodeError
    if got is None:
        assert expected is None or isinstance(expected, type)
    else:
        assert got == expected
