"""The workflow DSL: ``Workflow``, ``Activity``, ``ScriptActivity``, ``Dependency`` and settings.

Same names, constructor arguments and output (``to_dict``, ``to_yaml``, ``str()``) as the original
SDK's ``kruxiaflow.models``, so SDK code keeps working with only the import changed. attrs
classes instead of pydantic models; bad values raise ``ValueError`` naming the field.
"""

from __future__ import annotations

import enum
import inspect
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import yaml

from ._expressions import Expression, OutputRef

__all__ = [
    "Activity",
    "ActivityOutputDefinition",
    "ActivitySettings",
    "BackoffStrategy",
    "BudgetAction",
    "BudgetSettings",
    "CacheSettings",
    "Dependency",
    "OutputType",
    "RetrySettings",
    "ScriptActivity",
    "Workflow",
    "script",
]

_IDENTIFIER = re.compile(r"^[a-zA-Z0-9_-]+$")


def _identifier(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must match {_IDENTIFIER.pattern}, got {value!r}"
        )


class BackoffStrategy(enum.StrEnum):
    EXPONENTIAL = "exponential"
    FIXED = "fixed"


class BudgetAction(enum.StrEnum):
    ABORT = "abort"
    CONTINUE = "continue"


class OutputType(enum.StrEnum):
    VALUE = "value"
    FILE = "file"
    FOLDER = "folder"


@attrs.define(kw_only=True)
class ActivityOutputDefinition:
    name: str
    output_type: OutputType = attrs.field(default=OutputType.VALUE, converter=OutputType)

    @classmethod
    def from_string(cls, name: str) -> ActivityOutputDefinition:
        return cls(name=name)


@attrs.define(kw_only=True)
class RetrySettings:
    max_attempts: int = 3
    strategy: BackoffStrategy = attrs.field(default=BackoffStrategy.EXPONENTIAL, converter=BackoffStrategy)
    base_seconds: float | None = None
    factor: float | None = None
    max_seconds: float | None = None


@attrs.define(kw_only=True)
class CacheSettings:
    ttl: int
    enabled: bool = True
    key: str | None = None


@attrs.define(kw_only=True)
class BudgetSettings:
    limit: float
    action: BudgetAction = attrs.field(default=BudgetAction.ABORT, converter=BudgetAction)


def _retry(value: RetrySettings | Mapping[str, Any] | None) -> RetrySettings | None:
    return RetrySettings(**value) if isinstance(value, Mapping) else value


def _cache(value: CacheSettings | Mapping[str, Any] | None) -> CacheSettings | None:
    return CacheSettings(**value) if isinstance(value, Mapping) else value


def _budget(value: BudgetSettings | Mapping[str, Any] | None) -> BudgetSettings | None:
    return BudgetSettings(**value) if isinstance(value, Mapping) else value


@attrs.define(kw_only=True)
class ActivitySettings:
    timeout_seconds: int | None = None
    retry: RetrySettings | None = attrs.field(default=None, converter=_retry)
    cache: CacheSettings | None = attrs.field(default=None, converter=_cache)
    budget: BudgetSettings | None = attrs.field(default=None, converter=_budget)
    delay: str | None = None
    scheduled_for: str | None = None
    streaming: bool | None = None
    iteration_scoped: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.timeout_seconds is not None:
            out["timeout_seconds"] = self.timeout_seconds
        if self.retry is not None:
            retry: dict[str, Any] = {
                "max_attempts": self.retry.max_attempts,
                "strategy": self.retry.strategy.value,
            }
            for name in ("base_seconds", "factor", "max_seconds"):
                if getattr(self.retry, name) is not None:
                    retry[name] = getattr(self.retry, name)
            out["retry"] = retry
        if self.cache is not None:
            out["cache"] = {"enabled": self.cache.enabled, "ttl": self.cache.ttl}
            if self.cache.key is not None:
                out["cache"]["key"] = self.cache.key
        if self.budget is not None:
            out["budget"] = {"limit": self.budget.limit, "action": self.budget.action.value}
        for name in ("delay", "scheduled_for", "streaming", "iteration_scoped"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


def _settings(value: Any) -> ActivitySettings:
    if value is None:
        return ActivitySettings()
    return ActivitySettings(**value) if isinstance(value, Mapping) else value


@attrs.define(kw_only=True)
class Dependency:
    """``activity_key`` plus conditions that must all hold for the edge to count."""

    activity_key: str = attrs.field(validator=_identifier)
    conditions: list[str] = attrs.field(factory=list, converter=lambda cs: [str(c) for c in cs])

    @classmethod
    def on(cls, activity: Activity | str, *conditions: str | Expression) -> Dependency:
        key = activity.key if isinstance(activity, Activity) else activity
        return cls(activity_key=key, conditions=[str(c) for c in conditions])


def _serialize(value: Any) -> Any:
    if isinstance(value, Expression):
        return str(value)
    if isinstance(value, dict):
        return {k: _serialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_serialize(v) for v in value]
    return value


def _outputs(items: Any) -> list[ActivityOutputDefinition]:
    result = []
    for item in items or []:
        if isinstance(item, str):
            result.append(ActivityOutputDefinition(name=item))
        elif isinstance(item, Mapping):
            result.append(ActivityOutputDefinition(**item))
        else:
            result.append(item)
    return result


def _dependencies(items: Iterable[str | Dependency | Activity]) -> list[str | Dependency | Activity]:
    return list(items)


def _activities(items: Iterable[Activity]) -> list[Activity]:
    return list(items)


def _parameters(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"Activity.parameters must be a mapping, got {type(value).__name__}")
    return _serialize(dict(value))


@attrs.define(kw_only=True, eq=False)
class Activity:
    """One activity of a workflow: which ``activity_name`` runs on which ``worker``, with what."""

    key: str = attrs.field(validator=_identifier)
    activity_name: str = attrs.field(validator=_identifier)
    worker: str = "std"
    parameters: dict[str, Any] = attrs.field(factory=dict, converter=_parameters)
    settings: ActivitySettings = attrs.field(factory=ActivitySettings, converter=_settings)
    depends_on: list[str | Dependency | Activity] = attrs.field(factory=list, converter=_dependencies)
    outputs: list[ActivityOutputDefinition] = attrs.field(factory=list, converter=_outputs)

    def __getitem__(self, key: str) -> OutputRef:
        return OutputRef(self, key)

    @property
    def failed(self) -> str:
        return f"{{{{ {self.key}.status == 'failed' }}}}"

    @property
    def succeeded(self) -> str:
        return f"{{{{ {self.key}.status == 'succeeded' }}}}"

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"key": self.key, "worker": self.worker, "activity_name": self.activity_name}
        if self.parameters:
            result["parameters"] = _serialize(self.parameters)
        settings = self.settings.to_dict()
        if settings:
            result["settings"] = settings
        if self.depends_on:
            deps: list[Any] = []
            for dep in self.depends_on:
                if isinstance(dep, Activity):
                    deps.append(dep.key)
                elif isinstance(dep, str):
                    deps.append(dep)
                elif dep.conditions:
                    deps.append({"activity_key": dep.activity_key, "conditions": dep.conditions})
                else:
                    deps.append(dep.activity_key)
            result["depends_on"] = deps
        if self.outputs:
            result["outputs"] = [
                o.name if o.output_type is OutputType.VALUE else {"name": o.name, "type": o.output_type.value}
                for o in self.outputs
            ]
        return result

    def __str__(self) -> str:
        return _dump(self.to_dict())


class ScriptActivity(Activity):
    """Factory of ``script`` activities (worker ``py-std``) from Python functions."""

    @classmethod
    def from_function(
        cls,
        key: str | None = None,
        worker: str = "py-std",
        inputs: dict[str, Any] | None = None,
        depends_on: list[str] | None = None,
        **kwargs: Any,
    ) -> Callable[[Callable[..., Any]], Activity]:
        def decorate(func: Callable[..., Any]) -> Activity:
            activity_key = key or getattr(func, "__name__", None)
            if not activity_key:
                raise ValueError("Activity key could not be determined; give key=...")
            parameters: dict[str, Any] = {"script": script(func)}
            if inputs is not None:
                parameters["inputs"] = inputs
            return Activity(
                key=activity_key,
                worker=worker,
                activity_name="script",
                parameters=parameters,
                depends_on=list(depends_on or []),
                **kwargs,
            )

        return decorate


def script(func: Callable[..., Any]) -> str:
    """The script the SDK makes of ``func``: its source, ``INPUT.get`` per parameter, ``OUTPUT = [await] f(...)``."""
    source = inspect.getsource(func)
    params = [
        name
        for name, p in inspect.signature(func).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY, p.KEYWORD_ONLY)
    ]
    lines = source.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip().startswith(("def ", "async def "))), 0)
    body = textwrap.dedent("\n".join(lines[start:])).strip()
    call = f"{'await ' if inspect.iscoroutinefunction(func) else ''}{func.__name__}({', '.join(params)})"
    if params:
        extract = "\n".join(f"{name} = INPUT.get('{name}')" for name in params)
        return f"{body}\n\n# Extract parameters from INPUT\n{extract}\n\n# Call function and assign result to OUTPUT\nOUTPUT = {call}"
    return f"{body}\n\n# Call function and assign result to OUTPUT\nOUTPUT = {call}"


@attrs.define(kw_only=True)
class Workflow:
    """A workflow definition: a ``name`` and its ``activities``; the server assigns versions."""

    name: str = attrs.field(validator=_identifier)
    activities: list[Activity] = attrs.field(factory=list, converter=_activities)

    def __attrs_post_init__(self) -> None:
        keys = [a.key for a in self.activities]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"Workflow {self.name!r}: duplicate activity keys {duplicates}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "activities": [a.to_dict() for a in self.activities]}

    def to_json(self) -> dict[str, Any]:
        return self.to_dict()

    def to_yaml(self) -> str:
        text = _dump(self.to_dict())
        out: list[str] = []
        for line in text.split("\n"):
            if (
                line.startswith("- key:")
                and out
                and out[-1].strip()
                and any(x.startswith("- key:") for x in out)
            ):
                out.append("")
            out.append(line)
        return "\n".join(out)

    def __str__(self) -> str:
        return self.to_yaml()


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks (dedented), as the SDK prints them."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", textwrap.dedent(data).strip(), style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_BlockDumper.add_representer(str, _str_representer)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
