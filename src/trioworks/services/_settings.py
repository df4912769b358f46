"""What every service's settings share: the error a bad value raises, and the number check.

Each service's ``...ConfigError`` is a :class:`SettingError` with its own prefix, so a caller can
catch one service's errors or all of them; the message names the field and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import attrs

__all__ = ["SettingError", "at_least"]


class SettingError(ValueError):
    """A setting of a service is unusable; ``field`` names it, ``problem`` says what was expected."""

    prefix: ClassVar[str] = "setting"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{self.prefix} {field}: {problem}")
        self.field = field
        self.problem = problem


def at_least(
    error: type[SettingError], low: float, kind: type[float] | tuple[type[float], ...] = (int, float)
) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    """An attrs validator: a number (``kind``, never a bool) of at least ``low``."""
    what = "an integer" if kind is int else "a number"

    def check(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, kind) or value < low:
            raise error(attribute.name, f"expected {what} >= {low}, got {value!r}")

    return check
