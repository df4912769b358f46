"""``Storage.run_batch``: queue calls run together, each answering as it would alone (every backend).

The SQL backends run a batch in one transaction; a call's own refusal (404, 409) before it
wrote anything is its outcome and the batch goes on, anything else (a refusal after a write
included) makes every call run again alone.
"""

from __future__ import annotations

from typing import Any

import outcome
import pytest
from server_helpers import activity

from trioworks.server import ActivityStatus, Conflict, NotFound, Storage
from trioworks.server.storage import StorageCall, run_each

S = ActivityStatus


def _claimed(storage: Storage, define: Any, count: int, worker_id: str = "w") -> list[Any]:
    define("d", activity("a"), activity("b", "a"))
    workflows = [storage.create_workflow("d", None, {}, None, 1.0).id for _ in range(count)]
    claimed = storage.claim("std", worker_id, count, 2.0)
    assert sorted(c.workflow_id for c in claimed) == sorted(workflows)
    return claimed


def _status(storage: Storage, workflow_id: str, key: str) -> S:
    _, rows = storage.get_workflow(workflow_id)
    return next(r.status for r in rows if r.key == key)


def _complete(activity_id: str, worker_id: str = "w") -> StorageCall:
    return StorageCall("complete", (activity_id, worker_id, {"n": 1}, 0.0, None, 3.0))


def _unwrap_all(results: list[outcome.Outcome[Any]]) -> list[Any]:
    out: list[Any] = []
    for result in results:
        try:
            out.append(result.unwrap())
        except Exception as exc:
            out.append(exc)
    return out


def test_each_call_answers_as_alone(storage: Storage, define: Any) -> None:
    first, second, third = _claimed(storage, define, 3)
    calls = [
        _complete(first.activity_id),
        StorageCall("complete", ("no-such-id", "w", {}, 0.0, None, 3.0)),
        _complete(second.activity_id, "intruder"),  # not its claim: 409
        _complete(first.activity_id),  # again, same worker: a warning
        StorageCall(
            "fail", (third.activity_id, "w", {"code": "E", "message": "m", "retryable": True}, 0, None, 3.0)
        ),
        StorageCall("claim", ("std", "w2", 5, 4.0)),  # sees what the completion above scheduled
    ]
    done, missing, refused, again, retried, claimed = _unwrap_all(storage.run_batch(calls))
    assert done == []
    assert isinstance(missing, NotFound) and "no-such-id" in str(missing)
    assert isinstance(refused, Conflict)
    assert again == ["activity was already completed by this worker; output unchanged"]
    assert retried is True
    assert [c.activity_key for c in claimed] == ["b"] and claimed[0].workflow_id == first.workflow_id
    assert _status(storage, first.workflow_id, "a") is S.COMPLETED
    assert _status(storage, second.workflow_id, "a") is S.RUNNING
    assert _status(storage, third.workflow_id, "a") is S.PENDING  # requeued for its retry


def test_a_refusal_before_writing_keeps_the_batch(
    storage: Storage, define: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _claimed(storage, define, 2)
    complete = storage.complete
    calls: list[str] = []

    def counted(activity_id: str, *args: Any) -> list[str]:
        calls.append(activity_id)
        return complete(activity_id, *args)

    monkeypatch.setattr(storage, "complete", counted)
    ok, refused, done = _unwrap_all(
        storage.run_batch(
            [
                _complete(first.activity_id),
                _complete(second.activity_id, "intruder"),
                _complete(second.activity_id),
            ]
        )
    )
    assert ok == [] and isinstance(refused, Conflict) and done == []
    assert sorted(calls) == sorted([first.activity_id, second.activity_id, second.activity_id])  # each once
    assert _status(storage, first.workflow_id, "a") is S.COMPLETED
    assert _status(storage, second.workflow_id, "a") is S.COMPLETED


def test_a_refusal_after_writing_runs_every_call_again_alone(
    storage: Storage, define: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _claimed(storage, define, 2)
    advance = storage.queue._advance
    runs: list[str] = []

    def advance_then_refuse(db: Any, workflow: Any, finished: Any, now: float) -> None:
        runs.append(workflow.id)
        advance(db, workflow, finished, now)  # the completed row is written by now
        if workflow.id == second.workflow_id:
            raise Conflict("refused after writing")

    monkeypatch.setattr(storage.queue, "_advance", advance_then_refuse)
    ok, refused = _unwrap_all(
        storage.run_batch([_complete(first.activity_id), _complete(second.activity_id)])
    )
    assert ok == [] and isinstance(refused, Conflict)
    # The batch's transaction could not keep the first call and drop the second's writes: it
    # was rolled back, and each call ran again in its own transaction.
    assert sorted(runs[-2:]) == sorted([first.workflow_id, second.workflow_id]) and len(runs) >= 3
    assert _status(storage, first.workflow_id, "a") is S.COMPLETED
    assert _status(storage, first.workflow_id, "b") is S.PENDING
    assert _status(storage, second.workflow_id, "a") is S.RUNNING
    assert _status(storage, second.workflow_id, "b") is S.NOT_SCHEDULED


def test_an_unexpected_error_runs_every_call_again_alone(
    storage: Storage, define: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = _claimed(storage, define, 3)
    complete = storage.complete
    calls: list[str] = []

    def flaky(activity_id: str, *args: Any) -> list[str]:
        calls.append(activity_id)
        if activity_id == second.activity_id:
            raise RuntimeError("the transaction is gone")  # not a ServerError: the batch fails
        return complete(activity_id, *args)

    monkeypatch.setattr(storage, "complete", flaky)
    ids = [first.activity_id, second.activity_id, third.activity_id]
    results = _unwrap_all(storage.run_batch([_complete(i) for i in ids]))
    assert results[0] == [] and results[2] == []
    assert isinstance(results[1], RuntimeError)
    # The batch ran up to the failure, then each call once more in its own transaction: the
    # first completion was rolled back with the batch, so its second run is not a repeat.
    # (Postgres runs a batch in lock order, so which calls ran before the failure varies.)
    assert calls[-3:] == ids and second.activity_id in calls[:-3] and len(calls) <= 6
    assert [_status(storage, c.workflow_id, "a") for c in (first, second, third)] == [
        S.COMPLETED,
        S.RUNNING,
        S.COMPLETED,
    ]


def test_run_each_is_the_default_and_refuses_nothing(storage: Storage, define: Any) -> None:
    (only,) = _claimed(storage, define, 1)
    assert _unwrap_all(run_each(storage, [_complete(only.activity_id)])) == [[]]
    assert _unwrap_all(storage.run_batch([_complete(only.activity_id)])) == [
        ["activity was already completed by this worker; output unchanged"]
    ]


def test_only_queue_calls_are_batched(storage: Storage) -> None:
    with pytest.raises(ValueError, match="sweep"):
        storage.run_batch([StorageCall("sweep", (1.0,))])


def test_postgres_batches_lock_workflows_in_id_order(pg: Any) -> None:
    """Completions by workflow id (the order every transaction locks workflow rows in), claims last."""
    from trioworks.server import parse_definition

    pg.put_definition(parse_definition({"name": "d", "activities": [activity("a")]}), 0.0)
    for _ in range(4):
        pg.create_workflow("d", None, {}, None, 1.0)
    claimed = pg.claim("std", "w", 4, 2.0)
    by_workflow = sorted(claimed, key=lambda c: c.workflow_id)
    calls = (
        [StorageCall("claim", ("std", "w", 1, 3.0))]
        + [_complete(c.activity_id) for c in reversed(by_workflow)]
        + [StorageCall("complete", ("unknown", "w", {}, 0.0, None, 3.0))]
    )
    with pg.tables.tx() as db:
        order = pg.queue.lock_order(db, calls)
    assert [calls[i] for i in order] == [
        calls[-1],  # unknown: no workflow, no lock
        *[_complete(c.activity_id) for c in by_workflow],
        calls[0],
    ]
