"""``settings.delay``, ``settings.scheduled_for`` and ``wait_for_signal`` timeouts (issue 13,
items 6 and 9): parsing, the storage contract on every backend, and the server's timer on
virtual time (a restart included)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from server_helpers import ManualClock, activity, running_api

from trioworks.server import (
    Server,
    ServerConfig,
    SQLiteStorage,
    Storage,
    ValidationFailed,
    parse_definition,
)
from trioworks.server.rules._timing import ScheduleError, add_duration, parse_instant

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def statuses(storage: Storage, workflow_id: str) -> dict[str, str]:
    _, rows = storage.get_workflow(workflow_id)
    return {r.key: r.status.value for r in rows}


# -- parsing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("5s", 5), ("2m", 120), ("2mi", 120), ("3h", 10800), ("1d", 86400), ("2w", 1209600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert add_duration(T0, text) == T0 + seconds


def test_calendar_months_clamp_the_day() -> None:
    jan31 = datetime.datetime(2027, 1, 31, 12, tzinfo=datetime.UTC).timestamp()
    feb = datetime.datetime.fromtimestamp(add_duration(jan31, "1mo"), datetime.UTC)
    assert (feb.month, feb.day, feb.hour) == (2, 28, 12)
    assert datetime.datetime.fromtimestamp(add_duration(jan31, "1y"), datetime.UTC).year == 2028


@pytest.mark.parametrize("bad", ["5", "5 s", "5sec", "-5s", "1.5h", 5, None])
def test_bad_durations_name_the_value(bad: Any) -> None:
    with pytest.raises(ScheduleError, match=r"settings\.delay"):
        add_duration(T0, bad)


def test_instants() -> None:
    assert parse_instant("2027-01-15T08:00:00Z") == T0
    assert parse_instant("2027-01-15T00:00:00-08:00") == T0
    assert parse_instant("2027-01-15T08:00:00") == T0  # no offset: UTC
    with pytest.raises(ScheduleError, match="scheduled_for"):
        parse_instant("tomorrow")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"delay": "5 minutes"}, "activities[0].settings.delay"),
        ({"scheduled_for": "soon"}, "activities[0].settings.scheduled_for"),
        ({"delay": "5s", "scheduled_for": "2027-01-01T00:00:00Z"}, "activities[0].settings"),
        ({"wait_for_signal": {"timeout_seconds": 5}}, "activities[0].settings.wait_for_signal.event_name"),
        (
            {"wait_for_signal": {"event_name": "go", "on_timeout": "retry"}},
            "activities[0].settings.wait_for_signal.on_timeout",
        ),
        (
            {"wait_for_signal": {"event_name": "go", "timeout_seconds": 0}},
            "activities[0].settings.wait_for_signal.timeout_seconds",
        ),
        ({"delay": "{{SECRET.x}}"}, "activities[0].settings"),
        ({"delay": "{{nope.x}}"}, "activities[0].settings"),
    ],
)
def test_bad_settings_are_refused_at_deploy(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_definition({"name": "d", "activities": [activity("a", settings=settings)]})
    assert field in caught.value.field_errors


# -- the storage contract (every backend) ----------------------------------------------------
def _define(storage: Storage, *activities: dict[str, Any]) -> None:
    storage.put_definition(parse_definition({"name": "d", "activities": list(activities)}), 0.0)


def _run(storage: Storage, now: float) -> list[str]:
    """Claim and complete every due activity at ``now``; their keys."""
    claimed = storage.claim("std", "w", 10, now)
    for p in claimed:
        storage.complete(p.activity_id, "w", {"at": now}, 0.0, None, now)
    return sorted(p.activity_key for p in claimed)


def test_delay_counts_from_readiness(storage: Storage) -> None:
    _define(
        storage,
        activity("a"),
        activity("b", "a", settings={"delay": "{{INPUT.wait}}"}),
        activity("c", "b", settings={"delay": "2m"}),
    )
    wf = storage.create_workflow("d", None, {"wait": "30s"}, None, T0)
    assert _run(storage, T0 + 5) == ["a"]  # b is ready at T0 + 5: due at T0 + 35
    assert _run(storage, T0 + 34.999) == []
    assert statuses(storage, wf.id)["b"] == "pending"
    assert _run(storage, T0 + 35) == ["b"]
    assert _run(storage, T0 + 154) == []
    assert _run(storage, T0 + 155) == ["c"]
    assert storage.get_workflow(wf.id)[0].status.value == "completed"


def test_scheduled_for_past_runs_at_once_future_waits(storage: Storage) -> None:
    _define(
        storage,
        activity("past", settings={"scheduled_for": "2020-01-01T00:00:00Z"}),
        activity("future", settings={"scheduled_for": "{{INPUT.at}}"}),
    )
    storage.create_workflow("d", None, {"at": "2027-01-15T09:00:00+00:00"}, None, T0)
    assert _run(storage, T0) == ["past"]
    assert _run(storage, T0 + 3599) == []
    assert _run(storage, T0 + 3600) == ["future"]


def test_a_bad_templated_delay_fails_the_workflow(storage: Storage) -> None:
    _define(storage, activity("a", settings={"delay": "{{INPUT.wait}}"}))
    wf = storage.create_workflow("d", None, {"wait": "soon"}, None, T0)
    workflow, rows = storage.get_workflow(wf.id)
    assert workflow.status.value == "failed"
    assert rows[0].error["code"] == "INVALID_SCHEDULE" and "'soon'" in rows[0].error["message"]


def test_delay_survives_reopening_the_database(tmp_path: Path) -> None:
    first = SQLiteStorage(tmp_path / "s.db")
    _define(first, activity("a", settings={"delay": "1h"}))
    first.create_workflow("d", None, {}, None, T0)
    first.close()
    again = SQLiteStorage(tmp_path / "s.db")
    try:
        assert _run(again, T0 + 3599) == []
        assert _run(again, T0 + 3600) == ["a"]
    finally:
        again.close()


def _signal_flow(storage: Storage, on_timeout: str) -> str:
    wait = {"event_name": "approved", "timeout_seconds": 60, "on_timeout": on_timeout}
    _define(
        storage,
        activity("gate", settings={"wait_for_signal": wait}, parameters={"by": "{{SIGNAL.by}}"}),
        activity("after", "gate"),
    )
    return storage.create_workflow("d", None, {}, None, T0).id


def test_signal_renders_SIGNAL_and_clears_the_timeout(storage: Storage) -> None:
    wf = _signal_flow(storage, "fail")
    assert storage.next_wait_deadline() == T0 + 60
    storage.signal(wf, "gate", "approved", {"by": "ann"}, T0 + 10)
    assert storage.next_wait_deadline() is None
    (gate,) = storage.claim("std", "w", 5, T0 + 10)
    assert gate.parameters == {"by": "ann"} and gate.signal_data == {"by": "ann"}
    assert storage.expire_waits(T0 + 100) == 0


@pytest.mark.parametrize(
    ("on_timeout", "gate", "after", "workflow"),
    [
        ("fail", "failed", "failed", "failed"),
        ("skip", "skipped", "skipped", "completed"),
        ("continue", "pending", "not_scheduled", "created"),
    ],
)
def test_signal_timeouts(storage: Storage, on_timeout: str, gate: str, after: str, workflow: str) -> None:
    wf = _signal_flow(storage, on_timeout)
    assert storage.expire_waits(T0 + 59.9) == 0
    assert storage.expire_waits(T0 + 60) == 1
    assert statuses(storage, wf) == {"gate": gate, "after": after}
    row, rows = storage.get_workflow(wf)
    assert row.status.value == workflow
    if on_timeout == "fail":
        assert rows[0].error["code"] == "SIGNAL_TIMEOUT" and "'approved'" in rows[0].error["message"]
    if on_timeout == "continue":  # SIGNAL is an empty map: {{SIGNAL.by}} is null
        (claimed,) = storage.claim("std", "w", 5, T0 + 61)
        assert claimed.parameters == {"by": None}
    assert storage.next_wait_deadline() is None


def test_a_signal_after_the_timeout_is_refused(storage: Storage) -> None:
    wf = _signal_flow(storage, "skip")
    storage.expire_waits(T0 + 60)
    with pytest.raises(Exception, match="already signalled or is skipped"):
        storage.signal(wf, "gate", "approved", {}, T0 + 61)


# -- the server's timer, on virtual time -----------------------------------------------------
def _virtual_clock() -> Any:
    return lambda: T0 + trio.current_time()


async def test_server_times_out_a_wait_made_before_it_started(tmp_path: Path, autojump_clock: Any) -> None:
    clock = _virtual_clock()
    expired = trio.Event()

    class Watched(SQLiteStorage):
        def expire_waits(self, now: float) -> int:
            count = super().expire_waits(now)
            if count:
                trio.from_thread.run_sync(expired.set)
            return count

    storage = Watched(tmp_path / "s.db")
    try:
        wf = await trio.to_thread.run_sync(_signal_flow, storage, "skip")
        config = ServerConfig(storage=storage, port=0, insecure_dev=True, clock=clock, sweep_interval=3600)
        async with trio.open_nursery() as nursery:
            await nursery.start(Server(config).run)
            await trio.sleep(59)
            # Read on the loop (a test's shortcut): virtual time cannot jump past 60 meanwhile.
            assert statuses(storage, wf)["gate"] == "waiting"
            await expired.wait()
            assert statuses(storage, wf) == {"gate": "skipped", "after": "skipped"}
            assert trio.current_time() >= 60
            nursery.cancel_scope.cancel()
    finally:
        storage.close()


async def test_server_restart_keeps_a_delay(server_config: ServerConfig) -> None:
    definition = {
        "name": "later",
        "activities": [activity("a"), activity("b", "a", settings={"delay": "30s"})],
    }
    clock = server_config.clock
    assert isinstance(clock, ManualClock)
    async with running_api(server_config) as api:
        assert (await api.client.post("/api/v1/workflow_definitions", json=definition)).status_code in (
            200,
            201,
        )
        started = await api.client.post("/api/v1/workflows", json={"definition_name": "later", "input": {}})
        workflow_id = started.json()["workflow_id"]
        poll = await api.client.post("/api/v1/workers/poll", json={"worker": "std", "worker_id": "w"})
        (a,) = poll.json()["activities"]
        done = await api.client.post(
            f"/api/v1/activities/{a['activity_id']}/complete", json={"worker_id": "w", "output": {}}
        )
        assert done.status_code == 200
    async with running_api(server_config) as api:  # a new server on the same database
        clock.advance(29)
        poll = await api.client.post("/api/v1/workers/poll", json={"worker": "std", "worker_id": "w"})
        assert poll.json()["activities"] == []
        clock.advance(1)
        poll = await api.client.post("/api/v1/workers/poll", json={"worker": "std", "worker_id": "w"})
        assert [x["activity_key"] for x in poll.json()["activities"]] == ["b"]
        assert poll.json()["activities"][0]["workflow_id"] == workflow_id


@pytest.fixture
def running_clock() -> trio.testing.MockClock:
    """Virtual time that also runs at real speed: the test jumps it, and a ``fail_after`` still ends
    a wait for something that never happens."""
    return trio.testing.MockClock(rate=1.0)


async def test_server_times_out_a_wait_made_while_it_runs(
    tmp_path: Path, running_clock: trio.testing.MockClock
) -> None:
    """The timer sleeps with no deadline known; a submit wakes it to read the new one."""
    read, expired = trio.Event(), trio.Event()

    class Watched(SQLiteStorage):
        def next_wait_deadline(self) -> float | None:  # called in the timer's threads
            deadline = super().next_wait_deadline()
            if deadline is not None:
                trio.from_thread.run_sync(read.set)
            return deadline

        def expire_waits(self, now: float) -> int:
            count = super().expire_waits(now)
            if count:
                trio.from_thread.run_sync(expired.set)
            return count

    storage = Watched(tmp_path / "s.db")
    wait = {"event_name": "go", "timeout_seconds": 300, "on_timeout": "fail"}
    definition = {"name": "d", "activities": [activity("gate", settings={"wait_for_signal": wait})]}
    config = ServerConfig(
        storage=storage, port=0, insecure_dev=True, clock=_virtual_clock(), sweep_interval=3600
    )
    try:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(Server(config).run)
            async with httpx.AsyncClient(base_url=url) as client:
                assert (await client.post("/api/v1/workflow_definitions", json=definition)).is_success
                started = await client.post("/api/v1/workflows", json={"definition_name": "d", "input": {}})
            # Only a timer the submit did not wake (it knew no deadline) never reads this one.
            with trio.fail_after(120):
                await read.wait()
            running_clock.jump(301)
            with trio.fail_after(120):
                await expired.wait()
            workflow, rows = storage.get_workflow(started.json()["workflow_id"])
            assert workflow.status.value == "failed" and rows[0].error["code"] == "SIGNAL_TIMEOUT"
            assert rows[0].completed_at is not None and rows[0].completed_at >= workflow.created_at + 300
            nursery.cancel_scope.cancel()
    finally:
        storage.close()
