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

# Loaded with the package (the runtime and create_cycle reach it lazily, to avoid an import cycle).
from . import _cycles  # noqa: F401
from ._builder import Connection, Edge, Plan, Workflow, WorkflowBuilder
from ._errors import (
    ConnectionError,
    CycleConfigurationError,
    CycleError,
    CycleException,
    DagError,
    HardTimeLimitExceeded,
    KailashException,
    MappingPathError,
    NodeConfigurationError,
    NodeException,
    NodeExecutionError,
    NodeInputError,
    NodeTimeoutError,
    NodeValidationError,
    RuntimeException,
    RuntimeExecutionError,
    SoftTimeLimitExceeded,
    WorkflowException,
    WorkflowExecutionError,
    WorkflowTimeoutError,
    WorkflowValidationError,
)
from ._export import to_dot, to_mermaid
from ._kailash import LocalRuntime
from ._node_api import (
    AsyncNode,
    AsyncPythonCodeNode,
    CSVReaderNode,
    CSVWriterNode,
    JSONReaderNode,
    JSONWriterNode,
    MergeNode,
    Node,
    NodeMetadata,
    NodeParameter,
    NodeRegistry,
    PythonCodeNode,
    SwitchNode,
    TextReaderNode,
    TextWriterNode,
    register_node,
)
from ._nodes import NODE_TYPES, CodeNodeError, NodeKind, NodeSpec, Resource
from ._resources import (
    CircuitBreakerPolicy,
    CircuitOpenError,
    HealthState,
    HealthStatus,
    ResourceCreationError,
    ResourceError,
    ResourceFactory,
    ResourceNotFoundError,
    ResourceRegistry,
    UnknownResourceError,
)
from ._result import NodeEvent, NodeStatus, WorkflowResult
from ._runtime import AsyncLocalRuntime

__all__ = [
    "NODE_TYPES",
    "AsyncLocalRuntime",
    "AsyncNode",
    "AsyncPythonCodeNode",
    "CSVReaderNode",
    "CSVWriterNode",
    "CircuitBreakerPolicy",
    "CircuitOpenError",
    "CodeNodeError",
    "Connection",
    "ConnectionError",
    "CycleConfigurationError",
    "CycleError",
    "CycleException",
    "DagError",
    "Edge",
    "HardTimeLimitExceeded",
    "HealthState",
    "HealthStatus",
    "JSONReaderNode",
    "JSONWriterNode",
    "KailashException",
    "LocalRuntime",
    "MappingPathError",
    "MergeNode",
    "Node",
    "NodeConfigurationError",
    "NodeEvent",
    "NodeException",
    "NodeExecutionError",
    "NodeInputError",
    "NodeKind",
    "NodeMetadata",
    "NodeParameter",
    "NodeRegistry",
    "NodeSpec",
    "NodeStatus",
    "NodeTimeoutError",
    "NodeValidationError",
    "Plan",
    "PythonCodeNode",
    "Resource",
    "ResourceCreationError",
    "ResourceError",
    "ResourceFactory",
    "ResourceNotFoundError",
    "ResourceRegistry",
    "RetryPolicy",
    "RuntimeException",
    "RuntimeExecutionError",
    "SoftTimeLimitExceeded",
    "SwitchNode",
    "TextReaderNode",
    "TextWriterNode",
    "UnknownResourceError",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowException",
    "WorkflowExecutionError",
    "WorkflowResult",
    "WorkflowTimeoutError",
    "WorkflowValidationError",
    "register_node",
    "to_dot",
    "to_mermaid",
]
