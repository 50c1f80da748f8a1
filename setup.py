"""Build the optional compiled core (``cdcd.native._core``, Cython).

Project metadata lives in pyproject.toml. The extension is optional: without
Cython or a C compiler the build says so and installs the pure-Python core,
which produces the same events, only slower (``cdcd --version`` names the core).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = "cdcd/native/_core.pyx"


def _warn(message: str) -> None:
    print(f"cdcd: {message}; installing the pure-Python core (same events, slower)", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """A failed compile is a warning, not a failed install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure falls back to pure Python
            _warn(f"the compiled core was not built ({exc})")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            _warn(f"the compiled core {ext.name} was not built ({exc})")


def _extensions() -> list[Extension]:
    if os.environ.get("CDCD_BUILD_CORE", "1") == "0":
        _warn("CDCD_BUILD_CORE=0")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _warn("Cython is not installed")
        return []
    # -ffp-contract=off: no fused multiply-add, so double arithmetic rounds exactly as Python's does.
    return cythonize(
        [Extension("cdcd.native._core", [SOURCE], extra_compile_args=["-O2", "-ffp-contract=off"])],
        compiler_directives={"language_level": "3"},
        quiet=True,
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
