"""The activity-queue state machine of ``test_queue_machine.py``, run on the Postgres backend.

Same rules and invariants (leases, steals, retries, idempotent reports, sweeps while time jumps);
only the storage differs. Every example starts from emptied tables in one database of its own.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test
from test_queue_machine import QueueMachine

from trioworks.server import PostgresStorage, Storage


def test_queue_state_machine_on_postgres(fresh_postgres_url: str) -> None:
    class PostgresQueueMachine(QueueMachine):
        def make_storage(self) -> Storage:
            store = PostgresStorage(fresh_postgres_url, max_threads=1)
            with store._tx() as db:  # a clean slate for this example
                db.exec("TRUNCATE meta, definitions, workflows, activities, files")
            return store

        def teardown(self) -> None:
            if hasattr(self, "storage"):
                self.storage.close()

    run_state_machine_as_test(
        PostgresQueueMachine,
        settings=settings(max_examples=15, stateful_step_count=30, deadline=None),
    )
