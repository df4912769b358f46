"""Loops (issue 13 item 8), as the original Kruxia Flow runs them, on every backend.

A ``depends_on`` back-edge (to an activity that depends on this one) closes a loop: ignored on
the first iteration; when the loop's last activity completes, the back-edge's conditions decide
whether the body runs again, at most ``iteration_limit`` times (default 100). An
``iteration_scoped`` activity's outputs read as lists, one value per iteration; ``ACTIVITY.iteration``
counts the iterations before the current one. What depends on the loop from outside runs once,
after the loop ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from trioworks.server import (
    ActivityStatus,
    Storage,
    ValidationFailed,
    WorkflowStatus,
    parse_definition,
)

S = ActivityStatus


def run(storage: Storage, workflow_id: str, answer: Callable[[str, dict[str, Any]], dict[str, Any]]) -> list:
    """Claim and complete until nothing is pending; ``(key, parameters)`` in the order they ran."""
    ran = []
    now = 2.0
    while batch := storage.claim("std", "me", 10, now):
        for pending in batch:
            assert pending.workflow_id == workflow_id
            ran.append((pending.activity_key, pending.parameters))
            now += 1.0
            storage.complete(
                pending.activity_id, "me", answer(pending.activity_key, pending.parameters), 0.0, None, now
            )
    return ran


def research(limit: int | None = 10, condition: str | None = "{{check.more | last}}") -> list[dict[str, Any]]:
    back: dict[str, Any] = {"activity_key": "check"}
    if condition is not None:
        back["conditions"] = [condition]
    search: dict[str, Any] = {
        "key": "search",
        "activity_name": "search",
        "iteration_scoped": True,
        "parameters": {"n": "{{ACTIVITY.iteration}}", "before": "{{search.found | length}}"},
        "outputs": ["found"],
        "depends_on": ["init", back],
    }
    if limit is not None:
        search["iteration_limit"] = limit
    return [
        {"key": "init", "activity_name": "init"},
        search,
        {
            "key": "check",
            "activity_name": "check",
            "iteration_scoped": True,
            "parameters": {"found": "{{search.found}}", "i": "{{ACTIVITY.iteration}}"},
            "depends_on": ["search"],
        },
        {
            "key": "report",
            "activity_name": "report",
            "parameters": {"all": "{{search.found}}", "checks": "{{check.more | length}}"},
            "depends_on": ["check"],
        },
    ]


def answers(stop_after: int) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    def answer(key: str, parameters: dict[str, Any]) -> dict[str, Any]:
        if key == "search":
            return {"found": f"r{parameters['n']}"}
        if key == "check":
            return {"more": int(parameters["i"]) + 1 < stop_after}
        return {}

    return answer


def test_a_loop_iterates_until_its_condition_turns_false(storage: Storage) -> None:
    storage.put_definition(parse_definition({"name": "loop", "activities": research()}), 0.0)
    workflow_id = storage.create_workflow("loop", None, {}, None, 1.0).id
    ran = run(storage, workflow_id, answers(stop_after=3))
    assert [k for k, _ in ran] == ["init", *["search", "check"] * 3, "report"]
    searches = [p for k, p in ran if k == "search"]
    assert [(p["n"], p["before"]) for p in searches] == [(0, 0), (1, 1), (2, 2)]
    checks = [p for k, p in ran if k == "check"]
    assert checks[-1]["i"] == 2
    assert checks[-1]["found"] == ["r0", "r1", "r2"]  # the list of every iteration's value
    assert ran[-1][1] == {"all": ["r0", "r1", "r2"], "checks": 3}
    workflow, rows = storage.get_workflow(workflow_id)
    assert workflow.status is WorkflowStatus.COMPLETED
    by_key = {r.key: r for r in rows}
    assert by_key["search"].iteration == 2 and by_key["search"].history == {"found": ["r0", "r1"]}
    assert by_key["search"].output == {"found": "r2"}  # the latest iteration's output
    assert by_key["report"].iteration == 0


def test_the_iteration_limit_stops_a_loop_whose_condition_stays_true(storage: Storage) -> None:
    storage.put_definition(parse_definition({"name": "bounded", "activities": research(limit=4)}), 0.0)
    workflow_id = storage.create_workflow("bounded", None, {}, None, 1.0).id
    ran = run(storage, workflow_id, answers(stop_after=1_000))
    assert [k for k, _ in ran] == ["init", *["search", "check"] * 4, "report"]
    assert ran[-1][1]["checks"] == 4
    assert storage.get_workflow(workflow_id)[0].status is WorkflowStatus.COMPLETED


def test_a_loop_without_a_limit_stops_at_the_default_of_100(storage: Storage) -> None:
    activities = [
        {"key": "tick", "activity_name": "tick", "parameters": {"i": "{{ACTIVITY.iteration}}"},
         "depends_on": [{"activity_key": "tick", "condition": "{{tick.go}}"}]},
    ]  # fmt: skip
    storage.put_definition(parse_definition({"name": "tick", "activities": activities}), 0.0)
    workflow_id = storage.create_workflow("tick", None, {}, None, 1.0).id
    ran = run(storage, workflow_id, lambda key, parameters: {"go": True})
    assert [p["i"] for _, p in ran] == list(range(100))
    assert storage.get_workflow(workflow_id)[0].status is WorkflowStatus.COMPLETED


def test_a_self_loop_with_a_fixed_count(storage: Storage) -> None:
    # The original's loops guide, pattern 1: iteration_limit and an unconditional back-edge.
    activities = [
        {"key": "issue", "activity_name": "send", "iteration_scoped": True, "iteration_limit": 3,
         "parameters": {"number": "{{ACTIVITY.iteration + 1}}"}, "depends_on": ["issue"]},
        {"key": "done", "activity_name": "done", "parameters": {"sent": "{{issue.sent}}"}, "depends_on": ["issue"]},
    ]  # fmt: skip
    storage.put_definition(parse_definition({"name": "news", "activities": activities}), 0.0)
    workflow_id = storage.create_workflow("news", None, {}, None, 1.0).id
    ran = run(storage, workflow_id, lambda key, p: {"sent": int(p["number"])} if key == "issue" else {})
    assert ran == [("issue", {"number": 1}), ("issue", {"number": 2}), ("issue", {"number": 3}),
                   ("done", {"sent": [1, 2, 3]})]  # fmt: skip


def test_an_unresolved_back_edge_condition_fails_the_workflow(storage: Storage) -> None:
    activities = research(condition="{{check.missing | last}}")
    storage.put_definition(parse_definition({"name": "bad", "activities": activities}), 0.0)
    workflow_id = storage.create_workflow("bad", None, {}, None, 1.0).id
    run(storage, workflow_id, answers(stop_after=3))
    workflow, rows = storage.get_workflow(workflow_id)
    assert workflow.status is WorkflowStatus.FAILED
    assert "search" in (workflow.error_message or "") and "TEMPLATE_ERROR" in (workflow.error_message or "")
    assert {r.key: r.status for r in rows}["report"] is S.FAILED


@pytest.mark.parametrize(
    ("activities", "message"),
    [
        (  # a cycle with no condition and no iteration_limit: no exit
            [{"key": "a", "activity_name": "a", "depends_on": ["b"]},
             {"key": "b", "activity_name": "b", "depends_on": ["a"]}],
            "has no exit",
        ),
        (
            [{"key": "a", "activity_name": "a", "iteration_limit": 0, "depends_on": ["a"]}],
            "must be an integer from 1",
        ),
        (  # two loops sharing an activity
            [{"key": "a", "activity_name": "a", "iteration_limit": 2, "depends_on": ["c"]},
             {"key": "b", "activity_name": "b", "iteration_limit": 2, "depends_on": ["a", "c"]},
             {"key": "c", "activity_name": "c", "depends_on": ["b"]}],
            "not supported",
        ),
    ],
)  # fmt: skip
def test_deploy_refuses_a_loop_it_cannot_run(activities: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_definition({"name": "x", "activities": activities})
    assert message in str(caught.value.field_errors)


def test_a_dag_listed_out_of_order_has_no_back_edge() -> None:
    definition = parse_definition(
        {"name": "dag", "activities": [{"key": "b", "activity_name": "b", "depends_on": ["a"]},
                                       {"key": "a", "activity_name": "a"}]}
    )  # fmt: skip
    assert not any(d.back_edge for a in definition.activities for d in a.depends_on)


def test_a_database_from_before_loops_gets_the_iteration_columns(storage: Storage) -> None:
    storage.put_definition(parse_definition({"name": "loop", "activities": research()}), 0.0)
    storage.close()
    reopened = type(storage)(storage.path if hasattr(storage, "path") else storage.url)  # type: ignore[attr-defined]
    try:
        with reopened._tx() as db:  # type: ignore[attr-defined]  # as an older trioworks left it
            db.exec("ALTER TABLE activities DROP COLUMN iteration")
            db.exec("ALTER TABLE activities DROP COLUMN history")
    finally:
        reopened.close()
    again = type(storage)(storage.path if hasattr(storage, "path") else storage.url)  # type: ignore[attr-defined]
    try:
        workflow_id = again.create_workflow("loop", None, {}, None, 1.0).id
        assert [k for k, _ in run(again, workflow_id, answers(stop_after=2))][-1] == "report"
    finally:
        again.close()


def test_a_delay_applies_to_the_first_iteration_only(storage: Storage) -> None:
    activities = [
        {"key": "tick", "activity_name": "tick", "iteration_limit": 3, "settings": {"delay": "10s"},
         "parameters": {"i": "{{ACTIVITY.iteration}}"}, "depends_on": ["tick"]},
    ]  # fmt: skip
    storage.put_definition(parse_definition({"name": "late", "activities": activities}), 0.0)
    storage.create_workflow("late", None, {}, None, 1.0)
    assert storage.claim("std", "me", 10, 10.0) == []
    [first] = storage.claim("std", "me", 10, 11.0)
    storage.complete(first.activity_id, "me", {}, 0.0, None, 12.0)
    [second] = storage.claim("std", "me", 10, 12.0)  # at once
    assert second.parameters == {"i": 1}


GUIDE_PATTERN_3 = """
name: bounded_research
activities:
  - key: initialize
    activity_name: echo
  - key: perform_search
    activity_name: echo
    iteration_scoped: true
    iteration_limit: 5
    parameters:
      query: "{{INPUT.topic}}"
      context: "{{perform_search.results}}"
    depends_on:
      - initialize
      - activity_key: evaluate_results
        conditions:
          - "{{evaluate_results.sufficient | last == false}}"
  - key: evaluate_results
    activity_name: echo
    iteration_scoped: true
    parameters:
      findings: "{{perform_search.results}}"
    outputs:
      - name: sufficient
    depends_on:
      - perform_search
"""


async def test_the_loops_guide_pattern_deploys_as_curl_sends_it_and_runs(api: Any) -> None:
    """The original's docs/loops-guide.md, pattern 3, through the HTTP routes."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    reply = await api.client.post(
        "/api/v1/workflow_definitions", content=GUIDE_PATTERN_3.encode(), headers=form
    )
    assert reply.status_code == 201, reply.text
    submit = {"definition_name": "bounded_research", "input": {"topic": "trio"}}
    reply = await api.client.post("/api/v1/workflows", json=submit)
    assert reply.status_code == 201, reply.text
    workflow_id = reply.json()["workflow_id"]
    seen = []
    while True:
        reply = await api.client.post(
            "/api/v1/workers/poll", json={"worker": "std", "worker_id": "w", "max_activities": 10}
        )
        batch = reply.json()["activities"]
        if not batch:
            break
        for item in batch:
            key, parameters = item["activity_key"], item["parameters"]
            seen.append((key, parameters))
            output = {}
            if key == "perform_search":
                # No output is declared: before the first iteration the list is not there (null).
                output = {"results": f"hit{len(parameters['context'] or [])}"}
            elif key == "evaluate_results":
                output = {"sufficient": len(parameters["findings"]) >= 2}
            route = f"/api/v1/activities/{item['activity_id']}/complete"
            assert (
                await api.client.post(route, json={"worker_id": "w", "output": output})
            ).status_code == 200
    assert [k for k, _ in seen] == ["initialize", *["perform_search", "evaluate_results"] * 2]
    assert seen[-1][1] == {"findings": ["hit0", "hit1"]}
    reply = await api.client.get(f"/api/v1/workflows/{workflow_id}")
    assert reply.json()["status"] == "completed"
