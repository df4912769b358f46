"""``trioworks workflow deploy|run|status|cancel``: talk HTTP to a workflow server.

The server is ``--url`` or ``$KRUXIAFLOW_API_URL`` (default ``http://127.0.0.1:8080``); with
``$KRUXIAFLOW_CLIENT_ID`` and ``$KRUXIAFLOW_CLIENT_SECRET`` set, a client-credentials token is
fetched first (a server in ``--insecure-dev`` mode needs none).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import httpx
import trio
import yaml

from ._errors import CliError
from ._server import single_error
from ._streams import Streams

__all__ = ["register"]

_DEFAULT_URL = "http://127.0.0.1:8080"


class ServerUnreachable(CliError):
    exit_code = 1


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    workflow = commands.add_parser(
        "workflow", parents=[common], help="deploy, run and inspect server workflows"
    )
    sub = workflow.add_subparsers(title="commands", metavar="COMMAND", required=True)
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--url", metavar="URL", help=f"server URL (default $KRUXIAFLOW_API_URL or {_DEFAULT_URL})"
    )

    deploy = sub.add_parser(
        "deploy", parents=[common, remote], help="deploy a workflow definition (YAML or JSON)"
    )
    deploy.add_argument("file", type=Path, metavar="FILE.yaml")
    deploy.set_defaults(handler=_deploy)

    run = sub.add_parser(
        "run",
        parents=[common, remote],
        help="start a workflow",
        description="Start a workflow. Exit codes: 0 started (or completed with --wait), 1 it failed, 2 bad input.",
    )
    run.add_argument("name", metavar="NAME", help="the definition name")
    run.add_argument("--input", default="{}", metavar="JSON", help="the workflow input, a JSON object")
    run.add_argument("--version", type=int, metavar="N", help="the definition version (default latest)")
    run.add_argument("--unique-key", metavar="KEY", help="refuse to start a second workflow with this key")
    run.add_argument("--wait", action="store_true", help="follow progress until it ends; print the output")
    run.add_argument("--poll-interval", type=float, default=0.5, metavar="S", help=argparse.SUPPRESS)
    run.set_defaults(handler=_run)

    status = sub.add_parser("status", parents=[common, remote], help="show a workflow and its activities")
    status.add_argument("workflow_id", metavar="ID")
    status.add_argument("--json", action="store_true", help="print the server's JSON document")
    status.set_defaults(handler=_status)

    cancel = sub.add_parser(
        "cancel",
        parents=[common, remote],
        help="cancel a created or running workflow",
        description="Cancel a workflow: its pending activities never run, running ones are told to stop. "
        "Exit codes: 0 cancelled (or it was already), 2 unknown ID or the workflow had completed or failed.",
    )
    cancel.add_argument("workflow_id", metavar="ID")
    cancel.set_defaults(handler=_cancel)


class _Api:
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


async def _authenticate(api: _Api) -> None:
    client_id, secret = os.environ.get("KRUXIAFLOW_CLIENT_ID"), os.environ.get("KRUXIAFLOW_CLIENT_SECRET")
    if client_id and secret:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        token = await api.call("POST", "/api/v1/oauth/token", json=form)
        api.client.headers["Authorization"] = f"Bearer {token['access_token']}"


def _run_remote(args: argparse.Namespace, action: Any) -> Any:
    """``await action(api)`` in ``trio.run`` with an authenticated client; CLI errors unwrapped."""
    url = args.url or os.environ.get("KRUXIAFLOW_API_URL") or _DEFAULT_URL

    async def main() -> Any:
        async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=30) as client:
            api = _Api(client)
            await _authenticate(api)
            return await action(api)

    try:
        return trio.run(main)
    except BaseException as exc:
        error = single_error(exc)
        if isinstance(error, CliError):
            raise error from exc
        raise


def _read_definition(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CliError(f"no such file: {path}") from exc
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise CliError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise CliError(f"{path}: expected a mapping with name and activities, got {type(data).__name__}")
    try:  # YAML has more types than JSON (dates, .nan); the server stores JSON
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CliError(f"{path}: a value JSON cannot hold (quote dates): {exc}") from exc
    return data


def _deploy(args: argparse.Namespace, io: Streams) -> int:
    data = _read_definition(args.file)
    reply = _run_remote(args, lambda api: api.call("POST", "/api/v1/workflow_definitions", json=data))
    state = "unchanged" if reply.get("unchanged") else "deployed"
    io.note(f"{reply['name']} version {reply['version']} {state}")
    return 0


def _parse_input(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--input: invalid JSON: {exc.msg} (column {exc.colno})") from exc
    if not isinstance(value, dict):
        raise CliError(f"--input: expected a JSON object, got {type(value).__name__}")
    return value


def _run(args: argparse.Namespace, io: Streams) -> int:
    body: dict[str, Any] = {"definition_name": args.name, "input": _parse_input(args.input)}
    if args.version is not None:
        body["version"] = args.version
    if args.unique_key is not None:
        body["unique_key"] = args.unique_key

    async def action(api: _Api) -> tuple[str, dict[str, Any] | None]:
        started = await api.call("POST", "/api/v1/workflows", json=body)
        workflow_id = started["workflow_id"]
        io.note(
            f"workflow {workflow_id} started ({started['definition_name']} v{started['definition_version']})"
        )
        if not args.wait:
            return workflow_id, None
        seen: dict[str, str] = {}
        while True:
            doc = await api.call("GET", f"/api/v1/workflows/{workflow_id}")
            for activity in doc["activities"]:
                if seen.get(activity["activity_key"]) != activity["status"]:
                    seen[activity["activity_key"]] = activity["status"]
                    io.note(f"  {activity['activity_key']}: {activity['status']}")
            if doc["status"] in ("completed", "failed"):
                if doc["status"] == "completed":
                    doc["output"] = await api.call("GET", f"/api/v1/workflows/{workflow_id}/output")
                return workflow_id, doc
            await trio.sleep(args.poll_interval)

    workflow_id, doc = _run_remote(args, action)
    if doc is None:
        io.write(workflow_id)
        return 0
    if doc["status"] == "failed":
        io.error(f"workflow {workflow_id} failed: {doc['error_message']}")
        return 1
    io.write(json.dumps(doc["output"], indent=2))
    return 0


def _status(args: argparse.Namespace, io: Streams) -> int:
    doc = _run_remote(args, lambda api: api.call("GET", f"/api/v1/workflows/{args.workflow_id}"))
    if args.json:
        io.write(json.dumps(doc, indent=2))
        return 0
    io.write(f"{doc['id']}  {doc['definition_name']}  {doc['status']}")
    for activity in doc["activities"]:
        line = f"  {activity['activity_key']:<20} {activity['status']:<14}"
        if activity.get("error"):
            line += f" {activity['error']}"
        io.write(line)
    if doc.get("error_message"):
        io.write(f"error: {doc['error_message']}")
    return 1 if doc["status"] == "failed" else 0


def _cancel(args: argparse.Namespace, io: Streams) -> int:
    path = f"/api/v1/workflows/{args.workflow_id}/cancel"
    doc = _run_remote(args, lambda api: api.call("POST", path))
    io.write(f"{doc['id']}  {doc['definition_name']}  {doc['status']}")
    return 0
