"""Streamed files and temp-dir cleanup; a property test over random faults; loop-lag probe."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from worker_fake import FakeServer, make_config, wait_until

from trioworks.worker import ActivityContext, ActivityResult, OutputType, Worker, activity

temp_dirs: list[Path] = []


@activity()
async def files(params: dict, ctx: ActivityContext) -> ActivityResult:
    tmp = await ctx.temp_dir()
    temp_dirs.append(tmp)
    big = tmp / "big.bin"
    await trio.Path(big).write_bytes(os.urandom(300_000))
    ref = await ctx.upload_file(big, "data/big.bin")
    local = await ctx.download_file(ref)
    same = await trio.Path(local).read_bytes() == await trio.Path(big).read_bytes()
    folder = tmp / "folder"
    await trio.Path(folder / "sub").mkdir(parents=True)
    await trio.Path(folder / "a.txt").write_text("a")
    await trio.Path(folder / "sub" / "b.txt").write_text("b")
    return (
        ActivityResult.file("copy", str(big))
        .with_output("same", same)
        .with_output("uploaded", ref)
        .with_output("folder", str(folder), OutputType.FOLDER)
    )


async def test_files_stream_both_ways_and_temp_dir_is_removed(
    fake: FakeServer, start_worker, thread_clock
) -> None:
    temp_dirs.clear()
    row = fake.add("files", key="make")
    # File I/O runs in threads: the clock must not jump while they work (thread_clock), and a
    # slow lag probe keeps the number of timer wake-ups (each 50 ms of real idleness) small.
    worker = await start_worker([files], lag_interval=5)
    await wait_until(lambda: fake.done and not worker.running, step=0.5)
    assert "output" in row.report, row.report
    output = row.report["output"]
    prefix = f"postgres://{row.workflow_id}/make/"
    assert output["same"] is True
    assert output["uploaded"] == prefix + "data/big.bin"
    assert output["copy"] == prefix + "big.bin"
    assert output["folder"] == [prefix + "folder/a.txt", prefix + "folder/sub/b.txt"]
    assert len(fake.files[(row.workflow_id, "make", "big.bin")][0]) == 300_000
    assert temp_dirs and not temp_dirs[0].exists()


@activity()
async def declared(params: dict, ctx: ActivityContext) -> ActivityResult:
    path = (await ctx.temp_dir()) / "out.csv"
    await trio.Path(path).write_text("a,b\n1,2\n")
    return ActivityResult.values(table=str(path), note="postgres://not/a/path", rows=1)


async def test_declared_file_outputs_given_as_paths_are_uploaded(
    fake: FakeServer, start_worker, thread_clock
) -> None:
    outputs = [
        {"name": "table", "type": "file"},
        {"name": "note", "type": "file"},
        {"name": "rows", "type": "value"},
    ]
    row = fake.add("declared", key="k", outputs=outputs)
    await start_worker([declared], lag_interval=5)
    await wait_until(lambda: fake.done, step=0.5)
    assert "output" in row.report, row.report
    assert row.report["output"] == {
        "table": f"postgres://{row.workflow_id}/k/out.csv",
        "note": "postgres://not/a/path",
        "rows": 1,
    }
    assert fake.files[(row.workflow_id, "k", "out.csv")] == (b"a,b\n1,2\n", "text/csv")


@activity()
async def work(params: dict, ctx: ActivityContext) -> ActivityResult:
    await trio.sleep(params["seconds"])
    return ActivityResult.value("done", params["n"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    durations=st.lists(st.floats(0, 20), min_size=1, max_size=25),
    slots=st.integers(1, 6),
    poll_max=st.integers(1, 8),
    faults=st.lists(
        st.tuples(
            st.sampled_from(["/complete", "/heartbeat", "/workers/poll", "/oauth/token"]),
            st.sampled_from([500, 502, 503, 429]),
        ),
        max_size=10,
    ),
    seed=st.integers(0, 2**16),
)
def test_every_activity_reported_exactly_once_within_slots(durations, slots, poll_max, faults, seed) -> None:
    fake = FakeServer()
    rows = [fake.add("work", {"seconds": d, "n": i}, timeout_seconds=15) for i, d in enumerate(durations)]
    for path, status in faults:
        fake.script(path, status)

    async def main() -> None:
        worker = Worker(
            make_config(max_activities=slots, poll_max_activities=poll_max),
            [work],
            transport=fake.transport,
            rng=random.Random(seed),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await wait_until(lambda: fake.done, step=0.5, limit=3600)
            await worker.drain()
            assert worker.work_slots.borrowed_tokens == 0

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert fake.max_in_flight <= slots
    assert max(fake.poll_sizes) <= min(slots, poll_max)
    for row, seconds in zip(rows, durations, strict=True):
        assert len(row.completions) + len(row.failures) == 1
        if seconds < 15:
            assert row.completions and row.completions[0]["output"] == {"done": row.parameters["n"]}
        elif seconds > 15:
            assert row.failures[0]["error"]["code"] == "TIMEOUT"


@activity()
async def hog(params: dict, ctx: ActivityContext) -> ActivityResult:
    end = time.perf_counter() + params["seconds"]
    while time.perf_counter() < end:  # blocks the loop on purpose
        pass
    return ActivityResult.value("ok", True)


async def test_loop_lag_is_measured(fake: FakeServer, start_worker) -> None:
    fake.add("hog", {"seconds": 0.3})
    worker = await start_worker([hog], lag_interval=0.02)
    await wait_until(lambda: fake.done, limit=30)
    # The lag task runs as soon as the hog gives the loop back; 0.3 s of hogging is >= 0.28 s late.
    await wait_until(lambda: worker.stats().loop_lag_max >= 0.2, limit=30)
