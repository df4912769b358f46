"""What an activity returns: :class:`ActivityResult`, same shape as the original SDK's."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from ._wire import UsageEntry

__all__ = ["ActivityOutput", "ActivityResult", "OutputType"]


class OutputType(enum.StrEnum):
    VALUE = "value"
    FILE = "file"
    """``value`` is a local path; the worker uploads it and reports its reference string."""
    FOLDER = "folder"
    """``value`` is a local directory; every file under it is uploaded as ``{name}/{relative path}``
    and the output is the list of their reference strings."""


@attrs.frozen
class ActivityOutput:
    name: str
    output_type: OutputType
    value: Any


def _cost(value: Decimal | float | int | None) -> float | None:
    if value is None:
        return None
    cost = float(value)
    if not cost >= 0:
        raise ValueError(f"cost_usd must be a number >= 0, got {value!r}")
    return cost


# Typed converters: attrs' ``converter=tuple`` would type the field's __init__ parameter as tuple's
# generic ``Iterable[_T_co]``, which mypy can match with nothing.
def _outputs(items: Iterable[ActivityOutput]) -> tuple[ActivityOutput, ...]:
    return tuple(items)


def _usage(items: Iterable[UsageEntry]) -> tuple[UsageEntry, ...]:
    return tuple(items)


@attrs.frozen
class ActivityResult:
    """Outputs plus optional cost and usage; or an error (``code``, ``retryable``).

    Frozen: :meth:`with_cost` and friends return a new result, so chaining works as in the
    original (``ActivityResult.value("x", 1).with_cost(0.02)``).
    """

    outputs: tuple[ActivityOutput, ...] = attrs.field(default=(), converter=_outputs)
    cost_usd: float | None = attrs.field(default=None, converter=_cost)
    usage: tuple[UsageEntry, ...] = attrs.field(default=(), converter=_usage)
    metadata: Mapping[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = True

    @classmethod
    def value(cls, name: str, value: Any) -> ActivityResult:
        """One JSON value output."""
        return cls(outputs=(ActivityOutput(name, OutputType.VALUE, value),))

    @classmethod
    def values(
        cls, outputs: Iterable[ActivityOutput] | Mapping[str, Any] | None = None, /, **named: Any
    ) -> ActivityResult:
        """Several outputs: a list of :class:`ActivityOutput` (as the original), a mapping, or keywords."""
        items: list[ActivityOutput] = []
        if isinstance(outputs, Mapping):
            items += [ActivityOutput(k, OutputType.VALUE, v) for k, v in outputs.items()]
        elif outputs is not None:
            items += list(outputs)
        items += [ActivityOutput(k, OutputType.VALUE, v) for k, v in named.items()]
        return cls(outputs=items)

    @classmethod
    def file(cls, name: str, local_path: str) -> ActivityResult:
        """One FILE output, uploaded by the worker as ``basename(local_path)``."""
        return cls(outputs=(ActivityOutput(name, OutputType.FILE, str(local_path)),))

    @classmethod
    def error(cls, message: str, code: str = "EXECUTION_ERROR", retryable: bool = True) -> ActivityResult:
        return cls(error_code=code or "EXECUTION_ERROR", error_message=message or code, retryable=retryable)

    def with_output(
        self, name: str, value: Any, output_type: OutputType = OutputType.VALUE
    ) -> ActivityResult:
        return attrs.evolve(self, outputs=(*self.outputs, ActivityOutput(name, output_type, value)))

    def with_cost(self, cost_usd: Decimal | float | int) -> ActivityResult:
        return attrs.evolve(self, cost_usd=cost_usd)

    def with_usage(self, *entries: UsageEntry) -> ActivityResult:
        return attrs.evolve(self, usage=(*self.usage, *entries))

    def with_metadata(self, metadata: Mapping[str, Any]) -> ActivityResult:
        return attrs.evolve(self, metadata=metadata)

    @property
    def is_error(self) -> bool:
        return self.error_code is not None

    def to_output_dict(self) -> dict[str, Any]:
        """VALUE outputs as ``{name: value}`` (FILE/FOLDER ones are added after upload)."""
        return {o.name: o.value for o in self.outputs if o.output_type is OutputType.VALUE}
