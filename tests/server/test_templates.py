from __future__ import annotations

import pytest

from trioworks.server.rules._templates import (
    TemplateContext,
    TemplateError,
    Unresolved,
    check_condition,
    evaluate_condition,
    normalize_condition,
    references,
    render,
)

CTX = TemplateContext(
    workflow_id="wf-1",
    input={"n": 3, "name": "ada", "tags": ["x", "y"]},
    outputs={"fetch": {"body": {"size": 10, "kind": "html"}, "ok": True}, "plain": {"output": 5}},
)


def test_whole_string_template_keeps_json_type() -> None:
    assert render("{{INPUT.n}}", CTX) == 3
    assert render("{{ fetch.body }}", CTX) == {"size": 10, "kind": "html"}
    assert render("{{fetch.ok}}", CTX) is True
    assert render("{{INPUT.tags.1}}", CTX) == "y"


def test_embedded_template_becomes_text() -> None:
    assert render("id={{WORKFLOW.id}} n={{INPUT.n}} b={{fetch.body}}", CTX) == (
        'id=wf-1 n=3 b={"size": 10, "kind": "html"}'
    )


def test_render_recurses_and_output_alias() -> None:
    value = {"a": ["{{INPUT.name}}", {"b": "{{fetch.output.body.size}}"}], "c": "{{plain.output}}"}
    assert render(value, CTX) == {"a": ["ada", {"b": 10}], "c": 5}


def test_missing_key_of_an_existing_object_is_null_as_in_the_original() -> None:
    assert render("{{INPUT.missing}}", CTX) is None
    assert render("{{fetch.body.size.deeper}}", CTX) is None


@pytest.mark.parametrize("template", ["{{nope.x}}", "x {{INPUT.missing}}", "{{NOPE.x}}"])
def test_unresolved_names_the_template(template: str) -> None:
    with pytest.raises(Unresolved, match=template.strip("{}").replace(".", r"\.")):
        render(template, CTX)


def test_references() -> None:
    assert references({"a": "{{INPUT.x}} {{b.y}}", "l": ["{{WORKFLOW.id}}"], "n": 1}) == {
        "INPUT.x",
        "b.y",
        "WORKFLOW.id",
    }


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{{fetch.body.size}} > 5", True),
        ("{{fetch.body.size}} <= 5", False),
        ("{{fetch.body.kind}} == 'html'", True),
        ('{{fetch.body.kind}} != "html"', False),
        ("{{fetch.ok}} == true", True),
        ("{{INPUT.n}} >= {{fetch.body.size}}", False),
        ("{{fetch.ok}}", True),
        ("{{fetch.missing}} == 1", False),  # an unresolved side makes it false
        ("{{INPUT.name}} < 'b'", True),
    ],
)
def test_conditions(condition: str, expected: bool) -> None:
    assert check_condition(condition) is None
    assert evaluate_condition(condition, CTX) is expected


def test_ordering_incompatible_types_is_an_error() -> None:
    with pytest.raises(TemplateError, match="cannot order"):
        evaluate_condition("{{fetch.body.kind}} > 3", CTX)


@pytest.mark.parametrize("condition", ["", "just text", "{{a.b}} ==", "1 < 2 < 3"])
def test_bad_condition_syntax(condition: str) -> None:
    assert check_condition(condition) is not None


@pytest.mark.parametrize(
    ("original", "normalized"),
    [
        ("{{ fetch.body.kind == 'html' }}", "{{fetch.body.kind}} == 'html'"),
        ("{{fetch.body.size > 3}}", "{{fetch.body.size}} > 3"),
        ("{{ fetch.ok == true }}", "{{fetch.ok}} == true"),
        ("{{fetch.ok}}", "{{fetch.ok}}"),
        ("{{fetch.body.size}} == 10", "{{fetch.body.size}} == 10"),
    ],
)
def test_original_sdk_in_brace_conditions(original: str, normalized: str) -> None:
    assert normalize_condition(original) == original  # stored as written, evaluated by MiniJinja
    assert check_condition(original) is None
    assert evaluate_condition(original, CTX) is evaluate_condition(normalized, CTX)


def test_and_or_are_refused_with_a_hint() -> None:
    assert "syntax error" in (check_condition("{{ a.x == 1 && a.y == 2 }}") or "")
    assert "and / or" in (check_condition("{{a.x}} == 1 && {{a.y}} == 2") or "")
    assert check_condition("{{a.x}} == 'a && b'") is None  # inside quotes it is just text


RICH = TemplateContext(
    workflow_id="wf-2",
    input={"quantity": 2, "report_time": "2024-05-01T08:00:00Z", "tags": ["a", "b", "c"]},
    outputs={"inv": {"result": {"rows": [{"unreserved": 5}], "results": [{"rows": [{"id": 7}]}]}}},
    statuses={"inv": "completed", "maybe": "skipped"},
    workflow={"name": "orders", "started_at": "2024-05-01T08:00:00+00:00"},
)


def test_indexing_and_slicing() -> None:
    assert render("{{inv.result.rows[0].unreserved}}", RICH) == 5
    assert render("order {{inv.result.results[0].rows[0].id}}", RICH) == "order 7"
    assert render("{{INPUT.report_time[:10]}}", RICH) == "2024-05-01"


def test_filters_and_arithmetic() -> None:
    assert render("{{INPUT.report_date | default(INPUT.report_time[:10])}}", RICH) == "2024-05-01"
    assert render("{{INPUT.tags | length}}", RICH) == 3
    assert render("{{INPUT.missing | coalesce('x')}}", RICH) == "x"
    assert render("{{INPUT.quantity * 2 + 1}}", RICH) == 5
    assert render("{{INPUT.tags | upper}}", RICH) != "{{INPUT.tags | upper}}"


def test_workflow_roots_and_status() -> None:
    assert render("{{WORKFLOW.id}} {{WORKFLOW.name}} {{WORKFLOW.started_at}}", RICH) == (
        "wf-2 orders 2024-05-01T08:00:00+00:00"
    )
    assert render("{{inv.status}}", RICH) == "completed"
    assert render("{{maybe.status}}", RICH) == "skipped"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{{inv.result.rows[0].unreserved >= INPUT.quantity}}", True),
        ("{{inv.result.rows[0].unreserved < INPUT.quantity}}", False),
        ("{{inv.status == 'completed' and INPUT.quantity > 1}}", True),
        ("{{inv.status == 'failed' or INPUT.quantity == 2}}", True),
        ("{{INPUT.tags | length == 3}}", True),
        ("{{inv.result.missing}}", False),  # a missing key of an existing object: null, false
        ("{{'false'}}", False),
        ("{{'yes'}}", True),
        ("{{0}}", False),
    ],
)
def test_expression_conditions(condition: str, expected: bool) -> None:
    assert check_condition(condition) is None
    assert evaluate_condition(condition, RICH) is expected


@pytest.mark.parametrize(
    "condition",
    ["{{pending.result.rows[0].ok}}", "{{pending.ok}} == true", "{{NOPE.x == 1}}"],
)
def test_unresolved_activity_or_root_in_a_condition_fails_loudly(condition: str) -> None:
    root = "pending" if "pending" in condition else "NOPE"
    with pytest.raises(Unresolved, match=root):
        evaluate_condition(condition, RICH)


def test_secret_kept_as_template_in_rendered_text_and_never_from_values() -> None:
    assert render("postgres://{{SECRET.db_url}}/x {{INPUT.quantity}}", RICH) == (
        "postgres://{{SECRET.db_url}}/x 2"
    )
    sneaky = TemplateContext(workflow_id="w", input={"v": "{{SECRET.db_url}}"}, outputs={})
    for template in ("{{INPUT.v}}", "a {{INPUT.v}}"):
        with pytest.raises(TemplateError, match="SECRET"):
            render(template, sneaky)


def test_engine_errors_never_echo_values() -> None:
    ctx = TemplateContext(workflow_id="w", input={"token": "hunter2"}, outputs={})
    with pytest.raises(TemplateError) as info:
        render("x {{INPUT.token.nope}}", ctx)
    assert "hunter2" not in str(info.value)


def test_booleans_render_as_the_original_does() -> None:
    assert render("ok={{fetch.ok}}", CTX) == "ok=true"


def test_prose_after_a_slice_is_not_a_reference() -> None:
    assert (
        render("for {{INPUT.report_time[:4]}}.\nFormat as markdown.", RICH)
        == "for 2024.\nFormat as markdown."
    )
