"""Child processes: started in one place, killed and reaped in one place.

:func:`trio.run_process` suits a program that runs to completion; the voice services keep theirs
open while they stream (espeak-ng's stdout, arecord, a player's stdin, the decoder's pipes), so
their lifetime is a block or an object's ``aclose``. These helpers give both the same rules: a
child still running at the end is killed, then waited for (shielded, bounded), and its pipes are
closed; nothing is left as a zombie or an open descriptor.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Sequence

import trio

__all__ = ["child_process", "read_exactly", "start_process", "stop_process"]

DEVNULL = subprocess.DEVNULL
PIPE = subprocess.PIPE


async def start_process(
    command: Sequence[str], *, stdin: int = DEVNULL, stdout: int = DEVNULL, stderr: int = DEVNULL
) -> trio.Process:
    """Start ``command`` (no shell); each stream is ``subprocess.PIPE`` or ``subprocess.DEVNULL``.

    The caller owns the process: end it with :func:`stop_process` (or use :func:`child_process`).
    Raises :exc:`OSError` when the program cannot be started.
    """
    return await trio.lowlevel.open_process(list(command), stdin=stdin, stdout=stdout, stderr=stderr)


async def stop_process(process: trio.Process, *, reap_timeout: float = 1.0) -> bool:
    """Kill ``process`` if it still runs, wait for it and close its pipes.

    The wait is shielded (safe in a ``finally`` of a cancelled task) and bounded by
    ``reap_timeout`` seconds. Returns True if the process had to be killed, False if it had already exited.
    Idempotent.
    """
    killed = process.returncode is None
    if killed:
        process.kill()
    with trio.CancelScope(shield=True):
        with trio.move_on_after(reap_timeout):
            await process.wait()
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                await pipe.aclose()
    return killed


@contextlib.asynccontextmanager
async def child_process(
    command: Sequence[str],
    *,
    stdin: int = DEVNULL,
    stdout: int = DEVNULL,
    stderr: int = DEVNULL,
    reap_timeout: float = 1.0,
) -> AsyncIterator[trio.Process]:
    """:func:`start_process` for the block; leaving it (for any reason) is :func:`stop_process`."""
    process = await start_process(command, stdin=stdin, stdout=stdout, stderr=stderr)
    try:
        yield process
    finally:
        await stop_process(process, reap_timeout=reap_timeout)


async def read_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    """``n`` bytes from ``stream``; fewer only if the stream ends first."""
    data = bytearray()
    while len(data) < n:
        more = await stream.receive_some(n - len(data))
        if not more:
            break
        data += more
    return bytes(data)
