"""A Kruxia Flow client and workflow DSL, with the original SDK's names (``kruxiaflow``).

SDK code keeps working with only the import changed::

    from trioworks.client import Activity, Client, Workflow, workflow

    fetch = Activity(key="fetch", activity_name="http_request",
                     parameters={"method": "GET", "url": "https://example.com"}, outputs=["response"])
    notify = Activity(key="notify", activity_name="echo",
                      parameters={"status": fetch["response.status"], "id": workflow.id},
                      depends_on=["fetch"])
    with Client("http://localhost:8080", client_id="...", client_secret="...") as client:
        client.deploy(Workflow(name="demo", activities=[fetch, notify]))
        started = client.start_workflow("demo", inputs={})
        print(client.wait_for_workflow(started["workflow_id"]))

:class:`AsyncClient` is the Trio twin (``await client.deploy(...)``). ``KruxiaFlow`` and
``AsyncKruxiaFlow`` are the SDK's names of the two clients.
"""

from ._client import TERMINAL_STATUSES, AsyncClient, Client
from ._errors import AuthenticationError, DeploymentError, KruxiaFlowError, WorkflowNotFoundError
from ._expressions import (
    And,
    Comparison,
    Contains,
    EnvRef,
    Eq,
    Expression,
    Ge,
    Gt,
    In,
    Input,
    IsNotNull,
    IsNull,
    Le,
    Literal,
    Lt,
    Ne,
    Not,
    Or,
    OutputComparison,
    OutputRef,
    SecretRef,
    WorkflowRef,
    and_,
    contains,
    in_,
    is_not_null,
    is_null,
    not_,
    or_,
    workflow,
)
from ._models import (
    Activity,
    ActivityOutputDefinition,
    ActivitySettings,
    BackoffStrategy,
    BudgetAction,
    BudgetSettings,
    CacheSettings,
    Dependency,
    OutputType,
    RetrySettings,
    ScriptActivity,
    Workflow,
    script,
)

KruxiaFlow = Client
"""The SDK's name of the blocking client."""
AsyncKruxiaFlow = AsyncClient
"""The SDK's name of the async client (Trio here)."""

__all__ = [
    "TERMINAL_STATUSES",
    "Activity",
    "ActivityOutputDefinition",
    "ActivitySettings",
    "And",
    "AsyncClient",
    "AsyncKruxiaFlow",
    "AuthenticationError",
    "BackoffStrategy",
    "BudgetAction",
    "BudgetSettings",
    "CacheSettings",
    "Client",
    "Comparison",
    "Contains",
    "Dependency",
    "DeploymentError",
    "EnvRef",
    "Eq",
    "Expression",
    "Ge",
    "Gt",
    "In",
    "Input",
    "IsNotNull",
    "IsNull",
    "KruxiaFlow",
    "KruxiaFlowError",
    "Le",
    "Literal",
    "Lt",
    "Ne",
    "Not",
    "Or",
    "OutputComparison",
    "OutputRef",
    "OutputType",
    "RetrySettings",
    "ScriptActivity",
    "SecretRef",
    "Workflow",
    "WorkflowNotFoundError",
    "WorkflowRef",
    "and_",
    "contains",
    "in_",
    "is_not_null",
    "is_null",
    "not_",
    "or_",
    "script",
    "workflow",
]
