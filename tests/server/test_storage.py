"""The storage contract, run on every backend (see ``conftest.BACKENDS``).

``now`` is passed explicitly, so lease and retry timing needs no clock at all here.
"""

from __future__ import annotations

import threading
import time

import pytest
from server_helpers import activity

from trioworks.server import (
    ActivityStatus,
    BadRequest,
    Conflict,
    FileRecord,
    NotFound,
    SQLiteStorage,
    Storage,
    WorkflowStatus,
    open_storage,
    parse_definition,
)

S = ActivityStatus
FAIL = {"code": "BOOM", "message": "it broke", "retryable": True}


def statuses(storage: Storage, workflow_id: str) -> dict[str, str]:
    _, rows = storage.get_workflow(workflow_id)
    return {r.key: r.status.value for r in rows}


def test_definition_versions_and_unchanged(storage: Storage) -> None:
    one = parse_definition({"name": "d", "activities": [activity("a")]})
    two = parse_definition({"name": "d", "activities": [activity("a"), activity("b", "a")]})
    assert storage.put_definition(one, 1.0).version == 1
    again = storage.put_definition(one, 2.0)
    assert (again.version, again.unchanged, again.created_at) == (1, True, 1.0)
    assert storage.put_definition(two, 3.0).version == 2
    assert [(s.name, s.version, s.activity_count) for s in storage.list_definitions()] == [("d", 2, 2)]
    assert storage.get_definition("d", 1).definition == one
    assert storage.get_definition("d").version == 2
    with pytest.raises(NotFound, match="'d' version 7"):
        storage.get_definition("d", 7)


def test_definition_versions_and_workflows_by_creation_time(storage: Storage, define) -> None:
    one = parse_definition({"name": "v", "activities": [activity("a")]})
    two = parse_definition({"name": "v", "activities": [activity("a"), activity("b", "a")]})
    storage.put_definition(one, 10.0)
    storage.put_definition(two, 20.0)
    assert [(s.version, s.created_at) for s in storage.definition_versions("v")] == [(1, 10.0), (2, 20.0)]
    with pytest.raises(NotFound, match="'ghost'"):
        storage.definition_versions("ghost")
    ids = [storage.create_workflow("v", None, {}, None, t).id for t in (100.0, 200.0, 300.0)]

    def listed(**dates: float) -> list[str]:
        page = storage.list_workflows(status=None, definition_name=None, limit=10, offset=0, **dates)
        assert page.total == len(page.workflows)
        return [w.id for w in page.workflows]

    assert listed(created_after=100.0, created_before=300.0) == [ids[1]]  # both bounds exclusive
    assert listed(created_after=150.0) == [ids[2], ids[1]]
    assert listed(created_before=150.0) == [ids[0]]


def test_create_workflow_schedules_roots_and_unique_key(storage: Storage, define) -> None:
    define("d", activity("a"), activity("b", "a"))
    wf = storage.create_workflow("d", None, {"x": 1}, "k1", 5.0)
    assert wf.status is WorkflowStatus.CREATED
    assert statuses(storage, wf.id) == {"a": "pending", "b": "not_scheduled"}
    with pytest.raises(Conflict, match="k1"):
        storage.create_workflow("d", None, {}, "k1", 6.0)
    with pytest.raises(NotFound, match="'nope'"):
        storage.create_workflow("nope", None, {}, None, 6.0)
    assert storage.list_workflows(status=None, definition_name="d", limit=10, offset=0).total == 1


def test_claim_oldest_first_by_worker_and_limit(storage: Storage, define) -> None:
    define("d", activity("a"))
    define("other", activity("z", worker="gpu"))
    first = storage.create_workflow("d", None, {}, None, 1.0)
    second = storage.create_workflow("d", None, {}, None, 2.0)
    storage.create_workflow("other", None, {}, None, 0.5)
    got = storage.claim("std", "w1", 1, now=10.0)
    assert [p.workflow_id for p in got] == [first.id]
    got = storage.claim("std", "w2", 5, now=10.0)
    assert [p.workflow_id for p in got] == [second.id]
    assert storage.claim("std", "w3", 5, now=10.0) == []
    assert storage.get_workflow(first.id)[0].status is WorkflowStatus.RUNNING


def test_complete_advances_with_typed_templates(storage: Storage, define) -> None:
    define(
        "d",
        activity("a"),
        activity("b", "a", parameters={"n": "{{a.count}}", "s": "n={{a.count}}", "i": "{{INPUT.x}}"}),
    )
    wf = storage.create_workflow("d", None, {"x": [1]}, None, 0.0)
    (a,) = storage.claim("std", "w1", 1, 1.0)
    assert storage.complete(a.activity_id, "w1", {"count": 3}, 0.5, None, 2.0) == []
    (b,) = storage.claim("std", "w1", 1, 3.0)
    assert b.parameters == {"n": 3, "s": "n=3", "i": [1]}
    storage.complete(b.activity_id, "w1", {}, 0.25, None, 4.0)
    workflow, rows = storage.get_workflow(wf.id)
    assert workflow.status is WorkflowStatus.COMPLETED
    assert sum(r.cost_usd for r in rows) == 0.75


def test_complete_idempotent_for_same_worker_conflict_for_other(storage: Storage, define) -> None:
    define("d", activity("a"), activity("b", "a"))
    storage.create_workflow("d", None, {}, None, 0.0)
    (a,) = storage.claim("std", "w1", 1, 1.0)
    with pytest.raises(Conflict, match="another worker"):
        storage.complete(a.activity_id, "w2", {}, 0, None, 2.0)
    storage.complete(a.activity_id, "w1", {"v": 1}, 0, None, 2.0)
    assert storage.complete(a.activity_id, "w1", {"v": 2}, 0, None, 3.0)  # a warning, no change
    with pytest.raises(Conflict):
        storage.complete(a.activity_id, "w2", {}, 0, None, 3.0)
    with pytest.raises(NotFound):
        storage.complete("00000000-0000-0000-0000-000000000000", "w1", {}, 0, None, 3.0)


def test_fractional_timeout_is_rounded_up_on_the_wire(storage: Storage, define) -> None:
    # An explicit retry block: without one the expired lease would be retried (the default policy).
    define("d", activity("a", settings={"timeout_seconds": 0.5, "retry": {"max_attempts": 1}}))
    storage.create_workflow("d", None, {}, None, 0.0)
    (a,) = storage.claim("std", "w1", 1, 0.0)
    assert a.timeout_seconds == 1
    assert storage.claim("std", "w2", 1, 0.6) == []  # the lease itself is the exact 0.5 s: expired, no retry
    assert storage.get_workflow(a.workflow_id)[1][0].error["code"] == "LEASE_EXPIRED"


def test_heartbeat_rules(storage: Storage, define) -> None:
    define("d", activity("a", settings={"timeout_seconds": 10}))
    storage.create_workflow("d", None, {}, None, 0.0)
    (a,) = storage.claim("std", "w1", 1, 0.0)
    storage.heartbeat(a.activity_id, "w1", 9.0)  # lease now runs to 19
    assert storage.claim("std", "w2", 1, 15.0) == []
    with pytest.raises(Conflict):
        storage.heartbeat(a.activity_id, "w2", 16.0)
    with pytest.raises(NotFound):
        storage.heartbeat("nope", "w1", 16.0)
    storage.complete(a.activity_id, "w1", {}, 0, None, 17.0)
    with pytest.raises(Conflict, match="completed"):
        storage.heartbeat(a.activity_id, "w1", 18.0)


def test_fail_retries_with_backoff_then_fails_workflow(storage: Storage, define) -> None:
    retry = {"max_attempts": 3, "base_seconds": 2, "factor": 3}
    define("d", activity("a", settings={"retry": retry}), activity("b", "a"), activity("c"))
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    a = next(p for p in storage.claim("std", "w1", 2, 0.0) if p.activity_key == "a")
    assert storage.fail(a.activity_id, "w1", FAIL, 0.1, None, 10.0) is True
    assert storage.fail(a.activity_id, "w1", FAIL, 0.1, None, 10.0) is True  # repeated report
    assert storage.claim("std", "w1", 1, 11.9) == []  # backoff 2 s
    (a,) = storage.claim("std", "w1", 1, 12.0)
    assert storage.fail(a.activity_id, "w1", FAIL, 0, None, 20.0) is True
    assert storage.claim("std", "w1", 1, 25.9) == []  # backoff 2 * 3
    (a,) = storage.claim("std", "w1", 1, 26.0)
    assert storage.fail(a.activity_id, "w1", FAIL, 0, None, 30.0) is False
    workflow, rows = storage.get_workflow(wf.id)
    assert workflow.status is WorkflowStatus.FAILED
    assert "'a'" in workflow.error_message and "BOOM" in workflow.error_message
    by_key = {r.key: r for r in rows}
    assert by_key["a"].retry_count == 2
    assert by_key["b"].status is S.FAILED and by_key["b"].error["code"] == "WORKFLOW_FAILED"
    assert by_key["c"].status is S.RUNNING  # claimed activities keep running...
    c = by_key["c"]
    with pytest.raises(Conflict, match="workflow failed"):  # ...until their next heartbeat
        storage.heartbeat(c.id, "w1", 31.0)


def test_terminal_error_is_not_retried(storage: Storage, define) -> None:
    define("d", activity("a", settings={"retry": {"max_attempts": 5}}))
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    (a,) = storage.claim("std", "w1", 1, 0.0)
    assert storage.fail(a.activity_id, "w1", {**FAIL, "retryable": False}, 0, None, 1.0) is False
    assert storage.get_workflow(wf.id)[0].status is WorkflowStatus.FAILED


def test_expired_lease_is_stolen_with_retry_count(storage: Storage, define) -> None:
    define("d", activity("a", settings={"timeout_seconds": 10, "retry": {"max_attempts": 2}}))
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    (a,) = storage.claim("std", "w1", 1, 0.0)
    assert storage.claim("std", "w2", 1, 10.0) == []  # not expired at exactly the lease
    (stolen,) = storage.claim("std", "w2", 1, 10.5)
    assert stolen.activity_id == a.activity_id
    with pytest.raises(Conflict):
        storage.complete(a.activity_id, "w1", {}, 0, None, 11.0)
    _, rows = storage.get_workflow(wf.id)
    assert (rows[0].claimed_by, rows[0].retry_count) == ("w2", 1)
    # No retry left now: the next expiry fails the activity and the workflow.
    assert storage.claim("std", "w3", 1, 30.0) == []
    workflow, rows = storage.get_workflow(wf.id)
    assert rows[0].error["code"] == "LEASE_EXPIRED"
    assert workflow.status is WorkflowStatus.FAILED


def test_sweep_requeues_or_fails(storage: Storage, define) -> None:
    define("d", activity("a", settings={"timeout_seconds": 5, "retry": {"max_attempts": 2}}))
    define("e", activity("b", settings={"timeout_seconds": 5, "retry": {}}))  # max_attempts 1: no retry
    wf_a = storage.create_workflow("d", None, {}, None, 0.0)
    wf_b = storage.create_workflow("e", None, {}, None, 0.0)
    storage.claim("std", "w1", 2, 0.0)
    assert storage.sweep(4.0) == 0
    assert storage.sweep(6.0) == 2
    assert statuses(storage, wf_a.id) == {"a": "pending"}
    assert storage.get_workflow(wf_a.id)[1][0].retry_count == 1
    assert storage.get_workflow(wf_b.id)[0].status is WorkflowStatus.FAILED


def test_default_retry_policy_survives_lost_leases_and_failures(storage: Storage, define) -> None:
    """No ``settings.retry``: 4 attempts (the original's queue default of 3 retries), for lost
    leases (a worker crash) and retryable failures alike, with the default backoff (2 s, x2)."""
    define("d", activity("a", settings={"timeout_seconds": 5}))
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    (a,) = storage.claim("std", "w1", 1, 0.0)
    (again,) = storage.claim("std", "w2", 1, 6.0)  # w1 crashed: its lease expired, w2 steals it
    assert again.activity_id == a.activity_id
    assert storage.sweep(12.0) == 1  # w2 crashed too: requeued by the sweeper (third attempt)
    (third,) = storage.claim("std", "w3", 1, 12.0)
    error = {"code": "EXECUTION_ERROR", "message": "boom", "retryable": True}
    assert storage.fail(third.activity_id, "w3", error, 0, None, 13.0) is True  # fourth attempt due at 13 + 8
    assert storage.claim("std", "w4", 1, 20.0) == []
    (fourth,) = storage.claim("std", "w4", 1, 21.0)
    assert storage.get_workflow(wf.id)[1][0].retry_count == 3
    assert storage.fail(fourth.activity_id, "w4", error, 0, None, 22.0) is False  # no attempt left
    assert storage.get_workflow(wf.id)[0].status is WorkflowStatus.FAILED


def test_conditions_skip_and_propagate(storage: Storage, define) -> None:
    define(
        "d",
        activity("check"),
        activity("big", {"activity_key": "check", "condition": "{{check.size}} > 10"}),
        activity("small", {"activity_key": "check", "condition": "{{check.size}} <= 10"}),
        activity("after_big", "big"),
        activity("join", "big", "small"),
    )
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    (check,) = storage.claim("std", "w", 1, 0.0)
    storage.complete(check.activity_id, "w", {"size": 3}, 0, None, 1.0)
    assert statuses(storage, wf.id) == {
        "check": "completed",
        "big": "skipped",
        "small": "pending",
        "after_big": "skipped",
        "join": "not_scheduled",
    }
    (small,) = storage.claim("std", "w", 5, 2.0)
    storage.complete(small.activity_id, "w", {}, 0, None, 3.0)
    (join,) = storage.claim("std", "w", 5, 4.0)
    storage.complete(join.activity_id, "w", {}, 0, None, 5.0)
    assert storage.get_workflow(wf.id)[0].status is WorkflowStatus.COMPLETED


def test_missing_template_value_fails_the_workflow(storage: Storage, define) -> None:
    define("d", activity("a", parameters={"x": "x={{INPUT.absent}}"}))
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    workflow, rows = storage.get_workflow(wf.id)
    assert workflow.status is WorkflowStatus.FAILED
    assert rows[0].error["code"] == "TEMPLATE_ERROR" and "INPUT.absent" in rows[0].error["message"]


def test_signals(storage: Storage, define) -> None:
    define(
        "d",
        activity("a"),
        activity("approve", "a", settings={"wait_for_signal": "approved"}),
        activity("early", settings={"wait_for_signal": True}),
    )
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    assert statuses(storage, wf.id)["early"] == "waiting"
    with pytest.raises(BadRequest, match="'approved'"):
        storage.signal(wf.id, "approve", "other", None, 1.0)
    with pytest.raises(BadRequest, match="does not wait"):
        storage.signal(wf.id, "a", "x", None, 1.0)
    with pytest.raises(NotFound):
        storage.signal(wf.id, "nope", "x", None, 1.0)
    storage.signal(wf.id, "approve", "approved", {"by": "ann"}, 1.0)  # before it is ready: stored
    storage.signal(wf.id, "early", "go", None, 1.0)
    with pytest.raises(Conflict):
        storage.signal(wf.id, "early", "go", None, 1.0)
    claimed = {p.activity_key: p for p in storage.claim("std", "w", 5, 2.0)}
    assert set(claimed) == {"a", "early"}
    assert claimed["early"].signal_data == {}
    storage.complete(claimed["a"].activity_id, "w", {}, 0, None, 3.0)
    (approve,) = storage.claim("std", "w", 5, 4.0)
    assert approve.signal_data == {"by": "ann"}


def test_files_metadata(storage: Storage, define) -> None:
    define("d", activity("a"))
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    assert storage.activity_exists(wf.id, "a") and not storage.activity_exists(wf.id, "b")
    storage.put_file(FileRecord(wf.id, "a", "out/x.txt", 3, "text/plain", 1.0))
    storage.put_file(FileRecord(wf.id, "a", "out/x.txt", 5, "text/csv", 2.0))
    assert storage.get_file(wf.id, "a", "out/x.txt").size == 5
    assert [f.filename for f in storage.list_files(wf.id, "a")] == ["out/x.txt"]
    with pytest.raises(NotFound, match=r"y\.txt"):
        storage.get_file(wf.id, "a", "y.txt")


def test_meta_setdefault(storage: Storage) -> None:
    assert storage.meta_setdefault("k", "v1") == "v1"
    assert storage.meta_setdefault("k", "v2") == "v1"


def test_original_sdk_conditions_list(storage: Storage, define) -> None:
    define(
        "d",
        activity("check"),
        # The original SDK's form: a list per dependency (all must hold), comparisons inside braces.
        activity(
            "both", {"activity_key": "check", "conditions": ["{{ check.n > 1 }}", "{{ check.kind == 'a' }}"]}
        ),
        activity(
            "one", {"activity_key": "check", "conditions": ["{{ check.n > 1 }}", "{{ check.kind == 'b' }}"]}
        ),
    )
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    (check,) = storage.claim("std", "w", 1, 0.0)
    storage.complete(check.activity_id, "w", {"n": 2, "kind": "a"}, 0, None, 1.0)
    assert statuses(storage, wf.id) == {"check": "completed", "both": "pending", "one": "skipped"}


def test_concurrent_claims_never_share_a_row(storage: Storage, define) -> None:
    """Threads polling at once (as the server's storage limiter allows) split the queue exactly."""
    define("d", activity("a"))
    for i in range(120):
        storage.create_workflow("d", None, {}, None, float(i))
    claims: dict[str, list[str]] = {f"w{n}": [] for n in range(6)}

    lock = threading.Lock()
    deadline = time.monotonic() + 20

    def total() -> int:
        with lock:
            return sum(map(len, claims.values()))

    def worker(worker_id: str) -> None:
        # An empty poll is not the end: with SKIP LOCKED the rest may be locked by another claim.
        while total() < 120 and time.monotonic() < deadline:
            got = storage.claim("std", worker_id, 5, 1000.0)
            with lock:
                claims[worker_id].extend(p.activity_id for p in got)

    threads = [threading.Thread(target=worker, args=(w,)) for w in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [a for ids in claims.values() for a in ids]
    assert len(everything) == len(set(everything)) == 120


def test_running_activity_of_a_failed_workflow_is_never_stolen(storage: Storage, define) -> None:
    retry = {"timeout_seconds": 10, "retry": {"max_attempts": 3}}
    define("d", activity("bad"), activity("slow", settings=retry), activity("slow2", settings=retry))
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    claimed = {p.activity_key: p for p in storage.claim("std", "w1", 3, 0.0)}
    storage.fail(claimed["bad"].activity_id, "w1", {**FAIL, "retryable": False}, 0, None, 1.0)
    # slow2's worker still reports: recorded, final (no retry in a failed workflow).
    assert storage.fail(claimed["slow2"].activity_id, "w1", FAIL, 0, None, 2.0) is False
    assert storage.claim("std", "w2", 5, 30.0) == []  # slow's lease expired: not stolen...
    _, rows = storage.get_workflow(wf.id)
    by_key = {r.key: r for r in rows}
    assert (
        by_key["slow"].status is S.FAILED and by_key["slow"].error["code"] == "LEASE_EXPIRED"
    )  # ...but failed
    assert by_key["slow2"].error["code"] == "BOOM"
    workflow = storage.get_workflow(wf.id)[0]
    assert "'bad'" in workflow.error_message  # the first failure stays the workflow's reason


def test_open_storage_gives_sqlite_the_storage_threads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    default = open_storage(f"sqlite:///{tmp_path}/a.db")
    sized = open_storage(tmp_path / "b.db", max_threads=7)
    try:
        assert isinstance(default, SQLiteStorage) and isinstance(sized, SQLiteStorage)
        assert (default.max_threads, sized.max_threads) == (4, 7)
    finally:
        default.close()
        sized.close()
