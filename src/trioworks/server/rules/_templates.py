"""``{{...}}`` templates in activity parameters and ``depends_on`` conditions.

References: ``{{INPUT.field[.sub...]}}``, ``{{WORKFLOW.id}}`` and
``{{<activity_key>.<output_name>[.<field>...]}}`` (``{{key.output[.field]}}`` also reaches the
whole output object when no output is literally named ``output``). List items are reached with
a numeric segment. A string that is exactly one template takes the referenced value with its JSON
type; a template inside a longer string is replaced by the value's text (JSON for non-strings).

Conditions compare two sides with ``==``, ``!=``, ``<``, ``>``, ``<=``, ``>=``; a side is a
template, a quoted string, or a JSON literal (number, ``true``, ``false``, ``null``), anything
else being a bare string. A condition with no operator is the truthiness of its one template.
The original SDK's form with the comparison inside the braces (``{{ a.x == 'ok' }}``) is
accepted and means the same as ``{{a.x}} == 'ok'``.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = [
    "MissingSecret",
    "TemplateContext",
    "TemplateError",
    "Unresolved",
    "check_condition",
    "evaluate_condition",
    "fill_secrets",
    "normalize_condition",
    "references",
    "render",
    "secret_names",
    "secrets_from_env",
]

_TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_OPERATOR_RE = re.compile(r"==|!=|<=|>=|<|>")


class TemplateError(ValueError):
    """A template that cannot be evaluated; the message names the template."""


class Unresolved(TemplateError):
    """A reference to a value that does not exist (missing input field, output, or activity)."""


class MissingSecret(TemplateError):
    """A ``{{SECRET.name}}`` whose ``KRUXIAFLOW_SECRET_<NAME>`` the server does not have."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        envs = ", ".join(f"{n!r} (KRUXIAFLOW_SECRET_{n.upper()})" for n in names)
        super().__init__(f"secret {envs} is not set in the server's environment")


_SECRET_ENV = "KRUXIAFLOW_SECRET_"
_SECRET = re.compile(r"\{\{\s*SECRET\.([A-Za-z0-9_]+)\s*\}\}")


def secrets_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``SECRET`` as the original builds it: ``KRUXIAFLOW_SECRET_DB_URL`` is ``SECRET.db_url``."""
    return {k[len(_SECRET_ENV) :].lower(): v for k, v in environ.items() if k.startswith(_SECRET_ENV)}


def secret_names(value: Any) -> set[str]:
    """The names of the ``{{SECRET.name}}`` templates in ``value`` (recursively)."""
    return {e.split(".", 1)[1] for e in references(value) if e.startswith("SECRET.")}


def fill_secrets(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with every ``{{SECRET.name}}`` replaced by its secret (as text).

    Done only when an activity is handed to its worker, never stored. Raises
    :exc:`MissingSecret` naming every secret ``secrets`` lacks (never a value).
    """
    missing = sorted(n for n in secret_names(value) if n not in secrets)
    if missing:
        raise MissingSecret(missing)
    return _fill(value, secrets)


def _fill(value: Any, secrets: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _SECRET.sub(lambda m: secrets[m.group(1)], value) if "SECRET" in value else value
    if isinstance(value, Mapping):
        return {k: _fill(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, secrets) for v in value]
    return value


def _no_secret_template(value: Any, expr: str) -> Any:
    # A value the engine substitutes (an input, an output) must not bring in a SECRET template
    # of its own: it would be filled at hand-out, handing a secret to whoever wrote the input.
    if any(e.startswith("SECRET.") for e in references(value)):
        raise TemplateError(
            f"template {{{{{expr}}}}}: its value contains a {{{{SECRET...}}}} template; secrets are "
            "filled only where the definition writes them"
        )
    return value


@attrs.frozen
class TemplateContext:
    workflow_id: str
    input: Mapping[str, Any]
    outputs: Mapping[str, Mapping[str, Any]]  # completed activities only


def _walk(value: Any, path: list[str], template: str) -> Any:
    for segment in path:
        if isinstance(value, Mapping) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            raise Unresolved(f"template {{{{{template}}}}}: no {segment!r} in the referenced value")
    return value


def _lookup(expr: str, ctx: TemplateContext) -> Any:
    parts = expr.split(".")
    root, path = parts[0], parts[1:]
    if root == "INPUT":
        return _walk(ctx.input, path, expr)
    if root == "WORKFLOW":
        if path != ["id"]:
            raise TemplateError(f"template {{{{{expr}}}}}: WORKFLOW only has 'id'")
        return ctx.workflow_id
    if root not in ctx.outputs:
        raise Unresolved(f"template {{{{{expr}}}}}: activity {root!r} has no output (not completed)")
    output = ctx.outputs[root]
    if path and path[0] == "output" and "output" not in output:
        path = path[1:]
    return _walk(output, path, expr)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _substitute(expr: str, ctx: TemplateContext) -> Any:
    if expr.startswith("SECRET."):
        return f"{{{{{expr}}}}}"  # left for fill_secrets at hand-out: never in a stored row
    return _no_secret_template(_lookup(expr, ctx), expr)


def render(value: Any, ctx: TemplateContext) -> Any:
    """``value`` with every template in every string (recursively) replaced.

    ``{{SECRET.name}}`` templates are kept as they are (see :func:`fill_secrets`). Raises
    :exc:`TemplateError` (or its subclass :exc:`Unresolved`) naming the template.
    """
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value)
        if whole:
            return _substitute(whole.group(1), ctx)
        return _TEMPLATE.sub(lambda m: _text(_substitute(m.group(1), ctx)), value)
    if isinstance(value, Mapping):
        return {k: render(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, ctx) for v in value]
    return value


def references(value: Any) -> set[str]:
    """The expressions (``"INPUT.x"``, ``"fetch.body"``...) of every template in ``value``."""
    if isinstance(value, str):
        return {m.group(1) for m in _TEMPLATE.finditer(value)}
    if isinstance(value, Mapping):
        return set().union(*(references(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(references(v) for v in value)) if value else set()
    return set()


def _split(condition: str) -> tuple[str, str | None, str | None]:
    """``(left, op, right)`` splitting at the first operator outside templates and quotes."""
    i, quote = 0, None
    while i < len(condition):
        ch = condition[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif condition.startswith("{{", i):
            end = condition.find("}}", i)
            i = len(condition) if end < 0 else end + 2
            continue
        else:
            m = _OPERATOR_RE.match(condition, i)
            if m:
                return condition[:i].strip(), m.group(0), condition[m.end() :].strip()
        i += 1
    return condition.strip(), None, None


def _is_literal(text: str) -> bool:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def normalize_condition(condition: str) -> str:
    """The original SDK's in-brace form ``{{ a.x == 'ok' }}`` as ``{{a.x}} == 'ok'``; others unchanged."""
    whole = _TEMPLATE.fullmatch(condition.strip()) if isinstance(condition, str) else None
    if not whole:
        return condition
    left, op, right = _split(whole.group(1))
    if op is None or not left or not right:
        return condition

    def side(text: str) -> str:
        return text if _is_literal(text) else f"{{{{{text}}}}}"

    return f"{side(left)} {op} {side(right)}"


def _side(text: str, ctx: TemplateContext | None) -> Any:
    whole = _TEMPLATE.fullmatch(text)
    if whole:
        return _lookup(whole.group(1), ctx) if ctx is not None else None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if ctx is not None and "{{" in text:
        return render(text, ctx)
    try:
        return json.loads(text)
    except ValueError:
        return text


def check_condition(condition: str) -> str | None:
    """A message saying what is wrong with ``condition``'s syntax, or None if it is fine."""
    if not isinstance(condition, str) or not condition.strip():
        return "must be a non-empty string"
    bare = re.sub(r"'[^']*'|\"[^\"]*\"", "", condition)
    if "&&" in bare or "||" in bare:
        return "&& and || are not supported: list several conditions (all must hold) instead"
    condition = normalize_condition(condition)
    left, op, right = _split(condition)
    if op is None:
        if not _TEMPLATE.fullmatch(left):
            return "needs an operator (==, !=, <, >, <=, >=) or to be a single {{...}} template"
        return None
    if not left or not right:
        return f"both sides of {op!r} must be given"
    if _OPERATOR_RE.search(_TEMPLATE.sub("", right).replace("'", "").replace('"', "")):
        return "only one comparison per condition"
    return None


def evaluate_condition(condition: str, ctx: TemplateContext) -> bool:
    """True or False. A side referencing a value that does not exist makes the condition false.

    Raises :exc:`TemplateError` when an ordering compares values of incompatible types.
    """
    left_text, op, right_text = _split(normalize_condition(condition))
    try:
        left = _side(left_text, ctx)
        if op is None:
            return bool(left)
        right = _side(right_text or "", ctx)
    except Unresolved:
        return False
    numbers = (int, float)
    if op in ("==", "!="):
        return _OPERATORS[op](left, right)
    comparable = (
        isinstance(left, numbers)
        and isinstance(right, numbers)
        and not isinstance(left, bool)
        and not isinstance(right, bool)
    ) or (isinstance(left, str) and isinstance(right, str))
    if not comparable:
        raise TemplateError(
            f"condition {condition!r}: cannot order {type(left).__name__} and {type(right).__name__}"
        )
    return _OPERATORS[op](left, right)
