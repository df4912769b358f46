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


class ManualClock:
    """POSIX seconds that only move when a test says so (leases, retries, token expiry)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
