"""A Kailash-compatible workflow builder and a Trio DAG runtime.

Port a Kailash workflow by changing its imports::

    from trioworks.dag import WorkflowBuilder, AsyncLocalRuntime, ResourceRegistry

or use plain functions as nodes::

    wb = WorkflowBuilder()
    wb.add_node(load, "load")
    wb.add_node(count_words, "count")
    wb.add_connection("load", "result", "count", "text")
    result = AsyncLocalRuntime().execute(wb.build())
"""

from ..core import RetryPolicy
from ._builder import Edge, Workflow, WorkflowBuilder
from ._errors import (
    CycleError,
    DagError,
    MappingPathError,
    NodeInputError,
    NodeTimeoutError,
    WorkflowExecutionError,
    WorkflowTimeoutError,
    WorkflowValidationError,
)
from ._export import to_dot, to_mermaid
from ._nodes import NODE_TYPES, CodeNodeError, NodeKind, NodeSpec, Resource
from ._resources import (
    CircuitBreakerPolicy,
    CircuitOpenError,
    ResourceCreationError,
    ResourceError,
    ResourceRegistry,
    UnknownResourceError,
)
from ._result import NodeEvent, NodeStatus, WorkflowResult
from ._runtime import AsyncLocalRuntime

__all__ = [
    "NODE_TYPES",
    "AsyncLocalRuntime",
    "CircuitBreakerPolicy",
    "CircuitOpenError",
    "CodeNodeError",
    "CycleError",
    "DagError",
    "Edge",
    "MappingPathError",
    "NodeEvent",
    "NodeInputError",
    "NodeKind",
    "NodeSpec",
    "NodeStatus",
    "NodeTimeoutError",
    "Resource",
    "ResourceCreationError",
    "ResourceError",
    "ResourceRegistry",
    "RetryPolicy",
    "UnknownResourceError",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowExecutionError",
    "WorkflowResult",
    "WorkflowTimeoutError",
    "WorkflowValidationError",
    "to_dot",
    "to_mermaid",
]
