"""Helpers shared by the server tests (imported by name: the test directories are not packages)."""

from __future__ import annotations

from typing import Any


def activity(key: str, *deps: Any, worker: str = "std", **extra: Any) -> dict[str, Any]:
    """One activity of a definition; ``deps`` are keys or ``{activity_key, condition}`` dicts."""
    return {
        "key": key,
        "worker": worker,
        "activity_name": extra.pop("name", key),
        "depends_on": list(deps),
        **extra,
    }
