"""A hypothesis state machine over the activity queue: several workers poll, heartbeat,
complete and fail while time jumps; lease and retry invariants are checked after every step.

Runs on SQLite; a backend reuses it by subclassing :class:`QueueMachine` and overriding
``make_storage``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from server_helpers import activity

from trioworks.server import (
    ActivityStatus,
    Conflict,
    SQLiteStorage,
    Storage,
    WorkflowStatus,
    parse_definition,
)

S = ActivityStatus
WORKERS = st.sampled_from(["w1", "w2", "w3"])
DEFINITIONS = {
    "retrying": [
        activity("a", settings={"timeout_seconds": 10, "retry": {"max_attempts": 3, "base_seconds": 1}})
    ],
    "single": [activity("a", settings={"timeout_seconds": 5})],
    "chain": [
        activity("a", settings={"timeout_seconds": 8, "retry": {"max_attempts": 2, "strategy": "fixed"}}),
        activity("b", "a", settings={"timeout_seconds": 8}),
    ],
}


class QueueMachine(RuleBasedStateMachine):
    def make_storage(self) -> Storage:
        self.tmp = Path(tempfile.mkdtemp(prefix="queue-machine-"))
        return SQLiteStorage(self.tmp / "q.db")

    @initialize()
    def setup(self) -> None:
        self.storage = self.make_storage()
        for name, activities in DEFINITIONS.items():
            self.storage.put_definition(parse_definition({"name": name, "activities": activities}), 0.0)
        self.now = 1000.0
        self.workflows: list[str] = []
        # Our model of live claims: activity id -> (worker, last claim/heartbeat time, lease).
        self.live: dict[str, tuple[str, float, float]] = {}
        self.completed: dict[str, dict] = {}
        self.last_fail: dict[str, tuple[str, dict]] = {}
        self.known: list[str] = []  # sorted by (workflow number, key): ids are random, positions are not
        self.position: dict[str, tuple[int, str]] = {}

    def teardown(self) -> None:
        if hasattr(self, "storage"):
            self.storage.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def rows(self):  # type: ignore[no-untyped-def]
        for workflow_id in self.workflows:
            workflow, rows = self.storage.get_workflow(workflow_id)
            yield workflow, rows

    @rule(name=st.sampled_from(sorted(DEFINITIONS)))
    def submit(self, name: str) -> None:
        # Distinct submit times give claims a deterministic order (ties would fall back to
        # random ids, and hypothesis could not replay a failure).
        self.now += 0.001
        self.workflows.append(self.storage.create_workflow(name, None, {}, None, self.now).id)

    @rule(worker=WORKERS, n=st.integers(1, 3))
    def poll(self, worker: str, n: int) -> None:
        claimed = self.storage.claim("std", worker, n, self.now)
        assert len(claimed) <= n
        assert len({c.activity_id for c in claimed}) == len(claimed)
        for c in claimed:
            if c.activity_id not in self.position:
                self.position[c.activity_id] = (self.workflows.index(c.workflow_id), c.activity_key)
                self.known = sorted(self.position, key=self.position.__getitem__)
            previous = self.live.get(c.activity_id)
            if previous is not None:
                holder, touched, lease = previous
                assert self.now > touched + lease, f"{c.activity_id} stolen from live claim of {holder}"
            lease = float(c.timeout_seconds or 60)
            self.live[c.activity_id] = (worker, self.now, lease)

    @precondition(lambda self: self.known)
    @rule(data=st.data(), worker=WORKERS)
    def heartbeat(self, data: st.DataObject, worker: str) -> None:
        activity_id = data.draw(st.sampled_from(self.known))
        try:
            self.storage.heartbeat(activity_id, worker, self.now)
        except Conflict:
            return
        holder, _, lease = self.live[activity_id]
        assert holder == worker
        self.live[activity_id] = (worker, self.now, lease)

    @precondition(lambda self: self.known)
    @rule(data=st.data(), worker=WORKERS)
    def complete(self, data: st.DataObject, worker: str) -> None:
        activity_id = data.draw(st.sampled_from(self.known))
        output = {"by": worker, "at": self.now}
        try:
            self.storage.complete(activity_id, worker, output, 0.0, None, self.now)
        except Conflict:
            return
        if activity_id in self.completed:  # idempotent repeat: same worker, output unchanged
            assert self.completed[activity_id]["by"] == worker
            return
        assert self.live.pop(activity_id)[0] == worker
        self.completed[activity_id] = output

    @precondition(lambda self: self.known)
    @rule(data=st.data(), worker=WORKERS, retryable=st.booleans())
    def fail(self, data: st.DataObject, worker: str, retryable: bool) -> None:
        activity_id = data.draw(st.sampled_from(self.known))
        error = {"code": "E", "message": f"{worker}@{self.now}", "retryable": retryable}
        try:
            self.storage.fail(activity_id, worker, error, 0.0, None, self.now)
        except Conflict:
            return
        if activity_id not in self.live:  # idempotent repeat of the same report
            assert self.last_fail[activity_id] == (worker, error)
            return
        assert self.live.pop(activity_id)[0] == worker
        self.last_fail[activity_id] = (worker, error)

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0, 6.0, 11.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def sweep(self) -> None:
        self.storage.sweep(self.now)
        # A sweep ends expired claims; forget them so a later claim is not taken for a steal.
        for activity_id, (_, touched, lease) in list(self.live.items()):
            if self.now > touched + lease:
                del self.live[activity_id]

    @invariant()
    def rows_are_consistent(self) -> None:
        if not hasattr(self, "storage"):
            return
        for workflow, rows in self.rows():
            for row in rows:
                assert 0 <= row.retry_count <= row.max_retries, row
                if row.status is S.RUNNING:
                    assert row.claimed_by is not None and row.claimed_at is not None
                if row.id in self.completed:
                    assert row.status is S.COMPLETED and row.output == self.completed[row.id]
            statuses = {r.status for r in rows}
            if workflow.status is WorkflowStatus.COMPLETED:
                assert statuses <= {S.COMPLETED, S.SKIPPED}
            if workflow.status is WorkflowStatus.FAILED:
                assert not any(s.unclaimed for s in statuses)
                assert workflow.error_message


QueueMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestQueue = QueueMachine.TestCase
