"""``trioworks workflow list|output|signal|logs`` and ``trioworks definitions list|show``."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

import trio
import yaml

from ._remote import Api, parse_input, run_remote
from ._streams import Streams

__all__ = ["register_more"]

_FINISHED = ("completed", "failed", "cancelled")


def register_more(
    commands: argparse._SubParsersAction,
    sub: argparse._SubParsersAction,
    common: argparse.ArgumentParser,
    remote: argparse.ArgumentParser,
) -> None:
    parents = [common, remote]
    listing = sub.add_parser("list", parents=parents, help="list workflows, newest first")
    listing.add_argument("--status", help="only workflows in this status")
    listing.add_argument("--definition", metavar="NAME", help="only workflows of this definition")
    listing.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (default 100)")
    listing.add_argument("--offset", type=int, default=0, metavar="N", help="skip the first N")
    listing.add_argument("--json", action="store_true", help="print the server's JSON document")
    listing.set_defaults(handler=_list)

    output = sub.add_parser(
        "output", parents=parents, help="print a completed workflow's (or activity's) output"
    )
    output.add_argument("workflow_id", metavar="ID")
    output.add_argument(
        "--activity", metavar="KEY", help="only this activity's output (the original's shape)"
    )
    output.set_defaults(handler=_output)

    signal = sub.add_parser("signal", parents=parents, help="signal an activity waiting for one")
    signal.add_argument("workflow_id", metavar="ID")
    signal.add_argument("activity_key", metavar="KEY")
    signal.add_argument("--event", required=True, metavar="NAME", help="the event name it waits for")
    signal.add_argument("--data", default="{}", metavar="JSON", help="the signal's data, a JSON object")
    signal.set_defaults(handler=_signal)

    logs = sub.add_parser(
        "logs", parents=parents, help="a workflow's activity events in time order (--follow: until it ends)"
    )
    logs.add_argument("workflow_id", metavar="ID")
    logs.add_argument(
        "--follow", action="store_true", help="keep printing new events until the workflow ends"
    )
    logs.add_argument("--poll-interval", type=float, default=0.5, help=argparse.SUPPRESS)
    logs.set_defaults(handler=_logs)

    definitions = commands.add_parser(
        "definitions", parents=[common], help="list and show workflow definitions"
    )
    dsub = definitions.add_subparsers(title="commands", metavar="COMMAND", required=True)
    dlist = dsub.add_parser("list", parents=parents, help="the latest version of every definition")
    dlist.set_defaults(handler=_definitions)
    show = dsub.add_parser("show", parents=parents, help="print a definition as YAML, with its versions")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--version", metavar="V", help="a version number or timestamp (default latest)")
    show.set_defaults(handler=_show)


def _list(args: argparse.Namespace, io: Streams) -> int:
    params = {"limit": args.limit, "offset": args.offset}
    params.update({k: v for k, v in (("status", args.status), ("definition_name", args.definition)) if v})
    doc = run_remote(args, lambda api: api.call("GET", "/api/v1/workflows", params=params))
    if args.json:
        io.write(json.dumps(doc, indent=2))
        return 0
    for w in doc["workflows"]:
        io.write(f"{w['id']}  {w['status']:<10} {w['definition_name']}  {w['created_at']}")
    io.note(f"{doc['count']} of {doc['total']} workflows")
    return 0


def _output(args: argparse.Namespace, io: Streams) -> int:
    path = f"/api/v1/workflows/{args.workflow_id}"
    path += f"/activities/{quote(args.activity, safe='')}/output" if args.activity else "/output"
    doc = run_remote(args, lambda api: api.call("GET", path))
    io.write(json.dumps(doc if args.activity else doc["output"], indent=2))
    return 0


def _signal(args: argparse.Namespace, io: Streams) -> int:
    body = {
        "activity_key": args.activity_key,
        "event_name": args.event,
        "data": parse_input(args.data, "--data"),
    }
    doc = run_remote(
        args, lambda api: api.call("POST", f"/api/v1/workflows/{args.workflow_id}/signal", json=body)
    )
    io.note(doc.get("message") or "signaled")
    return 0


def _events(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(time, line) of each activity's start and end."""
    events = []
    for a in doc["activities"]:
        if a.get("started_at"):
            events.append(
                (a["started_at"], f"{a['activity_key']} started ({a['activity_name']} on {a['worker']})")
            )
        if a.get("completed_at"):
            line = f"{a['activity_key']} {a['status']}"
            if a.get("error"):
                line += f": {a['error']}"
            events.append((a["completed_at"], line))
    return sorted(events)


def _logs(args: argparse.Namespace, io: Streams) -> int:
    async def action(api: Api) -> str:
        printed: set[tuple[str, str]] = set()
        while True:
            doc = await api.call("GET", f"/api/v1/workflows/{args.workflow_id}")
            for when, line in _events(doc):
                if (when, line) not in printed:
                    printed.add((when, line))
                    io.write(f"{when}  {line}")
            if not args.follow or doc["status"] in _FINISHED:
                return str(doc["status"])
            await trio.sleep(args.poll_interval)

    status = run_remote(args, action)
    io.note(f"workflow {args.workflow_id} {status}")
    return 1 if status == "failed" else 0


def _definitions(args: argparse.Namespace, io: Streams) -> int:
    doc = run_remote(args, lambda api: api.call("GET", "/api/v1/workflow_definitions"))
    for d in doc["definitions"]:
        io.write(
            f"{d['name']:<24} v{d.get('version_number', '?'):<4} {d['version']}  {d['activity_count']} activities"
        )
    return 0


def _show(args: argparse.Namespace, io: Streams) -> int:
    name = quote(args.name, safe="")
    params = {"version": args.version} if args.version else None

    async def action(api: Api) -> tuple[Any, Any]:
        definition = await api.call("GET", f"/api/v1/workflow_definitions/{name}", params=params)
        versions = await api.call("GET", f"/api/v1/workflow_definitions/{name}/versions")
        return definition, versions

    definition, versions = run_remote(args, action)
    shown = {k: v for k, v in definition.items() if k not in ("version", "version_number", "created_at")}
    io.write(f"# {definition['name']} version {definition['version_number']} ({definition['version']})")
    io.write(yaml.safe_dump(shown, sort_keys=False).rstrip())
    io.write(
        "# versions: " + ", ".join(f"{v['version_number']} ({v['version']})" for v in versions["versions"])
    )
    return 0
