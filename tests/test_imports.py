"""The import graph of ``cdcd``: no circles, no ``_private`` module used from another package.

Every ``import`` counts, including those inside functions and under
``TYPE_CHECKING``: a deferred import hides a circle, it does not remove it.
``from package import module`` is an edge to the module only (as ``import
package.module``); a package's ``__init__`` is a module of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cdcd"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _package_of(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str) -> list[tuple[str, int]]:
    """The cdcd modules ``module`` imports, with the line of each import."""
    out = []
    for node in ast.walk(ast.parse(MODULES[module].read_text(), str(MODULES[module]))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names if alias.name in MODULES]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{MODULES[module]}:{node.lineno}: relative import (cdcd imports are absolute)"
            base = node.module or ""
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            out += [(name, node.lineno) for name in submodules]
            if base in MODULES and len(submodules) < len(node.names):
                out.append((base, node.lineno))
    return [(target, line) for target, line in out if target != module]


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, _ in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_the_graph_is_read() -> None:
    assert len(MODULES) > 50
    assert "cdcd.debezium.column_rules" in [t for t, _ in GRAPH["cdcd.debezium.envelope"]]


def test_no_import_circles() -> None:
    described = []
    for component in _cycles():
        edges = [f"{m} -> {t} (line {line})" for m in component for t, line in GRAPH[m] if t in component]
        described.append("circle: " + "; ".join(edges))
    assert not described, "\n".join(described)


def _private_crossings() -> list[str]:
    return [
        f"{MODULES[m]}:{line}: {m} imports {t}"
        for m, targets in GRAPH.items() for t, line in targets
        if t.rpartition(".")[2].startswith("_") and not t.endswith("__") and _package_of(t) != _package_of(m)
    ]


def test_no_private_module_from_another_package() -> None:
    crossing = _private_crossings()
    assert not crossing, "\n".join(crossing)


def test_the_checks_see_what_they_look_for() -> None:
    """A circle and a cross-package private import written into the graph are found; a same-package one is not."""
    saved = {m: list(t) for m, t in GRAPH.items()}
    try:
        GRAPH["cdcd.errors"].append(("cdcd.config", 1))
        GRAPH["cdcd.pipeline"].append(("cdcd.snapshot._reader", 1))
        GRAPH["cdcd.snapshot.run"].append(("cdcd.snapshot._reader", 1))
        assert any("cdcd.errors" in c and "cdcd.config" in c for c in _cycles())
        assert [c.rpartition(": ")[2] for c in _private_crossings()] == ["cdcd.pipeline imports cdcd.snapshot._reader"]
    finally:
        GRAPH.clear()
        GRAPH.update(saved)
