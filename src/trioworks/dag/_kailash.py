"""``LocalRuntime``: Kailash's sync-first runtime, on the same Trio engine.

``results, run_id = LocalRuntime().execute(workflow, parameters={...})``. Defaults are
Kailash's: ``conditional_execution="route_data"`` (every node runs; the untaken switch output
is ``None``), ``connection_validation="warn"``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ._errors import LocalRuntimeExecutionError, RuntimeExecutionError, WorkflowExecutionError
from ._resources import ResourceRegistry
from ._runtime import CONDITIONAL_MODES, AsyncLocalRuntime, check_mode

__all__ = ["LocalRuntime"]


class LocalRuntime(AsyncLocalRuntime):
    """Kailash's ``LocalRuntime``: ``execute`` returns ``(results, run_id)``.

    ``max_concurrency`` bounds nodes running at once; Kailash's other switches
    (``enable_monitoring``, ``enable_security``, ``enable_audit``, ``user_context``, ...) are
    accepted and have no effect. ``enable_cycles`` (default) runs cyclic workflows.
    """

    def __init__(
        self,
        debug: bool = False,
        enable_cycles: bool = True,
        enable_async: bool = True,
        max_concurrency: int = 10,
        connection_validation: str = "warn",
        conditional_execution: str = "route_data",
        resource_registry: ResourceRegistry | None = None,
        **options: Any,
    ) -> None:
        options.pop("debug", None)
        # None means "the native default" on AsyncLocalRuntime; Kailash's LocalRuntime refuses it.
        check_mode("conditional_execution", conditional_execution, CONDITIONAL_MODES)
        own = {k: options.pop(k) for k in list(options) if k in _NATIVE}
        super().__init__(
            resource_registry=resource_registry,
            max_concurrent_nodes=own.pop("max_concurrent_nodes", max_concurrency),
            conditional_execution=conditional_execution,
            connection_validation=connection_validation,
            debug=debug,
            content_aware_success_detection=options.pop("content_aware_success_detection", True),
            **own,
        )
        # Kailash's enterprise switches: kept as attributes, no effect here.
        self.user_context = options.pop("user_context", None)
        self.resource_limits = options.pop("resource_limits", None) or {}
        self.enable_monitoring = options.pop("enable_monitoring", True)
        self.enable_security = options.pop("enable_security", False)
        self.enable_audit = options.pop("enable_audit", False)
        for name, value in options.items():
            setattr(self, name, value)
        self.logger = logging.getLogger("trioworks.dag.runtime")
        self.logger.setLevel(logging.DEBUG if debug else logging.INFO)
        self.enable_cycles = enable_cycles
        self.enable_async = enable_async
        self.max_concurrency = max_concurrency

    def execute(  # type: ignore[override]  # Kailash's LocalRuntime returns (results, run_id)
        self,
        workflow: Any,
        task_manager: Any = None,
        parameters: Mapping[str, Any] | None = None,
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
        **options: Any,
    ) -> tuple[dict[str, Any], str]:
        """Run ``workflow`` to the end; return ``(results, run_id)``."""
        if workflow is None:
            raise RuntimeExecutionError("No workflow provided")
        inputs = options.pop("inputs", None)
        validate = getattr(workflow, "validate", None)
        if validate is not None:
            validate(runtime_parameters=parameters if parameters is not None else inputs)
        try:
            result = super().execute(
                workflow,
                parameters if parameters is not None else inputs,
                soft_time_limit=soft_time_limit,
                time_limit=time_limit,
                **options,
            )
        except WorkflowExecutionError as exc:
            raise _as_runtime_error(exc) from exc.__cause__
        return result.results, result.run_id

    def validate_workflow(self, workflow: Any) -> list[str]:
        """Check ``workflow`` without running it: raises :class:`WorkflowValidationError`
        (from ``workflow.validate()``) if it cannot run; returns warnings (none here)."""
        workflow.validate()
        return []

    async def execute_async(  # type: ignore[override]  # Kailash's LocalRuntime returns a tuple
        self,
        workflow: Any,
        parameters: Mapping[str, Any] | None = None,
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
        **options: Any,
    ) -> tuple[dict[str, Any], str]:
        """``await runtime.execute_async(workflow, parameters)``: ``(results, run_id)``."""
        if workflow is None:
            raise RuntimeExecutionError("No workflow provided")
        options.pop("task_manager", None)
        try:
            result = await self.execute_workflow_async(
                workflow, parameters, soft_time_limit=soft_time_limit, time_limit=time_limit, **options
            )
        except WorkflowExecutionError as exc:
            raise _as_runtime_error(exc) from exc.__cause__
        return result.results, result.run_id


def _as_runtime_error(exc: WorkflowExecutionError) -> WorkflowExecutionError:
    """Kailash's LocalRuntime raises RuntimeExecutionError for a failed node; keep timeouts
    (``TimeoutError``) and errors that already are one as they are."""
    if isinstance(exc, RuntimeExecutionError | TimeoutError):
        return exc
    return LocalRuntimeExecutionError.of(exc)


_NATIVE = frozenset(
    {
        "max_concurrent_nodes",
        "thread_pool_size",
        "execution_timeout",
        "process_pool_size",
        "continue_on_error",
        "abandon_threads",
        "on_node_start",
        "on_node_finish",
    }
)
