"""Shared helpers of the bus tests (a module of its own: ``conftest`` names collide across dirs)."""

from __future__ import annotations

from _collector import Collector

__all__ = ["Collector"]
