"""Profiling the hot path: py-spy (sampling, low overhead) and cProfile (per C call) summaries.

py-spy's raw output is one collapsed stack per line (``f (file:line);g (file:line) COUNT``,
with ``--function`` the line is the function's first line); only non-idle samples
are recorded, so the shares are of cdcd's busy Python time. C functions (orjson,
librdkafka's ``produce``, libpq's ``get_copy_data``) are charged to the Python
function calling them; cProfile names them.
"""

from __future__ import annotations

import pstats
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short_file(file: str) -> str:
    if "/cdcd/" in file:
        return "cdcd/" + file.split("/cdcd/", 1)[1]
    for marker in ("/site-packages/", "/lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    return f"{m.group('func')} ({_short_file(m.group('file'))})"


def pyspy_tables(raw: Path, top: int = 20) -> tuple[int, list[tuple[float, str]], list[tuple[float, str]]]:
    """(samples, [(self share, function)], [(inclusive share, function)])."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        self_time[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return 0, [], []
    return (total, [(c / total, f) for f, c in self_time.most_common(top)],
            [(c / total, f) for f, c in inclusive.most_common(top)])


def cprofile_table(path: Path, top: int = 25) -> list[tuple[float, int, float, str]]:
    """[(tottime share, calls, µs per call, function)] by own time."""
    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values()) or 1.0
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, _ct, _callers) in entries.items():
        name = func if file == "~" else f"{func} ({_short_file(file)}:{line})"
        rows.append((tottime / total, ncalls, tottime / ncalls * 1e6 if ncalls else 0.0, name))
    rows.sort(reverse=True)
    return rows[:top]


def markdown(title: str, raw: Path | None, cprof: Path | None, events: int) -> str:
    out = [f"### {title}", ""]
    if raw is not None and raw.exists():
        total, self_rows, incl_rows = pyspy_tables(raw)
        out += [f"py-spy, {total} busy samples at 250 Hz.", "", "| self | function |", "|---:|---|"]
        out += [f"| {share:.1%} | `{name}` |" for share, name in self_rows]
        out += ["", "| inclusive | function |", "|---:|---|"]
        out += [f"| {share:.1%} | `{name}` |" for share, name in incl_rows]
        out.append("")
    if cprof is not None and cprof.exists():
        out += [f"cProfile of the daemon thread ({events:,} events; its overhead inflates Python calls).", "",
                "| own time | calls | µs/call | calls/event | function |", "|---:|---:|---:|---:|---|"]
        out += [f"| {share:.1%} | {calls:,} | {us:.2f} | {calls / events:.2f} | `{name}` |"
                for share, calls, us, name in cprofile_table(cprof)]
        out.append("")
    return "\n".join(out)
