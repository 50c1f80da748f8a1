"""Build a mypyc-compiled copy of cdcd's hot modules, to benchmark it (nothing is installed).

    python3 bench/build_mypyc.py /tmp/cdcd-mypyc      # needs mypy (with mypyc) and a C compiler
    python3 bench/micro.py --replay-only --cdcd-path /tmp/cdcd-mypyc
    python3 bench/run.py --shape wide --reps 3 --cdcd-path /tmp/cdcd-mypyc

The copy gets the two source changes mypyc needs (see docs/performance.md);
everything else is compiled as it is. Modules that are not listed stay Python.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = [
    "cdcd/decode/pgoutput.py", "cdcd/wire/frames.py", "cdcd/decode/messages.py", "cdcd/delivery/tracker.py", "cdcd/debezium/envelope.py",
    "cdcd/pipeline.py", "cdcd/debezium/types/temporal.py", "cdcd/debezium/types/numeric.py", "cdcd/debezium/types/arrays.py",
    "cdcd/debezium/types/row.py", "cdcd/debezium/types/text.py",
    # They subclass envelope.Record, and an interpreted class cannot extend a compiled one.
    "cdcd/delivery/offsets.py", "cdcd/debezium/transforms/outbox.py",
]
# (file, old, new): what mypyc cannot take as it is.
EDITS = [
    ("cdcd/decode/messages.py", "    _instance: _UnchangedToast | None = None",
     "    _instance: ClassVar[_UnchangedToast | None] = None"),
    ("cdcd/decode/messages.py", "from typing import Final, Union", "from typing import ClassVar, Final, Union"),
    # mypyc evaluates dataclass annotations at import; "memoryview" must be a module global.
    ("cdcd/wire/frames.py", "import struct\n", "import builtins\nimport struct\n\nmemoryview = builtins.memoryview\n"),
]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1]).resolve()
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(ROOT / "cdcd", out / "cdcd", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for name, old, new in EDITS:
        path = out / name
        text = path.read_text()
        if old not in text:
            print(f"warning: {name} changed, edit not applied: {old.strip()!r}", file=sys.stderr)
            continue
        path.write_text(text.replace(old, new, 1))
    result = subprocess.run(["mypyc", *MODULES], cwd=out)
    if result.returncode == 0:
        print(f"compiled build in {out}; use --cdcd-path {out}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
