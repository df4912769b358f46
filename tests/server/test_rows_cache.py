"""A completion decodes its workflow's input once per workflow (issue 15): the shared value is found
by the stored text, so a changed text is decoded again, and the cache stays bounded."""

from __future__ import annotations

import json

from trioworks.server.storage import _rows


def row(workflow_id: str, value: object) -> tuple[object, ...]:
    return (workflow_id, "d", 1, "running", json.dumps(value), 0.0, 0.0, None, None)


PAD = "p" * _rows._INPUTS_SHORT  # an input long enough to be kept


def test_shared_input_is_decoded_once_per_text() -> None:
    first = _rows.row_to_workflow(
        row("wf-cache-1", {"nodes": {"a": {"x": 1}}, "pad": PAD}), shared_input=True
    )
    again = _rows.row_to_workflow(
        row("wf-cache-1", {"nodes": {"a": {"x": 1}}, "pad": PAD}), shared_input=True
    )
    assert again.input is first.input
    changed = _rows.row_to_workflow(
        row("wf-cache-1", {"nodes": {"a": {"x": 2}}, "pad": PAD}), shared_input=True
    )
    assert changed.input == {"nodes": {"a": {"x": 2}}, "pad": PAD}
    plain = _rows.row_to_workflow(row("wf-cache-1", {"nodes": {"a": {"x": 2}}, "pad": PAD}))
    assert plain.input == changed.input and plain.input is not changed.input  # by default: its own copy


def test_a_short_input_is_decoded_each_time_and_not_kept() -> None:
    first = _rows.row_to_workflow(row("wf-short", {"a": 1}), shared_input=True)
    again = _rows.row_to_workflow(row("wf-short", {"a": 1}), shared_input=True)
    assert first.input == again.input == {"a": 1} and first.input is not again.input
    assert "wf-short" not in _rows._INPUTS


def test_the_cache_is_bounded() -> None:
    for i in range(_rows._INPUTS_KEPT + 10):
        _rows.row_to_workflow(row(f"wf-bound-{i}", {"i": i, "pad": PAD}), shared_input=True)
    assert len(_rows._INPUTS) <= _rows._INPUTS_KEPT
    big = "x" * (_rows._INPUTS_CHARS // 2 + 1)
    for i in range(3):
        _rows.row_to_workflow(row(f"wf-big-{i}", {"s": big}), shared_input=True)
    kept = sum(len(text) for text, _ in _rows._INPUTS.values())
    assert kept <= _rows._INPUTS_CHARS
    assert kept == _rows._inputs_chars  # the running total the bound is checked against
