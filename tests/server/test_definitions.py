from __future__ import annotations

from typing import Any

import pytest
from server_helpers import activity

from trioworks.server import ValidationFailed, parse_definition


def errors_of(data: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as info:
        parse_definition(data)
    body = info.value.body()
    assert body["error"]["code"] == "VALIDATION_ERROR"
    return body["error"]["details"]["field_errors"]


def test_valid_definition_parses() -> None:
    d = parse_definition(
        {
            "name": "etl",
            "activities": [
                activity("fetch", outputs=["body", {"name": "raw", "type": "file"}]),
                activity(
                    "store",
                    {"activity_key": "fetch", "condition": "{{fetch.body}} != ''"},
                    parameters={"data": "{{fetch.body}}"},
                    settings={"timeout_seconds": 5, "retry": {"max_attempts": 3}},
                ),
            ],
        }
    )
    assert [a.key for a in d.activities] == ["fetch", "store"]
    assert d.activity("fetch").outputs[1].type == "file"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "body"),
        ({"activities": [activity("a")]}, "name"),
        ({"name": "x", "activities": []}, "activities"),
        (
            {"name": "x", "activities": [{"key": "a", "activity_name": "a", "worker": None}]},
            "activities[0].worker",
        ),
        ({"name": "x", "activities": [activity("a", worker="Bad")]}, "activities[0].worker"),
        ({"name": "x", "activities": [activity("a b")]}, "activities[0].key"),
        ({"name": "x", "activities": [activity("a"), activity("a")]}, "activities[1].key"),
        ({"name": "x", "activities": [activity("a", "zz")]}, "activities[0].depends_on[0]"),
        ({"name": "x", "activities": [activity("a", "b"), activity("b", "a")]}, "activities"),
        (
            {"name": "x", "activities": [activity("a", parameters={"p": "{{b.x}}"}), activity("b")]},
            "activities[0].parameters",
        ),
        (
            {"name": "x", "activities": [activity("a", settings={"retry": {"max_attempts": 0}})]},
            "activities[0].settings.retry.max_attempts",
        ),
        (
            {"name": "x", "activities": [activity("a", settings={"timeout_seconds": "soon"})]},
            "activities[0].settings.timeout_seconds",
        ),
        (
            {
                "name": "x",
                "activities": [activity("a"), activity("b", {"activity_key": "a", "condition": "oops"})],
            },
            "activities[1].depends_on[0].condition",
        ),
        (
            {
                "name": "x",
                "activities": [
                    activity("a"),
                    activity(
                        "b", {"activity_key": "a", "conditions": ["{{a.x}} == 1", "{{ a.x == 1 || a.y }}"]}
                    ),
                ],
            },
            "activities[1].depends_on[0].conditions[1]",
        ),
    ],
)
def test_bad_definitions_name_the_field(data: Any, field: str) -> None:
    assert field in errors_of(data)


def test_worker_defaults_to_std() -> None:
    """As the original (core/src/workflow/definition.rs): an activity without ``worker`` is ``std``."""
    parsed = parse_definition({"name": "x", "activities": [{"key": "a", "activity_name": "a"}]})
    assert parsed.activities[0].worker == "std"


def test_a_body_parsed_again_is_remembered_but_never_mistaken() -> None:
    """A DAG run deploys its definition before every run: the same JSON is parsed once."""
    data = {"name": "again", "activities": [activity("a", parameters={"n": 1})]}
    first = parse_definition(data)
    assert parse_definition({**data}) is first
    # Same JSON text, other values: 1.0 is not 1, an int key is not its string.
    other = parse_definition({**data, "activities": [activity("a", parameters={"n": 1.0})]})
    assert other.activities[0].parameters == {"n": 1.0}
    assert type(other.activities[0].parameters["n"]) is float
    bad = {"name": "again", "activities": [activity("a", parameters={1: "x"})]}
    assert parse_definition(bad) is not parse_definition(
        {"name": "again", "activities": [activity("a", parameters={"1": "x"})]}
    )
    assert errors_of({**data, "name": ""})  # a failure is never remembered as a success
