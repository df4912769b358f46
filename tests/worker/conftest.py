"""Fixtures: a fake server and a worker wired to it, run inside the test's nursery."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest
import trio
import trio.testing
from worker_fake import FakeServer, make_config

from trioworks.worker import Worker


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


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


@pytest.fixture
def thread_clock() -> trio.testing.MockClock:
    """Virtual time that waits 50 ms of real idleness before jumping, so threads get to start."""
    return trio.testing.MockClock(autojump_threshold=0.05)
