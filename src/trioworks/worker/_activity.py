"""Declaring activities: the ``@activity`` decorator, the :class:`Activity` base class, the registry."""

from __future__ import annotations

import enum
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import cattrs

from ._wire import converter

__all__ = ["Activity", "ActivityDefinition", "ActivityKind", "InvalidParameters", "activity", "registry_of"]


class ActivityKind(enum.Enum):
    ASYNC = "async"
    """``async def``: runs on the Trio loop."""
    THREAD = "thread"
    """Plain ``def``: runs in a thread under the worker's thread limiter; abandoned on timeout."""
    PROCESS = "process"
    """``@activity(process=True)``: runs in a ``trio_parallel`` process, killed on timeout."""


class InvalidParameters(ValueError):
    """The parameters do not fit the activity's parameter class; the message names the fields."""


@attrs.frozen
class ActivityDefinition:
    """A registered activity. Calling it calls the underlying function (handy in tests)."""

    name: str
    fn: Callable[..., Any]
    kind: ActivityKind
    params_type: type | None = None
    """An attrs class the parameters are structured into (with the worker's cattrs converter)."""
    terminal: tuple[type[BaseException], ...] = ()
    """Exception types reported as non-retryable ``EXECUTION_ERROR``."""
    process_ref: tuple[str, str] | None = None
    """(module, attribute) the child process imports to find ``fn`` again."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def parse_params(self, raw: Mapping[str, Any]) -> Any:
        """Raw JSON parameters -> what ``fn`` receives; :class:`InvalidParameters` on a mismatch."""
        if self.params_type is None:
            return raw
        try:
            return converter.structure(raw, self.params_type)
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            if isinstance(exc, cattrs.BaseValidationError):
                problems = cattrs.transform_error(exc, path="parameters")
            else:
                problems = [f"{exc} @ parameters"]
            raise InvalidParameters(
                f"parameters do not fit {self.params_type.__name__}: {'; '.join(problems)}"
            ) from exc


def _params_type_from_annotation(fn: Callable[..., Any]) -> type | None:
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception:  # unresolvable forward refs: no structuring, the raw dict is passed
        return None
    params = list(inspect.signature(fn).parameters)
    hint = hints.get(params[0]) if params else None
    return hint if isinstance(hint, type) and attrs.has(hint) else None


def _kind_of(fn: Callable[..., Any], process: bool) -> ActivityKind:
    if process:
        if inspect.iscoroutinefunction(fn):
            raise TypeError(f"process activity {fn.__qualname__!r} must be a plain def, not async def")
        return ActivityKind.PROCESS
    return ActivityKind.ASYNC if inspect.iscoroutinefunction(fn) else ActivityKind.THREAD


def activity(
    name: str | None = None,
    *,
    process: bool = False,
    params: type | None = None,
    terminal: Iterable[type[BaseException]] = (),
) -> Callable[[Callable[..., Any]], ActivityDefinition]:
    """Declare an activity.

    - ``async def f(params, ctx)``: runs on the loop; cancellation arrives at its checkpoints.
    - ``def f(params, ctx)``: runs in a thread (``ctx``'s async methods are reachable with
      ``trio.from_thread.run``); on timeout the thread is abandoned and keeps running.
    - ``@activity(process=True) def f(params)``: runs in a worker process (module-level, picklable
      parameters and result); on timeout the process is killed. It receives no context.

    ``params`` (or an attrs class annotating the first parameter) makes the worker structure
    the JSON parameters into that class; a mismatch fails the activity with terminal
    ``INVALID_PARAMETERS``. ``terminal`` lists exception types that are not retried.
    """

    def decorate(fn: Callable[..., Any]) -> ActivityDefinition:
        activity_name = name or getattr(fn, "__name__", None)
        if not activity_name:
            raise ValueError("activity name could not be determined; give @activity(name=...)")
        kind = _kind_of(fn, process)
        ref = (fn.__module__, fn.__qualname__) if kind is ActivityKind.PROCESS else None
        return ActivityDefinition(
            name=activity_name,
            fn=fn,
            kind=kind,
            params_type=params or _params_type_from_annotation(fn),
            terminal=tuple(terminal),
            process_ref=ref,
        )

    return decorate


class Activity:
    """Class-based form: subclass, set ``name`` and define ``execute(self, params, ctx)``.

    ``async def execute`` runs on the loop, plain ``def execute`` in a thread. Optional class
    attributes: ``params_type`` (attrs class) and ``terminal`` (exception types).
    """

    name: str = ""
    params_type: type | None = None
    terminal: tuple[type[BaseException], ...] = ()

    def execute(self, params: Any, ctx: Any) -> Any:
        raise NotImplementedError

    def definition(self) -> ActivityDefinition:
        name = self.name or type(self).__name__
        return ActivityDefinition(
            name=name,
            fn=self.execute,
            kind=_kind_of(self.execute, False),
            params_type=self.params_type or _params_type_from_annotation(self.execute),
            terminal=tuple(self.terminal),
        )


def registry_of(activities: Iterable[ActivityDefinition | Activity]) -> dict[str, ActivityDefinition]:
    """Name -> definition; TypeError for something that is not an activity, ValueError for a duplicate."""
    registry: dict[str, ActivityDefinition] = {}
    for item in activities:
        if isinstance(item, Activity):
            item = item.definition()
        if not isinstance(item, ActivityDefinition):
            raise TypeError(f"expected an @activity function or an Activity instance, got {item!r}")
        if item.name in registry:
            raise ValueError(f"two activities are named {item.name!r}")
        registry[item.name] = item
    return registry


def call_process_activity(module: str, qualname: str, params: Any) -> Any:
    """Runs in the worker process: find the activity again by import and call it."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    fn = target.fn if isinstance(target, ActivityDefinition) else target
    return fn(params)
