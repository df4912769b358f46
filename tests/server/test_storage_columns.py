"""A claim and a completion write only some columns: those must be every column the rule changes."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from trioworks.server import rules
from trioworks.server._models import ActivityRow, ActivityStatus
from trioworks.server.storage._rows import CLAIMED_COLUMNS, COMPLETED_COLUMNS

S = ActivityStatus
json_values = st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3)


def _changed(before: ActivityRow, after: ActivityRow) -> set[str]:
    return {f.name for f in attrs.fields(ActivityRow) if getattr(before, f.name) != getattr(after, f.name)}


rows = st.builds(
    ActivityRow,
    id=st.just("a1"),
    workflow_id=st.just("w1"),
    key=st.just("a"),
    position=st.integers(0, 5),
    worker=st.just("std"),
    activity_name=st.just("x"),
    status=st.sampled_from([S.PENDING, S.RUNNING]),
    max_retries=st.integers(0, 3),
    retry_count=st.integers(0, 3),
    parameters=st.none() | json_values,
    scheduled_for=st.none() | st.floats(0, 100),
    claimed_by=st.none() | st.sampled_from(["w-old", "w-new"]),
    claimed_at=st.none() | st.floats(0, 100),
    started_at=st.none() | st.floats(0, 100),
    output=st.none() | json_values,
    error=st.none() | json_values,
    cost_usd=st.floats(0, 10),
    usage=st.none() | st.lists(json_values, max_size=2),
    signal_data=st.none() | json_values,
    waiting_for=st.integers(0, 2),
)


@settings(max_examples=40, deadline=None)
@given(rows, st.floats(100, 200))
def test_a_claim_changes_only_the_claimed_columns(row: ActivityRow, now: float) -> None:
    assert _changed(row, rules.claim_row(row, "w-new", now)) <= set(CLAIMED_COLUMNS)


@settings(max_examples=40, deadline=None)
@given(
    rows, json_values, st.floats(0, 10), st.none() | st.lists(json_values, max_size=2), st.floats(100, 200)
)
def test_a_completion_changes_only_the_completed_columns(
    row: ActivityRow, output: dict, cost: float, usage: list | None, now: float
) -> None:
    done = rules.complete_row(row, output, cost, usage, now)
    assert _changed(row, done) <= set(COMPLETED_COLUMNS)


_MUTABLE_VALUES = {
    "status": st.sampled_from(list(S)),
    "retry_count": st.integers(0, 3),
    "parameters": st.none() | json_values,
    "scheduled_for": st.none() | st.floats(0, 100),
    "claimed_by": st.none() | st.sampled_from(["w-old", "w-new"]),
    "completed_at": st.none() | st.floats(0, 100),
    "output": st.none() | json_values,
    "error": st.none() | json_values,
    "waiting_for": st.integers(0, 1000),
    "iteration": st.integers(0, 3),
    "history": st.none()
    | st.dictionaries(st.text(max_size=3), st.lists(st.integers(), max_size=2), max_size=2),
}


@settings(max_examples=30, deadline=None)
@given(st.fixed_dictionaries({}, optional=_MUTABLE_VALUES), st.booleans())
def test_a_progress_write_stores_every_changed_field(changes: dict, copy_unchanged: bool) -> None:
    """``Tables.write_changes`` writes only the fields whose object changed: whatever the change,
    the stored row reads back as the new row (an equal copy of an old value is written again)."""
    import copy
    import tempfile

    from trioworks.server import SQLiteStorage, parse_definition
    from trioworks.server._models import evolve

    with tempfile.TemporaryDirectory() as tmp:
        storage = SQLiteStorage(f"{tmp}/s.db")
        try:
            activities = [{"key": "a", "worker": "std", "activity_name": "x", "parameters": {"p": [1]}}]
            storage.put_definition(parse_definition({"name": "d", "activities": activities}), now=0.0)
            workflow_id = storage.create_workflow("d", None, {}, None, 1.0).id
            tables = storage.tables
            with tables.tx() as db:
                (old,) = tables.rows(db, workflow_id, ["a"])
            if copy_unchanged:  # equal but other objects: taken as changed, written again
                changes = {"parameters": copy.deepcopy(old.parameters), **changes}
            new = evolve(old, **changes)
            with tables.tx() as db:
                tables.write_changes(db, [new], {"a": old})
            with tables.tx() as db:
                (stored,) = tables.rows(db, workflow_id, ["a"])
            assert stored == new
        finally:
            storage.close()


@settings(max_examples=40, deadline=None)
@given(rows, st.fixed_dictionaries({}, optional=_MUTABLE_VALUES))
def test_the_fast_evolve_is_attrs_evolve(row: ActivityRow, changes: dict) -> None:
    import pytest

    from trioworks.server._models import evolve

    assert evolve(row, **changes) == attrs.evolve(row, **changes)
    with pytest.raises(TypeError, match="nope"):
        evolve(row, nope=1)
