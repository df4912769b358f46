"""Incremental scheduling (``_progress``, used by every completion) against the whole-workflow rule
(``_engine.advance``), on every backend.

Hypothesis draws a small workflow (dependencies that may come later in the definition,
duplicated dependencies, conditions on outputs, parameters naming outputs that may be missing)
and a run of completions and terminal failures with drawn outputs. Before each step the test
reads the workflow, computes what ``advance`` / ``fail_workflow`` say the rows must become, lets
the storage do the step, and compares every row (but the ``waiting_for`` counter, which the
whole-workflow rule does not keep).
"""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from server_helpers import activity

from trioworks.server import (
    ActivityRow,
    ActivityStatus,
    Definition,
    Storage,
    WorkflowStatus,
    parse_definition,
)
from trioworks.server.rules._engine import advance, complete_row, fail_row, fail_workflow
from trioworks.server.rules._progress import make_plan

S = ActivityStatus
_names = itertools.count()
OUTPUTS = st.sampled_from([{"v": 0}, {"v": 1}, {"v": 2}, {"v": "x"}, {"v": 2, "w": "s"}])


@st.composite
def definitions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Activities ``a0..an`` (each depends only on lower numbers), listed in a drawn order."""
    n = draw(st.integers(2, 7))
    acts = []
    for i in range(n):
        deps: list[Any] = []
        for dep in draw(st.lists(st.sampled_from([f"a{j}" for j in range(i)]), max_size=3)) if i else []:
            condition = draw(
                st.sampled_from(
                    [None, f"{{{{{dep}.v}}}} > 0", f"{{{{{dep}.v}}}} == 1", f"{{{{{dep}.v}}}} != 2"]
                )
            )
            deps.append(dep if condition is None else {"activity_key": dep, "condition": condition})
        params: dict[str, Any] = {}
        if deps:
            dep = deps[0] if isinstance(deps[0], str) else deps[0]["activity_key"]
            params = draw(st.sampled_from([{}, {"x": f"{{{{{dep}.v}}}}"}, {"x": f"w={{{{{dep}.w}}}}"}]))
        retry = draw(st.sampled_from([None, {"retry": {"max_attempts": 3}}]))
        acts.append(activity(f"a{i}", *deps, parameters=params, settings=retry))
    return draw(st.permutations(acts))


def comparable(rows: list[ActivityRow]) -> list[ActivityRow]:
    return [attrs.evolve(r, waiting_for=0) for r in rows]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(activities=definitions(), data=st.data())
def test_completions_match_the_whole_workflow_rule(
    storage: Storage, activities: list, data: st.DataObject
) -> None:
    number = next(_names)
    worker = f"w{number}"  # one queue per example: examples share the database
    activities = [{**a, "worker": worker} for a in activities]
    definition = parse_definition({"name": f"p{number}", "activities": activities})
    storage.put_definition(definition, 0.0)
    workflow_id = storage.create_workflow(definition.name, None, {}, None, 1.0).id
    now = 2.0
    for _ in range(12):
        storage.claim(worker, "me", 100, now)
        workflow, rows = storage.get_workflow(workflow_id)
        running = [i for i, r in enumerate(rows) if r.status is S.RUNNING]
        if not running:
            break
        i = data.draw(st.sampled_from(running))
        now += 1.0
        expected = list(rows)
        if data.draw(st.integers(0, 4)):
            output = data.draw(OUTPUTS)
            expected[i] = complete_row(rows[i], output, 0.0, None, now)
            expected_wf, expected = advance(workflow, definition, expected, now)
            storage.complete(rows[i].id, "me", output, 0.0, None, now)
        else:
            error = {"code": "BOOM", "message": "drawn", "retryable": False}
            expected[i], _ = fail_row(rows[i], definition, error, 0.0, None, now)
            expected_wf = workflow
            if workflow.status is not WorkflowStatus.FAILED:
                expected_wf, expected = fail_workflow(workflow, expected, expected[i], now)
            storage.fail(rows[i].id, "me", error, 0.0, None, now)
        got_wf, got = storage.get_workflow(workflow_id)
        assert got_wf == expected_wf
        assert comparable(got) == comparable(expected)
        if got_wf.status is not WorkflowStatus.FAILED:
            check_counters(definition, got)


def check_counters(definition: Definition, rows: list[ActivityRow]) -> None:
    """Each waiting row counts exactly its dependencies that have not completed or been skipped."""
    plan = make_plan(definition)
    done = {r.key for r in rows if r.status in (S.COMPLETED, S.SKIPPED)}
    for row in rows:
        if row.status is S.NOT_SCHEDULED:
            assert row.waiting_for == len(set(plan.deps[row.key]) - done), row


def test_two_template_failures_at_once_name_the_one_advance_names(storage: Storage) -> None:
    # root completes with v=0: `skip` is skipped (its condition is false), which readies `early`
    # (listed before it, so advance() visits it in its next pass); `late` is ready at once (this
    # pass). Both fail their templates; advance() meets `late` first, and so must a completion.
    activities = [
        activity("root"),
        activity("early", "root", "skip", parameters={"x": "v={{skip.v}}"}),
        activity("skip", {"activity_key": "root", "condition": "{{root.v}} == 1"}),
        activity("late", "root", parameters={"x": "w={{root.w}}"}),
    ]
    storage.put_definition(parse_definition({"name": "two", "activities": activities}), 0.0)
    workflow_id = storage.create_workflow("two", None, {}, None, 1.0).id
    [root] = storage.claim("std", "me", 10, 2.0)
    storage.complete(root.activity_id, "me", {"v": 0}, 0.0, None, 3.0)
    workflow, rows = storage.get_workflow(workflow_id)
    assert workflow.error_message is not None and workflow.error_message.startswith("activity 'late' failed")
    assert {r.key: r.status for r in rows} == {
        "root": S.COMPLETED,
        "early": S.FAILED,
        "skip": S.SKIPPED,
        "late": S.FAILED,
    }


def test_a_database_from_before_the_counters_is_brought_up_to_date(storage: Storage, define) -> None:
    define("d", activity("a"), activity("b"), activity("c", "a", "b"), activity("e", "c"))
    workflow_id = storage.create_workflow("d", None, {}, None, 1.0).id
    untouched = storage.create_workflow("d", None, {}, None, 1.0).id
    claimed = {c.activity_key: c for c in storage.claim("std", "me", 10, 2.0) if c.workflow_id == workflow_id}
    storage.complete(claimed["a"].activity_id, "me", {}, 0.0, None, 3.0)
    with storage._tx() as db:  # type: ignore[attr-defined]  # as an older trioworks left it
        db.exec("ALTER TABLE activities DROP COLUMN waiting_for")
    storage.close()
    again = type(storage)(storage.path if hasattr(storage, "path") else storage.url)  # type: ignore[attr-defined]
    try:
        _, rows = again.get_workflow(workflow_id)
        assert {r.key: r.waiting_for for r in rows} == {"a": 0, "b": 0, "c": 1, "e": 1}
        assert {r.key: r.waiting_for for r in again.get_workflow(untouched)[1]}["c"] == 2
        again.complete(claimed["b"].activity_id, "me", {}, 0.0, None, 4.0)
        assert {r.key: r.status for r in again.get_workflow(workflow_id)[1]}["c"] is S.PENDING
    finally:
        again.close()
