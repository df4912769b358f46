"""``trioworks demo``, section 2: the reference server and the activity worker, end to end.

In one ``trio.run``: the embedded server on SQLite in a temporary directory, a worker serving
:mod:`._demo_activities`, and this section as a client: it deploys the workflow defined there
(``examples/workflows/demo.yaml`` is the same), starts it, narrates each activity's status
changes as the server reports them, prints the result, drains the worker and stops the server.
What happened is collected in a :class:`FlowRun`, which :func:`flow_highlights` judges
(``_demo_flow_highlights.py``).

Nursery tree of :func:`_run_flow` (one ``trio.run``)::

    nursery
    ├── _probe_lag                 the section's loop-lag time series
    ├── Server.run                 hypercorn + lease sweeper (its own nursery, limiters)
    ├── Worker.run                 poller, activities, lag ticker (its own nurseries, limiters)
    └── (body) the demo client     deploy, start, follow; then worker.drain(); then cancel
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

import httpx
import trio
from rich.table import Table
from rich.text import Text

from ..server import Server, ServerConfig
from ..worker import Worker, WorkerConfig
from . import _demo_activities as acts
from ._demo_flow_highlights import FlowRun, flow_highlights
from ._streams import Streams

if TYPE_CHECKING:
    from ._demo import Highlight

__all__ = ["FlowRun", "flow_highlights", "flow_section"]

CLIENT_ID = "demo"
FOLLOW_INTERVAL = 0.03  # seconds between two looks at the workflow's status
FOLLOW_LIMIT = 60.0  # seconds the workflow may take before the section gives up
LAG_INTERVAL = 0.02  # seconds between two looks of a loop-lag probe (the worker's and the section's)


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


def _http_problem(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        try:
            error = exc.response.json()["error"]
            detail = f"{error['code']}: {error['message']}"
            fields = (error.get("details") or {}).get("field_errors") or {}
            detail += "".join(f"; {field}: {', '.join(msgs)}" for field, msgs in fields.items())
        except (ValueError, KeyError, TypeError):
            detail = exc.response.text[:200]
        return f"{exc.request.method} {exc.request.url.path}: the server answered {exc.response.status_code} {detail}"
    return f"the demo's HTTP call failed: {type(exc).__name__}: {exc}"


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
            try:
                await api.login(CLIENT_ID, secret)
                doc, files, problem = await _deploy_and_follow(api, io, start)
            except httpx.HTTPError as exc:  # reported as a failed highlight; the worker still drains
                doc, files, problem = {}, (), _http_problem(exc)
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
) -> tuple[Mapping[str, Any], tuple[Mapping[str, Any], ...], str | None]:
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
        return doc, (), f"it did not end within {FOLLOW_LIMIT:g} s (status {doc['status']})"
    if doc["status"] != "completed":
        return doc, (), f"it failed: {doc.get('error_message')}"
    made = await api.call("GET", f"/api/v1/workflows/{workflow_id}/activities/{acts.EXTRACT}/output")
    return doc, tuple(made["files"]), None


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
    table.add_column(
        "activity", no_wrap=True, min_width=max((len(a["activity_key"]) for a in activities), default=8)
    )
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
    """The section: run it all (a few seconds), print the result, return the highlights.

    Progress is printed as lines on ``io.out`` whatever ``bar`` says: the status changes are
    what this section shows. Problems (the workflow failed or timed out, the server refused a
    call) become one false highlight naming them; the worker is drained and the server stopped
    either way.
    """
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
    if run.workflow:
        io.out.print(_table(run))
    report = run.output(acts.REPORT).get("report")
    if report:
        io.out.print(Text("result: ", style="bold") + Text(report))
    io.out.print(Text("worker: ", style="bold") + Text(run.stats.line()))
    return flow_highlights(run)
