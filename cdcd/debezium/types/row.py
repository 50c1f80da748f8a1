"""Whole-row conversion: a pgoutput tuple to the ``{column: value}`` image of a struct.

The per-row function is generated once per table version as a single dict
display (no loop, no per-column dispatch): text values, the normal case, go
straight to their converter, or nowhere for identity converters; NULL,
unchanged TOAST and binary values take a small helper. A value that fails to
convert never stops the stream: the row is redone carefully, the bad value
becomes the column's NULL value and ``errors`` counts it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from cdcd.debezium.types._schema import Converter, identity
from cdcd.debezium.types.registry import ColumnCodec
from cdcd.decode.messages import UNCHANGED_TOAST, TupleData

_Column = tuple[str, int, Converter, Any, Any]


class RowConverter:
    """``row -> {name: value}`` for the given (codec, tuple index) pairs, in that order."""

    __slots__ = ("names", "errors", "_columns", "_image")

    def __init__(self, columns: Sequence[tuple[ColumnCodec, int]]) -> None:
        self._columns: tuple[_Column, ...] = tuple(
            (c.name, i, c.convert, c.null_value, c.unavailable) for c, i in columns
        )
        self.names = tuple(c.name for c, _ in columns)
        self.errors = 0
        self._image = _compile(self._columns)

    def __call__(self, row: TupleData) -> dict[str, Any]:
        try:
            return self._image(row)
        except Exception:  # noqa: BLE001 - a bad value must not stop the stream
            return self._carefully(row)

    def _carefully(self, row: TupleData) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, i, convert, null_value, unavailable in self._columns:
            v = row[i] if i < len(row) else None
            if v is None:
                out[name] = null_value
            elif v is UNCHANGED_TOAST:
                out[name] = unavailable
            else:
                try:
                    out[name] = convert(v if isinstance(v, str) else v.decode("utf-8"))  # type: ignore[union-attr]
                except Exception:  # noqa: BLE001
                    self.errors += 1
                    out[name] = null_value
        return out


def _compile(columns: tuple[_Column, ...]) -> Callable[[TupleData], dict[str, Any]]:
    env: dict[str, Any] = {}
    lines, items = [], []
    for k, (name, i, convert, null_value, unavailable) in enumerate(columns):
        env[f"c{k}"] = convert
        env[f"o{k}"] = _other(convert, null_value, unavailable)
        lines.append(f"    v{k} = row[{i}]")
        direct = f"v{k}" if convert is identity else f"c{k}(v{k})"
        items.append(f"{name!r}: {direct} if v{k}.__class__ is str else o{k}(v{k})")
    source = "def image(row):\n" + "".join(line + "\n" for line in lines) + "    return {" + ", ".join(items) + "}\n"
    exec(compile(source, "<cdcd row image>", "exec"), env)  # noqa: S102 - generated above from repr()s
    return env["image"]  # type: ignore[no-any-return]


def _other(convert: Converter, null_value: Any, unavailable: Any) -> Callable[[Any], Any]:
    def other(v: Any) -> Any:
        if v is None:
            return null_value
        if v is UNCHANGED_TOAST:
            return unavailable
        return convert(v.decode("utf-8"))  # a binary-format value: best effort as text
    return other
