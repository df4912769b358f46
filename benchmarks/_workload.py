"""Work shared by the benchmark's workers; module-level so ``process=True`` activities can import it."""

from __future__ import annotations

import time
from typing import Any


def burn(seconds: float) -> None:
    """Pure-Python CPU work for ``seconds`` (holds the GIL throughout)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def cpu_process(params: Any) -> dict[str, bool]:
    """The ``cpu`` activity as our worker runs it: in a worker process."""
    burn(0.05)
    return {"ok": True}
