"""Parse and check a workflow definition (JSON or YAML already loaded) into a :class:`Definition`.

Every problem is collected as a field error keyed by its path (``activities[2].depends_on[0]``),
so that a 422 names all the culprits at once.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import ValidationFailed
from .._models import ActivityDef, Definition, Dependency, OutputDef, RetrySettings
from ._templates import (
    WORKFLOW_FIELDS,
    TemplateError,
    check_condition,
    normalize_condition,
    references,
    template_roots,
    value_roots,
)
from ._timing import check_timing

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "KEY_PATTERN",
    "MAX_ATTEMPTS",
    "MAX_FACTOR",
    "MAX_ITERATIONS",
    "MAX_SECONDS",
    "WORKER_PATTERN",
    "Loop",
    "iteration_limit",
    "loops",
    "parse_definition",
    "retry_settings",
]

KEY_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")
WORKER_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
_OUTPUT_TYPES = ("value", "file", "folder")
# What the storage (64-bit INTEGER, double) and the engine (lease and backoff arithmetic) accept:
# checked at deploy, so that a definition that is stored can always be started.
MAX_ATTEMPTS = 10_000
MAX_SECONDS = 366 * 86_400  # timeouts and retry delays: at most a year
MAX_FACTOR = 1_000.0
MAX_NAME = 128  # definition names, activity keys and names, worker types
# Attempts of an activity whose definition has no ``settings.retry`` (see :func:`retry_settings`).
DEFAULT_MAX_ATTEMPTS = 4
# Loops: iterations when neither end of a back-edge sets ``iteration_limit`` (the original's
# DEFAULT_MAX_ITERATIONS), and the largest limit accepted.
DEFAULT_ITERATION_LIMIT = 100
MAX_ITERATIONS = 100_000


class _Errors:
    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(message)


def _str(
    errors: _Errors, data: Mapping[str, Any], field: str, path: str, pattern: re.Pattern[str] | None = None
) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        errors.add(path, "required: a non-empty string")
        return ""
    if pattern is not None and not pattern.match(value):
        errors.add(path, f"must match {pattern.pattern}")
    elif len(value) > MAX_NAME:  # keys name directories of stored files: keep them short
        errors.add(path, f"must be at most {MAX_NAME} characters")
    return value


def retry_settings(settings: Mapping[str, Any] | None) -> RetrySettings:
    """``settings.retry`` as :class:`RetrySettings`. Assumes it was checked.

    Two defaults, as in the original Kruxia Flow: an activity with no ``settings.retry`` gets
    :data:`DEFAULT_MAX_ATTEMPTS` (its queue's ``default_max_retries`` 3, plus the first try), so
    a worker crash or a lease expiry is retried rather than failing the workflow; a
    ``settings.retry`` that leaves out ``max_attempts`` means 1 (no retry), the field's own default.
    """
    given = (settings or {}).get("retry")
    retry = given or {}
    return RetrySettings(
        max_attempts=int(retry.get("max_attempts", 1 if given is not None else DEFAULT_MAX_ATTEMPTS)),
        strategy=str(retry.get("strategy", "exponential")),
        base_seconds=float(retry.get("base_seconds", 2.0)),
        factor=float(retry.get("factor", 2.0)),
        max_seconds=float(retry.get("max_seconds", 300.0)),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _in_range(value: Any, lo: float, hi: float, *, open_low: bool = False) -> bool:
    """A number (not bool) from ``lo`` (excluded when ``open_low``) to ``hi``; false for nan/inf
    and for an int too large for a float (compared exactly, never converted)."""
    if not _is_number(value) or value != value:
        return False
    return (lo < value if open_low else lo <= value) and value <= hi


def _check_settings(errors: _Errors, settings: Any, path: str) -> None:
    if settings is None:
        return
    if not isinstance(settings, Mapping):
        errors.add(path, "must be an object")
        return
    timeout = settings.get("timeout_seconds")
    if timeout is not None and not _in_range(timeout, 0, MAX_SECONDS, open_low=True):
        errors.add(f"{path}.timeout_seconds", f"must be a number > 0 and <= {MAX_SECONDS}")
    for field, message in check_timing(settings, path, MAX_SECONDS).items():
        errors.add(field, message)
    retry = settings.get("retry")
    if retry is None:
        return
    if not isinstance(retry, Mapping):
        errors.add(f"{path}.retry", "must be an object")
        return
    attempts = retry.get("max_attempts", 1)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= MAX_ATTEMPTS:
        errors.add(f"{path}.retry.max_attempts", f"must be an integer from 1 to {MAX_ATTEMPTS}")
    if retry.get("strategy", "exponential") not in ("exponential", "fixed"):
        errors.add(f"{path}.retry.strategy", "must be 'exponential' or 'fixed'")
    for name, hi in (("base_seconds", MAX_SECONDS), ("factor", MAX_FACTOR), ("max_seconds", MAX_SECONDS)):
        if name in retry and not _in_range(retry[name], 0, hi):
            errors.add(f"{path}.retry.{name}", f"must be a number from 0 to {hi:g}")


def _parse_outputs(errors: _Errors, outputs: Any, path: str) -> tuple[OutputDef, ...]:
    if outputs is None:
        return ()
    if not isinstance(outputs, list):
        errors.add(path, "must be a list of output names or {name, type} objects")
        return ()
    parsed = []
    for i, item in enumerate(outputs):
        if isinstance(item, str) and item:
            parsed.append(OutputDef(item))
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str) and item["name"]:
            kind = item.get("type", "value")
            if kind not in _OUTPUT_TYPES:
                errors.add(f"{path}[{i}].type", f"must be one of {', '.join(_OUTPUT_TYPES)}")
            parsed.append(OutputDef(item["name"], str(kind)))
        else:
            errors.add(f"{path}[{i}]", "must be a name or an object with a non-empty 'name'")
    return tuple(parsed)


def _parse_conditions(errors: _Errors, item: Mapping[str, Any], path: str) -> tuple[str, ...]:
    """``condition`` (one string, the spec) and/or ``conditions`` (a list, the original SDK)."""
    found: list[tuple[str, Any]] = []
    if item.get("condition") is not None:
        found.append((f"{path}.condition", item["condition"]))
    many = item.get("conditions")
    if isinstance(many, list):
        found += [(f"{path}.conditions[{j}]", c) for j, c in enumerate(many)]
    elif many is not None:
        errors.add(f"{path}.conditions", "must be a list of condition strings")
    conditions = []
    for field, condition in found:
        problem = check_condition(condition)
        if problem:
            errors.add(field, problem)
        else:
            conditions.append(normalize_condition(condition))
    return tuple(conditions)


def _parse_depends(errors: _Errors, deps: Any, path: str) -> tuple[Dependency, ...]:
    if deps is None:
        return ()
    if not isinstance(deps, list):
        errors.add(path, "must be a list of activity keys or {activity_key, condition?, conditions?} objects")
        return ()
    parsed = []
    for i, item in enumerate(deps):
        if isinstance(item, str) and item:
            parsed.append(Dependency(item))
            continue
        if not isinstance(item, Mapping) or not isinstance(item.get("activity_key"), str):
            errors.add(f"{path}[{i}]", "must be an activity key or an object with 'activity_key'")
            continue
        conditions = _parse_conditions(errors, item, f"{path}[{i}]")
        parsed.append(Dependency(item["activity_key"], conditions))
    return tuple(parsed)


def _parse_activity(errors: _Errors, data: Any, path: str) -> ActivityDef | None:
    if not isinstance(data, Mapping):
        errors.add(path, "must be an object with key, worker and activity_name")
        return None
    params = data.get("parameters") or {}
    if not isinstance(params, Mapping):
        errors.add(f"{path}.parameters", "must be an object")
        params = {}
    _check_settings(errors, data.get("settings"), f"{path}.settings")
    scoped = data.get("iteration_scoped", False)
    if not isinstance(scoped, bool):
        errors.add(f"{path}.iteration_scoped", "must be true or false")
        scoped = False
    settings: Mapping[str, Any] = data["settings"] if isinstance(data.get("settings"), Mapping) else {}
    limit = data.get("iteration_limit", settings.get("iteration_limit"))
    if limit is not None and (
        not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_ITERATIONS
    ):
        where = "iteration_limit" if "iteration_limit" in data else "settings.iteration_limit"
        errors.add(f"{path}.{where}", f"must be an integer from 1 to {MAX_ITERATIONS}")
        limit = None
    return ActivityDef(
        key=_str(errors, data, "key", f"{path}.key", KEY_PATTERN),
        # The original's default (core/src/workflow/definition.rs): the standard worker.
        worker=_str(errors, {"worker": "std", **data}, "worker", f"{path}.worker", WORKER_PATTERN),
        activity_name=_str(errors, data, "activity_name", f"{path}.activity_name", KEY_PATTERN),
        parameters=dict(params),
        depends_on=_parse_depends(errors, data.get("depends_on"), f"{path}.depends_on"),
        outputs=_parse_outputs(errors, data.get("outputs"), f"{path}.outputs"),
        settings=dict(data["settings"]) if isinstance(data.get("settings"), Mapping) else None,
        iteration_scoped=scoped,
        iteration_limit=limit,
    )


def iteration_limit(head: ActivityDef, tail: ActivityDef) -> int:
    """How many iterations the loop closed by ``head`` depending on ``tail`` may run."""
    for limit in (head.iteration_limit, tail.iteration_limit):
        if limit is not None:
            return limit
    return DEFAULT_ITERATION_LIMIT


def _reaches(activities: tuple[ActivityDef, ...], start: str, goal: str) -> bool:
    """Whether ``start`` depends on ``goal``, directly or not (over every edge)."""
    by_key = {a.key: a for a in activities}
    seen: set[str] = set()
    todo = [start]
    while todo:
        key = todo.pop()
        for dep in by_key[key].depends_on:
            if dep.activity_key == goal:
                return True
            if dep.activity_key in by_key and dep.activity_key not in seen:
                seen.add(dep.activity_key)
                todo.append(dep.activity_key)
    return False


@attrs.frozen
class Loop:
    """A loop: ``head`` depends on ``tail`` through a back-edge; ``body`` (definition order) is
    what runs again each iteration: ``head``, ``tail`` and every activity between them."""

    head: str
    tail: str
    conditions: tuple[str, ...]
    limit: int
    body: tuple[str, ...]


def loops(activities: tuple[ActivityDef, ...]) -> list[Loop]:
    """The loops of checked activities (back-edges marked), in definition order of their heads."""
    by_key = {a.key: a for a in activities}
    forward = {a.key: [d.activity_key for d in a.depends_on if not d.back_edge] for a in activities}
    below: dict[str, set[str]] = {}  # key -> its forward ancestors

    def ancestors(key: str) -> set[str]:
        if key not in below:
            found: set[str] = set()
            for dep in forward[key]:
                found |= {dep} | ancestors(dep)
            below[key] = found
        return below[key]

    out = []
    for a in activities:
        for d in a.depends_on:
            if not d.back_edge:
                continue
            inside = {k for k in ancestors(d.activity_key) if a.key in ancestors(k)}
            body = {a.key, d.activity_key} | inside
            keys = tuple(k for k in by_key if k in body)
            out.append(
                Loop(a.key, d.activity_key, d.conditions, iteration_limit(a, by_key[d.activity_key]), keys)
            )
    return out


def _mark_back_edges(activities: tuple[ActivityDef, ...]) -> tuple[ActivityDef, ...]:
    """The activities with their loops' back-edges marked.

    As in the original (a topological sort of the definition), a back-edge points from an
    activity to one defined at or after it that depends on it (itself included): ``head``
    depends on ``tail`` and ``tail`` on ``head``. A plain DAG, listed in any order, has none.
    """
    position = {a.key: i for i, a in enumerate(activities)}
    out = []
    for a in activities:
        deps = tuple(
            attrs.evolve(d, back_edge=True)
            if d.activity_key in position
            and position[d.activity_key] >= position[a.key]
            and (d.activity_key == a.key or _reaches(activities, d.activity_key, a.key))
            else d
            for d in a.depends_on
        )
        out.append(attrs.evolve(a, depends_on=deps))
    return tuple(out)


def _forward(activities: tuple[ActivityDef, ...]) -> tuple[ActivityDef, ...]:
    return tuple(
        attrs.evolve(a, depends_on=tuple(d for d in a.depends_on if not d.back_edge)) for a in activities
    )


def _ancestors(activities: tuple[ActivityDef, ...]) -> dict[str, set[str]]:
    """Transitive dependencies of each key; assumes the graph is acyclic."""
    by_key = {a.key: a for a in activities}
    memo: dict[str, set[str]] = {}

    def visit(key: str) -> set[str]:
        if key not in memo:
            memo[key] = set()
            found: set[str] = set()
            for dep in by_key[key].depends_on:
                if dep.activity_key in by_key:
                    found |= {dep.activity_key} | visit(dep.activity_key)
            memo[key] = found
        return memo[key]

    return {key: visit(key) for key in by_key}


def _find_cycle(activities: tuple[ActivityDef, ...]) -> list[str] | None:
    by_key = {a.key: a for a in activities}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(key: str) -> list[str] | None:
        state[key] = 1
        stack.append(key)
        for dep in by_key[key].depends_on:
            if dep.activity_key not in by_key:
                continue
            if state.get(dep.activity_key) == 1:
                return [*stack[stack.index(dep.activity_key) :], dep.activity_key]
            if dep.activity_key not in state and (cycle := visit(dep.activity_key)):
                return cycle
        stack.pop()
        state[key] = 2
        return None

    for key in by_key:
        if key not in state and (cycle := visit(key)):
            return cycle
    return None


def _check_graph(errors: _Errors, activities: tuple[ActivityDef, ...]) -> None:
    keys = [a.key for a in activities]
    for i, activity in enumerate(activities):
        if keys.index(activity.key) != i:
            errors.add(f"activities[{i}].key", f"duplicate activity key {activity.key!r}")
        for j, dep in enumerate(activity.depends_on):
            if dep.activity_key not in keys:
                errors.add(f"activities[{i}].depends_on[{j}]", f"unknown activity key {dep.activity_key!r}")
    if errors.fields:
        return
    cycle = _find_cycle(_forward(activities))
    if cycle:
        errors.add("activities", f"dependency cycle: {' -> '.join(cycle)}")
        return
    found = loops(activities)
    owner: dict[str, str] = {}
    for loop in found:
        i = keys.index(loop.head)
        head, tail = activities[i], activities[keys.index(loop.tail)]
        if not loop.conditions and head.iteration_limit is None and tail.iteration_limit is None:
            errors.add(
                "activities",
                f"dependency cycle through {loop.head!r} and {loop.tail!r} has no exit: give the "
                f"back-edge (activities[{i}].depends_on {loop.tail!r}) a condition or one of its "
                "ends an iteration_limit",
            )
        for key in loop.body:
            if key in owner:
                errors.add(
                    "activities",
                    f"loops through {key!r} overlap (back to {owner[key]!r} and to {loop.head!r}): "
                    "nested or overlapping loops are not supported",
                )
                break
            owner[key] = loop.head
    if errors.fields:
        return
    # Inside a loop, every activity of its body may read every other (a later one's outputs
    # exist from the second iteration on; an iteration-scoped one's are lists, empty at first).
    ancestors = _ancestors(_forward(activities))
    for loop in found:
        for key in loop.body:
            ancestors[key] = ancestors[key] | set(loop.body)
        for a in activities:  # what depends on a body activity reads the whole body
            if ancestors[a.key] & set(loop.body):
                ancestors[a.key] = ancestors[a.key] | set(loop.body)
    for i, activity in enumerate(activities):
        conditions = [c for d in activity.depends_on for c in d.conditions]
        timing = [(activity.settings or {}).get(name) for name in ("delay", "scheduled_for")]
        checked = (("parameters", activity.parameters), ("depends_on", conditions), ("settings", timing))
        for where, value in checked:
            try:
                # Names a {% for %} binds are not references; names only a tag reads are.
                read = value_roots(value)
            except TemplateError as exc:
                errors.add(f"activities[{i}].{where}", str(exc))
                continue
            seen: set[str] = set()
            for expr in sorted(references(value)):
                try:
                    roots = template_roots(f"{{{{{expr}}}}}") & read
                except TemplateError as exc:
                    errors.add(f"activities[{i}].{where}", str(exc))
                    continue
                seen |= roots
                for root in sorted(roots):
                    problem = _root_problem(root, expr, where, activity.key, keys, ancestors)
                    if problem:
                        errors.add(f"activities[{i}].{where}", f"{{{{{expr}}}}}: {problem}")
            for root in sorted(read - seen):  # read by a {% %} tag only
                problem = _root_problem(root, root, where, activity.key, keys, ancestors)
                if problem and root not in ("FILE", "FOLDER", "WORKFLOW"):
                    errors.add(f"activities[{i}].{where}", f"{root!r}: {problem}")


def _root_problem(
    root: str, expr: str, where: str, key: str, keys: list[str], ancestors: Mapping[str, set[str]]
) -> str | None:
    if root == "SECRET":
        if where != "parameters":
            return "SECRET is for parameters only"
        if not re.fullmatch(r"SECRET\.[A-Za-z0-9_]+", expr):
            return "must be {{SECRET.<name>}}"
        return None
    if root == "INPUT":
        return None
    if root in ("SIGNAL", "ACTIVITY"):
        return None if where == "parameters" else f"{root} is for parameters only"
    if root in ("FILE", "FOLDER"):
        for named in re.findall(rf"{root}\s*\.\s*(\w+)", expr):
            problem = _root_problem(named, expr, where, key, keys, ancestors)
            if problem:
                return problem
        return None
    if root == "WORKFLOW":
        unknown = sorted(set(re.findall(r"WORKFLOW\.(\w+)", expr)) - WORKFLOW_FIELDS)
        if unknown or not re.search(r"WORKFLOW\.\w", expr):
            return f"WORKFLOW has only {', '.join(sorted(WORKFLOW_FIELDS))}"
        return None
    if root not in keys:
        return f"unknown activity key {root!r}"
    if root not in ancestors[key]:
        return f"{root!r} is not among this activity's dependencies"
    return None


# The last definitions parsed, by their JSON text: a client that deploys before every run (the
# DAG runner does) sends the same body again, and checking 1,000 activities took half a second.
_PARSED: dict[str, Definition] = {}
_PARSED_KEPT = 8
_PARSED_LOCK = threading.Lock()


def parse_definition(data: Any) -> Definition:
    """A checked :class:`Definition`; raises :exc:`ValidationFailed` naming every bad field.

    The result is shared with other calls given the same JSON (a definition is immutable).
    """
    try:
        text = json.dumps(data, allow_nan=False)
        # YAML may give what JSON text does not tell apart (an int key becomes a string one)
        plain = json.loads(text) == data
    except (TypeError, ValueError):  # YAML dates and the like
        plain = False
    if not plain:
        return _parse_definition(data)
    with _PARSED_LOCK:
        found = _PARSED.get(text)
    if found is None:
        found = _parse_definition(data)
        with _PARSED_LOCK:
            if len(_PARSED) >= _PARSED_KEPT:
                del _PARSED[next(iter(_PARSED))]  # the oldest
            _PARSED[text] = found
    return found


def _parse_definition(data: Any) -> Definition:
    errors = _Errors()
    if not isinstance(data, Mapping):
        raise ValidationFailed.one("body", "must be an object with name and activities")
    name = _str(errors, data, "name", "name", KEY_PATTERN)
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        errors.add("description", "must be a string")
        description = None
    raw = data.get("activities")
    activities: list[ActivityDef] = []
    if not isinstance(raw, list) or not raw:
        errors.add("activities", "required: a non-empty list of activities")
    else:
        for i, item in enumerate(raw):
            parsed = _parse_activity(errors, item, f"activities[{i}]")
            if parsed is not None:
                activities.append(parsed)
    marked = _mark_back_edges(tuple(activities)) if not errors.fields else tuple(activities)
    if not errors.fields:
        _check_graph(errors, marked)
    if errors.fields:
        raise ValidationFailed(errors.fields)
    return Definition(name=name, activities=marked, description=description)
