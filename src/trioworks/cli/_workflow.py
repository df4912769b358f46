"""``trioworks workflow deploy|run|status|cancel`` (and, in ``_workflow_more``, ``list|output|signal|logs``
and ``trioworks definitions list|show``): talk HTTP to a workflow server.

The server is ``--url`` or ``$KRUXIAFLOW_API_URL`` (default ``http://127.0.0.1:8080``); with
``$KRUXIAFLOW_CLIENT_ID`` and ``$KRUXIAFLOW_CLIENT_SECRET`` set, a client-credentials token is
fetched first (a server in ``--insecure-dev`` mode needs none).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import trio
import yaml

from ._errors import CliError
from ._remote import DEFAULT_URL, Api, parse_input, run_remote
from ._streams import Streams
from ._workflow_more import register_more

__all__ = ["register"]

IDLE_AFTER = 10.0


def idle_queues(doc: dict[str, Any], idle_after: float) -> list[str]:
    """One sentence per worker queue this workflow waits in that no worker has polled lately."""
    said = []
    for worker, seen in sorted((doc.get("queues") or {}).items()):
        if seen.get("last_polled_at") is None:
            said.append(
                f"no worker has polled queue {worker!r} since the server started (start one: trioworks worker)"
            )
        elif seen.get("idle_seconds", 0) >= idle_after:
            said.append(f"no worker has polled queue {worker!r} for {seen['idle_seconds']:.0f} s")
    return said


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    workflow = commands.add_parser(
        "workflow", parents=[common], help="deploy, run and inspect server workflows"
    )
    sub = workflow.add_subparsers(title="commands", metavar="COMMAND", required=True)
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--url", metavar="URL", help=f"server URL (default $KRUXIAFLOW_API_URL or {DEFAULT_URL})"
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
    run.add_argument(
        "--version", metavar="V", help="the definition version: a number or its timestamp (default latest)"
    )
    run.add_argument("--unique-key", metavar="KEY", help="refuse to start a second workflow with this key")
    run.add_argument("--wait", action="store_true", help="follow progress until it ends; print the output")
    run.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="with --wait: give up after S seconds (exit 1; it keeps running)",
    )
    run.add_argument(
        "--idle-after",
        type=float,
        default=IDLE_AFTER,
        metavar="S",
        help=f"say so when no worker has polled a queue it waits in for S seconds (default {IDLE_AFTER:g})",
    )
    run.add_argument("--poll-interval", type=float, default=0.5, metavar="S", help=argparse.SUPPRESS)
    run.set_defaults(handler=_run)

    status = sub.add_parser("status", parents=[common, remote], help="show a workflow and its activities")
    status.add_argument("workflow_id", metavar="ID")
    status.add_argument("--json", action="store_true", help="print the server's JSON document")
    status.add_argument("--idle-after", type=float, default=IDLE_AFTER, help=argparse.SUPPRESS)
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
    register_more(commands, sub, common, remote)


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
    reply = run_remote(args, lambda api: api.call("POST", "/api/v1/workflow_definitions", json=data))
    state = "unchanged" if reply.get("unchanged") else "deployed"
    io.note(
        f"{reply['name']} version {reply.get('version_number', reply['version'])} ({reply['version']}) {state}"
    )
    return 0


def _run(args: argparse.Namespace, io: Streams) -> int:
    body: dict[str, Any] = {"definition_name": args.name, "input": parse_input(args.input)}
    if args.version is not None:
        body["version"] = int(args.version) if args.version.isdigit() else args.version
    if args.unique_key is not None:
        body["unique_key"] = args.unique_key

    async def action(api: Api) -> tuple[str, dict[str, Any] | None]:
        started = await api.call("POST", "/api/v1/workflows", json=body)
        workflow_id = started["workflow_id"]
        io.note(
            f"workflow {workflow_id} started ({started['definition_name']} v{started['definition_version']})"
        )
        if not args.wait:
            return workflow_id, None
        seen: dict[str, str] = {}
        told: set[str] = set()
        with trio.move_on_after(args.timeout if args.timeout is not None else float("inf")):
            while True:
                doc = await api.call("GET", f"/api/v1/workflows/{workflow_id}")
                for activity in doc["activities"]:
                    if seen.get(activity["activity_key"]) != activity["status"]:
                        seen[activity["activity_key"]] = activity["status"]
                        io.note(f"  {activity['activity_key']}: {activity['status']}")
                for sentence in idle_queues(doc, args.idle_after):
                    queue = sentence.split("'")[1]
                    if queue not in told:  # once per queue: the wait goes on
                        told.add(queue)
                        io.note(f"  waiting: {sentence}")
                if doc["status"] in ("completed", "failed", "cancelled"):
                    if doc["status"] == "completed":
                        doc["output"] = await api.call("GET", f"/api/v1/workflows/{workflow_id}/output")
                    return workflow_id, doc
                await trio.sleep(args.poll_interval)
        return workflow_id, {"status": "timeout", "last": doc}

    workflow_id, doc = run_remote(args, action)
    if doc is None:
        io.write(workflow_id)
        return 0
    if doc["status"] == "timeout":
        io.error(
            f"workflow {workflow_id} still {doc['last']['status']} after {args.timeout:g} s (it keeps running)"
        )
        return 1
    if doc["status"] == "cancelled":
        io.error(f"workflow {workflow_id} was cancelled")
        return 1
    if doc["status"] == "failed":
        io.error(f"workflow {workflow_id} failed: {doc['error_message']}")
        return 1
    io.write(json.dumps(doc["output"], indent=2))
    return 0


def _status(args: argparse.Namespace, io: Streams) -> int:
    doc = run_remote(args, lambda api: api.call("GET", f"/api/v1/workflows/{args.workflow_id}"))
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
    for sentence in idle_queues(doc, args.idle_after):
        io.write(f"waiting: {sentence}")
    return 1 if doc["status"] == "failed" else 0


def _cancel(args: argparse.Namespace, io: Streams) -> int:
    path = f"/api/v1/workflows/{args.workflow_id}/cancel"
    doc = run_remote(args, lambda api: api.call("POST", path))
    io.write(f"{doc['id']}  {doc['definition_name']}  {doc['status']}")
    return 0
