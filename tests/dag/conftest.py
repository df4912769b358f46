"""Fixtures shared by the DAG runner tests."""

from __future__ import annotations

import pytest

from trioworks.dag import NodeEvent, NodeStatus


class EventLog:
    """Pass as both ``on_node_start`` and ``on_node_finish``; keeps every event in order."""

    def __init__(self) -> None:
        self.events: list[NodeEvent] = []

    def __call__(self, event: NodeEvent) -> None:
        self.events.append(event)

    def starts(self) -> list[str]:
        return [e.node_id for e in self.events if e.status is NodeStatus.RUNNING]

    def finishes(self) -> list[NodeEvent]:
        return [e for e in self.events if e.status is not NodeStatus.RUNNING]


@pytest.fixture
def events() -> EventLog:
    return EventLog()
