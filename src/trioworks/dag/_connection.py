"""Kailash's ``Connection``: one edge of a :class:`~trioworks.dag.Workflow` as its user wrote it.

On its own so that the builder and the file formats (``_serialize``) both use it without importing
each other.
"""

from __future__ import annotations

import attrs

__all__ = ["Connection"]


@attrs.frozen
class Connection:
    """One connection (Kailash's ``Connection``): ``source_node.source_output -> target_node.target_input``."""

    source_node: str
    source_output: str
    target_node: str
    target_input: str
    cycle: bool = False
    cycle_id: str | None = None
    max_iterations: int | None = None
    convergence_check: str | None = None
    timeout: float | None = None
