"""Template roots of issue 13 item 7: ``ACTIVITY.*``, ``FILE.<key>.<name>`` / ``FOLDER.*``, and
``{% for %}`` loop variables that the deploy check must not take for activity keys."""

from __future__ import annotations

from typing import Any

import pytest
from server_helpers import activity

from trioworks.server import Storage, ValidationFailed, parse_definition


def _define(storage: Storage, *activities: dict[str, Any]) -> None:
    storage.put_definition(parse_definition({"name": "d", "activities": list(activities)}), 0.0)


def test_activity_root(storage: Storage) -> None:
    _define(
        storage,
        activity(
            "a",
            settings={"budget": {"limit": 1.5}},
            parameters={
                "it": "{{ACTIVITY.iteration}}",
                "spent": "{{ACTIVITY.accumulated_cost_usd}}",
                "left": "{{ACTIVITY.remaining_budget_usd}}",
                "status": "{{ACTIVITY.status}}",
            },
        ),
        activity("b", parameters={"left": "{{ACTIVITY.remaining_budget_usd}}"}),
    )
    storage.create_workflow("d", None, {}, None, 0.0)
    claimed = {p.activity_key: p.parameters for p in storage.claim("std", "w", 5, 1.0)}
    assert claimed["a"] == {"it": 0, "spent": "0", "left": "1.5", "status": "pending"}
    assert claimed["b"] == {"left": "0.00"}  # no budget: the original's "0.00"


def test_file_and_folder_roots(storage: Storage) -> None:
    _define(
        storage,
        activity(
            "make", outputs=[{"name": "report", "type": "file"}, {"name": "dir", "type": "folder"}, "n"]
        ),
        activity("use", "make", parameters={"f": "{{FILE.make.report}}", "d": "at {{FOLDER.make.dir}}"}),
    )
    storage.create_workflow("d", None, {}, None, 0.0)
    (make,) = storage.claim("std", "w", 5, 1.0)
    output = {"report": "files/wf/make/report.pdf", "dir": "folders/wf/make/out", "n": 2}
    storage.complete(make.activity_id, "w", output, 0.0, None, 2.0)
    (use,) = storage.claim("std", "w", 5, 3.0)
    assert use.parameters == {"f": "files/wf/make/report.pdf", "d": "at folders/wf/make/out"}


def test_for_loop_variables_are_not_activity_keys(storage: Storage) -> None:
    text = "{% for doc in search.docs %}- {{ doc.title }} ({{ loop.index }})\n{% endfor %}"
    _define(storage, activity("search"), activity("answer", "search", parameters={"prompt": text}))
    storage.create_workflow("d", None, {}, None, 0.0)
    (search,) = storage.claim("std", "w", 5, 1.0)
    storage.complete(search.activity_id, "w", {"docs": [{"title": "A"}, {"title": "B"}]}, 0.0, None, 2.0)
    (answer,) = storage.claim("std", "w", 5, 3.0)
    assert answer.parameters == {"prompt": "- A (1)\n- B (2)\n"}


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"p": "{% for d in nope.docs %}{{ d }}{% endfor %}"}, "unknown activity key 'nope'"),
        ({"p": "{% for d in later.docs %}{{ d }}{% endfor %}"}, "not among this activity's dependencies"),
        ({"p": "{{FILE.later.report}}"}, "not among this activity's dependencies"),
        ({"p": "{% for d in x %}{{ e.f }}{% endfor %}"}, "unknown activity key 'e'"),
    ],
)
def test_deploy_check_reads_tags_and_file_keys(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_definition(
            {"name": "d", "activities": [activity("a", parameters=parameters), activity("later")]}
        )
    assert message in str(caught.value.field_errors)


def test_a_loop_deploys_and_a_cycle_with_no_exit_is_refused() -> None:
    """Issue 13 item 8: a back-edge closes a loop (tests/server/test_loops.py runs them)."""
    loop = {"activity_key": "check", "conditions": ["{{check.more}}"]}
    definition = parse_definition(
        {"name": "d", "activities": [activity("work", loop), activity("check", "work", iteration_limit=5)]}
    )
    assert [d.back_edge for d in definition.activity("work").depends_on] == [True]
    assert definition.activity("check").iteration_limit == 5
    with pytest.raises(ValidationFailed) as plain:
        parse_definition({"name": "d", "activities": [activity("a", "b"), activity("b", "a")]})
    assert any("has no exit" in m for m in plain.value.field_errors["activities"])
