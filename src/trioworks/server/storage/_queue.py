""":class:`SqlQueue`: the activity queue (claim, heartbeat, complete, fail, sweep) in portable SQL,
a component of :class:`~._sql.SqlStorage` working through its :class:`~._tables.Tables`.

Every change reads only the rows it needs: a completion locks its workflow row, its own row and
its direct dependents (plus, for a dependent that becomes ready, that one's dependencies and the
outputs its templates name: see :func:`~trioworks.server.rules.progress`), never the whole workflow, so its cost does
not grow with the workflow's width. A final failure fails the rest of the workflow with two
``UPDATE`` statements.

Locking (Postgres; SQLite has one writer and ignores the dialect's lock clauses): whoever waits
for a lock takes workflow rows first (one at a time, or several in id order) and then activity
rows of that workflow. Rows that are ``pending`` or ``running`` are also changed without the
workflow lock, by claims, heartbeats and sweeps; those never wait while holding a lock another
transaction might wait for: claims and sweeps take rows ``FOR UPDATE SKIP LOCKED`` and mark a
``created`` workflow ``running`` only if they can lock it at once (else they leave that
candidate for the next poll); a heartbeat locks its one row and reads its workflow unlocked.
The cascade of a failure is an ``UPDATE ... WHERE status IN (...)``, which re-checks each row
after waiting for its lock, so a row claimed meanwhile stays claimed (and loses its retries).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from .. import rules
from .._errors import NotFound
from .._models import ActivityRow, ActivityStatus, PendingActivity, WorkflowRow, WorkflowStatus, evolve
from .._wire import undeliverable
from ._dialect import Tx
from ._interface import StorageCall
from ._rows import (
    ACTIVITY_COLUMNS,
    CLAIMED_COLUMNS,
    COMPLETED_COLUMNS,
    WORKFLOW_COLUMNS,
    dumps,
    marks,
    row_to_activity,
    row_to_workflow,
)
from ._tables import Tables

__all__ = ["SqlQueue"]

logger = logging.getLogger("trioworks.server")

S = ActivityStatus
_UNCLAIMED = ", ".join(f"'{s.value}'" for s in S if s.unclaimed)
_FINISHED = frozenset({S.COMPLETED, S.SKIPPED})
_UNFINISHED = ", ".join(f"'{s.value}'" for s in S if s not in _FINISHED)
_LIVE = ", ".join(f"'{s.value}'" for s in S if s.unclaimed or s is S.RUNNING)
_EXPIRED = "status = 'running' AND claimed_at + lease_seconds < ?"

# A claim takes the oldest rows among two sets, each read through its own partial index (see
# schema()): pending rows that are due, in claim order, so that (on Postgres) SKIP LOCKED streams,
# skipping the rows other polls hold and stopping at the limit, instead of sorting every pending
# row on each poll; and running rows whose lease expired with retries left (usually none).
_CLAIM_PENDING = (
    f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE worker = ? AND status = 'pending' "
    "AND scheduled_for <= ? ORDER BY scheduled_for, id LIMIT ?"
)
_CLAIM_EXPIRED = (
    f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE worker = ? AND {_EXPIRED} "
    "AND retry_count < max_retries ORDER BY scheduled_for, id LIMIT ?"
)

# A completion's workflow and activity rows in one statement (see SqlQueue._locked_activity).
_WORKFLOW_WIDTH = len(WORKFLOW_COLUMNS.split(","))
_ACTIVITY_WIDTH = len(ACTIVITY_COLUMNS.split(","))
_LOCK_ACTIVITY = (
    "SELECT "
    + ", ".join(f"w.{c.strip()}" for c in WORKFLOW_COLUMNS.split(","))
    + ", "
    + ", ".join(f"a.{c.strip()}" for c in ACTIVITY_COLUMNS.split(","))
    + " FROM workflows w JOIN activities a ON a.workflow_id = w.id WHERE a.id = ?"
)


class _Rows:
    """The :class:`~trioworks.server.rules.RowSource` of one workflow inside one transaction."""

    def __init__(self, tables: Tables, db: Tx, workflow_id: str) -> None:
        self._tables, self._db, self._workflow_id = tables, db, workflow_id
        self.loaded: dict[str, ActivityRow] = {}  # every row read or released, as stored

    def rows(self, keys: Sequence[str]) -> list[ActivityRow]:
        found = self._tables.rows(self._db, self._workflow_id, keys)
        self.loaded.update((r.key, r) for r in found)
        return found

    def release(self, keys: Sequence[str]) -> list[ActivityRow]:
        if not self._tables.dialect.for_update:
            # SQLite: a statement costs little, and a row released to run is written again
            # anyway; counted down here, stored with the other changes (write_changes).
            return [evolve(r, waiting_for=r.waiting_for - 1) for r in self.rows(keys)]
        # Postgres: one statement (and its round trip) less for a dependent that still waits.
        found = self._tables.release(self._db, self._workflow_id, keys)
        self.loaded.update((r.key, r) for r in found)  # as stored: not written again
        return found


class SqlQueue:
    """The queue operations of :class:`~trioworks.server.Storage`, for every SQL backend."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.dialect = tables.dialect

    def claim(self, worker: str, worker_id: str, max_activities: int, now: float) -> list[PendingActivity]:
        skip = self.dialect.skip_locked
        with self.tables.tx() as db:
            self._expire(db, " AND worker = ?", (worker,), now)
            # Both sets and their workflows' status and definition in one statement (one round
            # trip); only the activity rows are locked (the lock clauses are inside the unions).
            found = db.all(
                f"SELECT c.*, w.id, w.status, w.definition_name, w.definition_version FROM "
                f"(SELECT * FROM ({_CLAIM_EXPIRED}{skip}) e UNION ALL SELECT * FROM ({_CLAIM_PENDING}{skip}) p) c "
                "JOIN workflows w ON w.id = c.workflow_id",
                (worker, now, max_activities, worker, now, max_activities),
            )
            workflows = {r[_ACTIVITY_WIDTH]: r[_ACTIVITY_WIDTH:] for r in found}
            # The oldest of both sets; rows locked here but not taken stay as they are (and
            # locked, so skipped by other polls, only until this transaction ends).
            candidates = sorted(
                (row_to_activity(r[:_ACTIVITY_WIDTH]) for r in found), key=lambda r: (r.scheduled_for, r.id)
            )
            del candidates[max_activities:]
            if not candidates:
                return []
            ids = sorted({c.workflow_id for c in candidates})
            created = [w for w in ids if workflows[w][1] == WorkflowStatus.CREATED.value]
            locked: list[str] = []
            if created:
                # Never wait here: we already hold activity locks (see the module docstring).
                # Locked and marked in one statement: the workflows it could lock at once.
                locked = [
                    r[0]
                    for r in db.all(
                        "UPDATE workflows SET status = 'running', updated_at = ? WHERE id IN "
                        f"(SELECT id FROM workflows WHERE id IN ({marks(len(created))}) AND status = 'created' "
                        f"ORDER BY id{skip}) RETURNING id",
                        (now, *created),
                    )
                ]
                busy = set(created) - set(locked)
                candidates = [c for c in candidates if c.workflow_id not in busy]
            claimed, handed, bad = [], [], []
            for row in (rules.claim_row(c, worker_id, now) for c in candidates):
                meta = workflows[row.workflow_id]
                pending = rules.pending_activity(row, self.tables.definition(db, meta[2], int(meta[3])))
                # Checked before the commit: a claim is only committed if it can be handed out.
                problem = undeliverable(pending)
                if problem is None:
                    claimed.append(row)
                    handed.append(pending)
                else:
                    bad.append(rules.undeliverable_row(row, problem, now))
            self.tables.write(db, claimed, CLAIMED_COLUMNS)
            self._fail_undeliverable(db, bad, set(locked), now)
            return handed

    def lock_order(self, db: Tx, calls: Sequence[StorageCall]) -> list[int]:
        """The order a batch of queue calls runs in on a database with row locks (Postgres).

        Several calls in one transaction hold each other's locks until its end, so a batch
        takes them in the order every other transaction does (see the module docstring):
        completions and failures by their workflow row (read here unlocked: an activity never
        changes workflow), then activity id; claims last, since a claim holds activity rows
        it takes without waiting and must not wait for a workflow row after that.
        """
        ids = sorted({c.args[0] for c in calls if c.method != "claim"})
        workflow: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            found = db.all(f"SELECT id, workflow_id FROM activities WHERE id IN ({marks(len(chunk))})", chunk)
            workflow.update((r[0], r[1]) for r in found)

        def key(i: int) -> tuple[int, str, str]:
            call = calls[i]
            if call.method == "claim":
                return (1, "", "")
            return (0, workflow.get(call.args[0], ""), call.args[0])

        return sorted(range(len(calls)), key=key)

    def heartbeat(self, activity_id: str, worker_id: str, now: float) -> float:
        # The most frequent call (every activity, about three times a lease) locks only its own
        # row, not the workflow: claims of sibling rows go on meanwhile. Its row lock waits for
        # a transaction that holds the row (complete, fail), so a workflow failed by a sibling
        # is seen failed here; it holds nothing else, so it cannot be part of a deadlock.
        with self.tables.tx() as db:
            found = db.one(
                f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE id = ?{self.dialect.for_update}",
                (activity_id,),
            )
            if found is None:
                raise NotFound(f"activity {activity_id} not found")
            row = row_to_activity(found)
            workflow = self.tables.workflow(db, row.workflow_id, lock=False)
            rules.owned_check(row, worker_id, workflow, "heartbeat")
            db.exec("UPDATE activities SET claimed_at = ? WHERE id = ?", (now, activity_id))
        return row.lease_seconds

    def complete(
        self,
        activity_id: str,
        worker_id: str,
        output: dict[str, Any],
        cost_usd: float,
        usage: list[dict[str, Any]] | None,
        now: float,
    ) -> list[str]:
        with self.tables.tx() as db:
            workflow, row = self._locked_activity(db, activity_id)
            if row.status is S.COMPLETED and row.claimed_by == worker_id:
                return ["activity was already completed by this worker; output unchanged"]
            warnings = []
            if (
                workflow.status is WorkflowStatus.FAILED
                and row.status is S.RUNNING
                and row.claimed_by == worker_id
            ):
                warnings.append(f"workflow already failed: {workflow.error_message}")
            else:
                rules.owned_check(row, worker_id, workflow, "complete")
            done = rules.complete_row(row, output, cost_usd, usage, now)
            self.tables.write(db, [done], COMPLETED_COLUMNS)
            if not workflow.status.finished:
                self._advance(db, workflow, done, now)
        return warnings

    def fail(
        self,
        activity_id: str,
        worker_id: str,
        error: dict[str, Any],
        cost_usd: float,
        usage: list[dict[str, Any]] | None,
        now: float,
    ) -> bool:
        with self.tables.tx() as db:
            workflow, row = self._locked_activity(db, activity_id)
            if row.claimed_by == worker_id and row.error == error:
                if row.status is S.FAILED:
                    return False  # the same report again
                if row.status is S.PENDING:
                    return True
            if not (
                workflow.status is WorkflowStatus.FAILED
                and row.status is S.RUNNING
                and row.claimed_by == worker_id
            ):
                rules.owned_check(row, worker_id, workflow, "fail")
            definition = self.tables.definition(db, workflow.definition_name, workflow.definition_version)
            new_row, will_retry = rules.fail_row(row, definition, error, cost_usd, usage, now)
            self.tables.write(db, [new_row])
            # Requeued; or recorded in a workflow that already failed; or the workflow fails now.
            if not will_retry and not workflow.status.finished:
                self._fail_workflow(db, workflow, new_row, now)
        return will_retry

    def cancel(self, workflow_id: str, now: float) -> WorkflowRow:
        """Cancel the workflow: every activity not completed or skipped fails ``WORKFLOW_CANCELLED``.

        Running rows too: their worker's next heartbeat, completion or failure gets 409. Locks the
        workflow row first, then (by one ``UPDATE``) its activity rows, as a failure does.
        """
        with self.tables.tx() as db:
            workflow = self.tables.workflow(db, workflow_id, lock=True)
            change = rules.workflow_cancellation(workflow, now)
            if change is None:
                return workflow  # already cancelled
            workflow, error = change
            self.tables.write_workflow(db, workflow)
            db.exec(
                f"UPDATE activities SET status = 'failed', error = ?, completed_at = ?, max_retries = retry_count "
                f"WHERE workflow_id = ? AND status IN ({_LIVE})",
                (dumps(error), now, workflow.id),
            )
        return workflow

    def sweep(self, now: float) -> int:
        with self.tables.tx() as db:
            failed = self._expire(db, "", (), now)
            ids = db.all(
                f"SELECT id FROM activities WHERE {_EXPIRED} AND retry_count < max_retries{self.dialect.skip_locked}",
                (now,),
            )
            db.many(
                "UPDATE activities SET status = 'pending', retry_count = retry_count + 1, claimed_at = NULL "
                "WHERE id = ?",
                ids,
            )
        return failed + len(ids)

    def next_wait_deadline(self) -> float | None:
        """The earliest signal timeout of a waiting row (None: no timed wait)."""
        with self.tables.tx() as db:
            row = db.one("SELECT MIN(scheduled_for) FROM activities WHERE status = 'waiting'")
        return None if row is None or row[0] is None else float(row[0])

    def expire_waits(self, now: float) -> int:
        """Apply ``on_timeout`` to every waiting row whose signal timeout passed; the count.

        Locks each workflow (in id order), then its expired waiting rows, as a completion does:
        ``skip`` releases the row's dependents, ``fail`` fails the workflow, ``continue`` makes it
        pending with ``SIGNAL`` an empty map.
        """
        count = 0
        with self.tables.tx() as db:
            workflow_ids = sorted(
                {
                    r[0]
                    for r in db.all(
                        "SELECT workflow_id FROM activities WHERE status = 'waiting' AND scheduled_for <= ?",
                        (now,),
                    )
                }
            )
            for workflow_id in workflow_ids:
                workflow = self.tables.workflow(db, workflow_id, lock=True)
                found = db.all(
                    f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE workflow_id = ? AND status = 'waiting' "
                    f"AND scheduled_for <= ? ORDER BY position{self.dialect.for_update}",
                    (workflow_id, now),
                )
                plan = self.tables.plan(db, workflow.definition_name, workflow.definition_version)
                for row in map(row_to_activity, found):
                    ctx = rules.template_context(
                        workflow, self.tables.rows(db, workflow_id, plan.reads[row.key]), plan.definition
                    )
                    new = rules.wait_timeout(plan.specs[row.key], row, ctx, now)
                    self.tables.write(db, [new])
                    count += new.status is not S.WAITING
                    if new.status is S.FAILED:
                        self._fail_workflow(db, workflow, new, now)
                        break
                    if new.status is S.SKIPPED:
                        self._advance(db, workflow, new, now)
                        workflow = self.tables.workflow(db, workflow_id, lock=False)
                        if workflow.status.finished:
                            break
        return count

    def fail_workflow(self, db: Tx, workflow: WorkflowRow, failed: ActivityRow, now: float) -> None:
        """Fail ``workflow`` because ``failed`` (written already) failed for good."""
        self._fail_workflow(db, workflow, failed, now)

    # -- helpers (inside a transaction) ----------------------------------------------------------
    def _fail_undeliverable(self, db: Tx, failed: list[ActivityRow], locked: set[str], now: float) -> None:
        """Fail each row (and its workflow) that a poll could not hand out.

        A claim holds activity locks, so it never waits for a workflow lock here (see the module
        docstring): a workflow it cannot lock at once keeps its row pending for a later poll.
        """
        for row in failed:
            if row.workflow_id not in locked:
                found = db.one(
                    f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?{self.dialect.skip_locked}",
                    (row.workflow_id,),
                )
                if found is None:
                    continue
                workflow = row_to_workflow(found)
            else:
                workflow = self.tables.workflow(db, row.workflow_id, lock=False)
            logger.warning("%s; workflow %s fails", row.error["message"] if row.error else "", workflow.id)
            # Only what changed: the row's own data is what cannot be encoded.
            db.exec(
                "UPDATE activities SET status = ?, error = ?, completed_at = ? WHERE id = ?",
                (row.status.value, dumps(row.error), row.completed_at, row.id),
            )
            if not workflow.status.finished:
                self._fail_workflow(db, workflow, row, now)

    def _locked_activity(self, db: Tx, activity_id: str) -> tuple[WorkflowRow, ActivityRow]:
        """The activity's workflow and row, locked in that order; :exc:`NotFound` otherwise.

        One statement (one round trip on Postgres): ``FOR UPDATE`` over a join locks the rows
        of each table in the order the ``FROM`` list names them, workflow first, as every other
        transaction that waits for locks does (``tests/server/test_postgres_queue.py`` checks it).
        """
        found = db.one(_LOCK_ACTIVITY + self.dialect.for_update, (activity_id,))
        if found is None:
            raise NotFound(f"activity {activity_id} not found")
        # shared_input: what a completion does with its workflow's input is render templates
        workflow = row_to_workflow(found[:_WORKFLOW_WIDTH], shared_input=True)
        return workflow, row_to_activity(found[_WORKFLOW_WIDTH:])

    def _advance(self, db: Tx, workflow: WorkflowRow, finished: ActivityRow, now: float) -> None:
        """Schedule what ``finished`` (written already) makes ready; settle the workflow."""
        plan = self.tables.plan(db, workflow.definition_name, workflow.definition_version)
        source = _Rows(self.tables, db, workflow.id)
        result = rules.progress(workflow, plan, finished, source, now)
        self.tables.write_changes(db, result.changed.values(), source.loaded)
        if result.failed is not None:
            self._fail_workflow(db, workflow, result.failed, now)
        elif all(r.status in _FINISHED for r in result.changed.values()):
            # Nothing this completion scheduled is left to run: the workflow is complete if no
            # other row is unfinished. Asked and settled in one statement (the workflow row is
            # locked by this transaction, so only its status and time change).
            db.send(
                f"UPDATE workflows SET status = '{WorkflowStatus.COMPLETED.value}', updated_at = ? "
                f"WHERE id = ? AND NOT EXISTS (SELECT 1 FROM activities WHERE workflow_id = ? "
                f"AND status IN ({_UNFINISHED}))",
                (now, workflow.id, workflow.id),
            )

    def _fail_workflow(self, db: Tx, workflow: WorkflowRow, failed: ActivityRow, now: float) -> None:
        """:func:`~trioworks.server.rules.fail_workflow` in SQL; ``failed`` (already written) is the cause."""
        workflow, cascade = rules.workflow_failure(workflow, failed, now)
        self.tables.write_workflow(db, workflow)
        db.exec(
            f"UPDATE activities SET status = 'failed', error = ?, completed_at = ? "
            f"WHERE workflow_id = ? AND status IN ({_UNCLAIMED})",
            (dumps(cascade), now, workflow.id),
        )
        db.exec(
            "UPDATE activities SET max_retries = retry_count WHERE workflow_id = ? AND status = 'running'",
            (workflow.id,),
        )

    def _expire(self, db: Tx, where: str, params: tuple[Any, ...], now: float) -> int:
        """Fail expired running rows with no retry left (and their workflows), in workflow id order."""
        # Deduplicated and sorted here: SQLite's planner would scan a whole index to do it.
        expired = sorted(
            {
                r[0]
                for r in db.all(
                    f"SELECT workflow_id FROM activities WHERE {_EXPIRED} AND retry_count >= max_retries{where}",
                    (now, *params),
                )
            }
        )
        for workflow_id in expired:
            workflow = self.tables.workflow(db, workflow_id, lock=True)
            rows = db.all(
                f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE workflow_id = ? AND {_EXPIRED} "
                f"AND retry_count >= max_retries ORDER BY position{self.dialect.for_update}",
                (workflow_id, now),
            )
            failed = [rules.expire_row(row_to_activity(r), now) for r in rows]
            self.tables.write(db, failed)
            if failed and not workflow.status.finished:
                self._fail_workflow(db, workflow, failed[0], now)
        return len(expired)
