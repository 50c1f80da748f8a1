"""The compiled snapshot row reader against the pure one, on a real result set (every common type, NULL, unicode)."""

from __future__ import annotations

from typing import Any

import pytest

from cdcd import native
from cdcd.snapshot import _reader

pytestmark = [pytest.mark.pg, pytest.mark.skipif(native._core is None, reason="the compiled core is not built")]

QUERY = """
SELECT g, g::text || ' café ☃ "q" \\ ' || repeat('x', g % 7), CASE WHEN g % 3 = 0 THEN NULL ELSE g * 1.25 END,
       now()::timestamptz, '1 day 02:00:00'::interval, ARRAY[g, NULL, 3], decode(md5(g::text), 'hex'), ''::text,
       g % 2 = 0, (g / 7.0)::float8, '{"a": [1, null]}'::jsonb, 'NaN'::float8, '-infinity'::timestamp
FROM generate_series(1, 257) g
"""


def test_compiled_rows_equal_the_pure_rows(pg_db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = _reader.connect_text(pg_db.dsn)
    try:
        result = conn.execute(QUERY).pgresult
        compiled = native.compiled_text_rows()
        assert compiled is not None, "libpq could not be bound"
        fast = _reader.text_rows(result)
        monkeypatch.setattr(_reader, "compiled_text_rows", lambda: None)
        pure = _reader.text_rows(result)
        empty = conn.execute("SELECT 1 WHERE false").pgresult
        assert compiled(empty.pgresult_ptr) == [] == _reader.text_rows(empty)
    finally:
        conn.close()
    assert fast == pure
    assert len(fast) == 257 and fast[2][2] is None and fast[0][1].startswith("1 café ☃")
