"""Incremental scheduling: what one finished activity changes in its workflow, reading only the
rows it must.

:func:`._engine.advance` states the scheduling rules over a whole workflow; using it on every
completion means loading every row of the workflow, a cost linear in its width (a 1,000-wide
fan-out took 20 s to drain). :func:`progress` applies the same rules from the finished activity
outwards:

- every row keeps ``waiting_for``, the number of its distinct dependencies that have not
  completed or been skipped (set by :func:`waiting_counts` when the workflow is created);
- an activity that completes (or is skipped) decrements its dependents' counters; only a
  dependent that reaches zero is looked at, with its dependencies' rows and the outputs its
  templates name (nothing else is ever read);
- a dependent that is skipped releases its own dependents in turn.

So a completion reads its direct dependents (plus, once per activity that becomes ready, that
activity's dependencies and referenced outputs): independent of the workflow's width. Whether
the whole workflow completed is one indexed query in the SQL layer.

Rows come from a :class:`RowSource` (the SQL layer's locked loads; a dict in tests), so this
module stays free of database code and is checked against :func:`advance` by a property test.

Order: candidates are visited the way :func:`advance` visits them (passes in definition order;
a row released by a skip is visited in the same pass when it comes later in the definition, in
the next pass otherwise), so that when two activities fail their templates at once, the same one
is named as the workflow's failure.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

import attrs

from .._models import ActivityDef, ActivityRow, ActivityStatus, Definition, WorkflowRow, evolve
from ._definitions import Loop, loops
from ._engine import _template_failure, next_iteration, schedule_row, template_context
from ._templates import TemplateError, evaluate_condition, normalize_condition, strings, value_roots
from ._timing import signal_wait

__all__ = ["Plan", "Progress", "RowSource", "make_plan", "progress", "waiting_counts"]

S = ActivityStatus
_DONE = (S.COMPLETED, S.SKIPPED)  # what releases a dependent (a failure fails the workflow instead)


@attrs.frozen
class Plan:
    """What incremental scheduling needs from one definition; computed once per stored version."""

    definition: Definition
    specs: Mapping[str, ActivityDef]
    deps: Mapping[str, tuple[str, ...]]  # distinct direct dependencies
    dependents: Mapping[str, tuple[str, ...]]  # distinct direct dependents, in definition order
    reads: Mapping[str, tuple[str, ...]]  # activities whose outputs its parameters and conditions read
    loops: Mapping[str, Loop] = attrs.field(factory=dict)  # by the loop's last activity (its tail)
    # Activities with no template, condition, delay or signal wait: made ready without a
    # template context (building one per row was half of releasing a 1,000-wide fan-out).
    plain: frozenset[str] = frozenset()


def make_plan(definition: Definition) -> Plan:
    specs = {a.key: a for a in definition.activities}
    # Back-edges are not dependencies here: a loop's tail completing decides the next iteration.
    deps = {
        a.key: tuple(dict.fromkeys(d.activity_key for d in a.depends_on if not d.back_edge))
        for a in definition.activities
    }
    dependents: dict[str, list[str]] = {key: [] for key in specs}
    for key, keys in deps.items():
        for dep in keys:
            dependents[dep].append(key)
    reads = {}
    for a in definition.activities:
        conditions = [normalize_condition(c) for d in a.depends_on for c in d.conditions]
        timing = [(a.settings or {}).get(name) for name in ("delay", "scheduled_for")]
        roots = _roots([a.parameters, conditions, timing])
        reads[a.key] = tuple(sorted(roots & specs.keys()))
    by_tail = {loop.tail: loop for loop in loops(definition.activities)}
    plain = frozenset(a.key for a in definition.activities if _plain(a))
    return Plan(definition, specs, deps, {k: tuple(v) for k, v in dependents.items()}, reads, by_tail, plain)


def _plain(spec: ActivityDef) -> bool:
    settings = spec.settings or {}
    return (
        not strings(spec.parameters)
        and not any(d.conditions for d in spec.depends_on)
        and settings.get("delay") is None
        and settings.get("scheduled_for") is None
        and signal_wait(settings) is None
    )


def _again(
    workflow: WorkflowRow,
    plan: Plan,
    loop: Loop,
    fetch: Callable[[Sequence[str]], Mapping[str, ActivityRow]],
    now: float,
) -> bool | ActivityRow:
    """Whether ``loop`` runs again now that its tail completed: fewer than ``limit`` iterations
    done and every condition of its back-edge true. A condition that does not resolve: the
    head, failed with the template error (it fails the workflow)."""
    rows = fetch((*loop.body, *plan.reads[loop.head]))
    head = rows[loop.head]
    if head.iteration + 1 >= loop.limit:
        return False
    keys = dict.fromkeys((*loop.body, *plan.reads[loop.head]))
    ctx = template_context(workflow, (rows[k] for k in keys), plan.definition)
    try:
        return all(evaluate_condition(c, ctx) for c in loop.conditions)
    except TemplateError as exc:
        return _template_failure(head, exc, now)


def _roots(value: object) -> set[str]:
    try:
        return value_roots(value)
    except TemplateError:
        return set()  # refused at deploy


def waiting_counts(plan: Plan, rows: Sequence[ActivityRow]) -> list[ActivityRow]:
    """``rows`` with ``waiting_for`` set from their dependencies' statuses (a new workflow)."""
    status = {r.key: r.status for r in rows}
    return [evolve(r, waiting_for=sum(status[d] not in _DONE for d in plan.deps[r.key])) for r in rows]


class RowSource(Protocol):
    def rows(self, keys: Sequence[str]) -> Iterable[ActivityRow]:
        """The current rows of these keys (of one workflow), in any order."""

    def release(self, keys: Sequence[str]) -> Iterable[ActivityRow]:
        """The rows of these keys with ``waiting_for`` one less, in any order. A source may store
        the count already (Postgres: one ``UPDATE ... RETURNING`` instead of a read and a write)
        or leave it to the caller's write of ``changed`` (SQLite)."""


@attrs.frozen
class Progress:
    changed: dict[str, ActivityRow]  # key -> new row, for every row that changed
    failed: ActivityRow | None = None  # an activity that failed its templates: fail the workflow


def progress(
    workflow: WorkflowRow, plan: Plan, finished: ActivityRow, source: RowSource, now: float
) -> Progress:
    """Schedule what ``finished`` (just completed, not yet in ``source``) makes ready, propagating skips.

    Call it only for a workflow that is neither completed nor failed. ``changed`` includes the
    dependents whose counters moved (those ``source.release`` stored already among them). It
    does not decide whether the workflow completed.
    """
    cache: dict[str, ActivityRow] = {finished.key: finished}
    changed: dict[str, ActivityRow] = {}

    def fetch(keys: Sequence[str]) -> Mapping[str, ActivityRow]:
        missing = [k for k in keys if k not in cache]
        if missing:
            cache.update((r.key, r) for r in source.rows(missing))
        return cache

    queue: list[tuple[int, int, str]] = []  # (pass, position, key), as advance() would visit them

    def release(row: ActivityRow, pass_number: int) -> None:
        keys = plan.dependents[row.key]
        # A row read before (and maybe changed since) is counted down here; the others by the
        # source, in the store.
        unread = [k for k in keys if k not in cache]
        if unread:
            cache.update((r.key, r) for r in source.release(unread))
        released = set(unread)
        for key in keys:
            if key in released:
                new = changed[key] = cache[key]
            else:
                new = cache[key] = changed[key] = evolve(cache[key], waiting_for=cache[key].waiting_for - 1)
            if new.waiting_for <= 0 and new.status is S.NOT_SCHEDULED:
                later = new.position > row.position or row is finished
                heapq.heappush(queue, (pass_number if later else pass_number + 1, new.position, key))

    loop = plan.loops.get(finished.key) if finished.status is S.COMPLETED else None
    again = _again(workflow, plan, loop, fetch, now) if loop is not None else False
    if isinstance(again, ActivityRow):
        changed[again.key] = again
        return Progress(changed, again)
    if loop is not None and again:
        # The next iteration: the whole body runs again from the head; what depends on the
        # tail from outside the loop waits for the loop to end.
        rows = fetch(loop.body)
        inside = set(loop.body)
        for key in loop.body:
            reset = next_iteration(rows[key], plan.specs[key].iteration_scoped)
            reset = evolve(reset, waiting_for=sum(d in inside for d in plan.deps[key]))
            cache[key] = changed[key] = reset
        heapq.heappush(queue, (0, cache[loop.head].position, loop.head))
    else:
        release(finished, 0)
    while queue:
        pass_number, _, key = heapq.heappop(queue)
        row = cache[key]
        if row.status is not S.NOT_SCHEDULED:
            continue  # released twice (two skipped dependencies in one pass)
        rows = fetch((*plan.deps[key], *plan.reads[key]))
        ctx = None
        if key not in plan.plain:
            ctx = template_context(workflow, (rows[k] for k in plan.reads[key]), plan.definition)
        new = schedule_row(plan.specs[key], row, rows, ctx, now)
        if new is None:
            continue  # a dependency not done after all: the counter is only a hint to look
        cache[key] = changed[key] = new
        if new.status is S.FAILED:
            return Progress(changed, new)
        if new.status is S.SKIPPED:
            release(new, pass_number)
    return Progress(changed)
