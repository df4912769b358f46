"""``echo``: the original std worker's pass-through activity."""

from __future__ import annotations

from typing import Any

from .._context import ActivityContext
from .._results import ActivityResult

__all__ = ["echo"]


async def echo(params: dict[str, Any], ctx: ActivityContext) -> ActivityResult:
    """Output ``echo``: the (resolved) parameters, unchanged."""
    return ActivityResult.value("echo", params)
