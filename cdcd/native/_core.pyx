# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled hot path: pgoutput TupleData -> Python values, a row image -> its JSON bytes.

Both functions mirror a pure-Python reference (``cdcd.decode.pgoutput._read_tuple``
and ``cdcd.debezium.types.row.RowConverter`` + ``orjson.dumps``) and must stay
byte-identical to it. Anything the fast paths do not recognise exactly is handed
to the column's Python converter, so a rare type or an odd value costs a call,
never a difference.

One module on purpose, however long: Cython inlines and type-checks ``cdef`` helpers
only within a module, and every fast path here (tuple reader, per-type writers, the
envelope framing) calls the same buffer and number helpers per column.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from cpython.tuple cimport PyTuple_New as PyTuple_New_
from cpython.ref cimport Py_INCREF
from libc.stdint cimport INT64_MAX, INT64_MIN, int32_t, int64_t, uint64_t, uint32_t, uint8_t
from libc.stdlib cimport malloc, realloc, free, strtod
from libc.stdio cimport snprintf
from libc.math cimport INFINITY, floor, frexp
from libc.string cimport memcmp, memcpy
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME

import orjson

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    bint PyUnicode_IS_ASCII(object s)
    Py_ssize_t PyUnicode_GET_LENGTH(object s)
    void PyTuple_SET_ITEM(object p, Py_ssize_t pos, object o)
    double PyOS_string_to_double(const char* s, char** endptr, void* overflow_exception) except? -1.0
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* ptype) except NULL
    void PyMem_Free(void* p)

cdef object _dumps = orjson.dumps

# Column kinds of the compiled plan (cdcd.native.plan assigns them).
cdef enum:
    K_PY = 0  # the column's Python converter, then orjson
    K_STR = 1  # identity: the text as a JSON string
    K_INT = 2  # int2/int4/int8/oid: the digits as they are
    K_BOOL = 3  # t/f
    K_DECIMAL = 4  # numeric(p,s), decimal.handling.mode=precise: base64 of the unscaled integer; param = scale
    K_ZONED = 5  # timestamptz -> ZonedTimestamp string; param = fraction width
    K_DATE = 6  # date -> epoch days
    K_TIMESTAMP = 7  # timestamp -> epoch µs // param
    K_TIME = 8  # time -> µs past midnight // param
    K_INTERVAL = 9  # interval, interval.handling.mode=numeric -> MicroDuration µs (Debezium's double arithmetic)
    K_BYTEA = 10  # bytea hex text -> param: 0 base64 (bytes mode and base64), 1 base64-url-safe, 2 hex
    K_ARRAY = 11  # a one-dimensional array of a native element kind
    K_DECIMAL_TEXT = 12  # numeric, decimal.handling.mode=string: the plain text; param = scale, or -1 unconstrained
    K_DECIMAL_VAR = 13  # unconstrained numeric, precise: VariableScaleDecimal {"scale":..,"value":base64}
    K_FLOAT = 14  # float4/float8 -> a double written as orjson writes it (shortest round-trip digits)
    K_DATE_SNAPSHOT = 15  # date read by a snapshot (javasql.date_days): epoch days from param (the cutover) on
    K_FLOAT4 = 16  # float4 -> the number Java 17's Float.toString spells (numeric.float4_value), as orjson writes it
    K_TIMETZ = 17  # timetz -> ZonedTime string at UTC (temporal.zoned_time)

KINDS = {"py": K_PY, "str": K_STR, "int": K_INT, "bool": K_BOOL, "decimal": K_DECIMAL, "zoned": K_ZONED,
         "date": K_DATE, "timestamp": K_TIMESTAMP, "time": K_TIME, "interval": K_INTERVAL,
         "bytea": K_BYTEA, "array": K_ARRAY, "decimal_text": K_DECIMAL_TEXT, "decimal_var": K_DECIMAL_VAR,
         "float": K_FLOAT, "date_snapshot": K_DATE_SNAPSHOT, "float4": K_FLOAT4,
         "timetz": K_TIMETZ}


cdef int64_t US_PER_DAY = 86400000000


# --- output buffer ---------------------------------------------------------------

cdef struct Buf:
    char* data
    Py_ssize_t len
    Py_ssize_t cap


cdef int buf_reserve(Buf* b, Py_ssize_t extra) except -1 nogil:
    cdef Py_ssize_t need = b.len + extra
    cdef Py_ssize_t cap
    cdef char* data
    if need <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 256
    while cap < need:
        cap *= 2
    data = <char*>realloc(b.data, cap)
    if data == NULL:
        with gil:
            raise MemoryError()
    b.data = data
    b.cap = cap
    return 0


cdef inline int buf_put(Buf* b, const char* s, Py_ssize_t n) except -1 nogil:
    if b.len + n > b.cap:
        buf_reserve(b, n)
    memcpy(b.data + b.len, s, n)
    b.len += n
    return 0


cdef inline int buf_byte(Buf* b, char c) except -1 nogil:
    if b.len + 1 > b.cap:
        buf_reserve(b, 1)
    b.data[b.len] = c
    b.len += 1
    return 0


cdef inline int buf_bytes(Buf* b, bytes s) except -1:
    return buf_put(b, PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))


cdef int buf_int(Buf* b, int64_t v) except -1 nogil:
    cdef char tmp[24]
    cdef int i = 24
    cdef uint64_t u = <uint64_t>(-v) if v < 0 else <uint64_t>v
    while True:
        i -= 1
        tmp[i] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    if v < 0:
        i -= 1
        tmp[i] = b'-'
    return buf_put(b, tmp + i, 24 - i)


cdef const char* HEX = b"0123456789abcdef"


cdef int buf_json_string(Buf* b, const char* s, Py_ssize_t n) except -1 nogil:
    """A JSON string exactly as orjson escapes it (short escapes for \\b \\t \\n \\f \\r, else \\u00xx)."""
    cdef Py_ssize_t i, start = 0
    cdef unsigned char c
    buf_reserve(b, n + 2)
    buf_byte(b, b'"')
    for i in range(n):
        c = <unsigned char>s[i]
        if c >= 0x20 and c != 34 and c != 92:
            continue
        if i > start:
            buf_put(b, s + start, i - start)
        start = i + 1
        if c == 34:
            buf_put(b, b'\\"', 2)
        elif c == 92:
            buf_put(b, b'\\\\', 2)
        elif c == 8:
            buf_put(b, b'\\b', 2)
        elif c == 9:
            buf_put(b, b'\\t', 2)
        elif c == 10:
            buf_put(b, b'\\n', 2)
        elif c == 12:
            buf_put(b, b'\\f', 2)
        elif c == 13:
            buf_put(b, b'\\r', 2)
        else:
            buf_put(b, b'\\u00', 4)
            buf_byte(b, HEX[c >> 4])
            buf_byte(b, HEX[c & 15])
    if n > start:
        buf_put(b, s + start, n - start)
    buf_byte(b, b'"')
    return 0


cdef const char* B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
cdef const char* B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


cdef int buf_base64_string(Buf* b, const unsigned char* d, Py_ssize_t n, const char* B64=B64) except -1 nogil:
    cdef Py_ssize_t i = 0
    cdef uint32_t v
    buf_reserve(b, (n + 2) // 3 * 4 + 2)
    buf_byte(b, b'"')
    while i + 3 <= n:
        v = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2]
        buf_byte(b, B64[(v >> 18) & 63]); buf_byte(b, B64[(v >> 12) & 63])
        buf_byte(b, B64[(v >> 6) & 63]); buf_byte(b, B64[v & 63])
        i += 3
    if n - i == 1:
        v = d[i] << 16
        buf_byte(b, B64[(v >> 18) & 63]); buf_byte(b, B64[(v >> 12) & 63]); buf_put(b, b"==", 2)
    elif n - i == 2:
        v = (d[i] << 16) | (d[i + 1] << 8)
        buf_byte(b, B64[(v >> 18) & 63]); buf_byte(b, B64[(v >> 12) & 63]); buf_byte(b, B64[(v >> 6) & 63])
        buf_byte(b, b'=')
    buf_byte(b, b'"')
    return 0


# --- native converters: return 1 when written, 0 to hand the value to Python ---------

cdef inline bint is_digit(char c) noexcept nogil:
    return 48 <= c <= 57


cdef inline int64_t floordiv(int64_t a, int64_t b) noexcept nogil:
    cdef int64_t q = a // b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


cdef int write_int(Buf* b, const char* s, Py_ssize_t n) except -1 nogil:
    """Only the canonical form (optional '-', no leading zero) is copied; int() decides the rest."""
    cdef Py_ssize_t i = 0
    if n > 0 and s[0] == b'-':
        i = 1
    if i >= n or n - i > 19 or (s[i] == b'0' and n - i > 1) or (i == 1 and s[1] == b'0'):
        return 0
    for j in range(i, n):
        if not is_digit(s[j]):
            return 0
    buf_put(b, s, n)
    return 1


cdef int parse_plain_decimal(const char* s, Py_ssize_t n, int64_t* value, Py_ssize_t* frac_digits,
                             Py_ssize_t* trailing_zeros) noexcept nogil:
    """``-?\\d+(\\.\\d+)?`` with at most 18 digits and no superfluous leading zero; 0 otherwise."""
    cdef Py_ssize_t i = 0, digits = 0, frac = -1, zeros = 0
    cdef int64_t v = 0
    cdef bint neg = False
    if n > 0 and s[0] == b'-':
        neg = True
        i = 1
    if i >= n or not is_digit(s[i]) or (s[i] == b'0' and i + 1 < n and s[i + 1] != b'.'):
        return 0
    while i < n:
        if is_digit(s[i]):
            v = v * 10 + (s[i] - 48)
            digits += 1
            if frac >= 0:
                frac += 1
                zeros = zeros + 1 if s[i] == b'0' else 0
            if digits > 18:
                return 0
        elif s[i] == b'.' and frac < 0 and i + 1 < n:
            frac = 0
        else:
            return 0
        i += 1
    value[0] = -v if neg else v
    frac_digits[0] = frac if frac > 0 else 0
    trailing_zeros[0] = zeros
    return 1


cdef int buf_unscaled(Buf* b, int64_t v) except -1 nogil:
    """``BigInteger.toByteArray()`` of ``v`` (minimal two's complement, big-endian) as a base64 JSON string."""
    cdef unsigned char out[9]
    cdef int length, k
    cdef uint64_t u, probe
    probe = <uint64_t>(-(v + 1)) if v < 0 else <uint64_t>v
    length = 1
    while probe >= (<uint64_t>1 << (8 * length - 1)) and length < 8:
        length += 1
    u = <uint64_t>v
    for k in range(length):
        out[length - 1 - k] = <unsigned char>(u & 0xff)
        u >>= 8
    buf_base64_string(b, out, length)
    return 1


cdef int write_decimal_text(Buf* b, const char* s, Py_ssize_t n, int scale) except -1 nogil:
    """String mode: the text itself when it is already what ``format(Decimal(text).quantize(..), "f")`` gives."""
    cdef int64_t v
    cdef Py_ssize_t frac, zeros
    if not parse_plain_decimal(s, n, &v, &frac, &zeros):
        return 0
    if scale >= 0 and frac != scale:
        return 0
    buf_json_string(b, s, n)
    return 1


cdef int write_decimal_var(Buf* b, const char* s, Py_ssize_t n) except -1 nogil:
    """``numeric._variable_scale``: trailing fraction zeros stripped, scale 0 for zero."""
    cdef int64_t v, p = 1
    cdef Py_ssize_t frac, zeros, k
    if not parse_plain_decimal(s, n, &v, &frac, &zeros):
        return 0
    for k in range(zeros):
        p *= 10
    v = v // p  # exact: the stripped digits are zeros
    frac -= zeros
    buf_put(b, b'{"scale":', 9)
    buf_int(b, frac if v != 0 else 0)
    buf_put(b, b',"value":', 9)
    buf_unscaled(b, v)
    buf_byte(b, b'}')
    return 1


cdef int write_decimal(Buf* b, const char* s, Py_ssize_t n, int scale) except -1 nogil:
    """numeric(p,s) text with exactly ``scale`` fraction digits and at most 18 digits in all."""
    cdef Py_ssize_t i = 0, digits = 0, frac = -1
    cdef int64_t v = 0
    cdef bint neg = False
    if n > 0 and s[0] == b'-':
        neg = True
        i = 1
    if i >= n or not is_digit(s[i]):
        return 0
    while i < n:
        if is_digit(s[i]):
            v = v * 10 + (s[i] - 48)
            digits += 1
            if frac >= 0:
                frac += 1
            if digits > 18:
                return 0
        elif s[i] == b'.' and frac < 0 and i + 1 < n:
            frac = 0
        else:
            return 0
        i += 1
    if frac < 0:
        frac = 0
    if frac != scale:
        return 0
    if neg:
        v = -v
    return buf_unscaled(b, v)


cdef int write_zoned(Buf* b, const char* s, Py_ssize_t n, int width) except -1 nogil:
    """The UTC fast path of ``temporal.timestamptz``: rearrange ``YYYY-MM-DD HH:MM:SS[.f]+00``."""
    cdef char tmp[64]
    cdef Py_ssize_t t = 0, k, fn
    if n < 22 or n > 40 or s[n - 3] != b'+' or s[n - 2] != b'0' or s[n - 1] != b'0' or s[4] != b'-' or s[10] != b' ':
        return 0
    memcpy(tmp, s, 10)
    tmp[10] = b'T'
    t = 11
    if width:
        memcpy(tmp + t, s + 11, 8)
        t += 8
        tmp[t] = b'.'
        t += 1
        fn = (n - 3 - 20) if s[19] == b'.' else 0
        if fn < 0:
            fn = 0
        for k in range(width):
            tmp[t] = s[20 + k] if k < fn else b'0'
            t += 1
    else:
        memcpy(tmp + t, s + 11, n - 3 - 11)
        t += n - 3 - 11
    tmp[t] = b'Z'
    t += 1
    buf_json_string(b, tmp, t)
    return 1


cdef inline int two(const char* s, int* out) noexcept nogil:
    if not (is_digit(s[0]) and is_digit(s[1])):
        return 0
    out[0] = (s[0] - 48) * 10 + (s[1] - 48)
    return 1


cdef int64_t days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    y -= (m <= 2)
    cdef int64_t era = floordiv(y, 400)
    cdef int64_t yoe = y - era * 400
    cdef int64_t doy = floordiv(153 * (m + (-3 if m > 2 else 9)) + 2, 5) + d - 1
    return era * 146097 + yoe * 365 + floordiv(yoe, 4) - floordiv(yoe, 100) + doy - 719468


cdef int parse_date(const char* s, Py_ssize_t n, int64_t* days) noexcept nogil:
    """Exactly ``YYYY-MM-DD`` (no era, no infinity: those go to Python)."""
    cdef int y1, y2, mo, d
    if n != 10 or s[4] != b'-' or s[7] != b'-':
        return 0
    if not (two(s, &y1) and two(s + 2, &y2) and two(s + 5, &mo) and two(s + 8, &d)):
        return 0
    days[0] = days_from_civil(y1 * 100 + y2, mo, d)
    return 1


cdef int parse_clock(const char* s, Py_ssize_t n, int64_t* us) noexcept nogil:
    """Exactly ``HH:MM:SS`` with an optional 1-9 digit fraction."""
    cdef int hh, mi, ss
    cdef int64_t frac = 0
    cdef Py_ssize_t k
    if n < 8 or s[2] != b':' or s[5] != b':':
        return 0
    if not (two(s, &hh) and two(s + 3, &mi) and two(s + 6, &ss)):
        return 0
    if n > 8:
        if s[8] != b'.' or n == 9 or n > 18:
            return 0
        for k in range(9, n):
            if not is_digit(s[k]):
                return 0
        for k in range(9, 15):
            frac = frac * 10 + ((s[k] - 48) if k < n else 0)
    us[0] = (hh * 3600 + mi * 60 + ss) * <int64_t>1000000 + frac
    return 1


cdef int write_date(Buf* b, const char* s, Py_ssize_t n) except -1 nogil:
    cdef int64_t days
    if not parse_date(s, n, &days):
        return 0
    buf_int(b, days)
    return 1


cdef int write_date_from(Buf* b, const char* s, Py_ssize_t n, int64_t first) except -1 nogil:
    """A Gregorian date on or after day ``first`` (``java.sql.Date`` agrees there); 0 for the rest."""
    cdef int64_t days
    if not parse_date(s, n, &days) or days < first:
        return 0
    buf_int(b, days)
    return 1


cdef int write_timestamp(Buf* b, const char* s, Py_ssize_t n, int64_t divisor) except -1 nogil:
    cdef int64_t days, us
    if n < 19 or s[10] != b' ' or not parse_date(s, 10, &days) or not parse_clock(s + 11, n - 11, &us):
        return 0
    buf_int(b, floordiv(days * 86400 * <int64_t>1000000 + us, divisor))
    return 1


cdef int write_time(Buf* b, const char* s, Py_ssize_t n, int64_t divisor) except -1 nogil:
    cdef int64_t us
    if not parse_clock(s, n, &us):
        return 0
    buf_int(b, us // divisor)
    return 1


cdef int write_timetz(Buf* b, const char* s, Py_ssize_t n) except -1 nogil:
    """``temporal.zoned_time`` for ``HH:MM:SS[.f]±HH[:MM[:SS]]``: shifted to UTC, ``HH:MM:SS[.f]Z``.

    The fraction keeps six digits at most and loses its trailing zeros, as Java's
    ``ISO_OFFSET_TIME`` prints it; other spellings go to Python.
    """
    cdef Py_ssize_t p = n - 1, rest, t
    cdef int oh, om = 0, osec = 0, k
    cdef int64_t local, offset, v, secs, us
    cdef char tmp[24]
    while p > 0 and s[p] != b'+' and s[p] != b'-':
        p -= 1
    if p < 8 or not parse_clock(s, p, &local):
        return 0
    rest = n - p - 1
    if not (rest == 2 or rest == 5 or rest == 8) or not two(s + p + 1, &oh):
        return 0
    if rest >= 5 and (s[p + 3] != b':' or not two(s + p + 4, &om)):
        return 0
    if rest == 8 and (s[p + 6] != b':' or not two(s + p + 7, &osec)):
        return 0
    offset = (oh * 3600 + om * 60 + osec) * <int64_t>1000000
    if s[p] == b'-':
        offset = -offset
    v = (local - offset) % US_PER_DAY
    if v < 0:
        v += US_PER_DAY
    secs = v // 1000000
    us = v % 1000000
    tmp[0] = <char>(48 + secs // 36000)
    tmp[1] = <char>(48 + secs // 3600 % 10)
    tmp[2] = b':'
    tmp[3] = <char>(48 + secs // 600 % 6)
    tmp[4] = <char>(48 + secs // 60 % 10)
    tmp[5] = b':'
    tmp[6] = <char>(48 + secs % 60 // 10)
    tmp[7] = <char>(48 + secs % 10)
    t = 8
    if us:
        tmp[t] = b'.'
        t += 1
        for k in range(6):
            tmp[t + 5 - k] = <char>(48 + us % 10)
            us //= 10
        t += 6
        while tmp[t - 1] == b'0':
            t -= 1
    tmp[t] = b'Z'
    buf_json_string(b, tmp, t + 1)
    return 1


cdef int read_number(const char* s, Py_ssize_t n, Py_ssize_t* pos, bint sign_ok, int64_t* out) noexcept nogil:
    """``[+-]?\\d+`` at ``pos`` (at most 15 digits, so doubles hold it exactly); 0 if absent."""
    cdef Py_ssize_t i = pos[0], start
    cdef bint neg = False
    cdef int64_t v = 0
    if sign_ok and i < n and (s[i] == b'+' or s[i] == b'-'):
        neg = s[i] == b'-'
        i += 1
    start = i
    while i < n and is_digit(s[i]):
        v = v * 10 + (s[i] - 48)
        i += 1
        if i - start > 15:
            return 0
    if i == start:
        return 0
    out[0] = -v if neg else v
    pos[0] = i
    return 1


cdef int read_unit(const char* s, Py_ssize_t n, Py_ssize_t* pos, const char* unit, Py_ssize_t ulen) noexcept nogil:
    """`` <unit>s? ?`` (the regex of ``temporal._INTERVAL``)."""
    cdef Py_ssize_t i = pos[0]
    if i + 1 + ulen > n or s[i] != b' ' or memcmp(s + i + 1, unit, ulen) != 0:
        return 0
    i += 1 + ulen
    if i < n and s[i] == b's':
        i += 1
    if i < n and s[i] == b' ':
        i += 1
    pos[0] = i
    return 1


cdef int write_interval(Buf* b, const char* s, Py_ssize_t n) except -1 nogil:
    """IntervalStyle ``postgres`` (``1 year 2 mons -3 days +04:05:06.5``) to ``temporal.interval_micros``."""
    cdef Py_ssize_t pos = 0, save, k, fstart
    cdef int64_t v, years = 0, months = 0, days = 0, hours = 0, minutes = 0, secs = 0, micros = 0, neg = 1
    cdef int mi, ss
    cdef double number_of_days, number_of_seconds, seconds, d
    if n == 0 or s[0] == b' ' or s[n - 1] == b' ':
        return 0
    save = pos
    if read_number(s, n, &pos, True, &v) and read_unit(s, n, &pos, b"year", 4):
        years = v
    else:
        pos = save
    save = pos
    if read_number(s, n, &pos, True, &v) and read_unit(s, n, &pos, b"mon", 3):
        months = v
    else:
        pos = save
    save = pos
    if read_number(s, n, &pos, True, &v) and read_unit(s, n, &pos, b"day", 3):
        days = v
    else:
        pos = save
    if pos < n:
        if s[pos] == b'+' or s[pos] == b'-':
            neg = -1 if s[pos] == b'-' else 1
            pos += 1
        if not read_number(s, n, &pos, False, &hours):
            return 0
        if pos + 6 > n or s[pos] != b':' or s[pos + 3] != b':':
            return 0
        if not (two(s + pos + 1, &mi) and two(s + pos + 4, &ss)):
            return 0
        minutes, secs = mi, ss
        pos += 6
        if pos < n:
            if s[pos] != b'.' or pos + 1 >= n or n - pos - 1 > 6:
                return 0
            fstart = pos + 1
            for k in range(fstart, fstart + 6):
                if k < n:
                    if not is_digit(s[k]):
                        return 0
                    micros = micros * 10 + (s[k] - 48)
                else:
                    micros *= 10
            pos = n
    if pos != n:
        return 0
    hours *= neg
    minutes *= neg
    secs *= neg
    micros *= neg
    # temporal.interval_micros, operation for operation (IEEE doubles, no contraction)
    seconds = <double>secs + <double>micros / 1e6
    number_of_days = <double>(years * 12 + months) * (365.25 / 12.0) + <double>days
    number_of_seconds = ((number_of_days * 24 + <double>hours) * 60 + <double>minutes) * 60 + seconds
    d = number_of_seconds * 1e6
    if d != d:
        buf_int(b, 0)
    elif d >= 9.223372036854775807e18:
        buf_int(b, INT64_MAX)
    elif d <= -9.223372036854775808e18:
        buf_int(b, INT64_MIN)
    else:
        buf_int(b, <int64_t>d)
    return 1


cdef inline int hexval(char c) noexcept nogil:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef int write_bytea(Buf* b, const char* s, Py_ssize_t n, int mode) except -1 nogil:
    """``\\x0a0b`` (bytea_output hex) in ``binary.handling.mode``; the escape format goes to Python."""
    cdef Py_ssize_t m, k
    cdef int hi, lo
    cdef unsigned char* raw
    if n < 2 or s[0] != 92 or s[1] != b'x' or (n - 2) % 2:
        return 0
    m = (n - 2) // 2
    raw = <unsigned char*>malloc(m + 1)
    if raw == NULL:
        with gil:
            raise MemoryError()
    try:
        for k in range(m):
            hi = hexval(s[2 + 2 * k])
            lo = hexval(s[3 + 2 * k])
            if hi < 0 or lo < 0:
                return 0
            raw[k] = <unsigned char>((hi << 4) | lo)
        if mode == 2:
            buf_reserve(b, 2 * m + 2)
            buf_byte(b, b'"')
            for k in range(m):
                buf_byte(b, HEX[raw[k] >> 4])
                buf_byte(b, HEX[raw[k] & 15])
            buf_byte(b, b'"')
        else:
            buf_base64_string(b, raw, m, B64URL if mode == 1 else B64)
    finally:
        free(raw)
    return 1


cdef int write_scalar(Buf* b, int kind, int64_t param, const char* s, Py_ssize_t n) except -1 nogil:
    """One value of a native ``kind`` (ASCII-only kinds must be checked by the caller); 0: not handled."""
    if kind == K_STR:
        buf_json_string(b, s, n)
        return 1
    if kind == K_INT:
        return write_int(b, s, n)
    if kind == K_BOOL:
        if n == 1 and s[0] == b't':
            buf_put(b, b"true", 4)
            return 1
        if n == 1 and s[0] == b'f':
            buf_put(b, b"false", 5)
            return 1
        return 0
    if kind == K_DECIMAL:
        return write_decimal(b, s, n, <int>param)
    if kind == K_ZONED:
        return write_zoned(b, s, n, <int>param)
    if kind == K_DATE:
        return write_date(b, s, n)
    if kind == K_TIMESTAMP:
        return write_timestamp(b, s, n, param)
    if kind == K_TIME:
        return write_time(b, s, n, param)
    if kind == K_INTERVAL:
        return write_interval(b, s, n)
    if kind == K_BYTEA:
        return write_bytea(b, s, n, <int>param)
    if kind == K_DECIMAL_TEXT:
        return write_decimal_text(b, s, n, <int>param)
    if kind == K_DECIMAL_VAR:
        return write_decimal_var(b, s, n)
    if kind == K_FLOAT:
        return write_float_short(b, s, n)
    if kind == K_FLOAT4:
        return write_float4(b, s, n)
    if kind == K_TIMETZ:
        return write_timetz(b, s, n)
    if kind == K_DATE_SNAPSHOT:
        return write_date_from(b, s, n, param)
    return 0


cdef int write_array(Buf* b, Buf* tmp, const char* s, Py_ssize_t n, int ekind, int64_t eparam,
                     bint required) except -1 nogil:
    """``{1,2,NULL}`` / ``{"a b","c\\"d"}`` as ``arrays.parse_array`` and ``array_of`` read them; 0: not handled.

    Multi-dimensional arrays, explicit bounds, empty or trailing elements and
    anything unusual go to Python.
    """
    cdef Py_ssize_t save = b.len, i, j, blen
    cdef const char* body
    cdef const char* e
    cdef Py_ssize_t elen
    cdef bint quoted
    if n < 2 or s[0] != b'{' or s[n - 1] != b'}':
        return 0
    body = s + 1
    blen = n - 2
    if blen == 0:
        buf_put(b, b"[]", 2)
        return 1
    if body[0] == b'{' or body[blen - 1] == b',':
        return 0
    buf_byte(b, b'[')
    i = 0
    while i < blen:
        if i > 0:
            buf_byte(b, b',')
        quoted = body[i] == b'"'
        if quoted:
            tmp.len = 0
            j = i + 1
            while j < blen and body[j] != b'"':
                if body[j] == 92:
                    j += 1
                    if j >= blen:
                        break
                buf_byte(tmp, body[j])
                j += 1
            if j >= blen or (j + 1 < blen and body[j + 1] != b','):
                b.len = save
                return 0
            e, elen = tmp.data, tmp.len
            j += 1
        else:
            j = i
            while j < blen and body[j] != b',':
                j += 1
            e, elen = body + i, j - i
        if not quoted and elen == 4 and memcmp(e, b"NULL", 4) == 0:
            if required:
                b.len = save
                buf_put(b, b"null", 4)
                return 1
            buf_put(b, b"null", 4)
        elif elen == 0 and not quoted:
            b.len = save
            return 0
        elif not write_scalar(b, ekind, eparam, e, elen):
            b.len = save
            return 0
        i = j + 1
    buf_byte(b, b']')
    return 1


cdef bint float_chars(const char* s, Py_ssize_t n) noexcept nogil:
    """At most 40 characters of ``-?\\d[\\d.eE+-]*``: a text ``strtod`` may read whole (NaN, infinities out)."""
    cdef Py_ssize_t i = 0
    if n == 0 or n > 40:
        return False
    if s[0] == b'-':
        i = 1
    if i >= n or not is_digit(s[i]):
        return False
    while i < n and (is_digit(s[i]) or s[i] == b'.' or s[i] == b'e' or s[i] == b'E' or s[i] == b'+' or s[i] == b'-'):
        i += 1
    return i == n


cdef int write_float(Buf* b, const char* s, Py_ssize_t n) except -1:
    """``numeric.to_float`` then orjson: ``-?d+[.d+][e[+-]d+]`` only (NaN and infinities go to Python).

    The digits are the shortest that round-trip (Python's ``repr``, David Gay's
    algorithm), which are Ryu's too; the layout is orjson's (``buf_float_digits``).
    Needs the GIL (``PyOS_*``); ``write_float_short`` is the GIL-free subset.
    """
    cdef Py_ssize_t j, dot_at = -1
    cdef char* end
    cdef char* r
    cdef double d
    cdef char digits[32]
    cdef int exp10 = 0, ndig
    cdef bint neg, eneg
    if not float_chars(s, n):
        return 0
    try:
        d = PyOS_string_to_double(s, &end, NULL)
    except ValueError:
        return 0
    if end != s + n or d != d or d == INFINITY or d == -INFINITY:
        return 0
    r = PyOS_double_to_string(d, b'r', 0, 0, NULL)
    try:
        # r is like -1.2345e+16, 0.001, 123.0, 5e-324: collect significant digits and the exponent
        j = 0
        neg = r[0] == b'-'
        if neg:
            j = 1
        ndig = 0
        while r[j] != 0 and r[j] != b'e':
            if r[j] == b'.':
                dot_at = ndig
            else:
                if ndig >= 30:
                    return 0
                digits[ndig] = r[j]
                ndig += 1
            j += 1
        if dot_at < 0:
            dot_at = ndig
        if r[j] == b'e':
            j += 1
            eneg = r[j] == b'-'
            if r[j] == b'-' or r[j] == b'+':
                j += 1
            while r[j] != 0:
                exp10 = exp10 * 10 + (r[j] - 48)
                j += 1
            if eneg:
                exp10 = -exp10
    finally:
        PyMem_Free(r)
    return buf_float_digits(b, neg, digits, ndig, dot_at, exp10)


cdef int write_float_short(Buf* b, const char* s, Py_ssize_t n) except -1 nogil:
    """``write_float`` without the GIL, for texts of at most 15 significant digits in the normal range.

    Such a decimal round-trips through a double (DBL_DIG), and no other
    decimal of at most 15 digits maps to the same double, so its own digits
    are the shortest round-trip ones ``repr`` gives. PostgreSQL's float4 and
    most float8 texts are of that kind; the rest is left to ``write_float``.
    """
    cdef Py_ssize_t i = 0, k
    cdef char digits[32]
    cdef int ndig = 0, dot_at = -1, exp10 = 0, e = 0
    cdef bint neg = False, eneg = False, seen = False
    if n == 0 or n > 40:
        return 0
    if s[0] == b'-':
        neg = True
        i = 1
    if i >= n or not is_digit(s[i]):
        return 0
    while i < n and is_digit(s[i]):  # integer part
        if ndig >= 30:
            return 0
        digits[ndig] = s[i]
        ndig += 1
        i += 1
    dot_at = ndig
    if i < n and s[i] == b'.':
        i += 1
        if i >= n or not is_digit(s[i]):
            return 0
        while i < n and is_digit(s[i]):
            if ndig >= 30:
                return 0
            digits[ndig] = s[i]
            ndig += 1
            i += 1
    if i < n and (s[i] == b'e' or s[i] == b'E'):
        i += 1
        if i < n and (s[i] == b'+' or s[i] == b'-'):
            eneg = s[i] == b'-'
            i += 1
        if i >= n or not is_digit(s[i]):
            return 0
        while i < n and is_digit(s[i]):
            if e > 10000:
                return 0
            e = e * 10 + (s[i] - 48)
            i += 1
        exp10 = -e if eneg else e
    if i != n:
        return 0
    # significant digits: without leading and trailing zeros
    k = 0
    while k < ndig and digits[k] == b'0':
        k += 1
    if k == ndig:
        return buf_float_digits(b, neg, digits, 1, 1, 0)  # zero (digits[0] is '0')
    e = ndig - 1
    while digits[e] == b'0':
        e -= 1
    if e - k + 1 > 15 or dot_at - k + exp10 > 300 or dot_at - k + exp10 < -300:
        return write_float_long(b, s, n)
    return buf_float_digits(b, neg, digits, ndig, dot_at, exp10)


# Java 17's Float.toString (cdcd.debezium.types.java_float): the free-format digits of
# FloatingDecimal.dtoa in its int and long arithmetic, overflows included. Values whose
# digits need Java's big integers are left to Python.

cdef uint64_t[28] POW5_U64
cdef int[28] POW5_BITS
cdef int _k
POW5_U64[0] = 1
POW5_BITS[0] = 0
for _k in range(1, 28):
    POW5_U64[_k] = POW5_U64[_k - 1] * 5
    POW5_BITS[_k] = int(POW5_U64[_k]).bit_length()


cdef inline int n5_bits(int i) noexcept nogil:
    return POW5_BITS[i] if i < 27 else i * 3


cdef inline int64_t wrap(int64_t v, int width) noexcept nogil:
    """``v`` as Java's ``int`` (width 32) or ``long`` (64) holds it."""
    if width == 32:
        return <int64_t>(<int32_t>(<uint32_t>(<uint64_t>v)))
    return v


cdef int java_float_digits(int bin_exp, uint64_t fract_bits, int significant, char* digits,
                           int* ndig, int* dec_exp_out) noexcept nogil:
    """``_dtoa`` of java_float.py: digits D and E with value 0.D × 10^E; 0 where big integers are needed."""
    cdef int tail_zeros = 0, fract_count, tiny_bits, p2, insignificant, nd = 0, i, dec_exp, width
    cdef int b5, b2, s5, s2, m5, m2, common, q
    cdef uint64_t value, pow10, residue, t
    cdef int64_t b, s, m, tens, half, difference
    cdef double d2, d
    cdef bint first = True, low = False, high = False
    cdef char tmp[24]
    while not (fract_bits >> tail_zeros) & 1:
        tail_zeros += 1
    fract_count = 53 - tail_zeros
    tiny_bits = fract_count - bin_exp - 1
    if tiny_bits < 0:
        tiny_bits = 0
    if -21 <= bin_exp <= 62 and tiny_bits == 0:
        # a whole number that fits a long, rounded at a power of ten only the exponent decides
        p2 = bin_exp - significant - 1
        insignificant = 0
        if bin_exp > significant and p2 > 1:
            t = (<uint64_t>1) << p2
            while t >= 10:
                t //= 10
                insignificant += 1
        if bin_exp >= 52:
            value = fract_bits << (bin_exp - 52)
        else:
            value = fract_bits >> (52 - bin_exp)
        dec_exp = 0
        if insignificant:
            pow10 = 1
            for i in range(insignificant):
                pow10 *= 10
            residue = value % pow10
            value //= pow10
            dec_exp = insignificant
            if residue >= (pow10 >> 1):
                value += 1
        while value:
            tmp[nd] = <char>(48 + value % 10)
            value //= 10
            nd += 1
        for i in range(nd):
            digits[i] = tmp[nd - 1 - i]
        dec_exp += nd
        while nd > 1 and digits[nd - 1] == b'0':
            nd -= 1
        ndig[0] = nd
        dec_exp_out[0] = dec_exp
        return 1

    d2 = 1.0 + <double>(fract_bits & (((<uint64_t>1) << 52) - 1)) / 4503599627370496.0
    d = (d2 - 1.5) * 0.289529654 + 0.176091259 + <double>bin_exp * 0.301029995663981
    dec_exp = <int>floor(d)
    b5 = -dec_exp if dec_exp < 0 else 0
    b2 = b5 + tiny_bits + bin_exp
    s5 = dec_exp if dec_exp > 0 else 0
    s2 = s5 + tiny_bits
    m5 = b5
    m2 = b2 - significant
    fract_bits >>= tail_zeros
    b2 -= fract_count - 1
    common = b2 if b2 < s2 else s2
    b2 -= common
    s2 -= common
    m2 -= common
    if fract_count == 1:
        m2 -= 1
    if m2 < 0:
        b2 -= m2
        s2 -= m2
        m2 = 0
    if fract_count + b2 + n5_bits(b5) < 32 and s2 + 1 + n5_bits(s5 + 1) < 32:
        width = 32
    elif fract_count + b2 + n5_bits(b5) < 64 and s2 + 1 + n5_bits(s5 + 1) < 64:
        width = 64
    else:
        return 0  # Java's FDBigInteger arithmetic: Python's
    b = <int64_t>((fract_bits * POW5_U64[b5]) << b2)
    s = <int64_t>(POW5_U64[s5] << s2)
    m = <int64_t>(POW5_U64[m5] << m2)
    tens = s * 10
    half = (<int64_t>1) << (width - 1)
    while True:
        q = <int>(b // s)
        b = b % s * 10
        if width == 32:
            m = wrap(m * 10, 32)
        else:
            m = <int64_t>(<uint64_t>m * 10)
        if m <= 0:
            low = high = True
        else:
            low = b < m
            if width == 32:
                high = wrap(b + m, 32) > tens
            else:
                high = <int64_t>(<uint64_t>b + <uint64_t>m) > tens
        if not first:
            digits[nd] = <char>(48 + q)
            nd += 1
        else:
            first = False
            if q == 0 and not high:
                dec_exp -= 1
            else:
                digits[nd] = <char>(48 + q)
                nd += 1
            if dec_exp < -3 or dec_exp >= 8:
                low = high = False
        if low or high:
            break
        if nd >= 20:
            return 0  # not seen: a float has at most 9 digits
    if width == 32:
        difference = wrap(b * 2 - tens, 32)
    else:
        difference = <int64_t>((<uint64_t>b << 1) - <uint64_t>tens)
    dec_exp += 1
    if high and (not low or difference > 0 or (difference == 0 and (digits[nd - 1] - 48) & 1)):
        i = nd - 1
        while digits[i] == b'9' and i > 0:
            digits[i] = b'0'
            i -= 1
        if digits[i] == b'9':
            digits[0] = b'1'
            dec_exp += 1
        else:
            digits[i] += 1
    ndig[0] = nd
    dec_exp_out[0] = dec_exp
    return 1


cdef int write_float4(Buf* b, const char* s, Py_ssize_t n) except -1 nogil:
    """``numeric.float4_value`` then orjson, for ``-?d+[.d+][e[+-]d+]`` texts (the rest goes to Python).

    The text is read as a double and rounded to a float, as Python's ``float`` and
    ``struct`` do; Java's digits (at most 9, so the double they spell writes back as
    the same digits) are laid out as orjson lays out a double.
    """
    cdef char text[48]
    cdef char digits[32]
    cdef char* end
    cdef double d
    cdef float f
    cdef uint32_t bits
    cdef uint64_t fraction
    cdef int bin_exp, significant, ndig = 0, dec_exp = 0, shift
    if not float_chars(s, n):
        return 0
    memcpy(text, s, n)
    text[n] = 0
    d = strtod(text, &end)
    if end != text + n or d != d or d == INFINITY or d == -INFINITY:
        return 0
    if d == 0.0:
        digits[0] = b'0'
        return buf_float_digits(b, s[0] == b'-', digits, 1, 1, 0)
    f = <float>d
    if f == 0.0 or f == INFINITY or f == -INFINITY:
        return 0  # beyond a float's range: Python's answer
    memcpy(&bits, &f, 4)
    fraction = bits & 0x7FFFFF
    bin_exp = (bits >> 23) & 0xFF
    if bin_exp == 0:  # subnormal: normalise the fraction
        significant = 0
        while (fraction >> significant) != 0:
            significant += 1
        shift = 24 - significant
        fraction <<= shift
        bin_exp = 1 - shift
    else:
        fraction |= 1 << 23
        significant = 24
    if not java_float_digits(bin_exp - 127, fraction << 29, significant, digits, &ndig, &dec_exp):
        return 0
    return buf_float_digits(b, bits >> 31, digits, ndig, 0, dec_exp)


cdef int write_float_long(Buf* b, const char* s, Py_ssize_t n) except -1 nogil:
    """Any normal finite double, without the GIL: C's correctly rounded ``strtod`` and ``%.*e``.

    The shortest round-trip digits are the correctly rounded 15, 16 or 17
    digit form that reads back as the same double (the first that does), as
    ``repr`` finds them. Anything unexpected (a locale's decimal comma,
    subnormals, zero) is left to ``write_float``.
    """
    cdef char text[48]
    cdef char out[48]
    cdef char exact[64]
    cdef char digits[32]
    cdef char* end
    cdef double d
    cdef int p, j, k, ndig = 0, exp10 = 0
    cdef bint neg, eneg
    if n >= 47:
        return 0
    memcpy(text, s, n)
    text[n] = 0
    d = strtod(text, &end)
    if end != text + n or d != d or d == INFINITY or d == -INFINITY or d == 0.0 \
            or (-2.2250738585072014e-308 < d < 2.2250738585072014e-308):
        return 0
    if frexp(d, &j) == 0.5 or frexp(d, &j) == -0.5:
        return 0  # a power of two: its rounding interval is lopsided, the nearest form need not be the shortest
    for p in range(15, 18):
        snprintf(out, 48, "%.*e", p - 1, d)
        if strtod(out, &end) == d:
            break
    # A tie (d exactly halfway between two p-digit forms) is settled as Ryu settles it, by write_float.
    snprintf(exact, 64, "%.40e", d)
    j = 1 if exact[0] == b'-' else 0
    k = j + p + 1  # the (p+1)-th significant digit (after "d.")
    if exact[k] == b'5':
        k += 1
        while exact[k] == b'0':
            k += 1
        if exact[k] == b'e':
            return 0
    j = 0
    neg = out[0] == b'-'
    if neg:
        j = 1
    while out[j] != 0 and out[j] != b'e':
        if out[j] != b'.':
            if not is_digit(out[j]) or ndig >= 30:
                return 0
            digits[ndig] = out[j]
            ndig += 1
        j += 1
    if out[j] != b'e':
        return 0
    j += 1
    eneg = out[j] == b'-'
    if out[j] == b'-' or out[j] == b'+':
        j += 1
    while out[j] != 0:
        if not is_digit(out[j]):
            return 0
        exp10 = exp10 * 10 + (out[j] - 48)
        j += 1
    return buf_float_digits(b, neg, digits, ndig, 1, -exp10 if eneg else exp10)


cdef int buf_float_digits(Buf* b, bint neg, char* digits, int ndig, int dot_at, int exp10) except -1 nogil:
    """orjson's (Ryu's) layout of the value ``0.<digits> * 10^(dot_at + exp10)`` (``digits`` is changed).

    Plain notation while the decimal point falls within 16 digits or 5 zeros
    after it, else ``d.ddde±x`` without a ``+``.
    """
    cdef int k, kk, e
    # strip leading zeros (0.001 -> 1 with the point moved) and trailing zeros
    k = 0
    while k < ndig - 1 and digits[k] == b'0':
        k += 1
    if k:
        for e in range(ndig - k):
            digits[e] = digits[e + k]
        ndig -= k
        dot_at -= k
    while ndig > 1 and digits[ndig - 1] == b'0':
        ndig -= 1
    if ndig == 1 and digits[0] == b'0':  # zero: orjson writes 0.0 / -0.0
        if neg:
            buf_put(b, b"-0.0", 4)
        else:
            buf_put(b, b"0.0", 3)
        return 1
    # value = 0.digits * 10^(dot_at + exp10)  ->  Ryu: digits * 10^k with kk = ndig + k = dot_at + exp10
    kk = dot_at + exp10
    k = kk - ndig
    if neg:
        buf_byte(b, b'-')
    if 0 <= k and kk <= 16:
        buf_put(b, digits, ndig)
        for e in range(k):
            buf_byte(b, b'0')
        buf_put(b, b".0", 2)
    elif 0 < kk <= 16:
        buf_put(b, digits, kk)
        buf_byte(b, b'.')
        buf_put(b, digits + kk, ndig - kk)
    elif -5 < kk <= 0:
        buf_put(b, b"0.", 2)
        for e in range(-kk):
            buf_byte(b, b'0')
        buf_put(b, digits, ndig)
    elif ndig == 1:
        buf_byte(b, digits[0])
        buf_byte(b, b'e')
        buf_int(b, kk - 1)
    else:
        buf_byte(b, digits[0])
        buf_byte(b, b'.')
        buf_put(b, digits + 1, ndig - 1)
        buf_byte(b, b'e')
        buf_int(b, kk - 1)
    return 1


# --- row images ------------------------------------------------------------------

cdef class RowEncoder:
    """``row -> JSON object bytes``: the same bytes as ``orjson.dumps(RowConverter(columns)(row))``.

    ``columns``: (name, tuple index, kind, param, Python converter, NULL value,
    unchanged-TOAST value) per field, in field order. A value whose converter
    raises becomes the column's NULL value and counts in ``errors`` (as in
    ``RowConverter``) unless ``count_errors`` is false.
    """

    cdef Buf buf
    cdef Buf tmp
    cdef Py_ssize_t ncols
    cdef int* ekinds         # arrays: the element kind, 1 if elements are required
    cdef bint* erequired
    cdef int* kinds
    cdef int64_t* params
    cdef Py_ssize_t* indexes
    cdef const char** head_ptr   # the bytes of heads / null_json, for the GIL-free ChunkEncoder
    cdef Py_ssize_t* head_len
    cdef const char** null_ptr
    cdef Py_ssize_t* null_len
    cdef list heads          # b'{"name":' for the first field, b',"name":' after
    cdef list converters
    cdef list null_json
    cdef list unavailable_json
    cdef object toast
    cdef bint count_errors
    cdef public Py_ssize_t errors

    def __cinit__(self):
        self.kinds = NULL
        self.params = NULL
        self.indexes = NULL
        self.ekinds = NULL
        self.erequired = NULL
        self.head_ptr = NULL
        self.head_len = NULL
        self.null_ptr = NULL
        self.null_len = NULL
        self.tmp.data = NULL
        self.tmp.len = 0
        self.tmp.cap = 0
        self.buf.data = NULL
        self.buf.len = 0
        self.buf.cap = 0

    def __init__(self, columns, toast, bint count_errors=True):
        cdef Py_ssize_t k
        columns = list(columns)
        self.ncols = len(columns)
        self.kinds = <int*>malloc(sizeof(int) * (self.ncols + 1))
        self.params = <int64_t*>malloc(sizeof(int64_t) * (self.ncols + 1))
        self.indexes = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * (self.ncols + 1))
        self.ekinds = <int*>malloc(sizeof(int) * (self.ncols + 1))
        self.erequired = <bint*>malloc(sizeof(bint) * (self.ncols + 1))
        if (self.kinds == NULL or self.params == NULL or self.indexes == NULL or self.ekinds == NULL
                or self.erequired == NULL):
            raise MemoryError()
        self.heads, self.converters, self.null_json, self.unavailable_json = [], [], [], []
        for k, (name, index, kind, param, convert, null_value, unavailable) in enumerate(columns):
            self.heads.append((b"{" if k == 0 else b",") + _dumps(name) + b":")
            self.indexes[k] = index
            self.kinds[k] = KINDS[kind]
            self.ekinds[k] = K_PY
            self.erequired[k] = False
            if kind == "array":  # param: (element kind, element param, required)
                self.ekinds[k] = KINDS[param[0]]
                self.params[k] = param[1]
                self.erequired[k] = param[2]
            else:
                self.params[k] = param
            self.converters.append(convert)
            self.null_json.append(_dumps(null_value))
            self.unavailable_json.append(_dumps(unavailable))
        self.head_ptr = <const char**>malloc(sizeof(char*) * (self.ncols + 1))
        self.head_len = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * (self.ncols + 1))
        self.null_ptr = <const char**>malloc(sizeof(char*) * (self.ncols + 1))
        self.null_len = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * (self.ncols + 1))
        if self.head_ptr == NULL or self.head_len == NULL or self.null_ptr == NULL or self.null_len == NULL:
            raise MemoryError()
        for k in range(self.ncols):
            self.head_ptr[k] = PyBytes_AS_STRING(<bytes>self.heads[k])
            self.head_len[k] = PyBytes_GET_SIZE(<bytes>self.heads[k])
            self.null_ptr[k] = PyBytes_AS_STRING(<bytes>self.null_json[k])
            self.null_len[k] = PyBytes_GET_SIZE(<bytes>self.null_json[k])
        self.toast = toast
        self.count_errors = count_errors
        self.errors = 0

    def __dealloc__(self):
        free(self.kinds)
        free(self.params)
        free(self.indexes)
        free(self.ekinds)
        free(self.erequired)
        free(self.head_ptr)
        free(self.head_len)
        free(self.null_ptr)
        free(self.null_len)
        free(self.tmp.data)
        free(self.buf.data)

    cdef int _python(self, Py_ssize_t k, object text) except -1:
        try:
            value = self.converters[k](text)
        except Exception:  # a bad value must not stop the stream (RowConverter._carefully)
            if self.count_errors:
                self.errors += 1
            buf_bytes(&self.buf, <bytes>self.null_json[k])
            return 0
        buf_bytes(&self.buf, _dumps(value))  # raises where orjson.dumps of the whole image would
        return 0

    def __call__(self, tuple row):
        cdef Buf* b = &self.buf
        cdef Py_ssize_t k, n, nrow = len(row)
        cdef const char* s
        cdef int kind, done
        cdef object v
        b.len = 0
        if self.ncols == 0:
            return b"{}"
        for k in range(self.ncols):
            buf_bytes(b, <bytes>self.heads[k])
            if self.indexes[k] >= nrow:
                buf_bytes(b, <bytes>self.null_json[k])
                continue
            v = row[self.indexes[k]]
            if v is None:
                buf_bytes(b, <bytes>self.null_json[k])
                continue
            if v is self.toast:
                buf_bytes(b, <bytes>self.unavailable_json[k])
                continue
            if type(v) is not str:
                try:
                    v = v.decode("utf-8")  # a binary-format value: best effort as text
                except Exception:
                    if self.count_errors:
                        self.errors += 1
                    buf_bytes(b, <bytes>self.null_json[k])
                    continue
            kind = self.kinds[k]
            if kind == K_PY:
                self._python(k, v)
                continue
            s = PyUnicode_AsUTF8AndSize(v, &n)
            if kind == K_STR or kind == K_INT or kind == K_BOOL:
                done = write_scalar(b, kind, 0, s, n)
            elif not PyUnicode_IS_ASCII(v) and not (kind == K_ARRAY and self.ekinds[k] == K_STR):
                done = 0
            elif kind == K_ARRAY:
                done = write_array(b, &self.tmp, s, n, self.ekinds[k], self.params[k], self.erequired[k])
            else:
                done = write_scalar(b, kind, self.params[k], s, n)
                if not done and kind == K_FLOAT:
                    done = write_float(b, s, n)
            if not done:
                self._python(k, v)
        buf_byte(b, b'}')
        return PyBytes_FromStringAndSize(b.data, b.len)

    cdef int _fill(self, Buf* b, Py_ssize_t k, const char* s, Py_ssize_t n) except -1:
        """One value the GIL-free pass left out (``ChunkEncoder``), as ``__call__`` writes it."""
        cdef object v = PyUnicode_DecodeUTF8(s, n, NULL)  # invalid UTF-8 raises, as text_rows does
        cdef int kind = self.kinds[k]
        cdef Buf* own = &self.buf
        cdef Py_ssize_t saved
        if kind == K_FLOAT and PyUnicode_IS_ASCII(v) and write_float(b, s, n):
            return 0
        if kind != K_PY and kind != K_FLOAT:
            if kind == K_STR or kind == K_INT or kind == K_BOOL:
                if write_scalar(b, kind, 0, s, n):
                    return 0
            elif PyUnicode_IS_ASCII(v) or (kind == K_ARRAY and self.ekinds[k] == K_STR):
                if kind == K_ARRAY:
                    if write_array(b, &self.tmp, s, n, self.ekinds[k], self.params[k], self.erequired[k]):
                        return 0
                elif write_scalar(b, kind, self.params[k], s, n):
                    return 0
        saved = own.len
        self._python(k, v)  # appends to self.buf: move it over
        buf_put(b, own.data + saved, own.len - saved)
        own.len = saved
        return 0


# --- pgoutput TupleData ------------------------------------------------------------

def read_tuple(bytes buf, Py_ssize_t pos, Py_ssize_t ncols, object toast):
    """``(values, next offset)`` of a TupleData after its column count, or None when malformed.

    None sends the caller to the pure reader, which names the defect; invalid
    UTF-8 raises ``UnicodeDecodeError`` as ``bytes.decode`` would.
    """
    if pos < 0 or ncols < 0:
        return None
    values = tuple_values(<const unsigned char*>PyBytes_AS_STRING(buf), PyBytes_GET_SIZE(buf), &pos, ncols, toast)
    if values is None:
        return None
    return values, pos


cdef tuple tuple_values(const unsigned char* d, Py_ssize_t size, Py_ssize_t* at, Py_ssize_t ncols, object toast):
    """The values of a TupleData starting at ``at[0]`` (advanced past it), or None when malformed."""
    cdef Py_ssize_t k, length, pos = at[0]
    cdef unsigned char kind
    cdef tuple values
    cdef object value
    values = PyTuple_New_(ncols)
    for k in range(ncols):
        if pos >= size:
            return None
        kind = d[pos]
        pos += 1
        if kind == 116 or kind == 98:  # 't', 'b'
            if pos + 4 > size:
                return None
            length = (<Py_ssize_t>d[pos] << 24) | (d[pos + 1] << 16) | (d[pos + 2] << 8) | d[pos + 3]
            pos += 4
            if length > size - pos:
                return None
            if kind == 116:
                value = PyUnicode_DecodeUTF8(<const char*>d + pos, length, NULL)
            else:
                value = PyBytes_FromStringAndSize(<const char*>d + pos, length)
            pos += length
        elif kind == 110:  # 'n'
            value = None
        elif kind == 117:  # 'u'
            value = toast
        else:
            return None
        tuple_set(values, k, value)
    at[0] = pos
    return values


cdef inline void tuple_set(tuple t, Py_ssize_t k, object v):
    Py_INCREF(v)
    PyTuple_SET_ITEM(t, k, v)


# --- the value envelope ------------------------------------------------------------

cdef dict _SNAPSHOT_JSON = {
    v: ('"' + v + '"').encode() for v in (
        "false", "true", "first", "last", "first_in_data_collection", "last_in_data_collection", "incremental")
}


cdef class ValueFrame:
    """A change event's value, framed as ``TableEncoder._value`` (with ``SourceBlock.json``) formats it.

    Built once per table version from the fixed fragments. ``__call__`` returns
    None for what it leaves to Python: an ``origin``, a non-bytes image, numbers
    beyond 64 bits.
    """

    cdef Buf buf
    cdef bytes value_head, source_head, source_db, source_table

    def __cinit__(self):
        self.buf.data = NULL
        self.buf.len = 0
        self.buf.cap = 0

    def __init__(self, bytes value_head, bytes source_head, bytes source_db, bytes source_table):
        self.value_head = value_head
        self.source_head = source_head
        self.source_db = source_db
        self.source_table = source_table

    def __dealloc__(self):
        free(self.buf.data)

    def __call__(self, before, after, source, block, str op, now):
        cdef int64_t ts_us, lsn, n
        cdef object last, txid, snapshot
        if (before is not None and type(before) is not bytes) or (after is not None and type(after) is not bytes):
            return None
        if source.origin is not None or source.origin_lsn is not None:
            return None
        try:
            ts_us = source.ts_us
            lsn = source.lsn
            n = now
            last = source.last_commit_lsn
            txid = source.txid
            if last is not None:
                <int64_t>last
            if txid is not None:
                <int64_t>txid
        except OverflowError:
            return None
        if ts_us > 9000000000000000 or ts_us < -9000000000000000 or n < 0:
            return None
        snapshot = _SNAPSHOT_JSON.get(source.snapshot)
        if snapshot is None:
            snapshot = _dumps(source.snapshot)
        return self.write(before, after, ts_us, lsn, last, txid, <bytes>snapshot, source.lsn_null, block,
                          op.encode(), n)

    cdef bytes write(self, object before, object after, int64_t ts_us, int64_t lsn, object last, object txid,
                     bytes snapshot, bint lsn_null, object block, bytes op, int64_t n):
        """The value's bytes; ``before``/``after`` are image bytes or None, ``last``/``txid`` fit in 64 bits."""
        cdef Buf* b = &self.buf
        b.len = 0
        buf_bytes(b, self.value_head)
        buf_put(b, b'{"before":', 10)
        if before is None:
            buf_put(b, b"null", 4)
        else:
            buf_bytes(b, <bytes>before)
        buf_put(b, b',"after":', 9)
        if after is None:
            buf_put(b, b"null", 4)
        else:
            buf_bytes(b, <bytes>after)
        buf_put(b, b',"source":', 10)
        buf_bytes(b, self.source_head)
        buf_int(b, floordiv(ts_us, 1000))
        buf_put(b, b',"snapshot":', 12)
        buf_bytes(b, snapshot)
        buf_bytes(b, self.source_db)
        if last is None:
            buf_put(b, b'"[null,\\"', 9)
        else:
            buf_put(b, b'"[\\"', 4)
            buf_int(b, <int64_t>last)
            buf_put(b, b'\\",\\"', 5)
        buf_int(b, lsn)
        buf_put(b, b'\\"]"', 4)
        buf_put(b, b',"ts_us":', 9)
        buf_int(b, ts_us)
        buf_put(b, b',"ts_ns":', 9)
        buf_int(b, ts_us * 1000)
        buf_bytes(b, self.source_table)
        if txid is None:
            buf_put(b, b"null", 4)
        else:
            buf_int(b, <int64_t>txid)
        buf_put(b, b',"lsn":', 7)
        if lsn_null:
            buf_put(b, b"null", 4)
        else:
            buf_int(b, lsn)
        buf_put(b, b',"xmin":null,"origin":null,"origin_lsn":null},"transaction":', 60)
        if block is None:
            buf_put(b, b"null", 4)
        else:
            buf_put(b, b'{"id":"', 7)
            buf_bytes(b, (<str>block["id"]).encode())
            buf_put(b, b'","total_order":', 16)
            buf_int(b, <int64_t>block["total_order"])
            buf_put(b, b',"data_collection_order":', 25)
            buf_int(b, <int64_t>block["data_collection_order"])
            buf_byte(b, b'}')
        buf_put(b, b',"op":"', 7)
        buf_bytes(b, op)
        buf_put(b, b'","ts_ms":', 10)
        buf_int(b, n // 1000000)
        buf_put(b, b',"ts_us":', 9)
        buf_int(b, n // 1000)
        buf_put(b, b',"ts_ns":', 9)
        buf_int(b, n)
        buf_put(b, b"}}", 2)
        return PyBytes_FromStringAndSize(b.data, b.len)


# --- row changes in one call -------------------------------------------------------

cdef extern from "Python.h":
    int PyObject_GetBuffer(object obj, Py_buffer* view, int flags) except -1
    void PyBuffer_Release(Py_buffer* view)
    enum: PyBUF_SIMPLE

cdef object _tuple_new = tuple.__new__


cdef inline uint64_t be64(const unsigned char* d) noexcept:
    return ((<uint64_t>d[0] << 56) | (<uint64_t>d[1] << 48) | (<uint64_t>d[2] << 40) | (<uint64_t>d[3] << 32)
            | (<uint64_t>d[4] << 24) | (<uint64_t>d[5] << 16) | (<uint64_t>d[6] << 8) | <uint64_t>d[7])


cdef inline int64_t now_ns() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)  # what time.time_ns() reads
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef class Lane:
    """One table's row changes as ``TableEncoder`` builds them, from the same compiled images and frame.

    Only tables whose every part is compiled get one (``cdcd.native.change_lane``);
    the key encoder must not count errors, so encoding a key to compare it has no
    side effect when the change then goes the general way.
    """

    cdef str topic, table
    cdef RowEncoder image, key_image
    cdef bytes key_head
    cdef ValueFrame frame
    cdef bint skip_c, skip_u, skip_d, tombstones
    cdef Py_ssize_t ncols
    cdef Py_ssize_t counts[3]
    cdef tuple key_positions  # the optional key columns' tuple indexes (TableEncoder._key_positions)

    def __init__(self, str topic, str table, RowEncoder image, RowEncoder key_image, bytes key_head,
                 ValueFrame frame, Py_ssize_t ncols, skipped, bint tombstones, tuple key_positions=()):
        if key_image is not None and (key_head is None or key_image.count_errors):
            raise ValueError("a lane's key encoder must not count errors and needs its schema head")
        self.topic, self.table = topic, table
        self.image, self.key_image, self.key_head, self.frame = image, key_image, key_head, frame
        self.ncols = ncols
        self.skip_c, self.skip_u, self.skip_d = "c" in skipped, "u" in skipped, "d" in skipped
        self.tombstones = tombstones
        self.key_positions = key_positions
        self.counts[0] = self.counts[1] = self.counts[2] = 0


cdef class ChangeLanes:
    """Inserts, updates and deletes of tables with a ``Lane``: XLogData bytes to records in one call.

    ``change`` returns None for anything else (another message, a table without
    a lane, a closed transaction, an unusual change: unchanged TOAST values to
    merge, a new primary key, a malformed frame), and the caller decodes the
    frame the general way; it has changed nothing then. The session opens the
    lanes per transaction (``begin``) only where the general path would do
    exactly what a lane does.
    """

    cdef dict lanes
    cdef readonly bint open
    cdef public int64_t blocked
    """An OID whose changes must go the general way (an incremental snapshot's window is open on it)."""
    cdef int64_t ts_us
    cdef object txid, last_commit
    cdef readonly int64_t wal_end
    """The ``wal_end`` of the last frame ``change`` took."""
    cdef readonly Py_ssize_t nbytes
    """Key and value bytes of the records ``change`` returned last."""
    cdef public Py_ssize_t rows
    """Row changes taken (skipped operations included) since the caller last reset it."""
    cdef object record, toast
    cdef public object clock
    """None: the wall clock; tests set a callable giving nanoseconds (``time.time_ns``'s stand-in)."""

    def __init__(self, record, toast):
        self.lanes = {}
        self.open = False
        self.blocked = -1
        self.rows = 0
        self.record, self.toast = record, toast
        self.clock = None

    def add(self, oid, Lane lane):
        self.lanes[oid] = lane

    def drop(self, oid):
        self.lanes.pop(oid, None)

    def clear(self):
        self.lanes.clear()
        self.open = False

    def begin(self, int64_t ts_us, txid, last_commit):
        """Open for a transaction; False (and closed) when its values are beyond what the frame writes."""
        self.open = False
        if ts_us > 9000000000000000 or ts_us < -9000000000000000:
            return False
        try:
            if txid is not None:
                <int64_t>txid
            if last_commit is not None:
                <int64_t>last_commit
        except OverflowError:
            return False
        self.ts_us, self.txid, self.last_commit = ts_us, txid, last_commit
        self.open = True
        return True

    def close(self):
        self.open = False

    def take_counts(self):
        """``[(oid, creates, updates, deletes)]`` counted since the last call (published per transaction)."""
        cdef Lane lane
        out = []
        for oid, lane in self.lanes.items():
            if lane.counts[0] or lane.counts[1] or lane.counts[2]:
                out.append((oid, lane.counts[0], lane.counts[1], lane.counts[2]))
                lane.counts[0] = lane.counts[1] = lane.counts[2] = 0
        return out

    def change(self, data):
        """The records of one XLogData CopyData message (``w`` + header + pgoutput), or None: not taken."""
        cdef Py_buffer view
        if not self.open:
            return None
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self._change(<const unsigned char*>view.buf, view.len)
        except UnicodeDecodeError:
            return None  # the general decoder names the defect
        finally:
            PyBuffer_Release(&view)

    cdef object _change(self, const unsigned char* d, Py_ssize_t size):
        cdef Py_ssize_t pos = 26
        cdef unsigned char tag, marker, old_marker = 0
        cdef Lane lane
        cdef tuple old = None, new = None
        cdef int64_t lsn
        cdef uint32_t oid
        if size < 33 or d[0] != 119:  # 'w', the header, a tag, an OID, a marker
            return None
        tag = d[25]
        if tag != 73 and tag != 85 and tag != 68:  # 'I', 'U', 'D'
            return None
        oid = <uint32_t>((d[26] << 24) | (d[27] << 16) | (d[28] << 8) | d[29])
        if <int64_t>oid == self.blocked:
            return None
        lane = self.lanes.get(oid)
        if lane is None:
            return None
        pos = 30
        marker = d[pos]
        pos += 1
        if tag == 85 or tag == 68:
            if marker == 75 or marker == 79:  # 'K', 'O'
                old_marker = marker
                old = self._tuple(lane, d, size, &pos)
                if old is None:
                    return None
                if tag == 85:
                    if pos >= size:
                        return None
                    marker = d[pos]
                    pos += 1
            elif tag == 68:
                return None
        if tag != 68:
            if marker != 78:  # 'N'
                return None
            new = self._tuple(lane, d, size, &pos)
            if new is None:
                return None
        if pos != size:
            return None
        lsn = <int64_t>be64(d + 1)
        self.wal_end = <int64_t>be64(d + 9)
        if tag == 73:
            return self._create(lane, new, lsn)
        if tag == 85:
            return self._update(lane, old_marker, old, new, lsn)
        return self._delete(lane, old, lsn)

    cdef tuple _tuple(self, Lane lane, const unsigned char* d, Py_ssize_t size, Py_ssize_t* pos):
        cdef Py_ssize_t n
        if pos[0] + 2 > size:
            return None
        n = (d[pos[0]] << 8) | d[pos[0] + 1]
        if n != lane.ncols:
            return None
        pos[0] += 2
        return tuple_values(d, size, pos, n, self.toast)

    cdef int64_t _now(self) except? -1:
        if self.clock is None:
            return now_ns()
        return self.clock()

    cdef object _record(self, Lane lane, key, value, headers, key_payload, int64_t lsn):
        return _tuple_new(self.record, (lane.topic, key, value, headers, lane.table, key_payload, lsn, self.txid))

    cdef object _records(self, Lane lane, bytes before, bytes after, bytes key_payload, bytes op, int64_t lsn,
                         bint tombstone):
        """The event's record, and its tombstone; ``nbytes`` counts their keys and values."""
        cdef bytes key = None if key_payload is None else lane.key_head + key_payload + b"}"
        cdef bytes value = lane.frame.write(before, after, self.ts_us, lsn, self.last_commit, self.txid, b'"false"',
                                            False, None, op, self._now())
        cdef Py_ssize_t key_len = 0 if key is None else len(key)
        record = self._record(lane, key, value, (), key_payload, lsn)
        if tombstone:
            self.nbytes = len(value) + 2 * key_len
            return (record, self._record(lane, key, None, (), key_payload, lsn))
        self.nbytes = len(value) + key_len
        return (record,)

    cdef object _create(self, Lane lane, tuple new, int64_t lsn):
        lane.counts[0] += 1
        self.rows += 1
        if lane.skip_c:
            self.nbytes = 0
            return ()
        after = lane.image(new)
        return self._records(lane, None, after, None if lane.key_image is None else lane.key_image(new), b"c", lsn,
                             False)

    cdef object _update(self, Lane lane, unsigned char old_marker, tuple old, tuple new, int64_t lsn):
        cdef bytes before = None, key_payload = None
        if old is not None and old_marker == 79 and self.toast in new:
            return None  # unchanged TOAST values filled from the old image: the general way
        if lane.key_image is not None:
            key_payload = lane.key_image(new)
            if old is not None:
                if lane.key_image(old) != key_payload:
                    return None  # a new primary key: delete, tombstone and create, the general way
                for i in lane.key_positions:
                    if (old[i] is None) != (new[i] is None):
                        return None  # an optional key column null on one side only: a key change (TableEncoder.update)
        after = lane.image(new)
        if old is not None:
            before = lane.image(old)
        lane.counts[1] += 1
        self.rows += 1
        if lane.skip_u:
            self.nbytes = 0
            return ()
        return self._records(lane, before, after, key_payload, b"u", lsn, False)

    cdef object _delete(self, Lane lane, tuple old, int64_t lsn):
        lane.counts[2] += 1
        self.rows += 1
        if lane.skip_d:
            self.nbytes = 0
            return ()
        before = lane.image(old)
        return self._records(lane, before, None, None if lane.key_image is None else lane.key_image(old), b"d", lsn,
                             lane.tombstones)


# --- snapshot result sets ----------------------------------------------------------

ctypedef char* (*PQgetvalue_t)(const void* res, int row, int col) noexcept nogil
ctypedef int (*PQgetint_t)(const void* res, int row, int col) noexcept nogil
ctypedef int (*PQcount_t)(const void* res) noexcept nogil

cdef PQgetvalue_t _PQgetvalue = NULL
cdef PQgetint_t _PQgetlength = NULL
cdef PQgetint_t _PQgetisnull = NULL
cdef PQcount_t _PQntuples = NULL
cdef PQcount_t _PQnfields = NULL


def bind_libpq(size_t getvalue, size_t getlength, size_t getisnull, size_t ntuples, size_t nfields):
    """The addresses of libpq's accessors, from the very libpq psycopg loaded (``cdcd.native`` finds it)."""
    global _PQgetvalue, _PQgetlength, _PQgetisnull, _PQntuples, _PQnfields
    if not (getvalue and getlength and getisnull and ntuples and nfields):
        raise ValueError("a libpq accessor address is missing")
    _PQgetvalue = <PQgetvalue_t><void*>getvalue
    _PQgetlength = <PQgetint_t><void*>getlength
    _PQgetisnull = <PQgetint_t><void*>getisnull
    _PQntuples = <PQcount_t><void*>ntuples
    _PQnfields = <PQcount_t><void*>nfields


def text_rows(size_t pgresult):
    """``snapshot._reader.text_rows`` on a ``PGresult*``: each row's text values as ``str`` (None for NULL).

    The caller keeps the result alive for the call; invalid UTF-8 raises
    ``UnicodeDecodeError`` as ``bytes.decode`` does.
    """
    cdef const void* res = <const void*>pgresult
    cdef int r, c, nt, nf
    cdef list rows
    cdef tuple row
    cdef object value
    if _PQgetvalue == NULL:
        raise RuntimeError("libpq is not bound (bind_libpq)")
    if res == NULL:
        return []
    nt = _PQntuples(res)
    nf = _PQnfields(res)
    rows = [None] * nt
    for r in range(nt):
        row = PyTuple_New_(nf)
        for c in range(nf):
            if _PQgetisnull(res, r, c):
                value = None
            else:
                value = PyUnicode_DecodeUTF8(_PQgetvalue(res, r, c), _PQgetlength(res, r, c), NULL)
            tuple_set(row, c, value)
        rows[r] = row
    return rows


# --- snapshot chunks, encoded without the GIL ---------------------------------------

cdef struct Hole:
    Py_ssize_t at      # where the value belongs in the chunk buffer
    int row
    int col            # the field's index in its RowEncoder
    int which          # 0 key, 1 value


cdef struct Segs:
    Py_ssize_t key_start, key_end, after_start, after_end, tail_end
    Py_ssize_t kfill, kfill_len, afill, afill_len   # a segment with holes, filled: where in ``fill``
    char* kdst                                      # the bytes objects' contents, written without the GIL
    char* pdst
    char* vdst


cdef inline bint all_ascii(const char* s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if <unsigned char>s[i] >= 0x80:
            return False
    return True


cdef bint valid_utf8(const char* s, Py_ssize_t n) noexcept nogil:
    """What ``PyUnicode_DecodeUTF8`` accepts (no overlongs, surrogates or code points past U+10FFFF)."""
    cdef Py_ssize_t i = 0, k, need
    cdef unsigned char c, c1
    while i < n:
        c = <unsigned char>s[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need = 1
        elif 0xE0 <= c <= 0xEF:
            need = 2
        elif 0xF0 <= c <= 0xF4:
            need = 3
        else:
            return False
        if i + need >= n:
            return False
        c1 = <unsigned char>s[i + 1]
        if (c1 & 0xC0) != 0x80:
            return False
        if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 > 0x9F) or (c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 > 0x8F):
            return False
        for k in range(2, need + 1):
            if (<unsigned char>s[i + k] & 0xC0) != 0x80:
                return False
        i += need + 1
    return True


cdef class ChunkEncoder:
    """A fetched snapshot ``PGresult`` -> the key and value bytes of every row, encoded without the GIL.

    The same bytes as ``TableEncoder.create(row, source, None, "r")`` for each
    row of ``text_rows(result)``: the value is ``prefix + after image + middle +
    the processing time``, the key ``key_head + key image + "}"``. Values the C
    writers do not take (a Python converter, long float digits, odd text) are
    left as holes and filled afterwards, with the GIL, by the very converter
    ``RowEncoder`` would call. One instance per thread: it owns its buffers.
    """

    cdef RowEncoder value
    cdef RowEncoder key
    cdef bytes key_head, prefix, middle
    cdef Buf buf, tmp, seg
    cdef Hole* holes
    cdef Py_ssize_t nholes, cap_holes
    cdef Segs* segs
    cdef Py_ssize_t cap_segs
    cdef object record_type, topic, table, lsn, txid

    def __cinit__(self):
        self.buf.data = NULL; self.buf.len = 0; self.buf.cap = 0
        self.tmp.data = NULL; self.tmp.len = 0; self.tmp.cap = 0
        self.seg.data = NULL; self.seg.len = 0; self.seg.cap = 0
        self.holes = NULL
        self.nholes = 0
        self.cap_holes = 0
        self.segs = NULL
        self.cap_segs = 0

    def __init__(self, RowEncoder value, RowEncoder key, bytes key_head, bytes prefix, bytes middle):
        """``key`` and ``key_head`` are None for a table without a key; ``middle`` ends with ``"ts_ms":``."""
        self.value = value
        self.key = key
        self.key_head = key_head
        self.prefix = prefix
        self.middle = middle

    def __dealloc__(self):
        free(self.buf.data)
        free(self.tmp.data)
        free(self.seg.data)
        free(self.holes)
        free(self.segs)

    cdef int _hole(self, Py_ssize_t at, int row, int col, int which) except -1 nogil:
        cdef Hole* grown
        cdef Py_ssize_t cap
        if self.nholes == self.cap_holes:
            cap = self.cap_holes * 2 if self.cap_holes else 64
            grown = <Hole*>realloc(self.holes, cap * sizeof(Hole))
            if grown == NULL:
                with gil:
                    raise MemoryError()
            self.holes = grown
            self.cap_holes = cap
        self.holes[self.nholes].at = at
        self.holes[self.nholes].row = row
        self.holes[self.nholes].col = col
        self.holes[self.nholes].which = which
        self.nholes += 1
        return 0

    cdef int _image(self, RowEncoder enc, const void* res, int r, int nf, int which) except -1 nogil:
        """One row image as ``RowEncoder.__call__`` writes it, with holes where it would need Python."""
        cdef Buf* b = &self.buf
        cdef Py_ssize_t k, n, idx
        cdef const char* s
        cdef int kind, done
        if enc.ncols == 0:
            buf_put(b, b"{}", 2)
            return 0
        for k in range(enc.ncols):
            buf_put(b, enc.head_ptr[k], enc.head_len[k])
            idx = enc.indexes[k]
            if idx >= nf or _PQgetisnull(res, r, <int>idx):
                buf_put(b, enc.null_ptr[k], enc.null_len[k])
                continue
            s = _PQgetvalue(res, r, <int>idx)
            n = _PQgetlength(res, r, <int>idx)
            kind = enc.kinds[k]
            done = 0
            if kind == K_PY:
                done = 0
            elif kind == K_STR or (kind == K_ARRAY and enc.ekinds[k] == K_STR):
                if all_ascii(s, n) or valid_utf8(s, n):
                    if kind == K_STR:
                        done = write_scalar(b, kind, 0, s, n)
                    else:
                        done = write_array(b, &self.tmp, s, n, enc.ekinds[k], enc.params[k], enc.erequired[k])
            elif not all_ascii(s, n):
                done = 0
            elif kind == K_ARRAY:
                done = write_array(b, &self.tmp, s, n, enc.ekinds[k], enc.params[k], enc.erequired[k])
            else:
                done = write_scalar(b, kind, enc.params[k], s, n)
            if not done:
                self._hole(b.len, r, <int>k, which)
        buf_byte(b, b'}')
        return 0

    cdef int _encode(self, const void* res, int start, int nt, int nf) except -1 nogil:
        """Rows ``start`` to ``start + nt`` into ``buf``; ``segs[i]`` describes row ``start + i``."""
        cdef Buf* b = &self.buf
        cdef int i, r
        cdef timespec ts
        cdef int64_t now
        for i in range(nt):
            r = start + i
            self.segs[i].key_start = b.len
            if self.key is not None:
                self._image(self.key, res, r, nf, 0)
            self.segs[i].key_end = b.len
            self.segs[i].after_start = b.len
            self._image(self.value, res, r, nf, 1)
            self.segs[i].after_end = b.len
            clock_gettime(CLOCK_REALTIME, &ts)
            now = <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec
            buf_int(b, now // 1000000)
            buf_put(b, b',"ts_us":', 9)
            buf_int(b, now // 1000)
            buf_put(b, b',"ts_ns":', 9)
            buf_int(b, now)
            buf_put(b, b"}}", 2)
            self.segs[i].tail_end = b.len
        return 0

    cdef Py_ssize_t _assemble(self, Py_ssize_t start, Py_ssize_t end, Py_ssize_t* h, const void* res,
                              int row, int which, Py_ssize_t* at) except -1:
        """The segment [start, end) with its holes filled, appended to ``self.seg``; returns its length."""
        cdef Buf* out = &self.seg
        cdef Py_ssize_t pos = start, i = h[0]
        cdef Hole* hole
        cdef RowEncoder enc
        cdef Py_ssize_t idx
        at[0] = out.len
        while i < self.nholes and self.holes[i].row == row and self.holes[i].which == which:
            hole = &self.holes[i]
            enc = self.key if which == 0 else self.value
            buf_put(out, self.buf.data + pos, hole.at - pos)
            idx = enc.indexes[hole.col]
            enc._fill(out, hole.col, _PQgetvalue(res, hole.row, <int>idx), _PQgetlength(res, hole.row, <int>idx))
            pos = hole.at
            i += 1
        buf_put(out, self.buf.data + pos, end - pos)
        h[0] = i
        return out.len - at[0]

    cdef int _copy(self, int nt, const char* khead, Py_ssize_t klen, const char* prefix, Py_ssize_t plen,
                   const char* middle, Py_ssize_t mlen, bint keyed) noexcept nogil:
        """Every row's key, key payload and value into its bytes object."""
        cdef int r
        cdef Segs* seg
        cdef const char* src
        cdef Py_ssize_t n, tail
        for r in range(nt):
            seg = &self.segs[r]
            if keyed:
                if seg.kfill >= 0:
                    src, n = self.seg.data + seg.kfill, seg.kfill_len
                else:
                    src, n = self.buf.data + seg.key_start, seg.key_end - seg.key_start
                memcpy(seg.kdst, khead, klen)
                memcpy(seg.kdst + klen, src, n)
                seg.kdst[klen + n] = b'}'
                memcpy(seg.pdst, src, n)
            if seg.afill >= 0:
                src, n = self.seg.data + seg.afill, seg.afill_len
            else:
                src, n = self.buf.data + seg.after_start, seg.after_end - seg.after_start
            tail = seg.tail_end - seg.after_end
            memcpy(seg.vdst, prefix, plen)
            memcpy(seg.vdst + plen, src, n)
            memcpy(seg.vdst + plen + n, middle, mlen)
            memcpy(seg.vdst + plen + n + mlen, self.buf.data + seg.after_end, tail)
        return 0

    def records(self, record_type, str topic, str table, lsn, txid):
        """``read(pgresult address) -> [record_type(topic, key, value, (), table, key payload, lsn, txid)]``."""
        self.record_type, self.topic, self.table, self.lsn, self.txid = record_type, topic, table, lsn, txid
        return self.read

    def read(self, size_t pgresult, int start=0, int stop=-1):
        """One record per row ``start <= row < stop`` of the result (``records`` names the type and fixed fields)."""
        cdef list out = []
        cdef object key, payload, value, empty = ()
        cdef tuple fields
        keys, values, payloads = self(pgresult, start, stop)
        new = tuple.__new__
        rtype = self.record_type
        for key, value, payload in zip(keys, values, payloads):
            fields = (self.topic, key, value, empty, self.table, payload, self.lsn, self.txid)
            out.append(new(rtype, fields))
        return out

    def __call__(self, size_t pgresult, int start=0, int stop=-1):
        """``(keys, values, key payloads)``: lists of bytes, one per row ``start <= row < stop`` (-1: to the end);
        keys and payloads are None without a key.

        Three passes: the images without the GIL; with it, the holes filled and
        the bytes objects allocated; without it again, their contents copied.
        """
        cdef const void* res = <const void*>pgresult
        cdef int nt, nf, r, i
        cdef Segs* grown
        cdef Segs* seg
        cdef Py_ssize_t h = 0, plen = PyBytes_GET_SIZE(self.prefix), mlen = PyBytes_GET_SIZE(self.middle)
        cdef Py_ssize_t klen = 0, n
        cdef list keys, values, payloads
        cdef bytes out
        cdef bint keyed = self.key is not None
        cdef const char* khead = NULL
        cdef const char* prefix = PyBytes_AS_STRING(self.prefix)
        cdef const char* middle = PyBytes_AS_STRING(self.middle)
        if _PQgetvalue == NULL:
            raise RuntimeError("libpq is not bound (bind_libpq)")
        if res == NULL:
            return [], [], []
        nt = _PQntuples(res)
        nf = _PQnfields(res)
        if stop < 0 or stop > nt:
            stop = nt
        if start < 0:
            start = 0
        if start > stop:
            start = stop
        nt = stop - start
        if nt > self.cap_segs:
            grown = <Segs*>realloc(self.segs, nt * sizeof(Segs))
            if grown == NULL:
                raise MemoryError()
            self.segs = grown
            self.cap_segs = nt
        self.buf.len = 0
        self.seg.len = 0
        self.nholes = 0
        with nogil:
            self._encode(res, start, nt, nf)
        keys = [None] * nt
        values = [None] * nt
        payloads = [None] * nt
        if keyed:
            klen = PyBytes_GET_SIZE(self.key_head)
            khead = PyBytes_AS_STRING(self.key_head)
        for i in range(nt):
            r = start + i
            seg = &self.segs[i]
            seg.kfill = -1
            seg.afill = -1
            if keyed:
                if h < self.nholes and self.holes[h].row == r and self.holes[h].which == 0:
                    seg.kfill_len = self._assemble(seg.key_start, seg.key_end, &h, res, r, 0, &seg.kfill)
                    n = seg.kfill_len
                else:
                    n = seg.key_end - seg.key_start
                out = PyBytes_FromStringAndSize(NULL, klen + n + 1)
                seg.kdst = PyBytes_AS_STRING(out)
                keys[i] = out
                out = PyBytes_FromStringAndSize(NULL, n)
                seg.pdst = PyBytes_AS_STRING(out)
                payloads[i] = out
            if h < self.nholes and self.holes[h].row == r:
                seg.afill_len = self._assemble(seg.after_start, seg.after_end, &h, res, r, 1, &seg.afill)
                n = seg.afill_len
            else:
                n = seg.after_end - seg.after_start
            out = PyBytes_FromStringAndSize(NULL, plen + n + mlen + (seg.tail_end - seg.after_end))
            seg.vdst = PyBytes_AS_STRING(out)
            values[i] = out
        with nogil:
            self._copy(nt, khead, klen, prefix, plen, middle, mlen, keyed)
        return keys, values, payloads
