"""The build-time half of cycles: Kailash's fluent ``create_cycle`` builder and convergence
expressions (checked when the cycle is built, evaluated by :mod:`._cycles` after each iteration).

Pure: no runtime, no Trio. The builder imports it; the runtime half imports both.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import CycleConfigurationError

__all__ = ["ConvergenceExpression", "CycleBuilder", "convergence_namespace"]


# --- the fluent builder ---------------------------------------------------------------------


class CycleBuilder:
    """``workflow.create_cycle("id").connect(a, b, mapping).max_iterations(n)
    .converge_when("expr").timeout(s).build()``."""

    def __init__(self, workflow: Any, cycle_id: str | None) -> None:
        self._workflow = workflow
        self._cycle_id = cycle_id
        self._links: list[tuple[str, str, dict[str, str] | None]] = []
        self._max_iterations: int | None = None
        self._convergence: str | None = None
        self._timeout: float | None = None

    def _where(self) -> str:
        return f"cycle {self._cycle_id!r}" if self._cycle_id else "cycle"

    def connect(
        self, source_node: str, target_node: str, mapping: dict[str, str] | None = None
    ) -> CycleBuilder:
        for role, node in (("source", source_node), ("target", target_node)):
            if node not in self._workflow.nodes:
                raise CycleConfigurationError(
                    f"{self._where()}: {role} node {node!r} not found in workflow; "
                    f"nodes: {sorted(self._workflow.nodes)}"
                )
        self._links.append((source_node, target_node, mapping))
        return self

    def max_iterations(self, n: int) -> CycleBuilder:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise CycleConfigurationError(f"{self._where()}: max_iterations must be positive, got {n!r}")
        self._max_iterations = n
        return self

    def converge_when(self, expression: str) -> CycleBuilder:
        ConvergenceExpression.parse(expression, where=self._where())
        self._convergence = expression
        return self

    def timeout(self, seconds: float) -> CycleBuilder:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
            raise CycleConfigurationError(f"{self._where()}: timeout must be positive, got {seconds!r}")
        self._timeout = float(seconds)
        return self

    def memory_limit(self, mb: int) -> CycleBuilder:
        # Accepted for Kailash compatibility; not enforced (a run has no memory accounting).
        if isinstance(mb, bool) or not isinstance(mb, int | float) or not mb > 0:
            raise CycleConfigurationError(f"{self._where()}: memory limit must be positive, got {mb!r}")
        return self

    def when(self, condition: str) -> CycleBuilder:
        if not isinstance(condition, str) or not condition.strip():
            raise CycleConfigurationError(f"{self._where()}: condition must be a non-empty expression")
        return self

    def nested_in(self, parent: str) -> CycleBuilder:
        if not isinstance(parent, str) or not parent:
            raise CycleConfigurationError(f"{self._where()}: parent cycle id must be a non-empty string")
        return self

    def build(self) -> None:
        if not self._links:
            raise CycleConfigurationError(
                f"{self._where()}: Cycle must have source and target nodes configured; "
                "call .connect(source, target, mapping) before build()"
            )
        if self._max_iterations is None and self._convergence is None:
            raise CycleConfigurationError(
                f"{self._where()}: Cycle must have at least one termination condition: "
                "add max_iterations(n) or converge_when(expr) before build()"
            )
        for source, target, mapping in self._links:
            self._workflow.connect(
                source,
                target,
                mapping=mapping,
                cycle=True,
                max_iterations=self._max_iterations,
                convergence_check=self._convergence,
                cycle_id=self._cycle_id,
                timeout=self._timeout,
            )


# --- convergence expressions, evaluated without eval -----------------------------------------

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
# Kailash's convergence namespace: these builtins and nothing else.
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (abs, min, max, sum, len, all, any, round, float, int, bool, str)
}
_METHODS = frozenset({"get", "keys", "values", "items"})
_MAX_EXPONENT = 10_000


class ConvergenceExpression:
    """A convergence condition such as ``"error < 0.01 and iteration >= 3"``.

    Parsed once with :mod:`ast` and interpreted node by node: comparisons, boolean and
    arithmetic operators, literals, names, subscripts, ``abs/min/max/sum/len/all/any/round``
    and the conversions, and ``.get/.keys/.values/.items`` on mappings. Anything else
    (attribute access, other calls, lambdas, comprehensions, dunders) is rejected when the
    cycle is built, with :class:`CycleConfigurationError`.
    """

    def __init__(self, text: str, tree: ast.expr) -> None:
        self.text = text
        self._tree = tree

    @classmethod
    def parse(cls, text: Any, *, where: str = "cycle") -> ConvergenceExpression:
        if not isinstance(text, str) or not text.strip():
            raise CycleConfigurationError(
                f"{where}: Convergence condition must be a non-empty string expression, "
                f"e.g. 'error < 0.01', got {text!r}"
            )
        try:
            tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as exc:
            raise CycleConfigurationError(
                f"{where}: convergence condition {text!r} is not a valid expression: {exc.msg}"
            ) from None
        for node in ast.walk(tree):
            problem = _unsupported(node)
            if problem:
                raise CycleConfigurationError(
                    f"{where}: convergence condition {text!r}: {problem} is not allowed; "
                    "use comparisons, arithmetic, and/or/not, and abs/min/max/sum/len/all/any"
                )
        return cls(text, tree)

    def evaluate(self, namespace: Mapping[str, Any]) -> Any:
        return _eval(self._tree, namespace)

    def __repr__(self) -> str:
        return f"ConvergenceExpression({self.text!r})"


_ALLOWED = (
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.BinOp,
    ast.Compare,
    ast.IfExp,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Subscript,
    ast.Slice,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Dict,
    ast.Call,
    ast.Attribute,
    ast.keyword,
    *_BINARY,
    *_UNARY,
    *_COMPARE,
)


def _unsupported(node: ast.AST) -> str | None:
    if not isinstance(node, _ALLOWED):
        return f"{type(node).__name__}"
    if isinstance(node, ast.Name) and node.id.startswith("__"):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Attribute) and node.attr not in _METHODS:
        return f"the attribute {node.attr!r}"
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in _FUNCTIONS:
            return None
        if isinstance(func, ast.Attribute) and func.attr in _METHODS:
            return None
        return "calling anything but abs/min/max/sum/len/all/any/round/float/int/bool/str or .get/.keys/.values/.items"
    return None


def _eval(node: ast.expr, ns: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in ns:
            return ns[node.id]
        if node.id in _FUNCTIONS:
            return _FUNCTIONS[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise NameError(f"name {node.id!r} is not defined")
    if isinstance(node, ast.BoolOp):
        value: Any = None
        for operand in node.values:
            value = _eval(operand, ns)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, ns))
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, ns), _eval(node.right, ns)
        if isinstance(node.op, ast.Pow) and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right!r} is too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, ns)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, ns)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body, ns) if _eval(node.test, ns) else _eval(node.orelse, ns)
    if isinstance(node, ast.Subscript):
        container = _eval(node.value, ns)
        if isinstance(node.slice, ast.Slice):
            parts = (node.slice.lower, node.slice.upper, node.slice.step)
            return container[slice(*(None if p is None else _eval(p, ns) for p in parts))]
        return container[_eval(node.slice, ns)]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = [_eval(e, ns) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        return {
            _eval(k, ns): _eval(v, ns) for k, v in zip(node.keys, node.values, strict=True) if k is not None
        }
    if isinstance(node, ast.Call):
        args = [_eval(a, ns) for a in node.args]
        kwargs = {k.arg: _eval(k.value, ns) for k in node.keywords if k.arg is not None}
        if isinstance(node.func, ast.Attribute):
            target = _eval(node.func.value, ns)
            if not isinstance(target, Mapping):
                raise TypeError(f".{node.func.attr}() only on mappings, not {type(target).__name__}")
            return getattr(target, node.func.attr)(*args, **kwargs)
        assert isinstance(node.func, ast.Name)
        return _FUNCTIONS[node.func.id](*args, **kwargs)
    raise TypeError(f"unsupported expression {type(node).__name__}")  # rejected by parse()


def convergence_namespace(outputs: Mapping[str, Any], iteration: int, elapsed: float) -> dict[str, Any]:
    """Kailash's names: ``results``, ``iteration``, ``elapsed_time``, each node id (its
    output), and every scalar of each output (of its ``result`` dict for code nodes)."""
    ns: dict[str, Any] = {"results": dict(outputs), "iteration": iteration, "elapsed_time": elapsed}
    for node_id, output in outputs.items():
        if not node_id.isidentifier():
            continue
        ns[node_id] = output
        if not isinstance(output, Mapping):
            continue
        inner = output.get("result")
        fields = inner if isinstance(inner, Mapping) else output
        for key, value in fields.items():
            if isinstance(key, str) and key.isidentifier() and isinstance(value, int | float | str | bool):
                ns[key] = value
    return ns


# --- compiling a cyclic plan --------------------------------------------------------------------
