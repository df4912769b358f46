"""The one way to run a long-lived child process: killed if still running, reaped, pipes closed.

Real processes (``sleep``, ``cat``, ``true``) and the real clock: a child is a real resource."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio
import trio.testing

from trioworks.core import child_process, read_exactly, start_process, stop_process

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


async def test_a_running_child_is_killed_reaped_and_its_pipes_closed() -> None:
    proc = await start_process(SLEEPER, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert await stop_process(proc, reap_timeout=30) is True
    assert proc.returncode is not None and proc.returncode < 0  # killed by a signal
    assert proc.stdin is not None and proc.stdout is not None
    with pytest.raises(trio.ClosedResourceError):
        await proc.stdin.send_all(b"x")
    assert await stop_process(proc) is False  # idempotent


async def test_a_child_that_ended_is_only_reaped() -> None:
    proc = await start_process([sys.executable, "-c", "pass"])
    await proc.wait()
    assert await stop_process(proc) is False
    assert proc.returncode == 0


async def test_cancelling_the_block_kills_the_child() -> None:
    with trio.CancelScope() as scope:
        async with child_process(SLEEPER, reap_timeout=30) as proc:
            scope.cancel()
            await trio.sleep_forever()
    assert proc.returncode is not None and proc.returncode < 0


async def test_pipes_round_trip_and_read_exactly_waits_for_all_bytes() -> None:
    async with child_process(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        await proc.stdin.send_all(b"hello world")
        assert await read_exactly(proc.stdout, 11) == b"hello world"
        await proc.stdin.aclose()
        assert await read_exactly(proc.stdout, 5) == b""  # the stream ended


async def test_read_exactly_returns_short_only_at_the_end() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    await send.send_all(b"abc")
    async with trio.open_nursery() as nursery:

        async def finish() -> None:
            await trio.testing.wait_all_tasks_blocked()
            await send.send_all(b"de")
            await send.aclose()

        nursery.start_soon(finish)
        assert await read_exactly(receive, 4) == b"abcd"
        assert await read_exactly(receive, 4) == b"e"


async def test_a_missing_program_raises_oserror() -> None:
    with pytest.raises(OSError):
        await start_process(["/nonexistent/trioworks-no-such-program"])
