"""The workers ``benchmarks/worker.py`` starts (``--child``): ours, the original SDK, the Trio floor.

Each prints ``READY_MARK`` once serving and, after SIGTERM, one ``RESULT_MARK`` line of JSON (worst
event-loop lag where it measures one, and the CPU seconds used while serving).
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

RESULT_MARK = "BENCH-RESULT "
READY_MARK = "BENCH-READY"
CLIENT, SECRET = "bench", "bench-secret"
SLOTS = 16
LAG_TICK = 0.01
HEARTBEAT = 0.2
"""Heartbeat period given to both workers (the original heartbeats only activities with a timeout > 60 s)."""
_TOKEN_REQUEST = {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET}

# --- the workers (children) -------------------------------------------------------------------

_cpu_at_ready = 0.0


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _ready() -> None:
    global _cpu_at_ready
    _cpu_at_ready = _cpu()
    print(READY_MARK, flush=True)


def _result(result: dict[str, Any]) -> None:
    """The child's last line: its results plus the CPU seconds it used while serving."""
    print(RESULT_MARK + json.dumps({**result, "cpu_s": _cpu() - _cpu_at_ready}), flush=True)


def _trioworks_child(workload: str, url: str) -> None:
    import trio

    from _workload import burn, cpu_process
    from trioworks.worker import ActivityResult, Worker, WorkerConfig, activity

    @activity(name="noop")
    async def noop(params: dict, ctx: Any) -> ActivityResult:
        return ActivityResult.value("ok", True)

    @activity(name="stamp")
    async def stamp(params: dict, ctx: Any) -> ActivityResult:
        return ActivityResult.value("t", time.time())

    @activity(name="watch")
    async def watch(params: dict, ctx: Any) -> ActivityResult:
        await trio.sleep(params["seconds"])
        return ActivityResult.value("ok", True)

    @activity(name="cpu-thread")
    def cpu_thread(params: dict, ctx: Any) -> ActivityResult:
        burn(0.05)
        return ActivityResult.value("ok", True)

    @activity(name="blocking")
    def blocking(params: dict, ctx: Any) -> ActivityResult:
        time.sleep(0.5)
        return ActivityResult.value("ok", True)

    cpu = activity(name="cpu", process=True)(cpu_process)  # the documented way for CPU work
    config = WorkerConfig(
        api_url=url,
        client_id=CLIENT,
        client_secret=SECRET,
        max_activities=SLOTS,
        lag_interval=LAG_TICK,
        heartbeat_interval=HEARTBEAT,
    )
    # freeze_gc: as `trioworks worker` runs it.
    worker = Worker(
        config, [noop, stamp, watch, cpu, cpu_thread, blocking], handle_signals=True, freeze_gc=True
    )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            _ready()

    trio.run(main)
    _result({"lag_max": worker.stats().loop_lag_max})


def _trio_loop_child(workload: str, url: str) -> None:
    """The floor: the smallest Trio poll/run/complete loop (no heartbeats, timeouts or retries)."""
    import httpx
    import trio

    async def main() -> None:
        async with httpx.AsyncClient(base_url=url) as http, trio.open_nursery() as nursery:
            token = (await http.post("/api/v1/oauth/token", json=_TOKEN_REQUEST)).json()
            http.headers["Authorization"] = f"Bearer {token['access_token']}"
            slots = trio.CapacityLimiter(SLOTS)

            async def run(activity: dict[str, Any]) -> None:
                try:
                    output = {"t": time.time()} if activity["activity_name"] == "stamp" else {"ok": True}
                    path = f"/api/v1/activities/{activity['activity_id']}/complete"
                    await http.post(path, json={"worker_id": "loop", "output": output})
                finally:
                    slots.release_on_behalf_of(activity["activity_id"])

            with trio.open_signal_receiver(signal.SIGTERM) as signals:

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

                nursery.start_soon(stop_on_signal)
                _ready()
                while True:
                    await slots.acquire_on_behalf_of("poll")
                    want = min(10, int(slots.available_tokens) + 1)
                    slots.release_on_behalf_of("poll")
                    body = {"worker": "py-std", "worker_id": "loop", "max_activities": want}
                    claimed = (await http.post("/api/v1/workers/poll", json=body)).json()["activities"]
                    for activity in claimed:
                        slots.acquire_on_behalf_of_nowait(activity["activity_id"])
                        nursery.start_soon(run, activity)
                    if not claimed:
                        await trio.sleep(0.1)

    trio.run(main)
    _result({})


def _kruxiaflow_child(workload: str, url: str) -> None:
    import asyncio

    from kruxiaflow.worker import ActivityRegistry, ActivityResult, WorkerConfig, WorkerManager, activity

    from _workload import burn

    @activity(name="noop")
    async def noop(params: dict, ctx: Any) -> ActivityResult:
        return ActivityResult.value("ok", True)

    @activity(name="stamp")
    async def stamp(params: dict, ctx: Any) -> ActivityResult:
        return ActivityResult.value("t", time.time())

    @activity(name="watch")
    async def watch(params: dict, ctx: Any) -> ActivityResult:
        await asyncio.sleep(params["seconds"])
        return ActivityResult.value("ok", True)

    @activity(name="cpu")
    async def cpu(params: dict, ctx: Any) -> ActivityResult:
        burn(0.05)  # the original has no sync or process activities: CPU work runs on the loop
        return ActivityResult.value("ok", True)

    @activity(name="blocking")
    async def blocking(params: dict, ctx: Any) -> ActivityResult:
        time.sleep(0.5)
        return ActivityResult.value("ok", True)

    lag_max = 0.0

    async def probe() -> None:
        nonlocal lag_max
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_TICK)
            lag_max = max(lag_max, loop.time() - before - LAG_TICK)

    async def main() -> None:
        config = WorkerConfig(
            api_url=url,
            client_id=CLIENT,
            client_secret=SECRET,
            max_concurrent_activities=SLOTS,
            heartbeat_interval=HEARTBEAT,
        )  # type: ignore[call-arg]
        registry = ActivityRegistry()
        for a in (noop, stamp, watch, cpu, blocking):
            registry.register(a, config.worker)
        manager = WorkerManager(config, registry)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        probe_task = asyncio.create_task(probe())
        await manager.start()
        _ready()
        await stop.wait()
        await manager.stop()
        probe_task.cancel()

    asyncio.run(main())
    _result({"lag_max": lag_max})


CHILDREN = {"trioworks": _trioworks_child, "kruxiaflow": _kruxiaflow_child, "trio-loop": _trio_loop_child}
