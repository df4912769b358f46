"""A whole ``{{ key.path }}`` template is read straight from the stored values, without MiniJinja
(issue 15: a 1 MB edge took 1.8 s to render). Its results must be exactly what MiniJinja's rendering
gives: same values, same types (MiniJinja turns a top-level 1.0 into 1, a huge int into a float),
same key order, and the same errors (strict undefined, unknown roots, {{SECRET...}} values)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trioworks.server.rules import _templates
from trioworks.server.rules._templates import TemplateContext, TemplateError, render

NAMES = [
    "a",
    "b",
    "out",
    "output",
    "status",
    "items",
    "keys",
    "none",
    "true",
    "in",
    "error",
    "x_1",
    "__class__",
]
KEYS = st.sampled_from(NAMES) | st.text(max_size=4)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**62, 2**63, 2**64, 2**127, 2**128, -(2**63) - 1, 2**200])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1.0, -0.0, 0.0, 1e20, 1e300, 2.5])
    | st.text(max_size=6)
    | st.sampled_from(["SECRET", "{{SECRET.x}}", "\x00SECRET:x\x00", "{{ a }}"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
OUTPUTS = st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=4)


def _step(name: str, quote: str) -> str:
    if quote == "." and name.isidentifier() and name.isascii():
        return f".{name}"
    q = "'" if quote == "'" else '"'
    return f"[{q}{name}{q}]" if q not in name and "\\" not in name else f".{name}"


@st.composite
def paths(draw: st.DrawFn) -> str:
    root = draw(st.sampled_from(["a", "b", "s", "missing", "INPUT", "WORKFLOW", "true", "SECRET"]))
    steps = draw(st.lists(st.tuples(KEYS, st.sampled_from([".", "'", '"'])), max_size=4))
    text = root + "".join(_step(name, quote) for name, quote in steps)
    return text if _templates._PATH.fullmatch(text) else root


def _same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (1 != 1.0, -0.0 != 0.0), keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "value", fn(*args)
    except TemplateError as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=400, deadline=None)
@given(a=OUTPUTS, b=OUTPUTS, input_=OUTPUTS, expr=paths())
def test_direct_path_is_what_minijinja_renders(
    a: dict[str, Any], b: dict[str, Any], input_: dict[str, Any], expr: str
) -> None:
    ctx = TemplateContext(
        "wf-1", input_, {"a": a, "b": b}, statuses={"a": "completed", "b": "completed", "s": "skipped"}
    )
    fast = _outcome(_templates._evaluate, expr, ctx)  # what render() uses for a whole {{ expr }}
    slow = _outcome(_templates._rendered, expr, ctx)
    assert fast[0] == slow[0], (fast, slow)
    if fast[0] == "value":
        assert _same(fast[1], slow[1]), (fast, slow)
    else:
        assert fast[1] == slow[1]


CTX = TemplateContext(
    "wf-1",
    {"nodes": {"k": {"n": 1.0, "s": "text", "nested": {"f": 1.0, "l": [1.0, None, 2**200]}}}},
    {
        "up": {
            "out": {"v": 1.0, "big": 2**200, "none": None, "deep": {"x": [1, 2.5, "y", True]}},
            "error": None,
        }
    },
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{{ INPUT.nodes["k"] }}', {"n": 1.0, "s": "text", "nested": {"f": 1.0, "l": [1.0, None, 2**200]}}),
        ("{{ INPUT.nodes.k.n }}", 1),  # MiniJinja turns a whole 1.0 into 1
        ("{{ up.out.v }}", 1),
        ("{{ up.out.big }}", float(2**200)),
        ("{{ up.out.none }}", None),
        ("{{ up.out.deep }}", {"x": [1, 2.5, "y", True]}),
        ("{{ up.out_file }}", None),  # a missing key of an existing map is null
        ("{{ up.error }}", None),
        ("{{ up.status }}", "completed"),
    ],
)
def test_examples(template: str, expected: Any) -> None:
    value = render(template, CTX)
    assert _same(value, expected), value
    assert json.dumps(value) == json.dumps(expected)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ up.nope.x }}", "`up.nope` is undefined"),
        ("{{ down.out }}", "activity 'down' has no output"),
        ("{{ NOPE.x }}", "unknown reference 'NOPE'"),
    ],
)
def test_errors_stay_loud(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(template, CTX)


def test_result_is_a_copy() -> None:
    """The context's values are shared between templates (and INPUT between requests)."""
    value = render('{{ INPUT.nodes["k"] }}', CTX)
    value["nested"]["l"].append(3)
    assert render('{{ INPUT.nodes["k"] }}', CTX)["nested"]["l"] == [1.0, None, 2**200]


SECRET_TEXT = st.sampled_from(
    [
        "{{SECRET.a}}",
        "{{ SECRET.b_1 }}",
        "x {{SECRET.c}} {{ SECRET.d.e }}",
        "SECRET.f",
        "{{ INPUT.x }}",
        "{{SECRET}}",
    ]
) | st.text(alphabet="{}SECRT. ab", max_size=12)
SECRET_VALUES = st.recursive(
    st.none() | st.integers() | SECRET_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(value=SECRET_VALUES)
def test_secret_names_is_every_secret_reference(value: Any) -> None:
    """The hand-out's walk (strings naming SECRET only) finds what the walk of every template did."""
    expected = {e.split(".", 1)[1] for e in _templates.references(value) if e.startswith("SECRET.")}
    assert _templates.secret_names(value) == expected
    secrets = {name: "*" for name in expected}
    assert _templates.fill_secrets(value, secrets) == _templates._fill(value, secrets)
