"""Activities of the kill tests (``test_kill_faults.py``), loaded by real ``trioworks worker`` processes.

Each run appends ``start``/``end`` lines (activity id, worker id) to the file named by
``$FAULT_JOURNAL``: an append of one short line is atomic, so several worker processes share it. The worker named by ``$FAULT_HOLD_WORKER``
never finishes an activity: it is the one the test kills, and it must die mid-run.
"""

from __future__ import annotations

import os

import trio

from trioworks.worker import ActivityContext, ActivityResult, activity


async def _journal(event: str, ctx: ActivityContext) -> None:
    async with await trio.open_file(os.environ["FAULT_JOURNAL"], "a", encoding="utf-8") as journal:
        await journal.write(f"{event} {ctx.activity_id} {ctx.worker_id}\n")


@activity()
async def step(params: dict, ctx: ActivityContext) -> ActivityResult:
    await _journal("start", ctx)
    if ctx.worker_id == os.environ.get("FAULT_HOLD_WORKER"):
        await trio.sleep_forever()  # this worker is about to be killed: be sure it is mid-run
    await trio.sleep(float(params["seconds"]))  # long enough to be killed in the middle
    await _journal("end", ctx)
    return ActivityResult.value("value", params["x"] * 10 + 1)
