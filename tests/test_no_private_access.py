"""No module reaches into another's private names: not of a third-party package, not across ours.

Scans ``src/`` with :mod:`ast` (nothing is imported). Three rules:

1. No ``import``/``from``-import of a third-party or standard-library private module or name
   (``httpx._utils``, ``from hypercorn.trio.run import _x``).
2. No attribute access ``obj._name`` whose name the accessing subsystem (``trioworks.worker``,
   ``trioworks.bus``, ...) never defines itself (as ``self._name``, a function, class or module
   name): such a name belongs to another package's object (``transport._pool``,
   ``pool._ssl_context``) or to another subsystem's.
3. A private module of ours (``trioworks.core._offload``) is imported only from inside the package
   that owns it (``trioworks.core`` and its subpackages); everyone else uses the package's
   ``__init__``. A private *name* (``from ._x import _helper``) only from the same package.

The allow-list is tiny and each entry says why.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
OURS = "trioworks"

ALLOWED: dict[str, str] = {
    # typeshed's (and argparse's) only name for the type add_subparsers() returns.
    "argparse._SubParsersAction": "no public name for the subparsers type",
}


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, (path, _) in MODULES.items()}


def _package_of(module: str) -> str:
    return module if MODULES.get(module, (None, False))[1] else module.rpartition(".")[0]


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = _package_of(importer).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _owner(module: str) -> str | None:
    """The package that owns a private module: the prefix before its first private component."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            return ".".join(parts[:i])
    return None


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _area(module: str) -> str:
    """The subsystem a module belongs to: ``trioworks.worker``, ``trioworks.core``, ..."""
    return ".".join(module.split(".")[:2])


def _defined_names() -> dict[str, set[str]]:
    """Per subsystem, the names its own code defines (``self._x = ...`` defines; ``other._x = ...``
    does not: that is writing someone else's attribute)."""
    names: dict[str, set[str]] = {}
    for module, tree in TREES.items():
        area = names.setdefault(_area(module), set())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                area.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    area.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                area.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                area.add(node.target.id)
            elif isinstance(node, ast.arg):
                area.add(node.arg)
    return names


def _imported_roots(tree: ast.Module) -> dict[str, str]:
    """Local name -> module, for names bound by ``import x.y`` / ``import x as y`` (not ours)."""
    roots = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith(OURS):
                    local = alias.asname or alias.name.split(".")[0]
                    roots[local] = (alias.asname and alias.name) or local
    return roots


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def violations() -> list[str]:
    found: list[str] = []
    defined = _defined_names()
    for module, tree in TREES.items():
        where = f"{MODULES[module][0].relative_to(SRC)}"
        roots = _imported_roots(tree)
        own_names = defined.get(_area(module), set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name
                    if not target.startswith(OURS + ".") and any(map(_private, target.split("."))):
                        found.append(
                            f"{where}:{node.lineno}: import {target} (private module of a dependency)"
                        )
                    owner = _owner(target) if target.startswith(OURS + ".") else None
                    if owner is not None and not _within(module, owner):
                        found.append(f"{where}:{node.lineno}: import {target} (private to {owner})")
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, node)
                ours = source == OURS or source.startswith(OURS + ".")
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    if not ours:
                        if any(map(_private, full.split("."))) and full not in ALLOWED:
                            found.append(
                                f"{where}:{node.lineno}: from {source} import {alias.name} (private)"
                            )
                        continue
                    is_module = full in MODULES
                    owner = _owner(full if is_module else source)
                    if owner is not None and not _within(module, owner):
                        found.append(
                            f"{where}:{node.lineno}: from {source} import {alias.name} (private to {owner})"
                        )
                    if not is_module and _private(alias.name) and _package_of(source) != _package_of(module):
                        found.append(
                            f"{where}:{node.lineno}: from {source} import {alias.name} (another package's private name)"
                        )
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                dotted = _dotted(node)
                if dotted in ALLOWED:
                    continue
                root = dotted.split(".")[0] if dotted else None
                if root in roots:
                    found.append(f"{where}:{node.lineno}: {dotted} (private name of {roots[root]})")
                elif node.attr not in own_names:
                    found.append(f"{where}:{node.lineno}: .{node.attr} (not defined in {_area(module)})")
    return found


def test_no_private_names_of_other_packages_are_used() -> None:
    assert violations() == []


def test_the_scanner_catches_what_it_is_for() -> None:
    """Each rule fires on a planted example (so an empty result above means something)."""
    planted = ast.parse(
        "import httpx._utils\n"
        "from hypercorn.trio.run import _private\n"
        "from trioworks.core._offload import run_in_thread\n"
        "from ..bus._bus import _helper\n"
        "def f(transport):\n"
        "    return transport._pool_never_defined_by_us\n"
    )
    name = "trioworks.worker._planted"
    MODULES[name] = (SRC / "trioworks" / "worker" / "_planted.py", False)
    TREES[name] = planted
    try:
        found = [v for v in violations() if v.startswith("trioworks/worker/_planted.py")]
    finally:
        del MODULES[name], TREES[name]
    # one each, and the bus import twice (a private module and a private name of another package)
    assert len(found) == 6, found


def test_allowed_entries_are_still_needed() -> None:
    text = "\n".join(path.read_text() for path, _ in MODULES.values())
    for entry in ALLOWED:
        assert entry in text, f"{entry} is no longer used: drop it from ALLOWED"


if __name__ == "__main__":  # pragma: no cover
    print("\n".join(violations()) or "clean", file=sys.stderr)
