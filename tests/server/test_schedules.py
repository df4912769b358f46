"""Recurring schedules (issue 13): the cadence rules, the storage contract on every backend
(firing, catch-up, overlap, the claim), the routes, and the server's schedules task on virtual
time (a restart included)."""

from __future__ import annotations

import datetime as dt
import functools
import math
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import httpx
import pytest
import trio
from hypothesis import example, given, settings
from hypothesis import strategies as st
from server_helpers import Api, activity, running_api

from trioworks.server import (
    Conflict,
    NotFound,
    Server,
    ServerConfig,
    SQLiteStorage,
    Storage,
    ValidationFailed,
    parse_definition,
)
from trioworks.server._schedules import NewSchedule, ScheduleChanges, ScheduleFire
from trioworks.server.rules._cadence import Cadence, cadence_errors, next_occurrence

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a Friday


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


# -- the cadence ------------------------------------------------------------------------------
def test_cron_is_read_in_its_timezone() -> None:
    chicago = Cadence("0 9 * * *", "America/Chicago")
    assert next_occurrence(chicago, T0, T0) == utc("2027-01-15T15:00:00")  # CST is UTC-6
    july = utc("2027-07-01T00:00:00")
    assert next_occurrence(chicago, july, july) == utc("2027-07-01T14:00:00")  # CDT is UTC-5
    assert next_occurrence(Cadence("0 9 * * *"), T0, T0) == utc("2027-01-15T09:00:00")


def test_day_of_week_is_standard_crontab() -> None:
    # Friday 08:00: the next Monday 09:00 (1 = Monday, as crontab; not the Rust cron crate's Sunday)
    assert next_occurrence(Cadence("0 9 * * 1"), T0, T0) == utc("2027-01-18T09:00:00")
    assert next_occurrence(Cadence("0 9 * * 0"), T0, T0) == utc("2027-01-17T09:00:00")  # Sunday
    assert next_occurrence(Cadence("0 9 * * mon-fri"), T0, T0) == utc("2027-01-15T09:00:00")


def test_six_fields_have_leading_seconds() -> None:
    assert next_occurrence(Cadence("30 0 8 * * *"), T0, T0) == T0 + 30


def test_an_interval_keeps_its_phase() -> None:
    cadence = Cadence(interval_seconds=60)
    assert next_occurrence(cadence, T0, T0) == T0 + 60
    assert next_occurrence(cadence, T0 + 60, T0) == T0 + 60  # anchor still ahead
    assert next_occurrence(cadence, T0, T0 + 601.5) == T0 + 660  # downtime: one jump, same phase


@pytest.mark.parametrize(
    ("cadence", "field"),
    [
        (Cadence("61 * * * *"), "cron"),
        (Cadence("* * *"), "cron"),
        (Cadence("0 0 31 2 *"), "cron"),  # parses, never matches
        (Cadence("0 9 * * *", "Mars/Olympus"), "timezone"),
        (Cadence("0 9 * * *", None, 60), "cron"),
        (Cadence(), "cron"),
        (Cadence(None, "UTC", 60), "timezone"),
        (Cadence(None, None, 0), "interval_seconds"),
    ],
)
def test_bad_cadences_name_the_field(cadence: Cadence, field: str) -> None:
    assert list(cadence_errors(cadence, T0)) == [field]


def _field_values(text: str, top: int) -> set[int]:
    if text == "*":
        return set(range(top))
    if text.startswith("*/"):
        return set(range(0, top, int(text[2:])))
    return {int(x) for x in text.split(",")}


_FIELD = st.one_of(
    st.just("*"),
    st.integers(1, 15).map(lambda n: f"*/{n}"),
    st.lists(st.integers(0, 23), min_size=1, max_size=3, unique=True).map(lambda xs: ",".join(map(str, xs))),
)


@settings(max_examples=40, deadline=None)
@example(minute="*", hour="*", zone=None, after=1834559999.9999998)  # rounds up to a whole minute
@given(
    minute=_FIELD,
    hour=_FIELD,
    zone=st.sampled_from([None, "Asia/Kolkata", "Asia/Tokyo"]),  # no DST: see the test below
    after=st.floats(T0, T0 + 400 * 86400),
)
def test_next_cron_fire_is_the_first_match_after(
    minute: str, hour: str, zone: str | None, after: float
) -> None:
    """Against a brute-force scan of every minute after ``after``, in local time."""
    cadence = Cadence(f"{minute} {hour} * * *", zone)
    assert cadence_errors(cadence, after) == {}
    fire = next_occurrence(cadence, after, after)
    minutes, hours = _field_values(minute, 60), _field_values(hour, 24)
    tz = dt.UTC if zone is None else ZoneInfo(zone)
    t = (int(after) // 60 + 1) * 60  # the first minute boundary strictly after
    while True:
        local = dt.datetime.fromtimestamp(t, tz)
        if local.minute in minutes and local.hour in hours:
            break
        t += 60
    assert fire == t


def test_a_local_time_skipped_by_dst_fires_after_the_gap() -> None:
    # 2027-03-14 02:30 does not exist in Chicago: that day's run is at 03:00 CDT (croniter's rule).
    before = utc("2027-03-14T06:00:00")  # 00:00 CST
    fire = next_occurrence(Cadence("30 2 * * *", "America/Chicago"), before, before)
    assert fire == utc("2027-03-14T08:00:00")


@given(
    step=st.integers(1, 10**6),
    anchor=st.integers(0, 10**6).map(lambda n: T0 + n),
    after=st.floats(T0, T0 + 10**8),
)
def test_next_interval_fire_is_in_phase_and_the_first_after(step: int, anchor: float, after: float) -> None:
    fire = next_occurrence(Cadence(interval_seconds=step), anchor, after)
    assert fire > after and (fire == anchor or fire - step <= after)
    assert (fire - anchor) % step == 0


# -- storage (every backend) --------------------------------------------------------------------
def _define(storage: Storage, name: str = "d", *activities: dict[str, Any]) -> None:
    body = {"name": name, "activities": list(activities) or [activity("a", parameters={"n": "{{INPUT.n}}"})]}
    storage.put_definition(parse_definition(body), now=0.0)


def _new(name: str = "every-minute", **changes: Any) -> NewSchedule:
    fields: dict[str, Any] = {
        "name": name,
        "definition_name": "d",
        "definition_version": None,
        "input": {"n": 1},
        "cadence": Cadence(interval_seconds=60),
        "overlap_policy": "allow",
    }
    return NewSchedule(**{**fields, **changes})


def _runs(storage: Storage) -> list[tuple[str | None, dict[str, Any]]]:
    page = storage.list_workflows(status=None, definition_name=None, limit=100, offset=0)
    return sorted((w.unique_key, w.input) for w in page.workflows)


def test_schedule_crud(storage: Storage) -> None:
    _define(storage)
    s = storage.create_schedule(_new(), T0)
    assert s.next_run_at == T0 + 60 and s.enabled and s.last_run_at is None
    assert storage.get_schedule(s.id) == s
    assert [x.name for x in storage.list_schedules()] == ["every-minute"]
    with pytest.raises(Conflict, match="every-minute"):
        storage.create_schedule(_new(), T0)
    with pytest.raises(ValidationFailed) as bad:
        storage.create_schedule(_new("x", cadence=Cadence("nope")), T0)
    assert list(bad.value.field_errors) == ["cron"]
    changed = storage.update_schedule(s.id, ScheduleChanges(cron="0 9 * * *", timezone="Europe/Paris"), T0)
    assert changed.cadence == Cadence("0 9 * * *", "Europe/Paris", None)
    assert changed.next_run_at == utc("2027-01-16T08:00:00")  # Paris 09:00 is 08:00 UTC in winter
    assert storage.update_schedule(s.id, ScheduleChanges(input={"n": 2}), T0).input == {"n": 2}
    with pytest.raises(ValidationFailed, match="timezone"):
        storage.update_schedule(s.id, ScheduleChanges(interval_seconds=5, timezone="UTC"), T0)
    storage.delete_schedule(s.id)
    with pytest.raises(NotFound, match=s.id):
        storage.get_schedule(s.id)
    with pytest.raises(NotFound):
        storage.delete_schedule(s.id)


def test_a_due_schedule_fires_once_and_advances(storage: Storage) -> None:
    _define(storage)
    s = storage.create_schedule(_new(), T0)
    assert storage.next_schedule_due() == T0 + 60
    assert storage.fire_schedules(T0 + 59, 10) == []
    (fire,) = storage.fire_schedules(T0 + 60, 10)
    assert (fire.schedule_id, fire.occurrence, fire.reason) == (s.id, T0 + 60, None)
    assert storage.fire_schedules(T0 + 60, 10) == []  # the occurrence was claimed
    after = storage.get_schedule(s.id)
    assert (after.next_run_at, after.last_run_at, after.last_workflow_id) == (
        T0 + 120,
        T0 + 60,
        fire.workflow_id,
    )
    assert fire.workflow_id is not None
    workflow, rows = storage.get_workflow(fire.workflow_id)
    assert workflow.unique_key == f"schedule:every-minute:{int(T0 + 60)}" and workflow.input == {"n": 1}
    assert [r.parameters for r in rows] == [{"n": 1}]


def test_missed_occurrences_collapse_into_one_run(storage: Storage) -> None:
    _define(storage)
    s = storage.create_schedule(_new(), T0)
    fires = storage.fire_schedules(T0 + 10 * 60 + 5, 10)  # ten occurrences passed while down
    assert [f.occurrence for f in fires] == [T0 + 60]
    assert storage.get_schedule(s.id).next_run_at == T0 + 11 * 60  # in phase, after now
    assert len(_runs(storage)) == 1


def test_overlap_skip_waits_for_the_previous_run(storage: Storage) -> None:
    _define(storage)
    storage.create_schedule(_new(overlap_policy="skip"), T0)
    (first,) = storage.fire_schedules(T0 + 60, 10)
    (second,) = storage.fire_schedules(T0 + 120, 10)
    assert second.workflow_id is None and second.reason == "overlap"
    assert first.workflow_id is not None
    (row,) = storage.claim("std", "w", 1, T0 + 121)
    storage.complete(row.activity_id, "w", {}, 0.0, None, T0 + 122)
    (third,) = storage.fire_schedules(T0 + 180, 10)
    assert third.workflow_id is not None and len(_runs(storage)) == 2


def test_pause_and_resume(storage: Storage) -> None:
    _define(storage)
    s = storage.create_schedule(_new(), T0)
    storage.update_schedule(s.id, ScheduleChanges(enabled=False), T0 + 1)
    assert storage.next_schedule_due() is None
    assert storage.fire_schedules(T0 + 3600, 10) == []
    resumed = storage.update_schedule(s.id, ScheduleChanges(enabled=True), T0 + 3600)
    assert resumed.next_run_at == T0 + 3660  # recomputed: the stale time does not fire at once
    assert storage.fire_schedules(T0 + 3600, 10) == []


def test_a_failing_submission_still_advances(storage: Storage) -> None:
    _define(storage)
    storage.create_schedule(_new(input={}), T0)  # the definition reads INPUT.n
    (fire,) = storage.fire_schedules(T0 + 60, 10)
    assert fire.workflow_id is None and fire.reason == "error" and "input.n" in (fire.message or "")
    assert storage.next_schedule_due() == T0 + 120 and _runs(storage) == []


def test_a_refused_run_does_not_undo_the_batch(storage: Storage) -> None:
    _define(storage)
    storage.create_schedule(_new("a"), T0)
    storage.create_schedule(_new("b"), T0)
    storage.create_workflow("d", None, {"n": 0}, f"schedule:a:{int(T0 + 60)}", T0)  # a's key, by hand
    fires = {f.name: f for f in storage.fire_schedules(T0 + 60, 10)}
    assert fires["a"].reason == "duplicate" and fires["b"].workflow_id is not None
    assert storage.next_schedule_due() == T0 + 120  # both advanced
    assert len(_runs(storage)) == 2


def test_a_pinned_version_is_kept(storage: Storage) -> None:
    _define(storage)
    _define(storage, "d", activity("a"), activity("b", "a"))  # version 2
    storage.create_schedule(_new(definition_version=1), T0)
    (fire,) = storage.fire_schedules(T0 + 60, 10)
    assert fire.workflow_id is not None
    assert storage.get_workflow(fire.workflow_id)[0].definition_version == 1


# -- routes ---------------------------------------------------------------------------------
async def _deploy(api: Api) -> None:
    body = {"name": "d", "activities": [activity("a", parameters={"n": "{{INPUT.n}}"})]}
    assert (await api.client.post("/api/v1/workflow_definitions", json=body)).is_success


async def test_schedule_routes(server_config: ServerConfig) -> None:
    async with running_api(server_config) as api:
        await _deploy(api)
        body = {"name": "nightly", "definition_name": "d", "input": {"n": 3}, "cron": "0 2 * * *"}
        created = await api.client.post("/api/v1/schedules", json=body)
        assert created.status_code == 201, created.text
        s = created.json()
        assert set(s) == {
            "id",
            "name",
            "definition_name",
            "definition_version",
            "input",
            "cron",
            "timezone",
            "interval_seconds",
            "overlap_policy",
            "enabled",
            "next_run_at",
            "last_run_at",
            "last_workflow_id",
            "created_by",
            "created_at",
            "updated_at",
        }
        assert (s["cron"], s["timezone"], s["interval_seconds"], s["overlap_policy"], s["enabled"]) == (
            "0 2 * * *",
            None,
            None,
            "skip",
            True,
        )
        assert s["next_run_at"] == "2027-01-16T02:00:00.000000Z" and s["created_by"] == "client"
        listed = (await api.client.get("/api/v1/schedules")).json()
        assert listed["count"] == 1 and listed["schedules"][0]["id"] == s["id"]
        assert (await api.client.get(f"/api/v1/schedules/{s['id']}")).json() == s
        patched = await api.client.patch(
            f"/api/v1/schedules/{s['id']}", json={"enabled": False, "cron": None}
        )
        assert patched.status_code == 200 and patched.json()["enabled"] is False
        assert patched.json()["cron"] == "0 2 * * *"  # null: unchanged
        again = await api.client.post("/api/v1/schedules", json=body)
        assert again.status_code == 409 and "nightly" in again.json()["error"]["message"]
        assert (await api.client.delete(f"/api/v1/schedules/{s['id']}")).status_code == 204
        gone = await api.client.get(f"/api/v1/schedules/{s['id']}")
        assert gone.status_code == 404
        assert (await api.client.patch(f"/api/v1/schedules/{s['id']}", json={})).status_code == 404
        assert (await api.client.delete(f"/api/v1/schedules/{s['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "every day"}, "cron"),
        ({"cron": "0 9 * * *", "timezone": "Nowhere/Land"}, "timezone"),
        ({"cron": "0 9 * * *", "interval_seconds": 60}, "cron"),
        ({"cron": None}, "cron"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": "60"}, "interval_seconds"),
        ({"overlap_policy": "queue"}, "overlap_policy"),
        ({"enabled": "yes"}, "enabled"),
        ({"name": " "}, "name"),
        ({"name": None}, "name"),
        ({"definition_name": "nope"}, "definition_name"),
        ({"definition_version": 7}, "definition_version"),
        ({"input": {}}, "input.n"),
        ({"input": [1]}, "input"),
    ],
)
async def test_bad_schedules_are_422_naming_the_field(
    server_config: ServerConfig, change: dict[str, Any], field: str
) -> None:
    async with running_api(server_config) as api:
        await _deploy(api)
        before = await api.snapshot()
        cadence = {} if "cron" in change else {"interval_seconds": 60}
        body = {"name": "s", "definition_name": "d", "input": {"n": 1}, **cadence, **change}
        reply = await api.client.post("/api/v1/schedules", json=body)
        assert reply.status_code == 422, reply.text
        assert field in reply.json()["error"]["details"]["field_errors"]
        assert await api.snapshot() == before


async def test_schedules_are_in_the_openapi_document(server_config: ServerConfig) -> None:
    async with running_api(server_config) as api:
        paths = (await api.client.get("/api/v1/openapi.json")).json()["paths"]
    assert set(paths["/api/v1/schedules"]) == {"get", "post"}
    assert set(paths["/api/v1/schedules/{schedule_id}"]) == {"get", "patch", "delete"}


# -- the server's schedules task, on virtual time ------------------------------------------
# A MockClock at rate 0 (``mock_clock``): virtual time moves only when a test jumps it, so no
# autojump can pass a due time while a storage thread runs. The task computes its sleep from the
# clock when it reads the due time, so a jump before or after that read wakes it the same.


def _virtual_clock(offset: float = 0.0) -> Any:
    return lambda: T0 + offset + trio.current_time()


def _probed(base: type[Any]) -> type[Any]:
    """``base`` reporting (from its storage threads) each due time read and each fire."""

    class Probe(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.send_read, self.reads = trio.open_memory_channel[float | None](math.inf)
            self.send_fire, self.fires = trio.open_memory_channel[ScheduleFire](math.inf)

        def next_schedule_due(self) -> float | None:
            due = super().next_schedule_due()
            trio.from_thread.run_sync(self.send_read.send_nowait, due)
            return due

        def fire_schedules(self, now: float, limit: int) -> list[ScheduleFire]:
            fires = super().fire_schedules(now, limit)
            for fire in fires:
                trio.from_thread.run_sync(self.send_fire.send_nowait, fire)
            return fires

    return Probe


async def _read_due(store: Any, at_least: float) -> float:
    """The first due time the task reads that is ``at_least`` or later."""
    while True:
        due = await store.reads.receive()
        if due is not None and due >= at_least:
            return float(due)


def _config(store: Storage, offset: float = 0.0) -> ServerConfig:
    return ServerConfig(
        storage=store, port=0, insecure_dev=True, clock=_virtual_clock(offset), sweep_interval=3600
    )


async def test_the_server_fires_on_time(tmp_path: Path, mock_clock: trio.testing.MockClock) -> None:
    store = _probed(SQLiteStorage)(tmp_path / "s.db")
    try:
        await trio.to_thread.run_sync(_define, store)
        await trio.to_thread.run_sync(store.create_schedule, _new(), T0)
        async with trio.open_nursery() as nursery:
            await nursery.start(Server(_config(store)).run)
            for k in (1, 2, 3):
                due = await _read_due(store, T0 + 60 * k)
                assert due == T0 + 60 * k
                mock_clock.jump(due - T0 - trio.current_time())
                fire = await store.fires.receive()
                assert fire.occurrence == due and fire.workflow_id is not None
                workflow, _ = await trio.to_thread.run_sync(store.get_workflow, fire.workflow_id)
                assert workflow.created_at == due  # not early, not late
            nursery.cancel_scope.cancel()
    finally:
        store.close()


async def test_a_restart_fires_a_missed_occurrence_once(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "s.db"
    store = _probed(SQLiteStorage)(path)
    try:
        await trio.to_thread.run_sync(_define, store)
        s = await trio.to_thread.run_sync(store.create_schedule, _new(), T0)
        async with trio.open_nursery() as nursery:
            await nursery.start(Server(_config(store)).run)
            mock_clock.jump(await _read_due(store, T0 + 60) - T0)
            first = await store.fires.receive()
            await _read_due(store, T0 + 120)  # advanced: the next one is not due yet
            nursery.cancel_scope.cancel()
    finally:
        store.close()
    # Down for an hour (the clock's offset): six missed occurrences, one catch-up run at once.
    store = _probed(SQLiteStorage)(path)
    offset = 3600.0
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(Server(_config(store, offset)).run)
            catch_up = await store.fires.receive()
            now = T0 + offset + trio.current_time()
            due = await _read_due(store, now)
            assert (due - T0) % 60 == 0 and now < due <= now + 60  # in phase, after now
            mock_clock.jump(due - now)
            following = await store.fires.receive()
            nursery.cancel_scope.cancel()
        assert (first.occurrence, catch_up.occurrence, following.occurrence) == (T0 + 60, T0 + 120, due)
        keys = [k for k, _ in await trio.to_thread.run_sync(_runs, store)]
        assert keys == sorted(
            f"schedule:every-minute:{int(f.occurrence)}" for f in (first, catch_up, following)
        )
        assert (
            await trio.to_thread.run_sync(store.get_schedule, s.id)
        ).last_workflow_id == following.workflow_id
    finally:
        store.close()


@pytest.fixture
def patient_clock() -> trio.testing.MockClock:
    """Virtual time that jumps only after 5 real seconds with every task blocked: a hang guard
    that no storage thread (milliseconds) sets off."""
    return trio.testing.MockClock(autojump_threshold=5.0)


async def test_a_new_schedule_wakes_the_task(tmp_path: Path, patient_clock: trio.testing.MockClock) -> None:
    """The task sleeps until the hour-away schedule; one created through the API for 30 s from
    now fires at its own time, because the create woke the task to read the due time again."""
    store = _probed(SQLiteStorage)(tmp_path / "s.db")
    try:
        await trio.to_thread.run_sync(_define, store)
        hourly = _new("hourly", cadence=Cadence(interval_seconds=3600))
        await trio.to_thread.run_sync(store.create_schedule, hourly, T0)
        # schedule_poll out of reach: only a wake makes the task read the schedules again.
        config = attrs.evolve(_config(store), schedule_poll=10**6)
        async with trio.open_nursery() as nursery:
            url = await nursery.start(Server(config).run)
            await _read_due(store, T0 + 3600)
            async with httpx.AsyncClient(base_url=url) as client:
                body = {"name": "soon", "definition_name": "d", "input": {"n": 1}, "interval_seconds": 30}
                assert (await client.post("/api/v1/schedules", json=body)).status_code == 201
            assert await _read_due(store, T0) == T0 + 30
            assert trio.current_time() == 0  # read at once, not when the hourly one came due
            patient_clock.jump(30 - trio.current_time())
            fire = await store.fires.receive()
            assert (fire.name, fire.occurrence) == ("soon", T0 + 30) and fire.workflow_id is not None
            workflow, _ = await trio.to_thread.run_sync(store.get_workflow, fire.workflow_id)
            assert workflow.created_at == T0 + 30  # at its time, not the hourly one's
            nursery.cancel_scope.cancel()
    finally:
        store.close()


# -- several servers on one Postgres ------------------------------------------------------
def test_concurrent_ticks_fire_each_occurrence_once(fresh_postgres_url: str) -> None:
    """Four storages (separate pools, as separate servers) fire the same due schedules at once."""
    from concurrent.futures import ThreadPoolExecutor

    from trioworks.server import PostgresStorage

    stores = [PostgresStorage(fresh_postgres_url, max_threads=2) for _ in range(4)]
    try:
        _define(stores[0])
        for i in range(20):
            stores[0].create_schedule(_new(f"s{i:02}"), T0)
        with ThreadPoolExecutor(len(stores)) as pool:
            results = list(pool.map(functools.partial(_fire_twice, now=T0 + 60), stores))
        fired = [f for fires in results for f in fires]
        assert sorted(f.name for f in fired) == [f"s{i:02}" for i in range(20)]
        assert all(f.workflow_id is not None for f in fired)  # no loser even tried to submit
        assert len(_runs(stores[0])) == 20
    finally:
        for store in stores:
            store.close()


def _fire_twice(storage: Storage, now: float) -> list[ScheduleFire]:
    return storage.fire_schedules(now, 7) + storage.fire_schedules(now, 100)


async def test_two_servers_on_one_postgres_fire_once(
    fresh_postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    from trioworks.server import PostgresStorage

    stores = [_probed(PostgresStorage)(fresh_postgres_url, max_threads=2) for _ in range(2)]
    fires: list[ScheduleFire] = []
    try:
        await trio.to_thread.run_sync(_define, stores[0])
        await trio.to_thread.run_sync(stores[0].create_schedule, _new(), T0)
        async with trio.open_nursery() as nursery:
            for store in stores:
                await nursery.start(Server(_config(store)).run)
            for store in stores:
                await _read_due(store, T0 + 60)
            for k in (1, 2, 3):
                # Both tasks sleep until the occurrence: both wake for it at once.
                mock_clock.jump(T0 + 60 * k - T0 - trio.current_time())
                for store in stores:  # both past it: each read the next occurrence
                    await _read_due(store, T0 + 60 * (k + 1))
            nursery.cancel_scope.cancel()
        for store in stores:
            while True:
                try:
                    fires.append(store.fires.receive_nowait())
                except trio.WouldBlock:
                    break
        assert sorted(f.occurrence for f in fires) == [T0 + 60, T0 + 120, T0 + 180]  # each once
        assert len(await trio.to_thread.run_sync(_runs, stores[0])) == 3
    finally:
        for store in stores:
            store.close()


# -- the client's schedule verbs ------------------------------------------------------------
async def test_client_schedule_verbs(server_config: ServerConfig) -> None:
    from trioworks.client import AsyncClient, KruxiaFlowError

    async with running_api(server_config) as api:
        await _deploy(api)
        url = str(api.client.base_url)
        async with AsyncClient(url, client_id="client", client_secret="s3cret") as client:
            s = await client.create_schedule(
                "hourly", "d", interval_seconds=3600, input={"n": 5}, overlap_policy="allow"
            )
            assert (s["interval_seconds"], s["input"], s["overlap_policy"]) == (3600, {"n": 5}, "allow")
            assert (await client.list_schedules())["count"] == 1
            assert (await client.pause_schedule(s["id"]))["enabled"] is False
            resumed = await client.resume_schedule(s["id"])
            assert resumed["enabled"] is True
            changed = await client.update_schedule(s["id"], cron="*/5 * * * *", timezone="Asia/Tokyo")
            assert (changed["cron"], changed["timezone"], changed["interval_seconds"]) == (
                "*/5 * * * *",
                "Asia/Tokyo",
                None,
            )
            assert (await client.get_schedule(s["id"]))["next_run_at"] == changed["next_run_at"]
            with pytest.raises(KruxiaFlowError, match="cron") as bad:
                await client.create_schedule("bad", "d", cron="61 * * * *", input={"n": 1})
            assert bad.value.status_code == 422
            assert await client.delete_schedule(s["id"]) is None
            assert (await client.list_schedules())["schedules"] == []
