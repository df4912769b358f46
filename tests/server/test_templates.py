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


@pytest.mark.parametrize("template", ["{{INPUT.missing}}", "{{nope.x}}", "{{fetch.body.size.deeper}}"])
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
        ("{{a.b}} == 1", "{{a.b}} == 1"),
    ],
)
def test_original_sdk_in_brace_conditions(original: str, normalized: str) -> None:
    assert normalize_condition(original) == normalized
    assert check_condition(original) is None
    assert evaluate_condition(original, CTX) is evaluate_condition(normalized, CTX)


def test_and_or_are_refused_with_a_hint() -> None:
    assert "list several conditions" in (check_condition("{{ a.x == 1 && a.y == 2 }}") or "")
    assert check_condition("{{a.x}} == 'a && b'") is None  # inside quotes it is just text
