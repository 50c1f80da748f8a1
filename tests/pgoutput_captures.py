"""The recorded pgoutput messages in ``tests/data/pgoutput/`` (``scripts/capture_pgoutput.py`` writes them)."""

from __future__ import annotations

import struct
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "pgoutput"


def records(name: str) -> list[bytes]:
    """Split a capture file into its length-prefixed pgoutput messages."""
    raw = (DATA / f"{name}.bin").read_bytes()
    out, pos = [], 0
    while pos < len(raw):
        (length,) = struct.unpack_from(">I", raw, pos)
        out.append(raw[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return out
