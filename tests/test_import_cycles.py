"""No import circles among the modules of ``src/trioworks``.

Builds the import graph with :mod:`ast` (nothing is imported) and asserts it has no cycle. A
circle means two modules each need the other: neither can be read, tested or moved alone, and
which one loads first decides whether a name exists yet. Each edge is one ``import`` or
``from ... import`` statement of ours, resolved to the module it loads: ``from .x import name``
is an edge to ``x`` (to ``x.name`` when that is a module itself).

What counts:

- Imports anywhere in a module, **including function-local (lazy) ones**: deferring an import
  hides a circle from the interpreter, not from the reader.
- Not those under ``if TYPE_CHECKING:``: they never run and only name types for the checker
  (a Protocol in the lower module is the way to avoid even those where it reads better).
- Not the implicit edge from a module to its parent package's ``__init__``: Python runs the
  parent first, and a package re-exporting its own modules is not a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
OURS = "trioworks"


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in sorted((SRC / OURS).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, skipping the bodies of ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # an ``else:`` branch does run
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def _base(importer: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = importer if MODULES[importer][1] else importer.rpartition(".")[0]
    parts = package.split(".")
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _targets(importer: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    base = _base(importer, node)
    found = set()
    for alias in node.names:
        if f"{base}.{alias.name}" in MODULES:
            found.add(f"{base}.{alias.name}")
        elif base in MODULES:
            found.add(base)
    return found


def import_graph(modules: dict[str, tuple[Path, bool]] = MODULES) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, (path, _) in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = {t for node in _imports(tree) for t in _targets(name, node)} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    found = list(cycles(import_graph()))
    assert not found, "modules that import each other (directly or around a circle):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_the_graph_sees_lazy_imports_and_skips_type_checking(tmp_path: Path) -> None:
    """A circle closed by a function-local import is found; one closed under TYPE_CHECKING is not
    (so an empty result above means something)."""
    package = tmp_path / "trioworks" / "planted"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_a.py").write_text("from ._b import thing\n")
    (package / "_b.py").write_text("def thing():\n    from ._a import other\n")
    (package / "_c.py").write_text("from ._d import x\n")
    (package / "_d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._c import y\n"
    )
    planted = {
        f"trioworks.planted{'.' + p.stem if p.stem != '__init__' else ''}": (p, p.stem == "__init__")
        for p in package.glob("*.py")
    }
    global MODULES
    saved, MODULES = MODULES, planted
    try:
        found = cycles(import_graph(planted))
    finally:
        MODULES = saved
    assert found == [["trioworks.planted._a", "trioworks.planted._b"]]
