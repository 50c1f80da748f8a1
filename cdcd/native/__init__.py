"""Which core encodes events: the compiled one (``cdcd.native._core``, Cython) or the pure-Python reference.

Both give byte-identical keys and values (tests/native/ proves it); the compiled
one only spends less CPU per event. It is used when it was built, unless
``CDCD_CORE=python`` asks for the reference; ``CDCD_CORE=compiled`` makes a
missing build an error instead of a silent fallback (CI uses both).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Final, Sequence

from cdcd.debezium.types import NATIVE_ATTR, identity
from cdcd.debezium.types.numeric import to_bool
from cdcd.debezium.types.registry import ColumnCodec
from cdcd.debezium.types.row import RowConverter
from cdcd.decode.messages import UNCHANGED_TOAST
from cdcd.errors import ConfigError

ENV: Final = "CDCD_CORE"

try:
    from cdcd.native import _core
except ImportError as exc:  # not built: no compiler or no Cython at install time
    _core = None  # type: ignore[assignment]
    _IMPORT_ERROR: str | None = str(exc)
else:
    _IMPORT_ERROR = None


def _choose(wanted: str) -> tuple[str, str | None]:
    """The core to run and, when ``CDCD_CORE`` cannot be honoured, why (``require`` raises it)."""
    if wanted not in ("", "compiled", "python"):
        return ("compiled" if _core is not None else "python"), f"{ENV}={wanted!r}: use compiled or python"
    if wanted == "python":
        return "python", None
    if _core is None:
        if wanted == "compiled":
            return "python", (f"{ENV}=compiled but the compiled core is not built ({_IMPORT_ERROR});"
                              " reinstall with Cython and a C compiler (pip install .)")
        return "python", None
    return "compiled", None


CORE, _PROBLEM = _choose(os.environ.get(ENV, "").strip().lower())
"""``CORE``: ``"compiled"`` or ``"python"``, what ``cdcd --version``, the start-up log and ``cdcd_build_info`` report."""


def require() -> None:
    """Raise ``ConfigError`` when ``CDCD_CORE`` asks for something this install cannot do."""
    if _PROBLEM is not None:
        raise ConfigError(_PROBLEM)


def describe() -> str:
    """One line for ``--version`` and logs: the core and, for python, why."""
    if CORE == "compiled":
        return "compiled core"
    if _core is None:
        return "python core (the compiled core is not built)"
    return f"python core ({ENV}=python)"


def native_kind(convert: Callable[[str], Any]) -> tuple[str, Any]:
    """The compiled converter that reproduces ``convert``, or ``("py", 0)``: call it from C."""
    if convert is identity:
        return "str", 0
    if convert is int:
        return "int", 0
    if convert is to_bool:
        return "bool", 0
    kind, param = getattr(convert, NATIVE_ATTR, ("py", 0))
    if kind == "array":
        element_kind, element_param = native_kind(param[0])
        if element_kind in ("py", "array"):
            return "py", 0
        return "array", (element_kind, element_param, bool(param[1]))  # type: ignore[return-value]
    return kind, param


_EXACT_KINDS: Final = frozenset({
    "str", "int", "bool", "decimal", "zoned", "date", "timestamp", "time", "interval", "bytea", "array",
    "decimal_text", "decimal_var",
})  # not "float": -0.0 == 0.0 although their JSON differs


def exact_key(columns: Sequence[tuple[ColumnCodec, int]]) -> bool:
    """Whether equal key JSON means equal key values for these columns, so a compiled key can be compared as bytes.

    A primary-key change is detected by comparing the old and new key; with
    floats (``-0.0 == 0.0``, NaN) or values a Python converter builds, bytes and
    values can disagree, so such keys stay on the python core.
    """
    return all(native_kind(codec.convert)[0] in _EXACT_KINDS for codec, _ in columns)


def row_image(columns: Sequence[tuple[ColumnCodec, int]], *, count_errors: bool = True,
              core: str | None = None) -> Any:
    """``row -> image``: a ``RowConverter`` (dict) on the python core, a compiled encoder (JSON bytes) otherwise.

    Either way ``orjson.dumps(image)`` / the bytes are the same; ``errors`` counts
    values that failed to convert.
    """
    if (core or CORE) == "python" or _core is None:
        return RowConverter(columns)
    spec = []
    known = _core.KINDS
    for codec, index in columns:
        kind, param = native_kind(codec.convert)
        if kind not in known or (kind == "array" and param[0] not in known):
            kind, param = "py", 0  # a build older than this checkout's converters: those columns run in Python
        spec.append((codec.name, index, kind, param, codec.convert, codec.null_value, codec.unavailable))
    return _core.RowEncoder(spec, UNCHANGED_TOAST, count_errors)


def value_frame(image: Any, value_head: bytes, source_block: Any, source_table: str) -> Any:
    """The compiled framing of a change event's value for an encoder whose images are compiled, else None.

    ``source_block`` is the connector's ``SourceBlock``, ``source_table`` its
    ``SourceBlock.table`` text; the frame returns None for what it leaves to Python.
    """
    if _core is None or not isinstance(image, _core.RowEncoder):
        return None
    head, db = source_block.fixed
    return _core.ValueFrame(value_head, head.encode(), db.encode(), source_table.encode())


def change_lane(topic: str, table: str, image: Any, key_image: Any, key_head: bytes | None, frame: Any,
                ncols: int, skipped: frozenset[str], tombstones: bool, key_positions: tuple[int, ...] = ()) -> Any:
    """A table's compiled ``Lane`` (see ``change_lanes``), or None where a part of it runs in Python.

    A key encoder that counts conversion errors (key columns outside the value)
    keeps the table on the general path: a lane encodes the key first to see
    whether it changed, which must have no side effect.
    """
    if _core is None or CORE == "python" or frame is None or not isinstance(image, _core.RowEncoder):
        return None
    if key_image is not None and (not isinstance(key_image, _core.RowEncoder) or key_head is None):
        return None
    try:
        return _core.Lane(topic, table, image, key_image, key_head, frame, ncols, skipped, tombstones, key_positions)
    except ValueError:
        return None


def change_lanes(record: type) -> Any:
    """The compiled ``ChangeLanes`` making ``record`` s, or None on the python core."""
    if _core is None or CORE == "python":
        return None
    return _core.ChangeLanes(record, UNCHANGED_TOAST)


def chunk_encoder(image: Any, key_image: Any, key_head: bytes | None, prefix: bytes, middle: bytes) -> Any:
    """The compiled GIL-free encoder of snapshot chunks (``_core.ChunkEncoder``), or None.

    None on the python core, without libpq's accessors, or when an image is
    not compiled (a key that stays on the python core, see ``exact_key``).
    """
    if _core is None or compiled_text_rows() is None or not isinstance(image, _core.RowEncoder):
        return None
    if key_head is not None and not isinstance(key_image, _core.RowEncoder):
        return None
    return _core.ChunkEncoder(image, key_image if key_head is not None else None, key_head, prefix, middle)


_text_rows: Callable[[int], Any] | None | bool = False  # False: not looked up yet


def _bind_libpq() -> bool:
    """Give the compiled core libpq's accessors from the one libpq loaded in this process (psycopg's).

    With no or several libpq libraries loaded it declines: a ``PGresult`` must
    only be read by the library that made it.
    """
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "/libpq" in line and ".so" in line}
    except OSError:
        return False
    if len(paths) != 1:
        return False
    try:
        lib = ctypes.CDLL(paths.pop(), mode=os.RTLD_NOLOAD | os.RTLD_NOW)
        address = [ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
                   for name in ("PQgetvalue", "PQgetlength", "PQgetisnull", "PQntuples", "PQnfields")]
        _core.bind_libpq(*address)
    except (OSError, AttributeError, ValueError):
        return False
    return True


def compiled_text_rows() -> Callable[[int], Any] | None:
    """The compiled reader of a snapshot ``PGresult`` (by its address), or None on the python core.

    Looked up on first use, once psycopg has loaded libpq.
    """
    global _text_rows
    if _text_rows is False:
        _text_rows = _core.text_rows if CORE == "compiled" and _core is not None and _bind_libpq() else None
    return _text_rows  # type: ignore[return-value]


def compiled_read_tuple() -> Callable[..., Any] | None:
    """The compiled TupleData reader, or None on the python core."""
    return None if CORE == "python" or _core is None else _core.read_tuple
