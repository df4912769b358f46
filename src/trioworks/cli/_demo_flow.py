"""``trioworks demo``, section 2: the reference server and the activity worker, end to end.

In one ``trio.run``: the embedded server on SQLite in a temporary directory, a worker serving
:mod:`._demo_activities`, and this section as a client: it deploys the workflow defined there
(``examples/workflows/demo.yaml`` is the same), starts it, narrates each activity's status changes as the
server reports them, prints the result, drains the worker and stops the server. What happened
is collected in a :class:`FlowRun`; :func:`flow_highlights` judges it.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import trio
from rich.table import Table
from rich.text import Text

from ..server import Server, ServerConfig
from ..worker import FileReference, Worker, WorkerConfig, WorkerStats
from . import _demo_activities as acts
from ._streams import Streams

if TYPE_CHECKING:
    from ._demo import Highlight

__all__ = ["FlowRun", "flow_highlights", "flow_section"]

CLIENT_ID = "demo"
FOLLOW_INTERVAL = 0.03  # seconds between two looks at the workflow's status
FOLLOW_LIMIT = 60.0  # seconds the workflow may take before the section gives up
LAG_INTERVAL = 0.02  # seconds between two looks of a loop-lag probe (the worker's and the section's)


@attrs.frozen
class FlowRun:
    """What the section saw; the server's JSON documents are kept as they came (the CLI's edge)."""

    workflow: Mapping[str, Any]
    """``GET /api/v1/workflows/{id}`` once it ended (or when the section gave up)."""
    files: list[Mapping[str, Any]]
    """The files the server holds for ``extract`` (``.../activities/extract/output``)."""
    stats: WorkerStats
    """The worker's counters after it drained."""
    drain_seconds: float
    shutdown_timeout: float
    lag_interval: float
    lag_samples: tuple[tuple[float, float], ...]
    """``(time.time(), lag)`` of each look of the section's own lag probe (see :func:`_probe_lag`)."""
    demo_pid: int
    problem: str | None = None
    """Why the workflow did not complete (timed out, failed), if it did not."""

    @property
    def statuses(self) -> dict[str, str]:
        return {a["activity_key"]: a["status"] for a in self.workflow.get("activities", ())}

    def lag_during(self, started: float, finished: float) -> float | None:
        """The worst loop lag over the probe periods that overlap ``[started, finished]``."""
        # A sample taken at ``t`` covers ``[t - interval - lag, t]``.
        seen = [
            lag for t, lag in self.lag_samples if t >= started and t - self.lag_interval - lag <= finished
        ]
        return max(seen, default=None)

    def output(self, key: str) -> Mapping[str, Any]:
        for activity in self.workflow.get("activities", ()):
            if activity["activity_key"] == key:
                return activity.get("outputs") or {}
        return {}


# -- running ------------------------------------------------------------------------


class _Api:
    """The section's own little client: a token, then JSON calls that raise on 4xx/5xx."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def login(self, client_id: str, secret: str) -> None:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        token = await self.call("POST", "/api/v1/oauth/token", json=form)
        self.http.headers["Authorization"] = f"Bearer {token['access_token']}"

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = await self.http.request(method, path, **kwargs)
        reply.raise_for_status()
        return reply.json()


def _since(start: float) -> str:
    return f"{time.perf_counter() - start:5.2f} s"


async def _follow(api: _Api, workflow_id: str, io: Streams, start: float) -> Any:
    """Print each status change of the workflow and its activities until it ends; its last document."""
    seen: dict[str, str] = {}
    # Polling on purpose: the API has no change feed; every change is printed once.
    while True:
        doc = await api.call("GET", f"/api/v1/workflows/{workflow_id}")
        for activity in [*doc["activities"], {"activity_key": "workflow", "status": doc["status"]}]:
            key, status = activity["activity_key"], activity["status"]
            if seen.get(key, "not_scheduled") != status:
                seen[key] = status
                kind = acts.KINDS.get(key, "")
                io.out.print(Text(f"  {_since(start)}  {key:<14} {kind:<8} ") + _status_text(status))
        if doc["status"] in ("completed", "failed"):
            return doc
        await trio.sleep(FOLLOW_INTERVAL)


async def _probe_lag(samples: list[tuple[float, float]], interval: float) -> None:
    """How late a short sleep wakes up, as a time series.

    The worker's own probe (``WorkerStats.loop_lag_max``) only keeps the worst lag of its whole
    life, start-up included; this series lets the highlight read the lag while one activity ran.
    """
    while True:
        before = trio.current_time()
        await trio.sleep(interval)
        samples.append((time.time(), max(0.0, trio.current_time() - before - interval)))


def _worker_config(url: str, secret: str) -> WorkerConfig:
    return WorkerConfig(
        api_url=url,
        client_id=CLIENT_ID,
        client_secret=secret,
        worker=acts.WORKER,
        worker_id=f"demo_{os.getpid()}",
        max_activities=8,
        max_processes=1,
        # Short idle backoff so each stage starts promptly after the one before (the default
        # backs off to 1 s between empty polls), and a lag probe fine enough to catch a stall.
        poll_interval=0.02,
        poll_interval_max=0.05,
        lag_interval=LAG_INTERVAL,
        shutdown_timeout=5.0,
    )


async def _run_flow(tmp: Path, io: Streams) -> FlowRun:
    """Server, worker, lag probe and this client in one nursery; the workflow run end to end.

    The worker is drained (and its ``run`` has returned) before the server is cancelled, so
    every report reaches the server.
    """
    secret = secrets.token_urlsafe(16)
    server = Server(ServerConfig(db=f"sqlite:///{tmp / 'demo.db'}", port=0, clients={CLIENT_ID: secret}))
    start = time.perf_counter()
    lags: list[tuple[float, float]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_probe_lag, lags, LAG_INTERVAL)
        url = await nursery.start(server.run)
        io.out.print(
            f"  {_since(start)}  server on {url}: SQLite in a temp directory, OAuth client '{CLIENT_ID}'"
        )
        worker = Worker(_worker_config(url, secret), acts.ACTIVITIES)
        await nursery.start(worker.run)
        io.out.print(
            f"  {_since(start)}  worker {worker.config.worker_id} polling for '{acts.WORKER}' "
            f"with {worker.config.max_activities} slots"
        )
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            api = _Api(http)
            await api.login(CLIENT_ID, secret)
            doc, files, problem = await _deploy_and_follow(api, io, start)
        drain_start = time.perf_counter()
        await worker.drain()
        drain_seconds = time.perf_counter() - drain_start
        io.out.print(
            f"  {_since(start)}  worker drained in {drain_seconds * 1000:.0f} ms; stopping the server"
        )
        nursery.cancel_scope.cancel()
    return FlowRun(
        workflow=doc,
        files=files,
        stats=worker.stats(),
        drain_seconds=drain_seconds,
        shutdown_timeout=worker.config.shutdown_timeout,
        lag_interval=LAG_INTERVAL,
        lag_samples=tuple(lags),
        demo_pid=os.getpid(),
        problem=problem,
    )


async def _deploy_and_follow(
    api: _Api, io: Streams, start: float
) -> tuple[Mapping[str, Any], list[Mapping[str, Any]], str | None]:
    """Deploy, start, follow: the last workflow document, ``extract``'s files, and what went wrong."""
    deployed = await api.call("POST", "/api/v1/workflow_definitions", json=acts.DEFINITION)
    started = await api.call(
        "POST", "/api/v1/workflows", json={"definition_name": deployed["name"], "input": acts.INPUT}
    )
    workflow_id = started["workflow_id"]
    io.out.print(
        f"  {_since(start)}  deployed {deployed['name']} v{deployed['version']}, started workflow {workflow_id}"
    )
    with trio.move_on_after(FOLLOW_LIMIT) as following:
        doc = await _follow(api, workflow_id, io, start)
    if following.cancelled_caught:
        doc = await api.call("GET", f"/api/v1/workflows/{workflow_id}")
        return doc, [], f"it did not end within {FOLLOW_LIMIT:g} s (status {doc['status']})"
    if doc["status"] != "completed":
        return doc, [], f"it failed: {doc.get('error_message')}"
    made = await api.call("GET", f"/api/v1/workflows/{workflow_id}/activities/{acts.EXTRACT}/output")
    return doc, made["files"], None


# -- showing ------------------------------------------------------------------------

_STATUS_STYLES = {"completed": "green", "failed": "bold red", "skipped": "yellow", "running": "cyan"}


def _status_text(status: str) -> Text:
    return Text(status, style=_STATUS_STYLES.get(status, "dim"))


def _timestamp(text: str | None) -> float | None:
    return None if text is None else dt.datetime.fromisoformat(text).timestamp()


def _table(run: FlowRun) -> Table:
    """One row per activity: kind, status, when the server saw it claimed and for how long."""
    activities = run.workflow.get("activities", [])
    starts = [t for a in activities if (t := _timestamp(a.get("started_at"))) is not None]
    origin = min(starts, default=0.0)
    table = Table(
        title=f"workflow {run.workflow.get('id')} · {run.workflow.get('status')}", title_justify="left"
    )
    table.add_column("activity", no_wrap=True, min_width=max(len(a["activity_key"]) for a in activities))
    table.add_column("kind", style="dim", no_wrap=True, min_width=7)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("at s", justify="right", no_wrap=True, min_width=4)
    table.add_column("ms", justify="right", no_wrap=True, min_width=4)
    # Only this column may shrink; its cells are single-line Texts cut with an ellipsis.
    table.add_column("output", min_width=12)
    for activity in activities:
        began, ended = _timestamp(activity.get("started_at")), _timestamp(activity.get("completed_at"))
        output = activity.get("outputs") or activity.get("error") or {}
        shown = ", ".join(f"{k}={v}" for k, v in output.items() if k not in _NOT_SHOWN)
        table.add_row(
            activity["activity_key"],
            acts.KINDS.get(activity["activity_key"], ""),
            _status_text(activity["status"]),
            f"{began - origin:.2f}" if began is not None else "",
            f"{(ended - began) * 1000:.0f}" if began is not None and ended is not None else "",
            Text(shown, no_wrap=True, overflow="ellipsis"),
        )
    return table


_NOT_SHOWN = frozenset({"started", "finished", "thread", "read_sha256", "read_bytes", "workflow_id"})


def flow_section(io: Streams, bar: bool) -> list[Highlight]:
    """The section: run it all (a few seconds), print the result, return the highlights."""
    io.out.print(
        "The reference server (Kruxia Flow's HTTP API, SQLite) and an activity worker run\n"
        "in this process, on one Trio loop. The workflow (examples/workflows/demo.yaml)\n"
        "writes a file, fans it out to four regions in threads and to a CPU-bound\n"
        "activity in a worker process, then takes one of two branches on a condition.\n"
        "Activities: trioworks/cli/_demo_activities.py.\n"
    )
    io.out.print(
        Text("progress (seconds since start, activity, kind, status as the server reports it)", style="bold")
    )
    # Blocking file work (the temp directory) stays out of the Trio loop: it is done here, around it.
    with tempfile.TemporaryDirectory(prefix="trioworks-demo-") as tmp:
        run = trio.run(_run_flow, Path(tmp), io)
    io.out.print()
    io.out.print(_table(run))
    report = run.output(acts.REPORT).get("report")
    if report:
        io.out.print(Text("result: ", style="bold") + Text(report))
    io.out.print(Text("worker: ", style="bold") + Text(run.stats.line()))
    return flow_highlights(run)


# -- judging ------------------------------------------------------------------------


def flow_highlights(run: FlowRun) -> list[Highlight]:
    """The section's claims, each checked against ``run``."""
    from ._demo import Highlight  # here, not at the top: _demo imports this module for SECTIONS

    if run.problem is not None:
        return [Highlight(f"the workflow completes ({run.problem})", False)]
    return [
        Highlight(*_fan_out(run)),
        Highlight(*_cpu(run)),
        Highlight(*_file(run)),
        Highlight(*_branch(run)),
        Highlight(*_exactly_once(run)),
        Highlight(*_drain(run)),
    ]


def _fan_out(run: FlowRun) -> tuple[str, bool]:
    outs = [run.output(k) for k in acts.REGION_KEYS]
    if not all("started" in o and "finished" in o for o in outs):
        return "the four region activities report when they ran (some did not)", False
    first_end = min(o["finished"] for o in outs)
    last_start = max(o["started"] for o in outs)
    busy = sum(o["finished"] - o["started"] for o in outs)
    span = max(o["finished"] for o in outs) - min(o["started"] for o in outs)
    threads = len({o["thread"] for o in outs})
    gap = first_end - last_start
    text = (
        f"the fan-out overlapped: the last of the {len(outs)} region activities started "
        f"{abs(gap) * 1000:.0f} ms {'before' if gap > 0 else 'after'} the first one finished; "
        f"{threads} worker threads did {busy:.2f} s of blocking work in {span:.2f} s"
    )
    return text, last_start < first_end and threads == len(outs) and span < 0.75 * busy


def _cpu(run: FlowRun) -> tuple[str, bool]:
    cpu = run.output(acts.CPU)
    if "pid" not in cpu:
        return f"'{acts.CPU}' reports its process (it did not)", False
    seconds = cpu["finished"] - cpu["started"]
    lag = run.lag_during(cpu["started"], cpu["finished"])
    text = (
        f"'{acts.CPU}' ran in worker process {cpu['pid']} (this is {run.demo_pid}): {cpu['primes']:,} primes "
        f"below {cpu['limit']:,} in {seconds:.2f} s; meanwhile the event loop (server, worker and demo) "
        f"lagged at worst {_ms(lag)} (probed every {run.lag_interval * 1000:.0f} ms; the worker's probe saw "
        f"{_ms(run.stats.loop_lag_max)} at worst over the whole run, start-up included)"
    )
    # Run on the loop, the count would have stalled it for its whole duration.
    return text, cpu["pid"] != run.demo_pid and lag is not None and lag < seconds / 4


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.0f} ms"


def _file(run: FlowRun) -> tuple[str, bool]:
    made = run.output(acts.EXTRACT)
    reference = made.get("orders", "")
    try:
        ref = FileReference.parse(reference)
    except ValueError:
        return f"'{acts.EXTRACT}' outputs a file reference (it gave {reference!r})", False
    stored = [f for f in run.files if f.get("name") == ref.filename]
    reads = [run.output(k) for k in acts.REGION_KEYS]
    same = all(r.get("read_bytes") == made["bytes"] and r.get("read_sha256") == made["sha256"] for r in reads)
    text = (
        f"'{acts.EXTRACT}' wrote {ref.filename} ({made['bytes']:,} bytes, sha256 {made['sha256'][:12]}…); the worker "
        f"uploaded it (the server holds {stored[0]['size'] if stored else 'no'} bytes) and passed it on as "
        f"{ref.provider}://…/{ref.activity_key}/{ref.filename}; {sum(r.get('read_sha256') == made['sha256'] for r in reads)} "
        f"of {len(reads)} region activities downloaded it and read the same bytes"
    )
    ok = (
        same
        and len(stored) == 1
        and stored[0]["size"] == made["bytes"]
        and ref.workflow_id == run.workflow.get("id")
        and ref.activity_key == acts.EXTRACT
    )
    return text, ok


def _branch(run: FlowRun) -> tuple[str, bool]:
    status = run.statuses
    agg = run.output(acts.AGGREGATE)
    ran = [k for k in (acts.TAKEN, acts.SKIPPED) if status.get(k) == "completed"]
    skipped = [k for k in (acts.TAKEN, acts.SKIPPED) if status.get(k) == "skipped"]
    text = (
        f"the condition on '{acts.AGGREGATE}'.needs_review ({agg.get('total_eur', 0):,.2f} EUR vs threshold "
        f"{agg.get('review_threshold', 0):,.0f}) ran {', '.join(ran) or 'no branch'} and skipped "
        f"{', '.join(skipped) or 'none'}; '{acts.REPORT}' went on with the branch that ran"
    )
    return text, len(ran) == 1 and len(skipped) == 1 and status.get(acts.REPORT) == "completed"


def _exactly_once(run: FlowRun) -> tuple[str, bool]:
    status = run.statuses
    completed = sum(s == "completed" for s in status.values())
    skipped = sum(s == "skipped" for s in status.values())
    stats = run.stats
    text = (
        f"every activity ran exactly once: the server shows {completed} completed and {skipped} skipped "
        f"of {len(status)}; the worker started {stats.started}, completed {stats.completed}, failed {stats.failed}"
    )
    ok = (
        completed + skipped == len(status) == len(acts.DEFINITION["activities"])
        and stats.started == stats.completed == completed
        and stats.failed == 0
        and stats.lease_lost == 0
    )
    return text, ok


def _drain(run: FlowRun) -> tuple[str, bool]:
    stats = run.stats
    text = (
        f"the worker drained cleanly in {run.drain_seconds * 1000:.0f} ms (limit {run.shutdown_timeout:g} s): "
        f"{stats.running} running, {stats.slots_used} slots held, {stats.reports_lost} reports lost, "
        f"{stats.poll_errors} failed polls"
    )
    ok = (
        run.drain_seconds < run.shutdown_timeout
        and stats.running == 0
        and stats.slots_used == 0
        and stats.reports_lost == 0
        and stats.poll_errors == 0
    )
    return text, ok
