"""Kailash's node classes: ``Node``, ``AsyncNode``, ``NodeParameter``, ``NodeRegistry`` and the
built-in nodes (code, switch, merge); the file, HTTP, SQL and AI nodes are in their own modules.

A node object declares its inputs with :meth:`Node.get_parameters` and does its work in
:meth:`Node.run` (``async_run`` for an :class:`AsyncNode`); :meth:`Node.execute` merges the
node's config with the runtime inputs, validates them against the declared parameters, runs,
and checks that the output is a dict. The runtime calls the same ``execute`` (sync nodes in a
worker thread, async nodes on the Trio loop), so a node behaves the same alone and in a workflow.
"""

from __future__ import annotations

import abc
import builtins
import functools
import inspect
import logging
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import sniffio
import trio

from ._asyncio_bridge import run_on_asyncio, uses_asyncio
from ._errors import NodeConfigurationError, NodeExecutionError, NodeValidationError

__all__ = [
    "AsyncNode",
    "AsyncPythonCodeNode",
    "MergeNode",
    "Node",
    "NodeMetadata",
    "NodeParameter",
    "NodeRegistry",
    "PythonCodeNode",
    "SwitchNode",
    "register_node",
]

log = logging.getLogger("trioworks.dag.nodes")

_NodeT = TypeVar("_NodeT", bound=type)


@attrs.define(kw_only=True)
class NodeParameter:
    """One declared input of a node (Kailash's ``NodeParameter``)."""

    name: str
    type: Any = None
    required: bool = True
    default: Any = None
    description: str = ""
    choices: list[Any] | None = None
    enum: list[Any] | None = None
    default_value: Any = None
    category: str = ""
    display_name: str = ""
    icon: str = ""
    input: bool = False
    output: bool = False
    auto_map_from: list[str] = attrs.Factory(list)
    auto_map_primary: bool = False
    workflow_alias: str = ""


@attrs.define(kw_only=True)
class NodeMetadata:
    id: str = ""
    name: str = ""
    description: str = ""
    version: str = "1.0.0"
    author: str = ""
    tags: set[str] = attrs.Factory(set)


_METADATA_FIELDS = ("name", "description", "version", "author", "tags")


class Node(abc.ABC):
    """Base class of node objects (Kailash's ``Node``).

    ``Node(**config)``: the keyword arguments are the node's configuration, defaults for its
    inputs (``name``, ``description``, ``version``, ``author`` and ``tags`` are metadata
    unless the node declares parameters of those names).
    """

    _SPECIAL_PARAMS = frozenset({"context", "config"})

    def __init__(self, **kwargs: Any) -> None:
        self._node_id = kwargs.get("_node_id") or getattr(self, "_node_id", None) or type(self).__name__
        try:
            declared = set(self.get_parameters())
        except Exception:  # a node whose parameters need its config first
            declared = set()
        meta = kwargs.get("metadata")
        self._node_metadata = (
            meta
            if isinstance(meta, NodeMetadata)
            else NodeMetadata(
                id=self._node_id,
                name=kwargs.get("name", type(self).__name__),
                description=kwargs.get("description", type(self).__doc__ or ""),
                version=kwargs.get("version", "1.0.0"),
                author=kwargs.get("author", ""),
                tags=kwargs.get("tags", set()),
            )
        )
        internal = {f for f in _METADATA_FIELDS if f not in declared}
        if isinstance(meta, NodeMetadata):
            internal.add("metadata")
        self.config: dict[str, Any] = {
            k: v for k, v in kwargs.items() if k not in internal and not k.startswith("_")
        }
        self.logger = logging.getLogger(f"trioworks.dag.node.{type(self).__name__}")

    # -- identity ---------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._node_id

    @id.setter
    def id(self, value: str) -> None:
        self._node_id = value

    @property
    def metadata(self) -> NodeMetadata:
        return self._node_metadata

    @metadata.setter
    def metadata(self, value: NodeMetadata | Mapping[str, Any]) -> None:
        self._node_metadata = value if isinstance(value, NodeMetadata) else NodeMetadata(**dict(value))

    # -- the contract -------------------------------------------------------------

    @abc.abstractmethod
    def get_parameters(self) -> dict[str, NodeParameter]:
        """``{input name: NodeParameter}``: the inputs this node takes."""

    @abc.abstractmethod
    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Do the node's work on validated inputs; return its outputs as a dict."""

    def get_output_schema(self) -> dict[str, NodeParameter]:
        return {}

    # -- validation ---------------------------------------------------------------

    def validate_inputs(self, **kwargs: Any) -> dict[str, Any]:
        """Resolve ``kwargs`` against the declared parameters: aliases, the primary input,
        type conversion, defaults, required checks. Undeclared inputs are dropped."""
        params = self.get_parameters()
        resolved: dict[str, Any] = {}
        used: set[str] = set()
        for name, p in params.items():
            if name in kwargs:
                resolved[name] = kwargs[name]
                used.add(name)
            elif p.workflow_alias and p.workflow_alias in kwargs:
                resolved[name] = kwargs[p.workflow_alias]
                used.add(p.workflow_alias)
            else:
                for alt in p.auto_map_from:
                    if alt in kwargs and alt not in used:
                        resolved[name] = kwargs[alt]
                        used.add(alt)
                        break
        primary = [n for n, p in params.items() if p.auto_map_primary and n not in resolved]
        if len(primary) == 1:
            rest = {
                k: v for k, v in kwargs.items() if k not in used and k not in params and not k.startswith("_")
            }
            if rest:
                key = max(rest, key=lambda k: len(str(rest[k])) if rest[k] is not None else 0)
                resolved[primary[0]] = rest[key]
                used.add(key)
        validated: dict[str, Any] = {}
        for name, p in params.items():
            if name in resolved:
                value = resolved[name]
                if value is None and not p.required:
                    continue
                validated[name] = _convert(type(self).__name__, name, value, p.type)
            elif p.default is not None:
                validated[name] = p.default
            elif p.required:
                raise NodeValidationError(
                    f"Required parameter '{name}' not provided to {type(self).__name__} "
                    f"{self.id!r}; given: {sorted(kwargs)}. Description: {p.description or '-'}"
                )
        for special in self._SPECIAL_PARAMS:
            if special in kwargs:
                validated[special] = kwargs[special]
        return validated

    def validate_outputs(self, outputs: Any) -> dict[str, Any]:
        if not isinstance(outputs, dict):
            raise NodeValidationError(
                f"Node {self.id!r} ({type(self).__name__}) must return a dict of outputs, "
                f"got {type(outputs).__name__}"
            )
        return outputs

    def _merged_inputs(self, runtime_inputs: Mapping[str, Any]) -> dict[str, Any]:
        merged = {**self.config, **runtime_inputs}
        nested = merged.get("config")
        if isinstance(nested, dict):
            for key, value in nested.items():
                if key not in runtime_inputs:
                    merged[key] = value
        return merged

    def execute(self, **runtime_inputs: Any) -> dict[str, Any]:
        """Validate the inputs (config merged in), :meth:`run`, validate the output."""
        try:
            validated = self.validate_inputs(**self._merged_inputs(runtime_inputs))
            return self.validate_outputs(self.run(**validated))
        except (NodeValidationError, NodeExecutionError):
            raise
        except Exception as exc:
            raise NodeExecutionError(
                f"Node '{self.id}' execution failed: {type(exc).__name__}: {exc}"
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": type(self).__name__, "config": dict(self.config)}


def _convert(node: str, name: str, value: Any, kind: Any) -> Any:
    if kind is None or kind is Any or not isinstance(kind, type) or isinstance(value, kind):
        return value
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise NodeValidationError(
            f"{node}: input '{name}' must be of type {kind.__name__}, got {type(value).__name__}. "
            f"Conversion failed: {exc}"
        ) from exc


def _run_trio_sync(fn: Callable[[], Any]) -> Any:
    """Run an async callable to completion from sync code, under Trio.

    From a thread without an event loop: ``trio.run`` here. From inside a running loop
    (Trio or asyncio): ``trio.run`` in a fresh thread, joined (the caller is blocked anyway).
    """
    import sniffio

    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return trio.run(fn)
    import threading

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = trio.run(fn)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name="trioworks-dag-sync", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class AsyncNode(Node):
    """A node whose work is ``async def async_run(self, **kwargs)``, awaited on the Trio loop.

    Kailash users' ``async_run`` code written for asyncio (``asyncio.sleep``, ``asyncio.gather``,
    aiohttp, ...) is detected per class and runs on a fresh asyncio loop in a worker thread;
    cancelling the node cancels its asyncio task (see ``_asyncio_bridge``). Set
    ``async_library = "asyncio"`` when the detection cannot see the asyncio use.
    """

    async_library: str | None = None
    """``"asyncio"`` or ``"trio"``: the library ``async_run`` needs; ``None`` (default): detected
    from the class's code (asyncio-only code runs on an asyncio loop in a worker thread)."""

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return _run_trio_sync(functools.partial(self._await_run, kwargs))

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement async_run")

    async def execute_async(self, **runtime_inputs: Any) -> dict[str, Any]:
        try:
            validated = self.validate_inputs(**self._merged_inputs(runtime_inputs))
            return self.validate_outputs(await self._await_run(validated))
        except (NodeValidationError, NodeExecutionError):
            raise
        except Exception as exc:
            raise NodeExecutionError(
                f"Node '{self.id}' execution failed: {type(exc).__name__}: {exc}"
            ) from exc

    def execute(self, **runtime_inputs: Any) -> dict[str, Any]:
        return _run_trio_sync(functools.partial(self.execute_async, **runtime_inputs))

    async def _await_run(self, kwargs: dict[str, Any]) -> Any:
        # A Kailash user's async_run written for asyncio (asyncio.sleep, aiohttp, ...) runs on
        # an asyncio loop in a worker thread; a Trio-native one on the Trio loop.
        if uses_asyncio(type(self)) and sniffio.current_async_library() == "trio":
            return await run_on_asyncio(functools.partial(self.async_run, **kwargs))
        return await self.async_run(**kwargs)


# --- registry -------------------------------------------------------------------


class NodeRegistry:
    """Node classes by name: ``add_node("Name", ...)`` looks them up here."""

    _nodes: dict[str, type] = {}  # noqa: RUF012 - Kailash's shape; tests touch it directly

    @classmethod
    def register(cls, node_class: type, alias: str | None = None) -> None:
        if not (isinstance(node_class, type) and issubclass(node_class, Node)):
            raise NodeConfigurationError(
                f"cannot register {node_class!r}: node classes must subclass trioworks.dag.Node"
            )
        cls._nodes[alias or node_class.__name__] = node_class

    @classmethod
    def get(cls, node_name: str) -> type:
        try:
            return cls._nodes[node_name]
        except KeyError:
            from ._errors import did_you_mean

            raise NodeConfigurationError(
                f"Node type '{node_name}' not found in registry"
                f"{did_you_mean(node_name, cls._nodes)}; registered: {sorted(cls._nodes)}"
            ) from None

    @classmethod
    def list_nodes(cls) -> dict[str, type]:
        return dict(cls._nodes)

    @classmethod
    def unregister(cls, node_name: str) -> bool:
        return cls._nodes.pop(node_name, None) is not None

    @classmethod
    def unregister_nodes(cls, node_names: list[str]) -> int:
        return sum(cls.unregister(n) for n in node_names)

    @classmethod
    def clear(cls) -> None:
        cls._nodes.clear()


def register_node(alias: str | None = None) -> Callable[[_NodeT], _NodeT]:
    """Class decorator: ``@register_node()`` makes ``add_node("ClassName", ...)`` work."""

    def decorator(node_class: _NodeT) -> _NodeT:
        NodeRegistry.register(node_class, alias)
        return node_class

    return decorator


# --- code nodes -------------------------------------------------------------------


def exported_variables(namespace: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What code that sets no ``result`` outputs: its own plain variables."""
    out: dict[str, Any] = {}
    for key, value in namespace.items():
        if key.startswith("_") or key in inputs or key == "get_resource":
            continue
        if isinstance(value, types.ModuleType | types.FunctionType | types.BuiltinFunctionType | type):
            continue
        if inspect.iscoroutine(value) or inspect.isgenerator(value):
            continue
        out[key] = value
    return out


class PythonCodeNode(Node):
    """Runs a string of Python (``code``), a function, or a class's method.

    Code sees its inputs as variables; the node's output is ``{"result": result}`` when the
    code sets ``result``, else the variables it defines.
    """

    def __init__(
        self,
        name: str = "PythonCodeNode",
        code: str | None = None,
        function: Callable[..., Any] | None = None,
        class_type: type | None = None,
        process_method: str | None = None,
        input_types: Mapping[str, type] | None = None,
        output_type: type | None = None,
        input_schema: Any = None,
        output_schema: Any = None,
        **kwargs: Any,
    ) -> None:
        if code is None and function is None and class_type is None:
            raise NodeConfigurationError(
                f"PythonCodeNode {name!r}: give one of code=, function= or class_type="
            )
        self.code = code
        self.function = function
        self.class_type = class_type
        self.process_method = process_method
        self.input_types = dict(input_types or {})
        self.output_type = output_type
        self._compiled: types.CodeType | None = None
        if code is not None:
            try:
                self._compiled = compile(code, f"<node {name}>", "exec", dont_inherit=True)
            except SyntaxError as exc:
                raise NodeConfigurationError(
                    f"PythonCodeNode {name!r}: code does not compile: {exc.msg} (line {exc.lineno})"
                ) from exc
        super().__init__(name=name, **kwargs)
        self._node_id = kwargs.get("_node_id", name)

    @classmethod
    def from_function(
        cls, func: Callable[..., Any], name: str | None = None, description: str | None = None, **kwargs: Any
    ) -> PythonCodeNode:
        return cls(
            name=name or func.__name__, function=func, description=description or func.__doc__ or "", **kwargs
        )

    @classmethod
    def from_class(cls, class_type: type, name: str | None = None, **kwargs: Any) -> PythonCodeNode:
        return cls(name=name or class_type.__name__, class_type=class_type, **kwargs)

    def get_parameters(self) -> dict[str, NodeParameter]:
        params: dict[str, NodeParameter] = {}
        if self.function is not None:
            for p in inspect.signature(self.function).parameters.values():
                if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    continue
                has_default = p.default is not p.empty
                params[p.name] = NodeParameter(
                    name=p.name,
                    type=Any,
                    required=not has_default,
                    default=p.default if has_default else None,
                )
        for key, kind in getattr(self, "input_types", {}).items():
            params.setdefault(key, NodeParameter(name=key, type=kind, required=False))
        return params

    def validate_inputs(self, **kwargs: Any) -> dict[str, Any]:
        """Code takes any input; a function takes its own parameters (defaults applied)."""
        if self.function is None:
            return {k: v for k, v in kwargs.items() if k != "config" or not isinstance(v, dict)}
        sig = inspect.signature(self.function)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return dict(kwargs)
        out: dict[str, Any] = {}
        for p in sig.parameters.values():
            if p.name in kwargs:
                out[p.name] = kwargs[p.name]
            elif p.default is p.empty and p.kind not in (p.VAR_POSITIONAL,):
                raise NodeValidationError(
                    f"Required parameter '{p.name}' not provided to PythonCodeNode {self.id!r}"
                )
        return out

    def run(self, **kwargs: Any) -> dict[str, Any]:
        if self._compiled is not None:
            namespace: dict[str, Any] = {"__builtins__": builtins, **kwargs}
            exec(self._compiled, namespace)
            if "result" in namespace:
                return {"result": namespace["result"]}
            return exported_variables(namespace, kwargs)
        if self.function is not None:
            value = self.function(**kwargs)
            # Kailash's "smart wrapping": a function that already returns {"result": v} is
            # not wrapped again.
            if isinstance(value, dict) and len(value) == 1 and "result" in value:
                return value
            return {"result": value}
        assert self.class_type is not None
        instance = self.class_type()
        return {"result": getattr(instance, self.process_method or "process")(**kwargs)}

    def execute_code(self, inputs: Mapping[str, Any]) -> Any:
        return self.execute(**inputs).get("result")


class AsyncPythonCodeNode(AsyncNode):
    """Like :class:`PythonCodeNode`, but the code may ``await`` (on the Trio loop)."""

    def __init__(self, code: str, name: str = "AsyncPythonCodeNode", **kwargs: Any) -> None:
        self.code = code
        try:
            self._compiled = compile(
                code, f"<node {name}>", "exec", flags=_TOP_LEVEL_AWAIT, dont_inherit=True
            )
        except SyntaxError as exc:
            raise NodeConfigurationError(
                f"AsyncPythonCodeNode {name!r}: code does not compile: {exc.msg} (line {exc.lineno})"
            ) from exc
        super().__init__(name=name, **kwargs)
        self._node_id = kwargs.get("_node_id", name)

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {}

    def validate_inputs(self, **kwargs: Any) -> dict[str, Any]:
        return dict(kwargs)

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__builtins__": builtins, **kwargs}
        maybe = eval(self._compiled, namespace)
        if inspect.iscoroutine(maybe):
            await maybe
        if "result" in namespace:
            return {"result": namespace["result"]}
        return exported_variables(namespace, kwargs)


_TOP_LEVEL_AWAIT = __import__("ast").PyCF_ALLOW_TOP_LEVEL_AWAIT


# --- switch and merge ---------------------------------------------------------------


def _p(name: str, kind: Any = Any, default: Any = None, **kw: Any) -> NodeParameter:
    return NodeParameter(name=name, type=kind, required=False, default=default, **kw)


SWITCH_PARAMETERS = {
    "input_data": _p("input_data", auto_map_primary=True, auto_map_from=["data", "input", "items"]),
    "condition_field": _p("condition_field", str),
    "operator": _p("operator", str, "=="),
    "value": _p("value"),
    "cases": _p("cases", list),
    "case_prefix": _p("case_prefix", str, "case_"),
    "default_field": _p("default_field", str, "default"),
    "pass_condition_result": _p("pass_condition_result", bool, True),
    "break_after_first_match": _p("break_after_first_match", bool, True),
}


def evaluate_condition(check: Any, op: str, value: Any) -> bool:
    """Kailash's switch comparison: any error, or a None subject, is simply False."""
    try:
        if check is None and op not in ("is_null", "is_not_null", "==", "!="):
            return False
        match op:
            case "==":
                return bool(check == value)
            case "!=":
                return bool(check != value)
            case ">":
                return bool(check > value)
            case "<":
                return bool(check < value)
            case ">=":
                return bool(check >= value)
            case "<=":
                return bool(check <= value)
            case "in":
                return check is not None and value is not None and check in value
            case "contains":
                return check is not None and value is not None and value in check
            case "not in":
                return check is not None and value is not None and check not in value
            case "is_null":
                return check is None
            case "is_not_null":
                return check is not None
        log.error("SwitchNode: unknown operator %r", op)
        return False
    except Exception as exc:
        log.debug("SwitchNode: condition %r %s %r raised %r", check, op, value, exc)
        return False


def _case_name(case: Any) -> str:
    text = str(case)
    for ch in " -.:/":
        text = text.replace(ch, "_")
    return text


def switch_run(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Kailash's SwitchNode on validated inputs: every output present, the untaken ones None."""
    data = kwargs.get("input_data")
    field = kwargs.get("condition_field")
    op = kwargs.get("operator", "==")
    cases = kwargs.get("cases") or []
    prefix = kwargs.get("case_prefix", "case_")
    default_field = kwargs.get("default_field", "default")
    pass_result = kwargs.get("pass_condition_result", True)
    if data is None:
        check = None
    elif field:
        if isinstance(data, dict):
            check = data.get(field)
        elif isinstance(data, list) and data and isinstance(data[0], dict):
            groups: dict[Any, list[Any]] = {}
            for item in data:
                groups.setdefault(item.get(field), []).append(item)
            out: dict[str, Any] = {default_field: [i for g in groups.values() for i in g]}
            for case in cases:
                out[f"{prefix}{_case_name(case)}"] = groups.get(case, [])
            if pass_result:
                out["condition_result"] = list(set(groups) & set(cases))
            return out
        else:
            check = data
    else:
        check = data
    result: dict[str, Any] = {}
    if cases:
        result[default_field] = data
        for case in cases:
            result[f"{prefix}{_case_name(case)}"] = None
        matched = None
        for case in cases:
            if evaluate_condition(check, op, case):
                result[f"{prefix}{_case_name(case)}"] = data
                matched = case
                if kwargs.get("break_after_first_match", True):
                    break
        if pass_result:
            result["condition_result"] = matched
        return result
    taken = evaluate_condition(check, op, kwargs.get("value"))
    result["true_output"] = data if taken else None
    result["false_output"] = None if taken else data
    if pass_result:
        result["condition_result"] = taken
    return result


@register_node()
class SwitchNode(Node):
    """Routes ``input_data`` to ``true_output``/``false_output`` (or ``case_<v>`` outputs)."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return dict(SWITCH_PARAMETERS)

    def get_output_schema(self) -> dict[str, NodeParameter]:
        return {n: _p(n) for n in ("true_output", "false_output", "default", "condition_result")}

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return switch_run(kwargs)


MERGE_PARAMETERS = {
    **{f"data{i}": _p(f"data{i}") for i in range(1, 6)},
    "merge_type": _p("merge_type", str, "concat"),
    "key": _p("key", str),
    "skip_none": _p("skip_none", bool, True),
}


def merge_run(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Kailash's MergeNode: ``data1``..``data5`` merged by ``merge_type``."""
    values = [kwargs.get(f"data{i}") for i in range(1, 6)]
    if all(v is None for v in values) and kwargs.get("skip_none", True):
        return {"merged_data": None}
    if "data1" not in kwargs:
        raise ValueError("Required parameter 'data1' not provided at execution time")
    inputs = [v for v in values if v is not None]
    if not inputs:
        return {"merged_data": None}
    if len(inputs) == 1:
        return {"merged_data": inputs[0]}
    merge_type = kwargs.get("merge_type", "concat")
    key = kwargs.get("key")
    if merge_type == "concat":
        if all(isinstance(d, list) for d in inputs):
            return {"merged_data": [x for d in inputs for x in d]}
        return {"merged_data": inputs}
    if merge_type == "zip":
        return {"merged_data": list(zip(*(d if isinstance(d, list) else [d] for d in inputs), strict=False))}
    if merge_type == "merge_dict":
        if all(isinstance(d, dict) for d in inputs):
            merged: dict[Any, Any] = {}
            for d in inputs:
                merged.update(d)
            return {"merged_data": merged}
        if all(isinstance(d, list) for d in inputs) and key:
            rows = list(inputs[0])
            for data in inputs[1:]:
                by_key = {item.get(key): item for item in data if isinstance(item, dict)}
                for i, item in enumerate(rows):
                    if isinstance(item, dict) and key in item and item.get(key) in by_key:
                        rows[i] = {**item, **by_key[item.get(key)]}
                have = {item.get(key) for item in rows if isinstance(item, dict) and key in item}
                rows.extend(
                    item
                    for item in data
                    if isinstance(item, dict) and key in item and item.get(key) not in have
                )
            return {"merged_data": rows}
        raise ValueError("merge_dict requires dict inputs or lists of dicts with a key")
    raise ValueError(f"Unknown merge type: {merge_type}")


MERGE_TYPES = ("concat", "zip", "merge_dict")


class _UnknownMergeType(NodeExecutionError, ValueError):
    """A bad ``merge_type``: Kailash's ``NodeExecutionError``, and a ``ValueError`` (bad config)."""


@register_node()
class MergeNode(Node):
    """Merges ``data1``..``data5`` (``merge_type``: ``concat``, ``zip``, ``merge_dict``)."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return dict(MERGE_PARAMETERS)

    def execute(self, **runtime_inputs: Any) -> dict[str, Any]:
        """As :meth:`Node.execute`; an unknown ``merge_type`` is refused before merging."""
        merge_type = {**self.config, **runtime_inputs}.get("merge_type", "concat")
        if merge_type not in MERGE_TYPES:
            raise _UnknownMergeType(
                f"Node '{self.id}' execution failed: ValueError: Unknown merge type: {merge_type}; "
                f"merge_type must be one of {', '.join(MERGE_TYPES)}"
            )
        return super().execute(**runtime_inputs)

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return merge_run(kwargs)


NodeRegistry.register(PythonCodeNode)
NodeRegistry.register(AsyncPythonCodeNode)
