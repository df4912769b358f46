"""Cycles (Kailash's ``create_cycle`` / ``connect(..., cycle=True)``), run by LocalRuntime."""

from __future__ import annotations

from typing import Any

from ._errors import CycleConfigurationError

__all__ = ["CycleBuilder"]


class CycleBuilder:
    """``workflow.create_cycle("id").connect(a, b, mapping).max_iterations(n)
    .converge_when("expr").timeout(s).build()``."""

    def __init__(self, workflow: Any, cycle_id: str) -> None:
        self._workflow = workflow
        self._cycle_id = cycle_id
        self._links: list[tuple[str, str, dict[str, str] | None]] = []
        self._max_iterations: int | None = None
        self._convergence: str | None = None
        self._timeout: float | None = None

    def connect(
        self, source_node: str, target_node: str, mapping: dict[str, str] | None = None
    ) -> CycleBuilder:
        self._links.append((source_node, target_node, mapping))
        return self

    def max_iterations(self, n: int) -> CycleBuilder:
        if not isinstance(n, int) or n < 1:
            raise CycleConfigurationError(
                f"cycle {self._cycle_id!r}: max_iterations must be an int >= 1, got {n!r}"
            )
        self._max_iterations = n
        return self

    def converge_when(self, expression: str) -> CycleBuilder:
        if not isinstance(expression, str) or not expression.strip():
            raise CycleConfigurationError(
                f"cycle {self._cycle_id!r}: converge_when needs an expression string"
            )
        self._convergence = expression
        return self

    def timeout(self, seconds: float) -> CycleBuilder:
        self._timeout = seconds
        return self

    def memory_limit(self, _mb: int) -> CycleBuilder:
        return self

    def when(self, _condition: str) -> CycleBuilder:
        return self

    def nested_in(self, _parent: str) -> CycleBuilder:
        return self

    def build(self) -> None:
        if not self._links:
            raise CycleConfigurationError(
                f"cycle {self._cycle_id!r}: no connection; call .connect(a, b, mapping)"
            )
        if self._max_iterations is None and self._convergence is None:
            raise CycleConfigurationError(
                f"cycle {self._cycle_id!r}: give max_iterations(n) or converge_when(expr), or it never ends"
            )
        for source, target, mapping in self._links:
            self._workflow.connect(
                source,
                target,
                mapping=mapping,
                cycle=True,
                max_iterations=self._max_iterations,
                convergence_check=self._convergence,
                cycle_id=self._cycle_id,
                timeout=self._timeout,
            )
