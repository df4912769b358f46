"""Errors of the DAG runner. Each names the node, the field or the path at fault."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._result import WorkflowResult


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class KailashException(Exception):
    """Kailash's root exception (``kailash.sdk_exceptions.KailashException``)."""


class DagError(KailashException):
    """Base class of every error the DAG runner raises on its own account."""


class WorkflowException(DagError):
    """Kailash's base of workflow errors."""


class NodeException(DagError):
    """Kailash's base of node errors."""


class RuntimeException(DagError):
    """Kailash's base of runtime errors."""


class NodeValidationError(NodeException, ValueError):
    """A node's inputs or outputs do not match its declared parameters."""


class NodeExecutionError(NodeException):
    """A node's ``run`` raised; the message names the node and carries the original text."""


class NodeConfigurationError(NodeException, ValueError):
    """A node was constructed with an invalid configuration."""


class RuntimeExecutionError(RuntimeException):
    """The runtime could not execute the workflow (no workflow, bad call)."""


class SoftTimeLimitExceeded(RuntimeException):
    """The run passed its ``soft_time_limit``; running nodes were cancelled."""


class HardTimeLimitExceeded(RuntimeException):
    """The run passed its ``time_limit``; running nodes were cancelled."""


class WorkflowValidationError(WorkflowException, ValueError):
    """The workflow is malformed; raised by the builder, before anything runs."""


class ConnectionError(WorkflowValidationError):
    """A connection is invalid: a self-connection, a duplicate (Kailash's ``ConnectionError``)."""


class CycleException(WorkflowException):
    """Kailash's base of cycle errors."""


class CycleConfigurationError(CycleException, WorkflowValidationError):
    """A cycle is configured wrongly (no limit, no convergence, unknown node)."""


class CycleError(WorkflowValidationError):
    """The connections form a cycle. ``cycle`` lists its nodes, first repeated at the end."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(f"workflow has a cycle: {' -> '.join(cycle)}")


class NodeInputError(DagError, ValueError):
    """A node's inputs cannot be assembled: a missing parameter, a bad mapping path.

    Raised before the node runs; ``node_id`` and ``field`` name the culprit.
    """

    def __init__(self, node_id: str, field: str, message: str) -> None:
        self.node_id = node_id
        self.field = field
        super().__init__(f"node {node_id!r}, input {field!r}: {message}")


class MappingPathError(NodeInputError):
    """A mapping's dotted source path does not exist in the source node's output."""

    def __init__(
        self, node_id: str, field: str, source: str, path: str, missing: str, keys: list[str]
    ) -> None:
        self.source = source
        self.path = path
        hint = did_you_mean(missing, keys)
        super().__init__(
            node_id,
            field,
            f"path {path!r} of node {source!r}'s output has no key {missing!r}{hint}; "
            f"keys there: {sorted(keys)}",
        )


class NodeTimeoutError(DagError, TimeoutError):
    """A node ran past its own ``timeout``. ``abandoned``: its thread could not be stopped and
    was left running (its result will be dropped)."""

    def __init__(self, node_id: str, timeout: float, *, abandoned: bool = False) -> None:
        self.node_id = node_id
        self.timeout = timeout
        self.abandoned = abandoned
        left = "; its thread could not be stopped and was abandoned (still running)" if abandoned else ""
        super().__init__(f"node {node_id!r} timed out after {timeout:g} s{left}")


class WorkflowExecutionError(WorkflowException):
    """A node failed and the run stopped (fail-fast), or the run timed out.

    ``node_id`` is the failing node (``None`` for a workflow timeout), ``__cause__`` its
    exception, and ``result`` the partial :class:`WorkflowResult`: what finished, what
    failed, what was cancelled.
    """

    def __init__(
        self, message: str, *, node_id: str | None = None, result: WorkflowResult | None = None
    ) -> None:
        self.node_id = node_id
        self.result = result
        super().__init__(message)

    @property
    def partial_results(self) -> dict[str, Any]:
        return self.result.results if self.result is not None else {}


class WorkflowTimeoutError(WorkflowExecutionError, TimeoutError):
    """The whole run passed ``execution_timeout``; running nodes were cancelled."""


class LocalRuntimeExecutionError(WorkflowExecutionError, RuntimeExecutionError):
    """A failed run of Kailash's ``LocalRuntime``: Kailash raises :class:`RuntimeExecutionError`
    there, trioworks' runtimes :class:`WorkflowExecutionError`; this is both (same message,
    ``node_id``, ``result``; ``__cause__`` the node's exception)."""

    @classmethod
    def of(cls, exc: WorkflowExecutionError) -> LocalRuntimeExecutionError:
        new = cls(str(exc), node_id=exc.node_id, result=exc.result)
        new.__cause__ = exc.__cause__
        return new
