"""The demo's section 2, run: the reference server and the activity worker, end to end.

In the caller's ``trio.run``: the embedded server on SQLite in a directory the caller gives, a
worker serving :mod:`trioworks.demo.activities`, and this module as a client: it deploys the
workflow defined there (``examples/workflows/demo.yaml`` is the same), starts it, follows each
activity's status changes as the server reports them (each one a :class:`FlowStep` for a
narrator), drains the worker and stops the server. What happened is collected in a
:class:`FlowRun`, which :func:`flow_highlights` judges (``_flow_highlights.py``).

Nursery tree of :func:`run_flow`::

    nursery
    ├── _probe_lag                 the run's loop-lag time series
    ├── Server.run                 HTTP front + lease sweeper (its own nursery, limiters)
    ├── Worker.run                 poller, activities, lag ticker (its own nurseries, limiters)
    └── (body) the demo client     deploy, start, follow; then worker.drain(); then cancel
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from ..server import Server, ServerConfig
from ..worker import Worker, WorkerConfig
from . import activities as acts
from ._flow_highlights import FlowRun

__all__ = ["FlowStep", "run_flow"]

CLIENT_ID = "demo"
FOLLOW_INTERVAL = 0.03  # seconds between two looks at the workflow's status
FOLLOW_LIMIT = 60.0  # seconds the workflow may take before the section gives up
LAG_INTERVAL = 0.02  # seconds between two looks of a loop-lag probe (the worker's and the section's)


@attrs.frozen(kw_only=True)
class FlowStep:
    """One thing :func:`run_flow` did, as it happened: a line of ``text``, or an activity's new
    ``status`` as the server reported it (``activity`` ``"workflow"``: the workflow's own)."""

    seconds: float
    """Since the run started."""
    text: str = ""
    activity: str | None = None
    kind: str = ""
    """How the activity runs: ``thread``, ``process`` or ``async`` (``""`` for the workflow)."""
    status: str | None = None


OnStep = Callable[[FlowStep], None]


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


class _Steps:
    """Hands each step to the caller's ``on_step``, timed from the start of the run."""

    def __init__(self, on_step: OnStep | None) -> None:
        self._on_step = on_step
        self._start = time.perf_counter()

    def __call__(self, text: str = "", **status: str) -> None:
        if self._on_step is not None:
            self._on_step(FlowStep(seconds=time.perf_counter() - self._start, text=text, **status))


async def _follow(api: _Api, workflow_id: str, step: _Steps) -> Any:
    """Print each status change of the workflow and its activities until it ends; its last document."""
    seen: dict[str, str] = {}
    # Polling on purpose: the API has no change feed; every change is printed once.
    while True:
        doc = await api.call("GET", f"/api/v1/workflows/{workflow_id}")
        for activity in [*doc["activities"], {"activity_key": "workflow", "status": doc["status"]}]:
            key, status = activity["activity_key"], activity["status"]
            if seen.get(key, "not_scheduled") != status:
                seen[key] = status
                step(activity=key, kind=acts.KINDS.get(key, ""), status=status)
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


async def run_flow(directory: Path, *, on_step: OnStep | None = None) -> FlowRun:
    """Server (its SQLite file in ``directory``), worker, lag probe and this client in one nursery:
    the workflow run end to end, each step handed to ``on_step`` as it happens.

    The worker is drained (and its ``run`` has returned) before the server is cancelled, so
    every report reaches the server. A workflow that fails or times out, or a call the server
    refuses, ends up in :attr:`FlowRun.problem` (the worker is drained and the server stopped
    either way); errors starting the server or the worker propagate.
    """
    secret = secrets.token_urlsafe(16)
    db = f"sqlite:///{directory / 'demo.db'}"
    server = Server(ServerConfig(db=db, port=0, clients={CLIENT_ID: secret}))
    step = _Steps(on_step)
    lags: list[tuple[float, float]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_probe_lag, lags, LAG_INTERVAL)
        url = await nursery.start(server.run)
        step(f"server on {url}: SQLite in a temp directory, OAuth client '{CLIENT_ID}'")
        worker = Worker(_worker_config(url, secret), acts.ACTIVITIES)
        await nursery.start(worker.run)
        step(
            f"worker {worker.config.worker_id} polling for '{acts.WORKER}' "
            f"with {worker.config.max_activities} slots"
        )
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            api = _Api(http)
            try:
                await api.login(CLIENT_ID, secret)
                doc, files, problem = await _deploy_and_follow(api, step)
            except httpx.HTTPError as exc:  # reported as a failed highlight; the worker still drains
                doc, files, problem = {}, (), _http_problem(exc)
        drain_start = time.perf_counter()
        await worker.drain()
        drain_seconds = time.perf_counter() - drain_start
        step(f"worker drained in {drain_seconds * 1000:.0f} ms; stopping the server")
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
    api: _Api, step: _Steps
) -> tuple[Mapping[str, Any], tuple[Mapping[str, Any], ...], str | None]:
    """Deploy, start, follow: the last workflow document, ``extract``'s files, and what went wrong."""
    deployed = await api.call("POST", "/api/v1/workflow_definitions", json=acts.DEFINITION)
    started = await api.call(
        "POST", "/api/v1/workflows", json={"definition_name": deployed["name"], "input": acts.INPUT}
    )
    workflow_id = started["workflow_id"]
    step(
        f"deployed {deployed['name']} v{deployed.get('version_number', deployed['version'])}, started workflow {workflow_id}"
    )
    with trio.move_on_after(FOLLOW_LIMIT) as following:
        doc = await _follow(api, workflow_id, step)
    if following.cancelled_caught:
        doc = await api.call("GET", f"/api/v1/workflows/{workflow_id}")
        return doc, (), f"it did not end within {FOLLOW_LIMIT:g} s (status {doc['status']})"
    if doc["status"] != "completed":
        return doc, (), f"it failed: {doc.get('error_message')}"
    made = await api.call("GET", f"/api/v1/workflows/{workflow_id}/activities/{acts.EXTRACT}/output")
    return doc, tuple(made["files"]), None
