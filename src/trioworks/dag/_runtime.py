"""AsyncLocalRuntime: Kailash's runtime surface on a Trio ready-queue scheduler.

This module is the facade: options, entry points, lifecycle. One execution is a
:class:`._scheduler._Run`, built in layers, each its own module:

- :mod:`._run_state`: inputs, results, statuses, bookkeeping of outcomes and events;
- :mod:`._fusion`: sync nodes run back to back in one worker thread (chains);
- :mod:`._node_exec`: one node's task: slot, attempts, timeout, retry, thread/process/loop;
- :mod:`._scheduler`: the ready queue and the nursery.

Cyclic workflows run on :class:`._cycles.CyclicRun`, a subclass of the scheduler.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

import trio

from ._builder import Workflow, WorkflowBuilder
from ._cycles import CyclicRun
from ._errors import did_you_mean
from ._lifecycle import RuntimeLifecycle, await_in_trio, check_time_limits, run_limited
from ._resources import ResourceRegistry
from ._result import WorkflowResult
from ._run_state import NodeCallback
from ._scheduler import _Run

__all__ = ["AsyncLocalRuntime"]

# Kailash constructor flags that have no effect here (analysis and profiling are always on).
_KAILASH_NOOP_OPTIONS = frozenset(
    {"enable_analysis", "enable_profiling", "enable_monitoring", "debug", "content_aware_success_detection"}
)
_OPTION_NAMES = ("max_concurrent_nodes", "thread_pool_size", "execution_timeout", "resource_registry")

CONDITIONAL_MODES = ("route_data", "skip_branches")
VALIDATION_MODES = ("off", "warn", "strict")


def check_mode(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"Invalid {name} mode: {value!r}; {name} must be one of {', '.join(map(repr, allowed))}"
        )
    return value


class AsyncLocalRuntime(RuntimeLifecycle):
    """Runs built workflows; sync nodes in threads, async nodes on the loop.

    Limiters (shared by every run of this runtime):

    - ``max_concurrent_nodes``: nodes executing at once, of any kind. A node holds its slot
      only while an attempt runs: not while waiting to retry.
    - ``thread_pool_size``: sync nodes in threads at once.
    - ``process_pool_size``: process nodes at once (default: CPU count).

    Error handling: by default the first failing node cancels its running siblings and
    :meth:`execute_workflow_async` raises :class:`WorkflowExecutionError` naming the node,
    with the partial result. With ``continue_on_error=True`` the error is recorded, the
    node's dependents are skipped, and the rest runs to the end.

    Cancellation: cancelling the caller's scope (or ``execution_timeout``) starts nothing
    new; a process node is killed. A sync node already in a thread cannot be stopped: under a
    **timeout** (its own ``timeout``, or the run's ``execution_timeout``) a cancelled thread is
    **abandoned**, whatever cancelled it, so control returns at the deadline (the thread runs on in the background, holding its ``thread_pool_size`` slot
    until it ends; its result is dropped). Without a timeout it is waited for, or with
    ``abandon_threads=True`` abandoned too. The result's ``cancel_outcomes`` records which
    (``abandoned`` lists the abandoned nodes), and the timeout errors name them.
    """

    def __init__(
        self,
        resource_registry: ResourceRegistry | None = None,
        max_concurrent_nodes: int = 10,
        thread_pool_size: int = 4,
        execution_timeout: float | None = None,
        *,
        process_pool_size: int | None = None,
        continue_on_error: bool = False,
        abandon_threads: bool = False,
        on_node_start: NodeCallback | None = None,
        on_node_finish: NodeCallback | None = None,
        conditional_execution: str | None = None,
        connection_validation: str = "warn",
        **kailash_options: Any,
    ) -> None:
        # Kailash's many enterprise flags are accepted and ignored; a near-miss of one of
        # ours is a typo, and an error.
        for name in sorted(set(kailash_options) - _KAILASH_NOOP_OPTIONS):
            hint = did_you_mean(name, _OPTION_NAMES)
            if hint:
                raise TypeError(f"{type(self).__name__} got an unknown option {name!r}{hint}")
        self.conditional_execution = (
            None
            if conditional_execution is None
            else check_mode("conditional_execution", conditional_execution, CONDITIONAL_MODES)
        )
        self.connection_validation = check_mode(
            "connection_validation", connection_validation, VALIDATION_MODES
        )
        # Kailash's LocalRuntime default; opt-in here: an output {"success": False} fails the run.
        self.content_aware_success_detection = bool(
            kailash_options.get("content_aware_success_detection", False)
        )
        self.max_concurrent_nodes = max_concurrent_nodes
        self.thread_pool_size = thread_pool_size
        self.enable_profiling = kailash_options.get("enable_profiling", True)
        self.enable_analysis = kailash_options.get("enable_analysis", True)
        self.debug = kailash_options.get("debug", False)
        for name, value in (
            ("max_concurrent_nodes", max_concurrent_nodes),
            ("thread_pool_size", thread_pool_size),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"AsyncLocalRuntime: {name} must be an int >= 1, got {value!r}")
        if execution_timeout is not None and not execution_timeout > 0:
            raise ValueError(
                f"AsyncLocalRuntime: execution_timeout must be > 0 seconds, got {execution_timeout!r}"
            )
        self.resource_registry = resource_registry
        self.execution_timeout = execution_timeout
        self.continue_on_error = continue_on_error
        self.abandon_threads = abandon_threads
        self.on_node_start = on_node_start
        self.on_node_finish = on_node_finish
        self.node_limiter = trio.CapacityLimiter(max_concurrent_nodes)
        self.thread_limiter = trio.CapacityLimiter(thread_pool_size)
        self.process_limiter = trio.CapacityLimiter(process_pool_size or os.cpu_count() or 1)

    async def execute_workflow_async(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any] | None = None,
        context: Any = None,
        *,
        continue_on_error: bool | None = None,
        execution_timeout: float | None = None,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
    ) -> WorkflowResult:
        """Run ``workflow`` once and return its :class:`WorkflowResult` (which unpacks as
        Kailash's ``results, run_id``).

        ``inputs``: ``{node_id: {param: value}}`` goes to that node only; any other key goes
        to every node that takes a parameter of that name. Raises :class:`NodeInputError`
        before anything runs when a node's required input has no source. ``soft_time_limit``
        / ``time_limit`` (seconds) cancel the run and raise :class:`SoftTimeLimitExceeded` /
        :class:`HardTimeLimitExceeded`. Awaited from asyncio, the run happens under Trio in a
        worker thread.
        """
        check_time_limits(soft_time_limit, time_limit)
        run = self._new_run(workflow, inputs, continue_on_error)
        timeout = execution_timeout or self.execution_timeout

        async def go() -> WorkflowResult:
            return await run_limited(functools.partial(run.run, timeout), soft_time_limit, time_limit)

        return await await_in_trio(go)

    async def execute_async(
        self,
        workflow: Workflow,
        parameters: Mapping[str, Any] | None = None,
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
        **options: Any,
    ) -> WorkflowResult:
        """Kailash's name for :meth:`execute_workflow_async` with ``parameters``."""
        options.pop("task_manager", None)
        return await self.execute_workflow_async(
            workflow, parameters, soft_time_limit=soft_time_limit, time_limit=time_limit, **options
        )

    def _new_run(
        self, workflow: Workflow, inputs: Mapping[str, Any] | None, continue_on_error: bool | None
    ) -> _Run:
        if isinstance(workflow, WorkflowBuilder):
            raise TypeError("execute_workflow_async takes a built workflow: call builder.build() first")
        if not isinstance(workflow, Workflow):
            raise TypeError(f"execute_workflow_async takes a Workflow, got {type(workflow).__name__}")
        plan = workflow.plan()
        if inputs is not None and not isinstance(inputs, Mapping):
            raise TypeError(f"workflow inputs must be a mapping, got {type(inputs).__name__}")
        merged = dict(getattr(workflow, "workflow_parameters", None) or {})
        merged.update(inputs or {})
        for node_id, names in (getattr(workflow, "workflow_inputs", None) or {}).items():
            for outer, inner in names.items():
                if outer in merged:
                    scoped = dict(merged.get(node_id) or {})
                    scoped[inner] = merged[outer]
                    merged[node_id] = scoped
        run_class: type[_Run] = _Run
        if plan.cycles and getattr(self, "enable_cycles", True):
            run_class = CyclicRun
        return run_class(
            self,
            plan,
            merged,
            self.continue_on_error if continue_on_error is None else continue_on_error,
        )

    def execute(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any] | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> WorkflowResult:
        """Sync entry point: ``trio.run`` of one execution, resources cleaned up at its end.

        ``parameters=`` is accepted as LocalRuntime's name for ``inputs``.
        """

        from ._node_api import _run_trio_sync

        async def main() -> WorkflowResult:
            try:
                return await self.execute_workflow_async(workflow, inputs or parameters, **options)
            finally:
                with trio.CancelScope(shield=True):
                    await self.cleanup_resources()

        return _run_trio_sync(main)

    async def cleanup_resources(self) -> None:
        """Clean up the resource registry's resources (reverse creation order). Idempotent."""
        if self.resource_registry is not None:
            await self.resource_registry.cleanup()

    async def __aenter__(self) -> AsyncLocalRuntime:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cleanup()
        self.close()
