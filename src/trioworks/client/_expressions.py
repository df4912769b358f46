"""Template expressions of the workflow DSL, with the original SDK's names and renderings.

An expression renders as a template (``str(e)`` is ``"{{...}}"``); comparisons and ``&`` / ``|``
/ ``~`` build conditions (``(a > 1) && (b == 'x')``), exactly as ``kruxiaflow.expressions`` does.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import Activity

__all__ = [
    "And",
    "Comparison",
    "Contains",
    "EnvRef",
    "Eq",
    "Expression",
    "Ge",
    "Gt",
    "In",
    "Input",
    "IsNotNull",
    "IsNull",
    "Le",
    "Literal",
    "Lt",
    "Ne",
    "Not",
    "Or",
    "OutputComparison",
    "OutputRef",
    "SecretRef",
    "WorkflowRef",
    "and_",
    "contains",
    "in_",
    "is_not_null",
    "is_null",
    "not_",
    "or_",
    "workflow",
]


class Expression(abc.ABC):
    """A node of an expression tree; ``str()`` wraps its template in ``{{ }}``."""

    @abc.abstractmethod
    def _to_template(self) -> str: ...

    def template(self) -> str:
        """The expression without the ``{{ }}`` wrapper."""
        return self._to_template()

    def __str__(self) -> str:
        return f"{{{{{self._to_template()}}}}}"

    def __format__(self, format_spec: str) -> str:
        return str(self)

    def __and__(self, other: Any) -> And:
        return And(self, _to_expr(other))

    def __rand__(self, other: Any) -> And:
        return And(_to_expr(other), self)

    def __or__(self, other: Any) -> Or:
        return Or(self, _to_expr(other))

    def __ror__(self, other: Any) -> Or:
        return Or(_to_expr(other), self)

    def __invert__(self) -> Not:
        return Not(self)


class Literal(Expression):
    def __init__(self, value: Any) -> None:
        self.value = value

    def _to_template(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if self.value is None:
            return "null"
        if isinstance(self.value, str):
            escaped = self.value.replace("'", "\\'")
            return f"'{escaped}'"
        return str(self.value)

    def __repr__(self) -> str:
        return f"Literal({self.value!r})"


class Input(Expression):
    """``{{INPUT.name}}``; ``type``/``required``/``default``/``description`` document it."""

    def __init__(
        self,
        name: str,
        *,
        type: type | None = None,
        required: bool = True,
        default: Any = None,
        description: str | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.required = required
        self.default = default
        self.description = description

    def _to_template(self) -> str:
        return f"INPUT.{self.name}"

    def to_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"required": self.required}
        names = {
            str: "string",
            int: "integer",
            float: "number",
            bool: "boolean",
            list: "array",
            dict: "object",
        }
        if self.type is not None:
            schema["type"] = names.get(self.type, "string")
        if self.default is not None:
            schema["default"] = self.default
        if self.description is not None:
            schema["description"] = self.description
        return schema

    def __repr__(self) -> str:
        return f"Input({self.name!r})"


class SecretRef(Expression):
    """``{{SECRET.name}}``: filled by the server from its environment, never stored."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _to_template(self) -> str:
        return f"SECRET.{self.name}"

    def __repr__(self) -> str:
        return f"SecretRef({self.name!r})"


class EnvRef(Expression):
    """``${NAME}`` (not a ``{{ }}`` template)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _to_template(self) -> str:
        return self.name

    def __str__(self) -> str:
        return f"${{{self.name}}}"

    def __repr__(self) -> str:
        return f"EnvRef({self.name!r})"


class WorkflowRef(Expression):
    """``{{WORKFLOW.field}}`` (``workflow.id``, ``workflow.started_at``...)."""

    def __init__(self, field: str) -> None:
        self.field = field

    def _to_template(self) -> str:
        return f"WORKFLOW.{self.field}"

    def __repr__(self) -> str:
        return f"WorkflowRef({self.field!r})"


class _WorkflowMeta:
    def __getattr__(self, name: str) -> WorkflowRef:
        if name.startswith("__"):
            raise AttributeError(name)
        return WorkflowRef(name)


workflow = _WorkflowMeta()
"""``workflow.id`` -> ``{{WORKFLOW.id}}``."""


class OutputRef(Expression):
    """``activity["path"]`` -> ``{{key.path}}``; compares into conditions."""

    def __init__(self, activity: Activity, key: str) -> None:
        self._activity = activity
        self._key = key

    @property
    def activity_key(self) -> str:
        return self._activity.key

    @property
    def output_key(self) -> str:
        return self._key

    def _to_template(self) -> str:
        return f"{self._activity.key}.{self._key}"

    def __repr__(self) -> str:
        return f"OutputRef({self._activity.key!r}, {self._key!r})"

    def __eq__(self, other: object) -> Eq:  # type: ignore[override]
        return Eq(self, _to_expr(other))

    def __ne__(self, other: object) -> Ne:  # type: ignore[override]
        return Ne(self, _to_expr(other))

    def __gt__(self, other: object) -> Gt:
        return Gt(self, _to_expr(other))

    def __lt__(self, other: object) -> Lt:
        return Lt(self, _to_expr(other))

    def __ge__(self, other: object) -> Ge:
        return Ge(self, _to_expr(other))

    def __le__(self, other: object) -> Le:
        return Le(self, _to_expr(other))

    __hash__ = None  # type: ignore[assignment]  # == builds an expression, so no hashing


class Comparison(Expression):
    op = ""

    def __init__(self, left: Expression, right: Expression) -> None:
        self.left = left
        self.right = right

    def _to_template(self) -> str:
        return f"{self.left._to_template()} {self.op} {self.right._to_template()}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.left!r}, {self.right!r})"


class Eq(Comparison):
    op = "=="


class Ne(Comparison):
    op = "!="


class Gt(Comparison):
    op = ">"


class Lt(Comparison):
    op = "<"


class Ge(Comparison):
    op = ">="


class Le(Comparison):
    op = "<="


OutputComparison = Comparison
"""The SDK's older name."""


class And(Expression):
    def __init__(self, left: Expression, right: Expression) -> None:
        self.left = left
        self.right = right

    def _to_template(self) -> str:
        return f"({self.left._to_template()}) && ({self.right._to_template()})"


class Or(Expression):
    def __init__(self, left: Expression, right: Expression) -> None:
        self.left = left
        self.right = right

    def _to_template(self) -> str:
        return f"({self.left._to_template()}) || ({self.right._to_template()})"


class Not(Expression):
    def __init__(self, expr: Expression) -> None:
        self.expr = expr

    def _to_template(self) -> str:
        return f"!({self.expr._to_template()})"


class IsNull(Expression):
    def __init__(self, expr: Expression) -> None:
        self.expr = expr

    def _to_template(self) -> str:
        return f"{self.expr._to_template()} == null"


class IsNotNull(Expression):
    def __init__(self, expr: Expression) -> None:
        self.expr = expr

    def _to_template(self) -> str:
        return f"{self.expr._to_template()} != null"


class Contains(Expression):
    def __init__(self, collection: Expression, value: Expression) -> None:
        self.collection = collection
        self.value = value

    def _to_template(self) -> str:
        return f"{self.collection._to_template()} contains {self.value._to_template()}"


class In(Expression):
    def __init__(self, value: Expression, collection: Expression) -> None:
        self.value = value
        self.collection = collection

    def _to_template(self) -> str:
        return f"{self.value._to_template()} in {self.collection._to_template()}"


def _to_expr(value: Any) -> Expression:
    return value if isinstance(value, Expression) else Literal(value)


def _fold(cls: type[And] | type[Or], exprs: tuple[Any, ...]) -> Expression:
    if not exprs:
        raise ValueError(f"{cls.__name__.lower()}_() needs at least one expression")
    result = _to_expr(exprs[0])
    for expr in exprs[1:]:
        result = cls(result, _to_expr(expr))
    return result


def and_(*exprs: Any) -> Expression:
    return _fold(And, exprs)


def or_(*exprs: Any) -> Expression:
    return _fold(Or, exprs)


def not_(expr: Any) -> Not:
    return Not(_to_expr(expr))


def is_null(expr: Any) -> IsNull:
    return IsNull(_to_expr(expr))


def is_not_null(expr: Any) -> IsNotNull:
    return IsNotNull(_to_expr(expr))


def contains(collection: Any, value: Any) -> Contains:
    return Contains(_to_expr(collection), _to_expr(value))


def in_(value: Any, collection: Any) -> In:
    return In(_to_expr(value), _to_expr(collection))
