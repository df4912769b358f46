"""Every complete Python example in the README and docs/ runs as printed.

A block tagged ```python is run in a fresh interpreter, in a temporary directory; a block
tagged ```python fragment continues an earlier example and is only compiled.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python( fragment)?\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, bool, str]]:
    found = []
    for page in PAGES:
        for i, match in enumerate(BLOCK.finditer(page.read_text())):
            found.append((f"{page.relative_to(ROOT)}#{i}", bool(match.group(1)), match.group(2)))
    return found


@pytest.mark.parametrize(("where", "fragment", "code"), blocks(), ids=[b[0] for b in blocks()])
def test_example_runs(where: str, fragment: bool, code: str, tmp_path: Path) -> None:
    if fragment:
        compile(code, where, "exec", flags=0x2000)  # PyCF_ALLOW_TOP_LEVEL_AWAIT: fragments may await
        return
    (tmp_path / "README.md").write_text("an example file\n")  # some examples read a file
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{where} failed:\n{done.stderr[-3000:]}"
