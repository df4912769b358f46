"""The API client: :class:`AsyncClient` (Trio) and :class:`Client` (blocking), the SDK's verbs.

Method names, arguments and return values (the server's JSON as dicts) are the original SDK's
``KruxiaFlow`` / ``AsyncKruxiaFlow``, with two corrections so that the same code works against
both the original server and ``trioworks server``: ``deploy`` posts to
``/api/v1/workflow_definitions`` (the SDK posts to ``/api/v1/workflows``, which the original
server reads as a workflow submission) and ``start_workflow`` posts ``{definition_name, input}``
to ``/api/v1/workflows`` (the SDK's ``/api/v1/workflows/start`` is not a route of the original).
Added: ``signal_workflow``, ``list_workflows``, ``list_definitions``, ``get_definition``,
``wait_for_workflow``, YAML text or a file path for ``deploy``, OAuth client credentials, and
the original server's recurring schedules (``create_schedule``, ``list_schedules``,
``get_schedule``, ``update_schedule``, ``delete_schedule``, with ``pause_schedule`` /
``resume_schedule`` for ``enabled``).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from ._errors import AuthenticationError, DeploymentError, KruxiaFlowError, WorkflowNotFoundError
from ._models import Workflow

__all__ = ["TERMINAL_STATUSES", "AsyncClient", "Client"]

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


@attrs.frozen
class _Call:
    """One request, described independently of the sync/async transport."""

    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    params: Mapping[str, Any] | None = None
    error: type[KruxiaFlowError] = KruxiaFlowError
    what: str = "request"
    empty: bool = False


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return str(error.get("message") or error.get("details") or error.get("field_errors") or error)
    return response.text[:500]


def _result(call: _Call, response: httpx.Response) -> Any:
    status = response.status_code
    if status == 401:
        raise AuthenticationError(
            f"{call.what}: authentication failed: {_message(response)}", status_code=status
        )
    if status == 404:
        raise WorkflowNotFoundError(f"{call.what}: not found: {_message(response)}", status_code=status)
    if status >= 400:
        raise call.error(f"{call.what} failed: {status} - {_message(response)}", status_code=status)
    if call.empty or not response.content:
        return None
    return response.json()


def _deploy_call(workflow: Workflow | Mapping[str, Any] | str | os.PathLike[str]) -> _Call:
    path = "/api/v1/workflow_definitions"
    if isinstance(workflow, Workflow):
        return _Call(
            "POST", path, json=workflow.to_dict(), error=DeploymentError, what=f"deploy {workflow.name}"
        )
    if isinstance(workflow, Mapping):
        return _Call(
            "POST", path, json=dict(workflow), error=DeploymentError, what=f"deploy {workflow.get('name')}"
        )
    if isinstance(workflow, os.PathLike) or (
        isinstance(workflow, str) and "\n" not in workflow and workflow.endswith((".yaml", ".yml", ".json"))
    ):
        source = Path(workflow)
        data = source.read_bytes()
        kind = "application/json" if source.suffix == ".json" else "application/yaml"
        return _Call(
            "POST",
            path,
            content=data,
            headers={"Content-Type": kind},
            error=DeploymentError,
            what=f"deploy {source}",
        )
    if isinstance(workflow, str):
        return _Call(
            "POST",
            path,
            content=workflow.encode(),
            headers={"Content-Type": "application/yaml"},
            error=DeploymentError,
            what="deploy",
        )
    raise TypeError(
        f"deploy() takes a Workflow, a mapping, YAML text or a path, not {type(workflow).__name__}"
    )


class _Calls:
    """The verbs, as :class:`_Call` values; the two clients only send them."""

    @staticmethod
    def start(name: str, inputs: Mapping[str, Any] | None, version: int | str | None) -> _Call:
        body: dict[str, Any] = {"definition_name": name, "input": dict(inputs or {})}
        if version is not None:
            body["version"] = int(version) if isinstance(version, str) and version.isdigit() else version
        return _Call("POST", "/api/v1/workflows", json=body, what=f"start workflow {name!r}")

    @staticmethod
    def get(workflow_id: str) -> _Call:
        return _Call("GET", f"/api/v1/workflows/{workflow_id}", what=f"get workflow {workflow_id}")

    @staticmethod
    def output(workflow_id: str) -> _Call:
        return _Call("GET", f"/api/v1/workflows/{workflow_id}/output", what=f"get output of {workflow_id}")

    @staticmethod
    def activity_output(workflow_id: str, key: str) -> _Call:
        return _Call(
            "GET",
            f"/api/v1/workflows/{workflow_id}/activities/{key}/output",
            what=f"get output of {workflow_id}/{key}",
        )

    @staticmethod
    def cancel(workflow_id: str) -> _Call:
        return _Call(
            "POST",
            f"/api/v1/workflows/{workflow_id}/cancel",
            what=f"cancel workflow {workflow_id}",
            empty=True,
        )

    @staticmethod
    def cost(workflow_id: str) -> _Call:
        return _Call("GET", f"/api/v1/workflows/{workflow_id}/cost", what=f"get cost of {workflow_id}")

    @staticmethod
    def signal(workflow_id: str, activity_key: str, data: Any, event_name: str | None) -> _Call:
        body: dict[str, Any] = {"activity_key": activity_key, "data": data}
        if event_name is not None:
            body["event_name"] = event_name
        return _Call(
            "POST",
            f"/api/v1/workflows/{workflow_id}/signal",
            json=body,
            what=f"signal {workflow_id}/{activity_key}",
        )

    @staticmethod
    def list(
        status: str | None, definition_name: str | None, limit: int | None, offset: int | None, **dates: Any
    ) -> _Call:
        params = {
            k: v.isoformat() if hasattr(v, "isoformat") else v
            for k, v in {
                "status": status,
                "definition_name": definition_name,
                "limit": limit,
                "offset": offset,
                **dates,
            }.items()
            if v is not None
        }
        return _Call("GET", "/api/v1/workflows", params=params, what="list workflows")

    @staticmethod
    def definitions() -> _Call:
        return _Call("GET", "/api/v1/workflow_definitions", what="list definitions")

    @staticmethod
    def definition(name: str, version: int | None) -> _Call:
        params = {"version": version} if version is not None else None
        return _Call(
            "GET", f"/api/v1/workflow_definitions/{name}", params=params, what=f"get definition {name!r}"
        )


def _schedule_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The set fields of a schedule request (None: not sent, so a PATCH leaves it unchanged)."""
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in fields.items() if v is not None}


class _ScheduleCalls:
    """``/api/v1/schedules``: the original server's recurring schedules (the SDK has no verbs
    for them; the names are its server's handlers)."""

    @staticmethod
    def create(name: str, definition_name: str, fields: Mapping[str, Any]) -> _Call:
        body = {"name": name, "definition_name": definition_name, **_schedule_body(fields)}
        return _Call("POST", "/api/v1/schedules", json=body, what=f"create schedule {name!r}")

    @staticmethod
    def list() -> _Call:
        return _Call("GET", "/api/v1/schedules", what="list schedules")

    @staticmethod
    def get(schedule_id: str) -> _Call:
        return _Call("GET", f"/api/v1/schedules/{schedule_id}", what=f"get schedule {schedule_id}")

    @staticmethod
    def update(schedule_id: str, fields: Mapping[str, Any]) -> _Call:
        return _Call(
            "PATCH",
            f"/api/v1/schedules/{schedule_id}",
            json=_schedule_body(fields),
            what=f"update schedule {schedule_id}",
        )

    @staticmethod
    def delete(schedule_id: str) -> _Call:
        return _Call(
            "DELETE", f"/api/v1/schedules/{schedule_id}", what=f"delete schedule {schedule_id}", empty=True
        )


@attrs.frozen
class _Settings:
    api_url: str
    api_token: str
    client_id: str
    client_secret: str
    timeout: float


def _settings(
    api_url: str | None,
    api_token: str | None,
    client_id: str | None,
    client_secret: str | None,
    timeout: float,
) -> _Settings:
    url = (api_url or os.environ.get("KRUXIAFLOW_API_URL", "")).rstrip("/")
    if not url:
        raise ValueError(
            "api_url is required. Pass it directly or set KRUXIAFLOW_API_URL environment variable."
        )
    token = api_token or os.environ.get("KRUXIAFLOW_TOKEN", "")
    if token.startswith("${") and token.endswith("}"):  # the SDK's indirection: "${VAR}"
        token = os.environ.get(token[2:-1], "")
        if not token:
            raise ValueError(f"Environment variable {api_token[2:-1] if api_token else ''} is not set")
    cid = client_id if client_id is not None else os.environ.get("KRUXIAFLOW_CLIENT_ID", "")
    secret = client_secret if client_secret is not None else os.environ.get("KRUXIAFLOW_CLIENT_SECRET", "")
    if cid and not secret:
        raise ValueError("client_id is set but client_secret is empty")
    return _Settings(url, token, cid, secret, timeout)


def _token_call(settings: _Settings) -> dict[str, Any]:
    return {
        "grant_type": "client_credentials",
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
    }


def _bearer(response: httpx.Response) -> str:
    if response.status_code != 200:
        raise AuthenticationError(
            f"token request refused: {_message(response)}", status_code=response.status_code
        )
    return str(response.json()["access_token"])


class AsyncClient:
    """Trio client (the SDK's ``AsyncKruxiaFlow``). Use ``async with``; every method is a checkpoint.

    Authentication: ``api_token`` (or ``$KRUXIAFLOW_TOKEN``) is sent as is; otherwise
    ``client_id``/``client_secret`` (or ``$KRUXIAFLOW_CLIENT_ID``/``_SECRET``) fetch a token on
    the first call and again once after a 401; with neither, no Authorization header is sent
    (a development server). ``transport`` replaces httpx's network transport (tests).
    """

    def __init__(
        self,
        api_url: str | None = None,
        api_token: str | None = None,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = _settings(api_url, api_token, client_id, client_secret, timeout)
        self._token = self._settings.api_token
        self._client = httpx.AsyncClient(
            base_url=self._settings.api_url, timeout=timeout, transport=transport
        )

    async def _send(self, call: _Call) -> Any:
        fresh = False
        if not self._token and self._settings.client_id:
            await self._refresh()
            fresh = True
        while True:
            headers = dict(call.headers or {})
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            try:
                response = await self._client.request(
                    call.method,
                    call.path,
                    json=call.json,
                    content=call.content,
                    headers=headers,
                    params=call.params,
                )
            except httpx.HTTPError as exc:
                raise call.error(f"{call.what}: request failed: {exc}") from exc
            if response.status_code == 401 and self._settings.client_id and not fresh:
                await self._refresh()
                fresh = True
                continue
            return _result(call, response)

    async def _refresh(self) -> None:
        try:
            response = await self._client.post("/api/v1/oauth/token", json=_token_call(self._settings))
        except httpx.HTTPError as exc:
            raise AuthenticationError(f"token request failed: {exc}") from exc
        self._token = _bearer(response)

    async def deploy(self, workflow: Workflow | Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
        """Deploy a definition (a :class:`Workflow`, a dict, YAML text or a ``.yaml``/``.json`` path).

        Returns ``{name, version, created_at}`` (``unchanged: true`` when identical to the latest);
        :exc:`DeploymentError` with the server's reasons when refused.
        """
        return await self._send(_deploy_call(workflow))

    async def start_workflow(
        self, workflow_name: str, *, inputs: Mapping[str, Any] | None = None, version: int | str | None = None
    ) -> dict[str, Any]:
        """Start the latest (or ``version``) of ``workflow_name``; returns ``{workflow_id, ...}``."""
        return await self._send(_Calls.start(workflow_name, inputs, version))

    async def get_workflow(self, workflow_id: str) -> dict[str, Any]:
        return await self._send(_Calls.get(workflow_id))

    async def get_workflow_output(self, workflow_id: str) -> dict[str, Any]:
        return await self._send(_Calls.output(workflow_id))

    async def get_activity_output(self, workflow_id: str, activity_key: str) -> dict[str, Any]:
        return await self._send(_Calls.activity_output(workflow_id, activity_key))

    async def cancel_workflow(self, workflow_id: str) -> None:
        await self._send(_Calls.cancel(workflow_id))

    async def get_workflow_cost(self, workflow_id: str) -> dict[str, Any]:
        """The original's cost summary (``total_cost_usd`` as a decimal string)."""
        return await self._send(_Calls.cost(workflow_id))

    async def signal_workflow(
        self, workflow_id: str, activity_key: str, data: Any = None, *, event_name: str | None = None
    ) -> dict[str, Any]:
        """Deliver a signal to the activity ``activity_key`` waiting for one."""
        return await self._send(_Calls.signal(workflow_id, activity_key, data, event_name))

    async def list_workflows(
        self,
        *,
        status: str | None = None,
        definition_name: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        created_after: str | datetime.datetime | None = None,
        created_before: str | datetime.datetime | None = None,
    ) -> dict[str, Any]:
        """A page of workflows, newest first (the server's default ``limit`` is 100)."""
        dates = {"created_after": created_after, "created_before": created_before}
        return await self._send(_Calls.list(status, definition_name, limit, offset, **dates))

    async def list_definitions(self) -> dict[str, Any]:
        return await self._send(_Calls.definitions())

    async def get_definition(self, name: str, *, version: int | None = None) -> dict[str, Any]:
        return await self._send(_Calls.definition(name, version))

    @contextlib.asynccontextmanager
    async def open_file(
        self, workflow_id: str, activity_key: str, filename: str
    ) -> AsyncIterator[httpx.Response]:
        """Stream a stored activity file (``GET /api/v1/workflows/{id}/activities/{key}/files/{name}``,
        the ``download_url`` of :meth:`get_activity_output`'s ``files``).

        Yields the response once its status is 2xx; read it with ``aiter_bytes()``; closed on the
        way out. :exc:`WorkflowNotFoundError` when the file (or its content) is gone,
        :exc:`KruxiaFlowError` for any other refusal or a transport error.
        """
        path = f"/api/v1/workflows/{workflow_id}/activities/{activity_key}/files/{filename}"
        call = _Call("GET", path, what=f"download {workflow_id}/{activity_key}/{filename}")
        if not self._token and self._settings.client_id:
            await self._refresh()
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
            try:
                async with self._client.stream("GET", path, headers=headers) as response:
                    if response.status_code == 401 and attempt == 1 and self._settings.client_id:
                        await self._refresh()
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                        _result(call, response)  # raises the mapped error
                    yield response
                    return
            except httpx.HTTPError as exc:
                raise KruxiaFlowError(f"{call.what}: request failed: {exc}") from exc

    async def create_schedule(
        self,
        name: str,
        definition_name: str,
        *,
        cron: str | None = None,
        timezone: str | None = None,
        interval_seconds: int | None = None,
        input: Mapping[str, Any] | None = None,
        definition_version: int | str | None = None,
        overlap_policy: str | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """Create a recurring schedule: exactly one of ``cron`` (evaluated in ``timezone``,
        default UTC) and ``interval_seconds``; ``overlap_policy`` ``skip`` (default) or ``allow``."""
        fields = {
            "cron": cron,
            "timezone": timezone,
            "interval_seconds": interval_seconds,
            "input": input,
            "definition_version": definition_version,
            "overlap_policy": overlap_policy,
            "enabled": enabled,
        }
        return await self._send(_ScheduleCalls.create(name, definition_name, fields))

    async def list_schedules(self) -> dict[str, Any]:
        """``{schedules, count}``, by name."""
        return await self._send(_ScheduleCalls.list())

    async def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        return await self._send(_ScheduleCalls.get(schedule_id))

    async def update_schedule(
        self,
        schedule_id: str,
        *,
        cron: str | None = None,
        timezone: str | None = None,
        interval_seconds: int | None = None,
        input: Mapping[str, Any] | None = None,
        overlap_policy: str | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change the given fields (None: unchanged); a new cadence recomputes ``next_run_at``."""
        fields = {
            "cron": cron,
            "timezone": timezone,
            "interval_seconds": interval_seconds,
            "input": input,
            "overlap_policy": overlap_policy,
            "enabled": enabled,
        }
        return await self._send(_ScheduleCalls.update(schedule_id, fields))

    async def pause_schedule(self, schedule_id: str) -> dict[str, Any]:
        """``update_schedule(schedule_id, enabled=False)``."""
        return await self._send(_ScheduleCalls.update(schedule_id, {"enabled": False}))

    async def resume_schedule(self, schedule_id: str) -> dict[str, Any]:
        """``update_schedule(schedule_id, enabled=True)``: the next run is the next occurrence
        from now (one missed while paused does not run at once)."""
        return await self._send(_ScheduleCalls.update(schedule_id, {"enabled": True}))

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._send(_ScheduleCalls.delete(schedule_id))

    async def wait_for_workflow(self, workflow_id: str, *, poll_interval: float = 0.25) -> dict[str, Any]:
        """Poll :meth:`get_workflow` until the workflow is completed, failed or cancelled.

        No timeout argument: bound the wait the Trio way, with the caller's ``trio.fail_after`` /
        ``move_on_after`` (cancelling it stops the polling at once).
        """
        while True:
            body = await self.get_workflow(workflow_id)
            if body.get("status") in TERMINAL_STATUSES:
                return body
            await trio.sleep(poll_interval)

    async def aclose(self) -> None:
        await self._client.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.aclose()


class Client:
    """Blocking client (the SDK's ``KruxiaFlow``): the same verbs as :class:`AsyncClient`.

    Not for use inside Trio code (it blocks the thread); use :class:`AsyncClient` there.
    """

    def __init__(
        self,
        api_url: str | None = None,
        api_token: str | None = None,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = _settings(api_url, api_token, client_id, client_secret, timeout)
        self._token = self._settings.api_token
        self._client = httpx.Client(base_url=self._settings.api_url, timeout=timeout, transport=transport)

    def _send(self, call: _Call) -> Any:
        fresh = False
        if not self._token and self._settings.client_id:
            self._refresh()
            fresh = True
        while True:
            headers = dict(call.headers or {})
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            try:
                response = self._client.request(
                    call.method,
                    call.path,
                    json=call.json,
                    content=call.content,
                    headers=headers,
                    params=call.params,
                )
            except httpx.HTTPError as exc:
                raise call.error(f"{call.what}: request failed: {exc}") from exc
            if response.status_code == 401 and self._settings.client_id and not fresh:
                self._refresh()
                fresh = True
                continue
            return _result(call, response)

    def _refresh(self) -> None:
        try:
            response = self._client.post("/api/v1/oauth/token", json=_token_call(self._settings))
        except httpx.HTTPError as exc:
            raise AuthenticationError(f"token request failed: {exc}") from exc
        self._token = _bearer(response)

    def deploy(self, workflow: Workflow | Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
        return self._send(_deploy_call(workflow))

    def start_workflow(
        self, workflow_name: str, *, inputs: Mapping[str, Any] | None = None, version: int | str | None = None
    ) -> dict[str, Any]:
        return self._send(_Calls.start(workflow_name, inputs, version))

    def get_workflow(self, workflow_id: str) -> dict[str, Any]:
        return self._send(_Calls.get(workflow_id))

    def get_workflow_output(self, workflow_id: str) -> dict[str, Any]:
        return self._send(_Calls.output(workflow_id))

    def get_activity_output(self, workflow_id: str, activity_key: str) -> dict[str, Any]:
        return self._send(_Calls.activity_output(workflow_id, activity_key))

    def cancel_workflow(self, workflow_id: str) -> None:
        self._send(_Calls.cancel(workflow_id))

    def get_workflow_cost(self, workflow_id: str) -> dict[str, Any]:
        return self._send(_Calls.cost(workflow_id))

    def signal_workflow(
        self, workflow_id: str, activity_key: str, data: Any = None, *, event_name: str | None = None
    ) -> dict[str, Any]:
        return self._send(_Calls.signal(workflow_id, activity_key, data, event_name))

    def list_workflows(
        self,
        *,
        status: str | None = None,
        definition_name: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        created_after: str | datetime.datetime | None = None,
        created_before: str | datetime.datetime | None = None,
    ) -> dict[str, Any]:
        dates = {"created_after": created_after, "created_before": created_before}
        return self._send(_Calls.list(status, definition_name, limit, offset, **dates))

    def list_definitions(self) -> dict[str, Any]:
        return self._send(_Calls.definitions())

    def get_definition(self, name: str, *, version: int | None = None) -> dict[str, Any]:
        return self._send(_Calls.definition(name, version))

    def create_schedule(
        self,
        name: str,
        definition_name: str,
        *,
        cron: str | None = None,
        timezone: str | None = None,
        interval_seconds: int | None = None,
        input: Mapping[str, Any] | None = None,
        definition_version: int | str | None = None,
        overlap_policy: str | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        fields = {
            "cron": cron,
            "timezone": timezone,
            "interval_seconds": interval_seconds,
            "input": input,
            "definition_version": definition_version,
            "overlap_policy": overlap_policy,
            "enabled": enabled,
        }
        return self._send(_ScheduleCalls.create(name, definition_name, fields))

    def list_schedules(self) -> dict[str, Any]:
        return self._send(_ScheduleCalls.list())

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self._send(_ScheduleCalls.get(schedule_id))

    def update_schedule(
        self,
        schedule_id: str,
        *,
        cron: str | None = None,
        timezone: str | None = None,
        interval_seconds: int | None = None,
        input: Mapping[str, Any] | None = None,
        overlap_policy: str | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        fields = {
            "cron": cron,
            "timezone": timezone,
            "interval_seconds": interval_seconds,
            "input": input,
            "overlap_policy": overlap_policy,
            "enabled": enabled,
        }
        return self._send(_ScheduleCalls.update(schedule_id, fields))

    def pause_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self._send(_ScheduleCalls.update(schedule_id, {"enabled": False}))

    def resume_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self._send(_ScheduleCalls.update(schedule_id, {"enabled": True}))

    def delete_schedule(self, schedule_id: str) -> None:
        self._send(_ScheduleCalls.delete(schedule_id))

    def wait_for_workflow(
        self, workflow_id: str, *, poll_interval: float = 0.25, timeout: float | None = None
    ) -> dict[str, Any]:
        """Poll until completed, failed or cancelled; :exc:`TimeoutError` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            body = self.get_workflow(workflow_id)
            if body.get("status") in TERMINAL_STATUSES:
                return body
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {workflow_id} still {body.get('status')} after {timeout} s")
            time.sleep(poll_interval)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()
