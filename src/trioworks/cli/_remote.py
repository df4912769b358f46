"""The CLI's thin HTTP client of a workflow server: the URL and token from the environment,
errors turned into one-line CLI errors (used by ``_workflow``, ``_workflow_more`` and ``_schedule``)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import httpx
import trio

from ._errors import CliError
from ._server import single_error

__all__ = ["DEFAULT_URL", "Api", "ServerUnreachable", "parse_input", "run_remote"]

DEFAULT_URL = "http://127.0.0.1:8080"


class ServerUnreachable(CliError):
    exit_code = 1


class Api:
    """A thin async client: token on open, errors turned into one-line CLI errors."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            reply = await self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach the server at {self.client.base_url}: {exc}") from exc
        if reply.status_code >= 400:
            raise CliError(_describe_error(reply))
        if not reply.content:  # 204 No Content (a delete)
            return None
        return reply.json()


def _describe_error(reply: httpx.Response) -> str:
    try:
        error = reply.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"server answered {reply.status_code}: {reply.text[:200]}"
    text = f"server answered {reply.status_code} {error.get('code')}: {error.get('message')}"
    fields = (error.get("details") or {}).get("field_errors") or {}
    for field, messages in fields.items():
        text += "".join(f"\n  {field}: {m}" for m in messages)
    if reply.status_code == 401:
        text += "\n  (set KRUXIAFLOW_CLIENT_ID and KRUXIAFLOW_CLIENT_SECRET)"
    return text


async def _authenticate(api: Api) -> None:
    client_id, secret = os.environ.get("KRUXIAFLOW_CLIENT_ID"), os.environ.get("KRUXIAFLOW_CLIENT_SECRET")
    if client_id and secret:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        token = await api.call("POST", "/api/v1/oauth/token", json=form)
        api.client.headers["Authorization"] = f"Bearer {token['access_token']}"


def run_remote(args: argparse.Namespace, action: Any) -> Any:
    """``await action(api)`` in ``trio.run`` with an authenticated client; CLI errors unwrapped."""
    url = args.url or os.environ.get("KRUXIAFLOW_API_URL") or DEFAULT_URL

    async def main() -> Any:
        async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=30) as client:
            api = Api(client)
            await _authenticate(api)
            return await action(api)

    try:
        return trio.run(main)
    except BaseException as exc:
        error = single_error(exc)
        if isinstance(error, CliError):
            raise error from exc
        raise


def parse_input(text: str, flag: str = "--input") -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{flag}: invalid JSON: {exc.msg} (column {exc.colno})") from exc
    if not isinstance(value, dict):
        raise CliError(f"{flag}: expected a JSON object, got {type(value).__name__}")
    return value
