from __future__ import annotations

import pytest

from cdcd.wire.lsn import Lsn, format_lsn


def test_parse_and_format_round_trip() -> None:
    lsn = Lsn.parse("16/3002D50")
    assert lsn == (0x16 << 32) | 0x3002D50
    assert str(lsn) == "16/3002D50"
    assert format_lsn(int(lsn)) == "16/3002D50"
    assert repr(Lsn(0)) == "Lsn('0/0')"


def test_orders_like_an_int() -> None:
    assert Lsn.parse("0/FF") < Lsn.parse("1/0")
    assert sorted([Lsn.parse("1/0"), Lsn.parse("0/1")]) == [1, 1 << 32]


@pytest.mark.parametrize("text", ["", "16", "16/", "x/1", "1/2/3", "123456789/0"])
def test_bad_input_raises(text: str) -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL LSN"):
        Lsn.parse(text)


def test_out_of_range() -> None:
    with pytest.raises(ValueError):
        Lsn(-1)
    with pytest.raises(ValueError):
        Lsn(1 << 64)
