"""Nothing in the library imports the command line: ``cli/`` parses, calls and prints, and no other
package depends on it (``python -m trioworks`` aside). Scans ``src/`` with :mod:`ast`."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
CLI = "trioworks.cli"
ENTRY_POINTS = {"trioworks.__main__"}  # `python -m trioworks` runs the command line


def _module(path: Path, src: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(src).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _imports(path: Path, src: Path) -> set[str]:
    name, is_package = _module(path, src)
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            found |= {source, *(f"{source}.{alias.name}" for alias in node.names)}
    return found


def cli_importers(src: Path = SRC) -> dict[str, set[str]]:
    found = {}
    for path in sorted(src.rglob("*.py")):
        name, _ = _module(path, src)
        if name == CLI or name.startswith(f"{CLI}.") or name in ENTRY_POINTS:
            continue
        hits = {i for i in _imports(path, src) if i == CLI or i.startswith(f"{CLI}.")}
        if hits:
            found[name] = hits
    return found


def test_no_module_outside_the_cli_imports_it() -> None:
    assert cli_importers() == {}


def test_the_scan_sees_absolute_and_relative_imports(tmp_path: Path) -> None:
    demo = tmp_path / "trioworks" / "demo"
    demo.mkdir(parents=True)
    (demo / "__init__.py").write_text("import trioworks.cli\n")
    (demo / "_x.py").write_text("from ..cli import _errors\nfrom ..services import VoiceStack\n")
    (tmp_path / "trioworks" / "__main__.py").write_text("from .cli import main\n")
    assert cli_importers(tmp_path) == {
        "trioworks.demo": {"trioworks.cli"},
        "trioworks.demo._x": {"trioworks.cli", "trioworks.cli._errors"},
    }
