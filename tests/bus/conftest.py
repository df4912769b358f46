"""Fixtures for the bus tests: an in-process broker and a running bus on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from trioworks.bus import Bus, InProcessBroker, InProcessTransport


@pytest.fixture
def broker() -> InProcessBroker:
    return InProcessBroker()


@pytest.fixture
async def inproc_bus(broker: InProcessBroker, nursery: trio.Nursery) -> AsyncIterator[Bus]:
    bus = Bus(InProcessTransport(broker, client_id="svc"), source="svc")
    await nursery.start(bus.run)
    yield bus
