"""Postgres under concurrency: claims from threads and processes, locking, races, completions.

The storage contract itself runs on Postgres through the parametrized ``storage`` fixture
(``test_storage.py``); opening, connection errors and restarts are in ``test_postgres_open.py``;
several servers on one database in ``test_postgres_servers.py``. Each test gets an empty
database of its own (``fresh_postgres_url``, the ``pg`` fixture) and skips without Postgres.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from typing import Any

import pytest
from pg_helpers import NOW, claims_in_db, drain, fan_out, run_threads
from server_helpers import activity

from trioworks.server import (
    ActivityStatus,
    Conflict,
    FileRecord,
    PostgresStorage,
    parse_definition,
)

TERMINAL = {"code": "BOOM", "message": "no retry", "retryable": False}


def test_concurrent_threads_never_claim_the_same_row(pg: PostgresStorage) -> None:
    workflow_ids = fan_out(pg, workflows=30, width=8)  # 240 rows, every workflow still 'created'
    got: dict[int, list[str]] = {}

    def poller(i: int) -> None:
        got[i] = drain(pg, "std", f"w{i}", batch=1 + i % 4)

    run_threads(8, poller)
    every = [a for ids in got.values() for a in ids]
    assert len(every) == len(set(every)) == 240, "a row was claimed twice, or one was never claimed"
    assert sum(1 for ids in got.values() if ids) >= 2, "no concurrency happened: the test proved nothing"
    stored = claims_in_db(pg, workflow_ids)
    for i, ids in got.items():
        for activity_id in ids:
            assert stored[activity_id] == ("running", f"w{i}"), "a returned claim was overwritten"
    assert {pg.get_workflow(w)[0].status.value for w in workflow_ids} == {"running"}


_POLLER = textwrap.dedent(
    """
    import json, sys
    from trioworks.server import PostgresStorage
    url, worker_id = sys.argv[1], sys.argv[2]
    store = PostgresStorage(url, max_threads=1)
    print("ready", flush=True)
    sys.stdin.readline()  # wait until every process is ready
    got, empty = [], 0
    while empty < 2:
        claimed = store.claim("std", worker_id, 2, 10.0)
        empty = 0 if claimed else empty + 1
        got.extend(a.activity_id for a in claimed)
    store.close()
    print(json.dumps(got), flush=True)
    """
)


@pytest.mark.slow
def test_concurrent_processes_never_claim_the_same_row(pg: PostgresStorage) -> None:
    workflow_ids = fan_out(pg, workflows=20, width=10)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _POLLER, pg.url, f"p{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    every = [a for ids in results for a in ids]
    assert len(every) == len(set(every)) == 200
    stored = claims_in_db(pg, workflow_ids)
    for i, ids in enumerate(results):
        assert all(stored[a] == ("running", f"p{i}") for a in ids)


def test_workflow_failure_cascade_never_overwrites_a_concurrent_claim(pg: PostgresStorage) -> None:
    """A terminal failure fails the unclaimed siblings while other threads are claiming them.

    Every sibling must end either claimed by exactly the worker it was returned to, or failed by
    the cascade, never both (a lost update would leave a returned claim failed or unowned).
    Meanwhile a worker heartbeats rows it claimed first: each heartbeat succeeds until its
    workflow has failed, then gets the 409 that tells the worker, and nothing else.
    """
    workflow_ids = fan_out(pg, workflows=25, width=10, boom={"worker": "boom"})
    held = [a.activity_id for a in pg.claim("std", "hb", 25, NOW)]
    got: dict[int, list[str]] = {}
    beats: Counter[str] = Counter()

    def actor(i: int) -> None:
        if i == 4:  # heartbeats its rows until every one of them is refused
            live = set(held)
            while live:
                for activity_id in sorted(live):
                    try:
                        assert pg.heartbeat(activity_id, "hb", NOW) == 60.0
                        beats["ok"] += 1
                    except Conflict as exc:
                        assert "its workflow failed" in str(exc)
                        live.discard(activity_id)
                        beats["refused"] += 1
        elif i == 0:  # claims each workflow's 'boom' activity and fails it for good
            failed = 0
            while failed < len(workflow_ids):
                # A claim may come back empty while a poller holds a 'created' workflow's row.
                for a in pg.claim("boom", "breaker", 1, NOW):
                    assert pg.fail(a.activity_id, "breaker", TERMINAL, 0.0, None, NOW) is False
                    failed += 1
        else:
            got[i] = drain(pg, "std", f"w{i}", batch=2)

    run_threads(5, actor)
    assert beats["refused"] == len(held) and beats["ok"] > 0
    claimed = {a: f"w{i}" for i, ids in got.items() for a in ids} | dict.fromkeys(held, "hb")
    assert len(claimed) == sum(len(ids) for ids in got.values()) + len(held)
    cascaded = 0
    for wf in workflow_ids:
        workflow, rows = pg.get_workflow(wf)
        assert workflow.status.value == "failed"
        for row in rows:
            if row.key == "boom":
                continue
            if row.id in claimed:
                assert (row.status, row.claimed_by) == (ActivityStatus.RUNNING, claimed[row.id])
            else:
                assert row.status is ActivityStatus.FAILED and row.error is not None
                assert row.error["code"] == "WORKFLOW_FAILED"
                cascaded += 1
    assert claimed and cascaded, "the race never happened: both outcomes must occur"


def test_signals_racing_first_claims_do_not_deadlock(pg: PostgresStorage) -> None:
    """Signal locks a 'created' workflow while pollers claim its first rows (lock-order check).

    A claim that waited for the workflow row here would deadlock with the signal; Postgres would
    abort one of them after ``deadlock_timeout`` and the error would surface from a thread.
    """
    workflow_ids = fan_out(pg, workflows=40, width=3, gate={"settings": {"wait_for_signal": True}})
    got: dict[int, list[str]] = {}

    def actor(i: int) -> None:
        if i == 0:
            for wf in workflow_ids:
                pg.signal(wf, "gate", "go", {"n": 1}, NOW)
        else:
            got[i] = drain(pg, "std", f"w{i}", batch=3)

    run_threads(3, actor)
    leftovers = drain(pg, "std", "late", batch=50)  # gates signalled after the pollers stopped
    every = [a for ids in got.values() for a in ids] + leftovers
    assert len(every) == len(set(every)) == 40 * 4
    statuses = {s for s, _ in claims_in_db(pg, workflow_ids).values()}
    assert statuses == {"running"}


def test_expired_leases_are_stolen_exactly_once_under_concurrency(pg: PostgresStorage) -> None:
    ids = fan_out(pg, workflows=10, width=5, name="lease", settings={"retry": {"max_attempts": 3}})
    assert len(drain(pg, "std", "old", batch=10)) == 50
    stolen: dict[int, list[str]] = {}

    def thief(i: int) -> None:
        got: list[str] = []
        while claimed := pg.claim("std", f"t{i}", 3, NOW + 61):  # the default lease is 60 s
            got.extend(a.activity_id for a in claimed)
        stolen[i] = got

    run_threads(4, thief)
    every = [a for got in stolen.values() for a in got]
    assert len(every) == len(set(every)) == 50
    owner = {a: f"t{i}" for i, got in stolen.items() for a in got}
    for wf in ids:
        for row in pg.get_workflow(wf)[1]:
            assert (row.claimed_by, row.retry_count) == (owner[row.id], 1)


def test_expired_leases_without_retries_fail_once_under_concurrency(pg: PostgresStorage) -> None:
    ids = fan_out(pg, workflows=10, width=5, name="nolease", settings={"retry": {"max_attempts": 1}})
    assert len(drain(pg, "std", "old", batch=10)) == 50
    stolen: list[str] = []

    def poller(i: int) -> None:
        stolen.extend(a.activity_id for a in pg.claim("std", f"t{i}", 50, NOW + 61))
        pg.sweep(NOW + 61)

    run_threads(4, poller)
    assert stolen == []
    for wf in ids:
        workflow, rows = pg.get_workflow(wf)
        assert workflow.status.value == "failed" and "LEASE_EXPIRED" in (workflow.error_message or "")
        assert {r.status for r in rows} == {ActivityStatus.FAILED}


def test_sweep_requeues_expired_rows_for_the_next_claim(pg: PostgresStorage) -> None:
    pg.put_definition(
        parse_definition(
            {"name": "r", "activities": [activity("a", settings={"retry": {"max_attempts": 3}})]}
        ),
        0.0,
    )
    wf = pg.create_workflow("r", None, {}, None, 1.0)
    (a,) = pg.claim("std", "w1", 1, NOW)
    assert pg.sweep(NOW + 30) == 0
    assert pg.sweep(NOW + 61) == 1
    (again,) = pg.claim("std", "w2", 1, NOW + 62)
    assert again.activity_id == a.activity_id
    row = pg.get_workflow(wf.id)[1][0]
    assert (row.claimed_by, row.retry_count) == ("w2", 1)  # requeued (+1); claiming a pending row adds 0
    with pytest.raises(Conflict):
        pg.heartbeat(a.activity_id, "w1", NOW + 63)


def test_concurrent_writes_of_one_definition_name_get_serial_versions(pg: PostgresStorage) -> None:
    """Per round: 4 threads store one new body at once, then 4 distinct bodies at once."""

    def put(name: str, results: list[Any], distinct: bool, i: int) -> None:
        parameters = {"i": i} if distinct else {}
        body = {"name": name, "activities": [activity("a", parameters=parameters)]}
        results.append(pg.put_definition(parse_definition(body), NOW))

    for round_ in range(8):
        same: list[Any] = []
        distinct: list[Any] = []
        run_threads(4, functools.partial(put, f"d{round_}", same, False))
        run_threads(4, functools.partial(put, f"d{round_}", distinct, True))
        assert [r.version for r in same] == [1] * 4
        assert sorted(r.unchanged for r in same) == [False, True, True, True]
        assert sorted(r.version for r in distinct) == [2, 3, 4, 5]


def test_concurrent_unique_keys_and_file_uploads(pg: PostgresStorage) -> None:
    pg.put_definition(parse_definition({"name": "u", "activities": [activity("a")]}), 0.0)

    def submit(key: str, outcomes: list[str], i: int) -> None:
        try:
            pg.create_workflow("u", None, {}, key, NOW)
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")

    for round_ in range(8):
        outcomes: list[str] = []
        run_threads(4, functools.partial(submit, f"k{round_}", outcomes))
        assert sorted(outcomes) == ["conflict"] * 3 + ["created"]

    workflow_id = pg.list_workflows(status=None, definition_name="u", limit=1, offset=0).workflows[0].id

    def upload(name: str, i: int) -> None:
        pg.put_file(FileRecord(workflow_id, "a", name, 10 + i, "application/octet-stream", NOW))

    for round_ in range(8):
        run_threads(4, functools.partial(upload, f"out{round_}.bin"))
        assert pg.get_file(workflow_id, "a", f"out{round_}.bin").size in {10, 11, 12, 13}
    assert len(pg.list_files(workflow_id, "a")) == 8


def test_concurrent_completions_of_one_wide_workflow_schedule_the_join_once(pg: PostgresStorage) -> None:
    """Completions of one workflow's siblings in many threads: no update of the join's counter of
    unfinished dependencies is lost (each completion holds the workflow row), so the join is
    scheduled exactly once, after the last sibling, with its template resolved."""
    middle = [activity(f"m{i}", "root") for i in range(60)]
    join = activity("join", *[m["key"] for m in middle], parameters={"first": "{{m0.by}}"})
    pg.put_definition(
        parse_definition({"name": "wide", "activities": [activity("root"), *middle, join]}), 0.0
    )
    workflow_id = pg.create_workflow("wide", None, {}, None, 1.0).id
    completed: list[str] = []
    joined = threading.Event()

    def worker(i: int) -> None:
        deadline = time.monotonic() + 60
        while not joined.is_set():
            assert time.monotonic() < deadline, "the join was never scheduled"
            for a in pg.claim("std", f"w{i}", 3, NOW):
                if a.activity_key == "join":
                    join_parameters.append(a.parameters)
                pg.complete(a.activity_id, f"w{i}", {"by": i}, 0.0, None, NOW)
                completed_by[a.activity_key] = i
                completed.append(a.activity_key)
                if a.activity_key == "join":
                    joined.set()

    completed_by: dict[str, int] = {}
    join_parameters: list[dict[str, Any]] = []
    run_threads(6, worker)
    assert join_parameters == [{"first": completed_by["m0"]}]
    assert sorted(completed) == sorted(["root", "join", *(m["key"] for m in middle)])
    assert len({by for key, by in completed_by.items() if key.startswith("m")}) >= 2, "no concurrency"
    workflow, rows = pg.get_workflow(workflow_id)
    assert workflow.status.value == "completed"
    assert {r.status for r in rows} == {ActivityStatus.COMPLETED}
