"""Node specifications: what a node takes, what it gives, and how it is called.

Everything here is decided at build time, so that a workflow that builds has no
surprises left but the ones its own code raises.
"""

from __future__ import annotations

import ast
import builtins
import enum
import inspect
import operator
import types
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..core import RetryPolicy
from ._asyncio_bridge import code_uses_asyncio, run_on_asyncio
from ._errors import DagError, WorkflowValidationError, did_you_mean

__all__ = ["CODE_NODE_TYPES", "NODE_TYPES", "NodeKind", "NodeSpec", "Resource", "make_node"]

RESULT = "result"


class NodeKind(enum.Enum):
    ASYNC = "async"  # awaited on the Trio loop
    THREAD = "thread"  # sync, through trio.to_thread under the thread limiter
    PROCESS = "process"  # sync, through trio_parallel under the process limiter
    SWITCH = "switch"  # pure routing, evaluated inline
    MERGE = "merge"  # pure routing, evaluated inline


@attrs.frozen
class Resource:
    """Default value marking a callable's parameter as a resource from the registry.

    ``async def fetch(db=Resource("main_db")): ...`` receives ``await registry.get_resource("main_db")``.
    """

    name: str


class CodeNodeError(DagError):
    """A code node's code ran but did not set ``result``."""


@attrs.frozen
class NodeSpec:
    """One node of a built workflow. Immutable; the runtime never changes it."""

    node_id: str
    type_name: str
    kind: NodeKind
    fn: Callable[..., Any] | None  # the callable; None for code, switch and merge nodes
    code: types.CodeType | None  # compiled code of a code node
    source: str | None  # code text (sent to worker processes, which compile it again)
    params: frozenset[str]  # every input name the node takes
    required: frozenset[str]  # inputs that must be given
    accepts_any: bool  # takes inputs of any name (**kwargs, merge)
    defaults: Mapping[str, Any]  # from config
    resources: Mapping[str, str]  # parameter -> resource name
    outputs: frozenset[str] | None  # roots a mapping path may start with; None = only known at run time
    timeout: float | None
    retry: RetryPolicy | None
    routing: Mapping[str, Any] = attrs.field(factory=dict)  # a switch node's condition config
    # A Kailash node object (Node subclass) that this spec runs; None for native nodes.
    instance: Any = None
    # The node's value is its whole output dict (code and Node objects), not {"result": value}.
    raw_output: bool = False

    def takes(self, name: str) -> bool:
        return name in self.params

    @property
    def node_type(self) -> str:
        """Kailash's ``NodeInstance.node_type``."""
        return self.type_name

    @property
    def config(self) -> dict[str, Any]:
        """Kailash's ``NodeInstance.config``: what the node was configured with."""
        if self.instance is not None and hasattr(self.instance, "config"):
            return dict(self.instance.config)
        config = {**self.routing, **self.defaults}
        if self.source is not None:
            config["code"] = self.source
        return config


# --- code nodes --------------------------------------------------------------

_BUILTINS = frozenset(dir(builtins))


class _FreeNames(ast.NodeVisitor):
    """Walk module code in evaluation order; a name read before any binding of it is free.

    ``data = sorted(data)`` reads ``data`` before binding it, so ``data`` is an input;
    ``x = 1; y = x`` is not. Function and lambda bodies run later (when called), so their
    reads are checked against everything the module binds.
    """

    def __init__(self) -> None:
        self.free: set[str] = set()
        self.bound: set[str] = set()
        self.deferred: list[ast.AST] = []
        self.optional: set[str] = set()  # read where a NameError is caught: may be absent
        self._guarded = 0

    def _load(self, name: str) -> None:
        if name not in self.bound:
            self.free.add(name)
            if self._guarded:
                self.optional.add(name)

    def visit_Try(self, node: ast.Try) -> None:
        guarded = any(_catches_name_error(h.type) for h in node.handlers)
        self._guarded += guarded
        for statement in node.body:
            self.visit(statement)
        self._guarded -= guarded
        for handler in node.handlers:
            self.visit(handler)
        for statement in [*node.orelse, *node.finalbody]:
            self.visit(statement)

    visit_TryStar = visit_Try  # type: ignore[assignment]  # ast.TryStar has ast.Try's fields

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._load(node.id)
        else:
            self.bound.add(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self._load(node.target.id)
        self.visit(node.value)
        self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        for generator in node.generators:
            self.visit(generator.iter)
            self.visit(generator.target)
            for condition in generator.ifs:
                self.visit(condition)
        for field in ("elt", "key", "value"):
            if hasattr(node, field):
                self.visit(getattr(node, field))

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                self.visit(decorator)
            self.bound.add(node.name)
        self.deferred.append(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.generic_visit(node)
        self.bound.add(node.name)

    def visit_alias(self, node: ast.alias) -> None:
        self.bound.add((node.asname or node.name).split(".")[0])

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bound.add(node.name)
        for statement in node.body:
            self.visit(statement)

    def _capture(self, node: ast.MatchAs | ast.MatchStar | ast.MatchMapping) -> None:
        self.generic_visit(node)
        name = node.rest if isinstance(node, ast.MatchMapping) else node.name
        if name:
            self.bound.add(name)

    visit_MatchAs = visit_MatchStar = visit_MatchMapping = _capture

    def deferred_free(self) -> set[str]:
        """Reads inside function bodies that neither the function nor the module binds."""
        free: set[str] = set()
        for function in self.deferred:
            loaded: set[str] = set()
            local: set[str] = set()
            for node in ast.walk(function):
                if isinstance(node, ast.Name):
                    (loaded if isinstance(node.ctx, ast.Load) else local).add(node.id)
                elif isinstance(node, ast.arg):
                    local.add(node.arg)
                elif isinstance(node, ast.alias):
                    local.add((node.asname or node.name).split(".")[0])
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    local.add(node.name)
                elif isinstance(node, ast.ExceptHandler) and node.name:
                    local.add(node.name)
            free |= loaded - local - self.bound
        return free


def _catches_name_error(kind: ast.expr | None) -> bool:
    if kind is None:
        return True
    if isinstance(kind, ast.Tuple):
        return any(_catches_name_error(k) for k in kind.elts)
    return isinstance(kind, ast.Name) and kind.id in ("NameError", "Exception", "BaseException")


def _free_names(tree: ast.AST) -> tuple[frozenset[str], frozenset[str]]:
    """Names the code reads before binding them (the code node's inputs), and those of them
    read only where a ``NameError`` is caught (``try: x except NameError: ...``: optional)."""
    names = _FreeNames()
    names.visit(tree)
    free = frozenset((names.free | names.deferred_free()) - _BUILTINS - {"get_resource"})
    return free, frozenset(names.optional & free)


def _compile_code(node_id: str, source: str, *, is_async: bool) -> tuple[types.CodeType, ast.AST]:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if is_async else 0
    filename = f"<node {node_id}>"
    try:
        tree = ast.parse(source, filename)
        code = compile(source, filename, "exec", flags=flags, dont_inherit=True)
    except SyntaxError as exc:
        hint = ""
        if "await" in str(exc.msg) and not is_async:
            hint = "; code with top-level 'await' belongs in an 'AsyncPythonCodeNode'"
        raise WorkflowValidationError(
            f"node {node_id!r}: code does not compile: {exc.msg} (line {exc.lineno}){hint}"
        ) from exc
    return code, tree


def code_result(
    node_id: str, namespace: dict[str, Any], inputs: Mapping[str, Any], strict: bool
) -> dict[str, Any]:
    """A code node's output: ``{"result": result}``, or (Kailash) the variables it defined."""
    if RESULT in namespace:
        return {RESULT: namespace[RESULT]}
    if strict:
        raise CodeNodeError(f"node {node_id!r}: its code ran but never set `result`")
    from ._node_api import exported_variables

    return exported_variables(namespace, inputs)


def run_code(
    node_id: str,
    code: types.CodeType,
    inputs: Mapping[str, Any],
    extra: Mapping[str, Any],
    strict: bool = False,
) -> dict[str, Any]:
    """Run a sync code node's compiled code on ``inputs``; return its output dict."""
    namespace: dict[str, Any] = {"__builtins__": builtins, **extra, **inputs}
    exec(code, namespace)
    return code_result(node_id, namespace, inputs, strict)


def run_source(node_id: str, source: str, inputs: Mapping[str, Any], strict: bool = False) -> dict[str, Any]:
    """Compile and run a sync code node's source (in a worker process, which has no code objects)."""
    code = compile(source, f"<node {node_id}>", "exec", dont_inherit=True)
    return run_code(node_id, code, inputs, {}, strict)


async def run_async_code(
    node_id: str,
    code: types.CodeType,
    inputs: Mapping[str, Any],
    extra: Mapping[str, Any],
    strict: bool = False,
) -> dict[str, Any]:
    """Run an async code node's code; top-level ``await`` runs on the Trio loop, or, for code
    that uses asyncio (Kailash users' ``await asyncio.sleep(...)``), on an asyncio loop in a
    worker thread (``_asyncio_bridge``)."""
    namespace: dict[str, Any] = {"__builtins__": builtins, **extra, **inputs}
    maybe_coro = eval(code, namespace)
    if inspect.iscoroutine(maybe_coro):
        if code_uses_asyncio(code):
            try:
                await run_on_asyncio(lambda: maybe_coro)
            finally:
                maybe_coro.close()  # a no-op once it ran; never started (cancelled): no warning
        else:
            await maybe_coro
    return code_result(node_id, namespace, inputs, strict)


# --- switch ------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "contains": lambda a, b: b in a,
    "not in": lambda a, b: a not in b,
    "is_null": lambda a, _b: a is None,
    "is_not_null": lambda a, _b: a is not None,
}


def switch_output(node_id: str, config: Mapping[str, Any], input_data: Any) -> dict[str, Any]:
    """Route ``input_data`` to one output. Only the taken output's key is present.

    With ``cases``: key ``case_<value>`` for the matching case, else ``default``. Otherwise
    ``true_output`` or ``false_output`` by ``operator``/``value`` (Kailash's SwitchNode).
    """
    field = config.get("condition_field")
    if field is None:
        subject = input_data
    elif isinstance(input_data, Mapping) and field in input_data:
        subject = input_data[field]
    else:
        keys = sorted(input_data) if isinstance(input_data, Mapping) else type(input_data).__name__
        raise DagError(f"switch node {node_id!r}: condition_field {field!r} not in input_data (has {keys})")
    if "cases" in config:
        for case in config["cases"]:
            if subject == case:
                return {f"case_{case}": input_data}
        return {"default": input_data}
    test = _OPERATORS[config.get("operator", "==")]
    taken = bool(test(subject, config.get("value", True)))
    return {"true_output" if taken else "false_output": input_data}


def _switch_spec(node_id: str, config: Mapping[str, Any], common: dict[str, Any]) -> NodeSpec:
    op = config.get("operator", "==")
    if op not in _OPERATORS:
        raise WorkflowValidationError(
            f"switch node {node_id!r}: unknown operator {op!r}{did_you_mean(op, _OPERATORS)}; "
            f"known: {sorted(_OPERATORS)}"
        )
    cases = config.get("cases")
    if cases is not None:
        if not isinstance(cases, list | tuple) or not cases:
            raise WorkflowValidationError(f"switch node {node_id!r}: 'cases' must be a non-empty list")
        outputs = frozenset([*(f"case_{c}" for c in cases), "default"])
    else:
        outputs = frozenset({"true_output", "false_output"})
    return NodeSpec(
        kind=NodeKind.SWITCH,
        type_name="SwitchNode",
        fn=None,
        code=None,
        source=None,
        params=frozenset({"input_data"}),
        required=frozenset({"input_data"}),
        accepts_any=False,
        defaults={},
        resources={},
        outputs=outputs,
        routing=dict(config),
        **common,
    )


# --- construction ------------------------------------------------------------

CODE_NODE_TYPES = ("PythonCodeNode", "AsyncPythonCodeNode")
NODE_TYPES = (*CODE_NODE_TYPES, "SwitchNode", "MergeNode")
_SWITCH_CONFIG = frozenset(
    {
        "condition_field",
        "operator",
        "value",
        "cases",
        "case_prefix",
        "default_field",
        "pass_condition_result",
        "break_after_first_match",
    }
)


def make_node(
    node: str | Callable[..., Any],
    node_id: str,
    config: Mapping[str, Any],
    *,
    timeout: float | None,
    retry: RetryPolicy | None,
    process: bool,
) -> NodeSpec:
    """Validate one ``add_node`` call and turn it into a :class:`NodeSpec`."""
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
    ):
        raise WorkflowValidationError(
            f"node {node_id!r}: timeout must be > 0 seconds (a number), got {timeout!r}"
        )
    common: dict[str, Any] = {"node_id": node_id, "timeout": timeout, "retry": retry}
    from ._node_api import Node, NodeRegistry, PythonCodeNode

    if isinstance(node, str):
        if node not in NODE_TYPES:
            registered = NodeRegistry._nodes.get(node)
            if registered is None:
                known = [*NODE_TYPES, *NodeRegistry._nodes]
                raise WorkflowValidationError(
                    f"node {node_id!r}: unknown node type {node!r}{did_you_mean(node, known)}; "
                    f"known types: {', '.join(dict.fromkeys(known))}, or pass a Python callable"
                )
            return instance_spec(_instantiate(registered, node_id, config), node_id, common)
        if process and node != "PythonCodeNode":
            raise WorkflowValidationError(
                f"node {node_id!r}: process=True needs a sync callable or a 'PythonCodeNode', not {node!r}"
            )
        if node == "SwitchNode":
            _check_keys(node_id, config, _SWITCH_CONFIG, "SwitchNode config")
            return _switch_spec(node_id, config, common)
        if node == "MergeNode":
            return NodeSpec(
                kind=NodeKind.MERGE,
                type_name=node,
                fn=None,
                code=None,
                source=None,
                params=frozenset(),
                required=frozenset(),
                accepts_any=True,
                defaults={},
                resources={},
                outputs=frozenset({RESULT, "merged_data"}),
                routing=dict(config),
                **common,
            )
        return _code_spec(node, node_id, config, process, common)
    if isinstance(node, type) and issubclass(node, Node):
        return instance_spec(_instantiate(node, node_id, config), node_id, common)
    if isinstance(node, Node):
        if config:
            node.config.update(config)
        if isinstance(node, PythonCodeNode) and node.code is not None:
            spec = _code_spec("PythonCodeNode", node_id, {**node.config, "code": node.code}, process, common)
            return attrs.evolve(spec, instance=node)
        return instance_spec(node, node_id, common)
    if not callable(node):
        raise WorkflowValidationError(
            f"node {node_id!r}: expected a node type name ({', '.join(NODE_TYPES)}), a Node class or "
            f"object, or a callable, got {type(node).__name__}"
        )
    return _callable_spec(node, node_id, config, process, common)


def _instantiate(cls: type, node_id: str, config: Mapping[str, Any]) -> Any:
    try:
        return cls(_node_id=node_id, **config)
    except TypeError:
        try:
            return cls(**config)
        except Exception as exc:
            raise WorkflowValidationError(
                f"node {node_id!r}: cannot create {cls.__name__}({', '.join(config)}): {exc}"
            ) from exc
    except Exception as exc:
        raise WorkflowValidationError(f"node {node_id!r}: cannot create {cls.__name__}: {exc}") from exc


def instance_spec(instance: Any, node_id: str, common: dict[str, Any]) -> NodeSpec:
    """The spec of a Kailash node object: the runtime calls its ``execute``/``execute_async``."""
    from ._node_api import AsyncNode, MergeNode, SwitchNode

    try:
        declared = frozenset(instance.get_parameters())
    except Exception:
        declared = frozenset()
    if isinstance(instance, SwitchNode):
        kind = NodeKind.SWITCH
    elif isinstance(instance, MergeNode):
        kind = NodeKind.MERGE
    elif isinstance(instance, AsyncNode):
        kind = NodeKind.ASYNC
    else:
        kind = NodeKind.THREAD
    return NodeSpec(
        kind=kind,
        type_name=type(instance).__name__,
        fn=None,
        code=None,
        source=None,
        params=declared,
        required=frozenset(),
        accepts_any=False,
        defaults={},
        resources={},
        outputs=None,
        routing=dict(getattr(instance, "config", {}) or {}),
        instance=instance,
        raw_output=True,
        **common,
    )


def _kind(*, is_async: bool, process: bool) -> NodeKind:
    if is_async:
        return NodeKind.ASYNC
    return NodeKind.PROCESS if process else NodeKind.THREAD


def _check_keys(node_id: str, config: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    for key in config:
        if key not in allowed:
            raise WorkflowValidationError(
                f"node {node_id!r}: unknown {what} key {key!r}{did_you_mean(key, allowed)}; "
                f"allowed: {sorted(allowed)}"
            )


def _code_spec(
    node_type: str, node_id: str, config: Mapping[str, Any], process: bool, common: dict[str, Any]
) -> NodeSpec:
    source = config.get("code")
    if not isinstance(source, str) or not source.strip():
        raise WorkflowValidationError(
            f"node {node_id!r}: a {node_type} needs config 'code' (a string of Python)"
        )
    is_async = node_type == "AsyncPythonCodeNode"
    code, tree = _compile_code(node_id, source, is_async=is_async)
    free, optional = _free_names(tree)
    defaults = {k: v for k, v in config.items() if k not in _CODE_NODE_OPTIONS}
    return NodeSpec(
        kind=_kind(is_async=is_async, process=process),
        type_name=node_type,
        fn=None,
        code=code,
        source=source,
        params=free | frozenset(defaults),
        required=free - optional - frozenset(defaults),
        accepts_any=False,
        defaults=defaults,
        resources={},
        outputs=frozenset({RESULT}),
        raw_output=True,
        **common,
    )


# PythonCodeNode constructor options that are not inputs of the code.
_CODE_NODE_OPTIONS = frozenset(
    {"code", "name", "description", "input_types", "output_type", "input_schema", "output_schema"}
)


def _callable_spec(
    fn: Callable[..., Any], node_id: str, config: Mapping[str, Any], process: bool, common: dict[str, Any]
) -> NodeSpec:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise WorkflowValidationError(
            f"node {node_id!r}: cannot read the signature of {fn!r}: {exc}"
        ) from exc
    params: set[str] = set()
    required: set[str] = set()
    resources: dict[str, str] = {}
    accepts_any = False
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            accepts_any = True
        elif p.kind is p.VAR_POSITIONAL:
            continue
        elif p.kind is p.POSITIONAL_ONLY:
            raise WorkflowValidationError(
                f"node {node_id!r}: parameter {p.name!r} is positional-only; node inputs are passed by name"
            )
        elif isinstance(p.default, Resource):
            resources[p.name] = p.default.name
        else:
            params.add(p.name)
            if p.default is p.empty:
                required.add(p.name)
    for key in config:
        if key not in params and not accepts_any:
            raise WorkflowValidationError(
                f"node {node_id!r}: config key {key!r} is not a parameter of "
                f"{getattr(fn, '__qualname__', fn)!r}{did_you_mean(key, params)}; parameters: {sorted(params)}"
            )
    # An instance with ``async def __call__`` is an async node too.
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
    if process and (is_async or resources):
        why = "it is async" if is_async else "resources cannot be sent to another process"
        raise WorkflowValidationError(f"node {node_id!r}: process=True is not possible: {why}")
    return NodeSpec(
        kind=_kind(is_async=is_async, process=process),
        type_name=getattr(fn, "__qualname__", type(fn).__name__),
        fn=fn,
        code=None,
        source=None,
        params=frozenset(params),
        required=frozenset(required) - frozenset(config),
        accepts_any=accepts_any,
        defaults=dict(config),
        resources=resources,
        outputs=frozenset({RESULT}),
        **common,
    )
