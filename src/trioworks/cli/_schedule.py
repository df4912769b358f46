"""``trioworks schedule create|list|show|pause|resume|delete``: a server's recurring schedules.

Talks HTTP to ``/api/v1/schedules`` like the ``workflow`` commands (``--url`` or
``$KRUXIAFLOW_API_URL``, a token from ``$KRUXIAFLOW_CLIENT_ID`` / ``$KRUXIAFLOW_CLIENT_SECRET``).
A schedule is named by its id or by its name.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml

from ._errors import CliError
from ._remote import DEFAULT_URL, Api, parse_input, run_remote
from ._streams import Streams

__all__ = ["register"]


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    schedule = commands.add_parser(
        "schedule", parents=[common], help="create and manage recurring schedules on a server"
    )
    sub = schedule.add_subparsers(title="commands", metavar="COMMAND", required=True)
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--url", metavar="URL", help=f"server URL (default $KRUXIAFLOW_API_URL or {DEFAULT_URL})"
    )
    parents = [common, remote]

    create = sub.add_parser(
        "create", parents=parents, help="run a workflow definition on a cron expression or an interval"
    )
    create.add_argument("name", metavar="NAME", help="the schedule's unique name")
    create.add_argument("--definition", required=True, metavar="NAME", help="the workflow definition to run")
    cadence = create.add_mutually_exclusive_group(required=True)
    cadence.add_argument("--cron", metavar="EXPR", help="crontab: 5 fields, e.g. '0 9 * * mon-fri'")
    cadence.add_argument("--every", type=int, metavar="SECONDS", help="a fixed interval in seconds")
    create.add_argument("--timezone", metavar="TZ", help="IANA timezone of --cron (default UTC)")
    create.add_argument("--input", default="{}", metavar="JSON", help="each run's input, a JSON object")
    create.add_argument(
        "--version", metavar="V", help="pin a definition version (default: latest at each run)"
    )
    create.add_argument(
        "--overlap",
        choices=("skip", "allow"),
        default="skip",
        help="skip (default): no run while the previous one is active; allow: always run",
    )
    create.add_argument("--paused", action="store_true", help="create it disabled (resume starts it)")
    create.set_defaults(handler=_create)

    listing = sub.add_parser("list", parents=parents, help="every schedule, by name")
    listing.add_argument("--json", action="store_true", help="print the server's JSON document")
    listing.set_defaults(handler=_list)

    for verb, handler, text in (
        ("show", _show, "print a schedule"),
        ("pause", _pause, "stop a schedule firing (enabled: false)"),
        ("resume", _resume, "start it again from the next occurrence (a missed one does not run)"),
        ("delete", _delete, "delete a schedule (the runs it started are kept)"),
    ):
        command = sub.add_parser(verb, parents=parents, help=text)
        command.add_argument("schedule", metavar="ID|NAME")
        command.set_defaults(handler=handler)


def _line(s: dict[str, Any]) -> str:
    if s.get("cron"):
        cadence = f"cron {s['cron']!r} {s.get('timezone') or 'UTC'}"
    else:
        cadence = f"every {s['interval_seconds']} s"
    state = "" if s["enabled"] else "  (paused)"
    return (
        f"{s['id']}  {s['name']:<24} {s['definition_name']:<20} {cadence:<28} next {s['next_run_at']}{state}"
    )


async def _find(api: Api, ref: str) -> dict[str, Any]:
    """The schedule whose id or name is ``ref``."""
    doc = await api.call("GET", "/api/v1/schedules")
    for s in doc["schedules"]:
        if ref in (s["id"], s["name"]):
            return dict(s)
    raise CliError(f"no schedule with id or name {ref!r} (trioworks schedule list shows them)")


def _create(args: argparse.Namespace, io: Streams) -> int:
    body: dict[str, Any] = {
        "name": args.name,
        "definition_name": args.definition,
        "input": parse_input(args.input),
        "overlap_policy": args.overlap,
        "enabled": not args.paused,
    }
    if args.cron is not None:
        body["cron"] = args.cron
        if args.timezone:
            body["timezone"] = args.timezone
    elif args.timezone:
        raise CliError("--timezone applies to --cron only")
    else:
        body["interval_seconds"] = args.every
    if args.version:
        body["definition_version"] = args.version
    created = run_remote(args, lambda api: api.call("POST", "/api/v1/schedules", json=body))
    io.write(created["id"])
    io.note(f"schedule {created['name']!r}: next run at {created['next_run_at']}")
    return 0


def _list(args: argparse.Namespace, io: Streams) -> int:
    doc = run_remote(args, lambda api: api.call("GET", "/api/v1/schedules"))
    if args.json:
        io.write(json.dumps(doc, indent=2))
        return 0
    for s in doc["schedules"]:
        io.write(_line(s))
    io.note(f"{doc['count']} schedules")
    return 0


def _show(args: argparse.Namespace, io: Streams) -> int:
    schedule = run_remote(args, lambda api: _find(api, args.schedule))
    io.write(yaml.safe_dump(schedule, sort_keys=False).rstrip())
    return 0


def _set_enabled(args: argparse.Namespace, io: Streams, enabled: bool) -> int:
    async def action(api: Api) -> Any:
        found = await _find(api, args.schedule)
        return await api.call("PATCH", f"/api/v1/schedules/{found['id']}", json={"enabled": enabled})

    s = run_remote(args, action)
    io.note(
        f"schedule {s['name']!r} " + (f"resumed: next run at {s['next_run_at']}" if enabled else "paused")
    )
    return 0


def _pause(args: argparse.Namespace, io: Streams) -> int:
    return _set_enabled(args, io, False)


def _resume(args: argparse.Namespace, io: Streams) -> int:
    return _set_enabled(args, io, True)


def _delete(args: argparse.Namespace, io: Streams) -> int:
    async def action(api: Api) -> str:
        found = await _find(api, args.schedule)
        await api.call("DELETE", f"/api/v1/schedules/{found['id']}")
        return str(found["name"])

    io.note(f"schedule {run_remote(args, action)!r} deleted")
    return 0
