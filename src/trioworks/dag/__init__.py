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
from ._ai_nodes import EmbeddingGeneratorNode, LLMAgentNode
from ._builder import Edge, Plan, Workflow, WorkflowBuilder
from ._compile import compile_workflow
from ._connection import Connection
from ._distributed import DistributedRuntime, RemoteNodeError
from ._errors import (
    ConnectionError,
    CycleConfigurationError,
    CycleError,
    CycleException,
    DagError,
    HardTimeLimitExceeded,
    KailashException,
    LocalRuntimeExecutionError,
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
from ._http_node import AsyncHTTPRequestNode, HTTPRequestNode
from ._io_nodes import (
    CSVReaderNode,
    CSVWriterNode,
    JSONReaderNode,
    JSONWriterNode,
    TextReaderNode,
    TextWriterNode,
)
from ._kailash import LocalRuntime
from ._node_api import (
    AsyncNode,
    AsyncPythonCodeNode,
    MergeNode,
    Node,
    NodeMetadata,
    NodeParameter,
    NodeRegistry,
    PythonCodeNode,
    SwitchNode,
    register_node,
)
from ._node_runner import NodeImportError, NodeOutputError, NodeRunner, RemoteNodeFailure
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
from ._sql_node import SQLDatabaseNode
from ._workflow_node import WorkflowNode

__all__ = [
    "NODE_TYPES",
    "AsyncHTTPRequestNode",
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
    "DistributedRuntime",
    "Edge",
    "EmbeddingGeneratorNode",
    "HTTPRequestNode",
    "HardTimeLimitExceeded",
    "HealthState",
    "HealthStatus",
    "JSONReaderNode",
    "JSONWriterNode",
    "KailashException",
    "LLMAgentNode",
    "LocalRuntime",
    "LocalRuntimeExecutionError",
    "MappingPathError",
    "MergeNode",
    "Node",
    "NodeConfigurationError",
    "NodeEvent",
    "NodeException",
    "NodeExecutionError",
    "NodeImportError",
    "NodeInputError",
    "NodeKind",
    "NodeMetadata",
    "NodeOutputError",
    "NodeParameter",
    "NodeRegistry",
    "NodeRunner",
    "NodeSpec",
    "NodeStatus",
    "NodeTimeoutError",
    "NodeValidationError",
    "Plan",
    "PythonCodeNode",
    "RemoteNodeError",
    "RemoteNodeFailure",
    "Resource",
    "ResourceCreationError",
    "ResourceError",
    "ResourceFactory",
    "ResourceNotFoundError",
    "ResourceRegistry",
    "RetryPolicy",
    "RuntimeException",
    "RuntimeExecutionError",
    "SQLDatabaseNode",
    "SoftTimeLimitExceeded",
    "SwitchNode",
    "TextReaderNode",
    "TextWriterNode",
    "UnknownResourceError",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowException",
    "WorkflowExecutionError",
    "WorkflowNode",
    "WorkflowResult",
    "WorkflowTimeoutError",
    "WorkflowValidationError",
    "compile_workflow",
    "register_node",
    "to_dot",
    "to_mermaid",
]
