"""``{{...}}`` templates in activity parameters and ``depends_on`` conditions: MiniJinja.

The original's own engine (the ``minijinja`` binding), strict undefined, with its one extra
filter ``coalesce``. Roots: ``INPUT``, ``WORKFLOW`` (``id``, ``name``, ``version``, ``status``,
``created_at``, ``started_at``), ``SECRET`` (kept as a template until hand-out, see
:func:`fill_secrets`) and one map per finished activity: its outputs plus ``status``
(``{{key.output[.field]}}`` also reaches the whole output object when no output is literally
named ``output``). Everything MiniJinja has works: ``[N]`` indexing, slicing, arithmetic,
filters (``default``, ``length``, ``upper``...), comparisons, ``and`` / ``or`` / ``not``.

A string that is exactly one ``{{expression}}`` takes the expression's value with its JSON type;
a missing key of an existing object is null there (as in the original). Any other string with
templates is rendered strictly: anything undefined is an error. A reference to an activity that
has not finished, or to an unknown root, fails loudly everywhere, conditions included.

A condition that is one ``{{expression}}`` is true by the original's rule (bool; "true"/"false"
strings; number != 0; null false; anything else true). The older split form, ``<side> <op>
<side>`` with templates, quoted strings or JSON literals as sides, still compares its two sides.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import minijinja

__all__ = [
    "WORKFLOW_FIELDS",
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
    "strings",
    "template_roots",
    "value_roots",
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
    names: set[str] = set()
    stack = [value]
    while stack:  # every hand-out walks its parameters: only strings naming SECRET are searched
        item = stack.pop()
        if isinstance(item, str):
            if "SECRET" in item:
                names.update(
                    e.split(".", 1)[1]
                    for m in _TEMPLATE.finditer(item)
                    if (e := m.group(1)).startswith("SECRET.")
                )
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return names


def fill_secrets(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with every ``{{SECRET.name}}`` replaced by its secret (as text).

    Done only when an activity is handed to its worker, never stored. Raises
    :exc:`MissingSecret` naming every secret ``secrets`` lacks (never a value).
    """
    names = secret_names(value)
    if not names:
        return value  # nothing to fill (the common case): no copy
    missing = sorted(n for n in names if n not in secrets)
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


_ENV = minijinja.Environment(undefined_behavior="strict")


def _coalesce(value: Any, fallback: Any = None) -> Any:
    return fallback if value is None else value


def _finalize(value: Any) -> Any:
    # a map or list rendered into text is JSON, as the original (Rust MiniJinja) renders it
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, dict | list) else value


_ENV.add_filter("coalesce", _coalesce)
_ENV.finalizer = _finalize  # the original's one extra filter: replaces null too

# An activity's template map holds its outputs plus ``status``; WORKFLOW holds these.
WORKFLOW_FIELDS = frozenset({"id", "name", "version", "status", "created_at", "started_at"})


_MISSING: Any = object()  # TemplateContext.root: no such root


@attrs.frozen
class TemplateContext:
    """What templates see: ``INPUT``, ``WORKFLOW``, one map per finished activity, ``SECRET``.

    ``outputs`` holds completed activities' outputs; ``statuses`` the status of every finished
    activity (a skipped one is a map holding only ``status``); ``workflow`` the ``WORKFLOW`` map
    (``id`` at least).
    """

    workflow_id: str
    input: Mapping[str, Any]
    outputs: Mapping[str, Mapping[str, Any]]  # completed activities only
    statuses: Mapping[str, str] = attrs.field(factory=dict)
    workflow: Mapping[str, Any] = attrs.field(factory=dict)
    signal: Mapping[str, Any] | None = None  # SIGNAL: the data of the signal the activity waited for
    activity: Mapping[str, Any] | None = None  # ACTIVITY: the activity being scheduled
    files: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)  # FILE.<key>.<name>
    folders: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)  # FOLDER.<key>.<name>

    # Each root, built the first time a template names it: a context of a 1,000-wide join holds
    # 1,000 outputs, and each of its templates names one of them.
    _built: dict[str, Any] = attrs.field(init=False, factory=dict, eq=False, repr=False)

    def root(self, name: str) -> Any:
        """The value of root ``name`` as templates see it, or :data:`_MISSING` if there is none.

        Built once per context; treat it as read-only (contexts share it between templates).
        """
        built = self._built.get(name, _MISSING)
        if built is _MISSING:
            built = self._build(name)
            if built is not _MISSING:
                self._built[name] = built
        return built

    def _build(self, name: str) -> Any:
        # The fixed roots hide an activity of the same name, as they always did.
        if name == "INPUT":
            return dict(self.input)
        if name == "WORKFLOW":
            return {"id": self.workflow_id, **self.workflow}
        if name == "FILE":
            return {k: dict(v) for k, v in self.files.items()}
        if name == "FOLDER":
            return {k: dict(v) for k, v in self.folders.items()}
        if name == "SIGNAL" and self.signal is not None:
            return dict(self.signal)
        if name == "ACTIVITY" and self.activity is not None:
            return dict(self.activity)
        if name in self.outputs:
            output = self.outputs[name]
            value = dict(output)
            value.setdefault("status", "completed")
            if "output" not in value:
                value["output"] = dict(output)  # {{key.output.field}}: the whole output object
            return value
        if name in self.statuses:
            return {"status": self.statuses[name]}
        return _MISSING

    def roots(self) -> dict[str, Any]:
        """Every root (what :meth:`root` gives, by name)."""
        names = [*self.statuses, *self.outputs, "INPUT", "WORKFLOW"]
        names += [n for n, v in (("SIGNAL", self.signal), ("ACTIVITY", self.activity)) if v is not None]
        names += ["FILE", "FOLDER"]
        return {name: self.root(name) for name in dict.fromkeys(names)}


# A secret is rendered as this sentinel, turned back into its {{SECRET.name}} template afterwards
# (filled only at hand-out); a {{SECRET...}} template still in the result came from a value.
_SENTINEL = "\x00SECRET:{}\x00"
_SENTINEL_RE = re.compile("\x00SECRET:([A-Za-z0-9_]+)\x00")


class _Secrets(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return _SENTINEL.format(key)


def _first_line(exc: Exception) -> str:
    # minijinja's message goes on to dump the referenced variables: never echo values
    return str(exc).split("\n", 1)[0].replace(" (in <expression>:1)", "").replace(" (in <string>:1)", "")


def template_roots(source: str) -> set[str]:
    """The top-level names the templates of ``source`` read (loop variables excluded)."""
    return set(_roots_of(source))


def _roots_of(source: str) -> frozenset[str]:
    # Parsing is most of a small template's cost, and a definition's templates repeat per run;
    # a long one is not kept (the cache holds 4,096 sources).
    return _cached_roots(source) if len(source) <= _CACHED_CHARS else _parse_roots(source)


_CACHED_CHARS = 2048


def _parse_roots(source: str) -> frozenset[str]:
    try:
        roots = set(_ENV.undeclared_variables_in_str(source))
    except minijinja.TemplateError as exc:
        raise TemplateError(f"template {source!r}: {_first_line(exc)}") from None
    if _SLICE.search(source):
        # minijinja 3.1's undeclared_variables misses the names of an expression with a slice
        for expr in _TEMPLATE.findall(source):
            roots |= set(_PATH_ROOT.findall(re.sub(r"'[^']*'|\"[^\"]*\"", "", expr)))
    return frozenset(roots)


_cached_roots = functools.lru_cache(maxsize=4096)(_parse_roots)


_SLICE = re.compile(r"\[[^\]]*:[^\]]*\]")
_PATH_ROOT = re.compile(r"(?<![\w.])([A-Za-z_]\w*)(?=\s*[.\[])")


def _context(source: str, ctx: TemplateContext) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for name in sorted(_roots_of(source)):
        if name == "SECRET":
            context[name] = _Secrets()
        elif (root := ctx.root(name)) is not _MISSING:
            context[name] = root
        elif name[:1].isupper():
            raise Unresolved(f"template {source!r}: unknown reference {name!r}")
        else:
            raise Unresolved(f"template {source!r}: activity {name!r} has no output (not completed)")
    return context


def _unsentinel(value: Any, source: str) -> Any:
    if any(e.startswith("SECRET.") for e in references(value)):
        raise TemplateError(
            f"template {source!r}: its value contains a {{{{SECRET...}}}} template; secrets are "
            "filled only where the definition writes them"
        )
    if isinstance(value, str):
        return _SENTINEL_RE.sub(lambda m: f"{{{{SECRET.{m.group(1)}}}}}", value)
    if isinstance(value, Mapping):
        return {k: _unsentinel(v, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsentinel(v, source) for v in value]
    return value


# A plain path: a root name, then ``.name`` / ``["text"]`` / ``['text']`` steps (no escapes).
_PATH = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\"[^\"\\]*\"\]|\['[^'\\]*'\])*)")
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[\"([^\"\\]*)\"\]|\['([^'\\]*)'\]")
_LITERALS = frozenset({"true", "false", "none", "True", "False", "None", "SECRET"})
_INT64 = range(-(2**63), 2**63)


class _Slow(Exception):
    """Only MiniJinja can tell this value (see :func:`_direct`)."""


def _path(expr: str) -> tuple[str, tuple[str, ...]] | None:
    return _cached_path(expr) if len(expr) <= _CACHED_CHARS else _parse_path(expr)


def _parse_path(expr: str) -> tuple[str, tuple[str, ...]] | None:
    match = _PATH.fullmatch(expr)
    if match is None or match.group(1) in _LITERALS:
        return None
    steps = tuple(a or b or c for a, b, c in _STEP.findall(match.group(2)))
    return match.group(1), steps


_cached_path = functools.lru_cache(maxsize=4096)(_parse_path)


def _direct(expr: str, ctx: TemplateContext) -> Any:
    """The value of a plain path (``{{ key.out }}``, ``{{ INPUT.nodes["k"] }}``) read without
    MiniJinja, or :data:`_MISSING` when only the renderer can tell (anything but existing map
    keys, a missing key past the last step, a string naming ``SECRET``, a number it converts).

    MiniJinja gives a map or list with its items as they are and converts only a number at the
    top; the renderer's result is a fresh copy free of ``{{SECRET...}}`` values. This gives the
    same, minus the two conversions of the whole value (a 1 MB output took 1.8 s to render).
    """
    path = _path(expr)
    if path is None:
        return _MISSING
    value = ctx.root(path[0])
    if value is _MISSING:
        return _MISSING  # MiniJinja's path names the culprit
    last = len(path[1]) - 1
    for i, step in enumerate(path[1]):
        if type(value) is not dict:
            return _MISSING
        if step not in value:
            # A missing key of an existing map is null, unless it names one of the dict's
            # methods ({{ x.items }}): MiniJinja's Python binding then gives the method.
            return None if i == last and not hasattr(value, step) else _MISSING
        value = value[step]
    try:
        return _plain(value, top=True)
    except (_Slow, RecursionError):
        return _MISSING


def _plain(value: Any, top: bool = False) -> Any:
    kind = type(value)
    if kind is str:
        if "SECRET" in value:
            raise _Slow  # a {{SECRET...}} template or sentinel: the renderer's rules apply
        return value
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    if kind is list:
        return [_plain(v) for v in value]
    if value is None or kind is bool or (kind is int and (not top or value in _INT64)):
        return value
    if top and kind in (int, float):  # MiniJinja's number conversion (1.0 -> 1, 2**200 -> float)
        return _ENV.eval_expr("v", v=value)
    if kind is float:
        return value
    raise _Slow


def _evaluate(expr: str, ctx: TemplateContext) -> Any:
    """One expression's value with its JSON type; a missing key of an existing map is None."""
    value = _direct(expr, ctx)
    return _rendered(expr, ctx) if value is _MISSING else value


def _rendered(expr: str, ctx: TemplateContext) -> Any:
    """:func:`_evaluate` through MiniJinja, whatever ``expr`` is."""
    source = f"{{{{{expr}}}}}"
    context = _context(source, ctx)
    try:
        value = _ENV.eval_expr(expr, **context)
    except minijinja.TemplateError as exc:
        raise TemplateError(f"template {source!r}: {_first_line(exc)}") from None
    return _unsentinel(value, source)


def _render_text(source: str, ctx: TemplateContext) -> str:
    context = _context(source, ctx)
    try:
        text = _ENV.render_str(source, **context)
    except minijinja.TemplateError as exc:
        message = _first_line(exc)
        kind = Unresolved if "undefined" in message else TemplateError
        raise kind(f"template {source!r}: {message}") from None
    result: str = _unsentinel(text, source)
    return result


def render(value: Any, ctx: TemplateContext) -> Any:
    """``value`` with every template in every string (recursively) resolved, as the original does.

    A string that is one whole ``{{expr}}`` takes the expression's value with its JSON type (a
    missing key of an existing object is null); any other string with templates is rendered,
    strictly (anything undefined is an error). ``{{SECRET.name}}`` templates are kept as they are
    (see :func:`fill_secrets`). Raises :exc:`TemplateError` (or :exc:`Unresolved`) naming the
    template; a reference to an activity that has not finished, or to an unknown root, is
    :exc:`Unresolved`.
    """
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value)
        if whole:
            return _evaluate(whole.group(1), ctx)
        if "{{" in value or "{%" in value:
            return _render_text(value, ctx)
        return value
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


def strings(value: Any) -> list[str]:
    """Every string with a template (``{{...}}`` or ``{%...%}``) in ``value``, recursively."""
    if isinstance(value, str):
        return [value] if "{{" in value or "{%" in value else []
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in strings(v)]
    if isinstance(value, list):
        return [t for v in value for t in strings(v)]
    return []


_FILE_KEY = re.compile(r"\b(?:FILE|FOLDER)\s*\.\s*(\w+)")


def value_roots(value: Any) -> set[str]:
    """The top-level names the templates of ``value`` read, loop variables of ``{% for %}``
    excluded, plus the activity keys named through ``FILE.<key>`` / ``FOLDER.<key>``.
    Raises :exc:`TemplateError` for a template MiniJinja cannot parse."""
    roots: set[str] = set()
    for text in strings(value):
        roots |= template_roots(text)
        roots |= set(_FILE_KEY.findall(text))
    return roots


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
    """``condition`` as stored: unchanged (kept for definitions stored in the older split form)."""
    return condition


def _side(text: str, ctx: TemplateContext) -> Any:
    whole = _TEMPLATE.fullmatch(text)
    if whole:
        return _evaluate(whole.group(1), ctx)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if "{{" in text:
        return render(text, ctx)
    try:
        return json.loads(text)
    except ValueError:
        return text


def check_condition(condition: str) -> str | None:
    """A message saying what is wrong with ``condition``'s syntax, or None if it is fine.

    A condition is one whole ``{{expression}}`` (MiniJinja: comparisons, ``and``/``or``/``not``,
    filters) or ``<side> <op> <side>`` with templates, quoted strings or JSON literals as sides.
    """
    if not isinstance(condition, str) or not condition.strip():
        return "must be a non-empty string"
    try:
        template_roots(condition)
    except TemplateError as exc:
        return str(exc)
    if _TEMPLATE.fullmatch(condition.strip()):
        return None
    bare = re.sub(r"'[^']*'|\"[^\"]*\"", "", condition)
    if "&&" in bare or "||" in bare:
        return "&& and || are not supported: write one {{...}} expression with and / or"
    left, op, right = _split(condition)
    if op is None:
        return "needs an operator (==, !=, <, >, <=, >=) or to be a single {{...}} template"
    if not left or not right:
        return f"both sides of {op!r} must be given"
    if _OPERATOR_RE.search(_TEMPLATE.sub("", right).replace("'", "").replace('"', "")):
        return "only one comparison per condition"
    return None


def _truthy(value: Any) -> bool:
    """The original's rule: bool as is, "true"/"false" strings, number != 0, null false, else true."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return bool(value)
    if isinstance(value, int | float):
        return value != 0
    return True


def evaluate_condition(condition: str, ctx: TemplateContext) -> bool:
    """True or False. A reference to an activity that has not finished (or an unknown root)
    raises :exc:`Unresolved`; a missing key of an existing object reads as null (false).

    Raises :exc:`TemplateError` when an ordering compares values of incompatible types.
    """
    whole = _TEMPLATE.fullmatch(condition.strip())
    if whole:
        return _truthy(_evaluate(whole.group(1), ctx))
    left_text, op, right_text = _split(condition)
    left = _side(left_text, ctx)
    if op is None:
        return _truthy(left)
    right = _side(right_text or "", ctx)
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
