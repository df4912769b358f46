"""What a completion costs the database: statements (both backends) and round trips (Postgres),
pinned so that a regression shows; and the lock order of the one statement that locks both rows.

Round trips are counted from libpq's protocol trace of the storage's connections: one round trip
is the client sending (``F`` lines) and then reading the server's answer (``B`` lines).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from server_helpers import activity

from trioworks.server import PostgresStorage, SQLiteStorage, SqlStorage, Storage, parse_definition


def _one_activity_workflows(store: Storage, count: int, *, name: str = "noop") -> list[str]:
    store.put_definition(parse_definition({"name": name, "activities": [activity("a")]}), 0.0)
    return [store.create_workflow(name, None, {}, None, 1.0).id for _ in range(count)]


class _CountingCursor:
    """A cursor that counts the statements run through it (the transaction's own BEGIN and
    COMMIT are the connections' business and not counted)."""

    def __init__(self, inner: Any, counts: list[int]) -> None:
        self._inner, self._counts = inner, counts
        self.pipeline = getattr(inner, "pipeline", None)

    def execute(self, *args: Any) -> Any:
        self._counts[0] += 1
        return self._inner.execute(*args)

    def executemany(self, sql: str, params: list[Any]) -> Any:
        self._counts[0] += len(params)
        return self._inner.executemany(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextlib.contextmanager
def _counting(store: SqlStorage) -> Iterator[list[int]]:
    counts = [0]
    connections = store.tables.connections
    inner = connections.transaction

    @contextlib.contextmanager
    def transaction() -> Iterator[Any]:
        with inner() as cursor:
            yield _CountingCursor(cursor, counts)

    connections.transaction = transaction  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        del connections.transaction  # type: ignore[attr-defined]


def _complete_all(store: SqlStorage, counts: list[int] | None = None) -> list[int]:
    per_completion = []
    for pending in store.claim("std", "w1", 10, 2.0):
        before = counts[0] if counts else 0
        assert store.complete(pending.activity_id, "w1", {"ok": True}, 0.0, None, 3.0) == []
        per_completion.append((counts[0] if counts else 0) - before)
    return per_completion


def test_a_no_op_completion_is_three_statements_on_sqlite(tmp_path: Path) -> None:
    # Lock-and-read the workflow and the activity (one join), write the row, settle the workflow.
    store = SQLiteStorage(tmp_path / "db.sqlite")
    ids = _one_activity_workflows(store, 3)
    with _counting(store) as counts:
        assert _complete_all(store, counts) == [3, 3, 3]
    assert {store.get_workflow(i)[0].status.value for i in ids} == {"completed"}
    store.close()


def test_a_no_op_completion_is_three_statements_and_two_round_trips_on_postgres(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    # BEGIN travels with the locking read, the two writes with the COMMIT (pipeline mode).
    store = PostgresStorage(fresh_postgres_url, max_threads=1, control_connections=0)
    ids = _one_activity_workflows(store, 4)
    with _counting(store) as counts:
        assert _complete_all(store, counts)[:3] == [3, 3, 3]
    (pending,) = _claim_one(store)
    pool = store.connections.pool  # type: ignore[attr-defined]
    # The pool holds one connection (max_threads=1, no control connections): the one traced.
    with open(tmp_path / "trace", "w") as sink:
        with pool.connection() as conn:
            conn.pgconn.trace(sink.fileno())
            conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        store.complete(pending.activity_id, "w1", {"ok": True}, 0.0, None, 3.0)
        with pool.connection() as conn:
            conn.pgconn.untrace()
    trace = (tmp_path / "trace").read_text()
    assert "UPDATE workflows" in trace and _round_trips(trace) == 2
    assert {store.get_workflow(i)[0].status.value for i in ids} == {"completed"}
    store.close()


def _claim_one(store: Storage) -> list[Any]:
    _one_activity_workflows(store, 1, name="traced")
    return store.claim("std", "w1", 1, 2.0)


def _round_trips(trace: str) -> int:
    trips, last = 0, None
    for line in trace.splitlines():
        direction = line.split("\t", 1)[0]
        if direction == "B" and last == "F":
            trips += 1
        last = direction
    return trips


def test_a_completion_locks_its_workflow_before_waiting_for_its_activity(fresh_postgres_url: str) -> None:
    # Every transaction that waits for locks takes the workflow row first (see _queue's module
    # docstring); the one-statement lock of a completion must too. Hold the activity's row, start
    # the completion, and once it waits, its workflow row must already be locked.
    store = PostgresStorage(fresh_postgres_url, max_threads=1)
    (workflow_id,) = _one_activity_workflows(store, 1)
    (pending,) = store.claim("std", "w1", 1, 2.0)
    errors: list[BaseException] = []

    def complete() -> None:
        try:
            store.complete(pending.activity_id, "w1", {"ok": True}, 0.0, None, 3.0)
        except BaseException as exc:  # re-raised by the test
            errors.append(exc)

    with psycopg.connect(fresh_postgres_url) as holder, psycopg.connect(fresh_postgres_url) as probe:
        holder.execute("SELECT 1 FROM activities WHERE id = %s FOR UPDATE", (pending.activity_id,))
        thread = threading.Thread(target=complete)
        thread.start()
        probe.autocommit = True
        waiting = None
        for _ in range(3000):  # a blocked completion shows up at once; the bound only ends a hang
            waiting = probe.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                ("SELECT w.id%",),
            ).fetchone()
            if waiting is not None:
                break
            probe.execute("SELECT pg_sleep(0.01)")
        assert waiting is not None
        with probe.transaction():
            locked = probe.execute(
                "SELECT id FROM workflows WHERE id = %s FOR UPDATE SKIP LOCKED", (workflow_id,)
            ).fetchall()
        assert locked == []  # held by the waiting completion
        holder.commit()
        thread.join()
    assert not errors, errors
    assert store.get_workflow(workflow_id)[0].status.value == "completed"
    store.close()
