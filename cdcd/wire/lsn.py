"""Log sequence numbers.

PostgreSQL prints an LSN as two hex halves (``16/3002D50``); the wire and
Debezium's ``source.lsn`` use the 64-bit integer. ``Lsn`` is an ``int`` so it
orders, hashes and serializes as one, and only parsing/printing is added.
"""

from __future__ import annotations

import re

_LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


class Lsn(int):
    """An immutable WAL position."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> Lsn:
        """Parse ``'16/3002D50'``; anything else raises ``ValueError`` (no silent invalid LSN)."""
        m = _LSN_RE.match(text.strip())
        if not m:
            raise ValueError(f"not a PostgreSQL LSN: {text!r} (expected the form 'XXXXXXXX/XXXXXXXX')")
        return cls((int(m.group(1), 16) << 32) | int(m.group(2), 16))

    def __new__(cls, value: int = 0) -> Lsn:
        if value < 0 or value > 0xFFFFFFFFFFFFFFFF:
            raise ValueError(f"LSN out of range: {value}")
        return super().__new__(cls, value)

    def __str__(self) -> str:
        return f"{self >> 32:X}/{self & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"Lsn('{self}')"


ZERO = Lsn(0)


def format_lsn(value: int) -> str:
    """Format a plain int as an LSN string without allocating an ``Lsn``."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
