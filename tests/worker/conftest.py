"""Fixtures: a fake server and a worker wired to it, run inside the test's nursery."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest
import trio
import trio.testing
from worker_fake import FakeServer

from trioworks.worker import Worker, WorkerConfig


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


def make_config(**overrides: Any) -> WorkerConfig:
    values: dict[str, Any] = {
        "api_url": "http://kruxia.test",
        "client_id": "worker",
        "client_secret": "secret",
        "worker_id": "worker_test",
        "max_activities": 4,
    }
    values.update(overrides)
    return WorkerConfig(**values)


@pytest.fixture
async def start_worker(fake: FakeServer, nursery: trio.Nursery) -> AsyncIterator[Callable[..., Any]]:
    """``await start_worker(activities, **config)`` -> a running :class:`Worker`."""
    workers: list[Worker] = []

    async def start(activities: Iterable[Any], *, handle_signals: bool = False, **config: Any) -> Worker:
        worker = Worker(
            make_config(**config),
            activities,
            transport=fake.transport,
            rng=random.Random(7),
            handle_signals=handle_signals,
        )
        workers.append(worker)
        return await nursery.start(worker.run)

    yield start
    for worker in workers:
        worker.request_drain(force=True)


async def wait_until(predicate: Callable[[], bool], *, step: float = 0.05, limit: float = 600.0) -> None:
    """Sleep (virtual time) until ``predicate()``; fail after ``limit`` seconds."""
    with trio.fail_after(limit):
        # Polling on purpose: the predicates look at the fake server's state, which has no event.
        while True:
            if predicate():
                return
            await trio.sleep(step)


@pytest.fixture
def thread_clock() -> trio.testing.MockClock:
    """Virtual time that waits 50 ms of real idleness before jumping, so threads get to start."""
    return trio.testing.MockClock(autojump_threshold=0.05)
