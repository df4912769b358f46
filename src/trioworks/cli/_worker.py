"""``trioworks worker``: run the activity worker for the activities of a Python module."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import types
from typing import Any

import trio

from ..core import prometheus_text, serve_prometheus
from ..worker import Activity, ActivityDefinition, ConfigError, Worker, WorkerConfig
from ._errors import CliError
from ._loader import _import
from ._streams import Streams

__all__ = ["load_activities", "register"]

# Flag -> WorkerConfig field; each overrides the KRUXIAFLOW_* variable of the same field.
_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("--url", "api_url", str, "server URL (KRUXIAFLOW_API_URL)"),
    ("--client-id", "client_id", str, "OAuth client id (KRUXIAFLOW_CLIENT_ID)"),
    ("--client-secret", "client_secret", str, "OAuth client secret (KRUXIAFLOW_CLIENT_SECRET)"),
    ("--worker", "worker", str, "worker slug to poll for (KRUXIAFLOW_WORKER, default py-std)"),
    ("--worker-id", "worker_id", str, "this worker's id (KRUXIAFLOW_WORKER_ID, default worker_<12 hex>)"),
    ("--max-activities", "max_activities", int, "work slots (KRUXIAFLOW_WORKER_MAX_ACTIVITIES, default 16)"),
    (
        "--poll-max",
        "poll_max_activities",
        int,
        "most activities per poll (KRUXIAFLOW_WORKER_POLL_MAX_ACTIVITIES, default 10)",
    ),
    (
        "--poll-interval",
        "poll_interval",
        float,
        "first idle backoff, s (KRUXIAFLOW_WORKER_POLL_INTERVAL, 0.1)",
    ),
    (
        "--activity-timeout",
        "activity_timeout",
        float,
        "timeout when timeout_seconds is null, s (KRUXIAFLOW_WORKER_ACTIVITY_TIMEOUT, 300)",
    ),
    (
        "--heartbeat-interval",
        "heartbeat_interval",
        float,
        "longest heartbeat period, s (KRUXIAFLOW_WORKER_HEARTBEAT_INTERVAL, 30)",
    ),
    (
        "--shutdown-timeout",
        "shutdown_timeout",
        float,
        "drain wait before cancelling, s (KRUXIAFLOW_WORKER_SHUTDOWN_TIMEOUT, 30)",
    ),
    ("--threads", "max_threads", int, "threads for plain def activities (default: --max-activities)"),
    ("--processes", "max_processes", int, "worker processes for process=True activities (default: CPUs)"),
)


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "worker",
        parents=[common],
        help="run the activity worker (Kruxia Flow compatible)",
        description="Poll a Kruxia Flow server and run the activities of --app. Every option "
        "defaults to its KRUXIAFLOW_* environment variable. SIGINT/SIGTERM drain gracefully; "
        "a second one cuts the wait short. Exit codes: 0 drained, 2 bad input or configuration.",
    )
    parser.add_argument(
        "--app",
        metavar="MODULE",
        help="module name (or path.py) with the activities: its `activities` list, else every "
        "@activity / Activity instance at module level (required unless --std)",
    )
    parser.add_argument(
        "--std",
        action="store_true",
        help="serve the standard activities (http_request, echo, postgres_query, postgres_transaction, "
        "llm_prompt, embedding, script) as worker `std` (unless --worker), plus `script` as worker "
        "`py-std`; --app adds its activities to them",
    )
    parser.add_argument(
        "--dag",
        action="store_true",
        help="serve the dag_node activity as worker `dag`: runs the nodes of workflows submitted with "
        "`trioworks dag submit` or DistributedRuntime (the workflows' packages must be importable here)",
    )
    parser.add_argument(
        "--dag-resources",
        metavar="MODULE:ATTR",
        help="with --dag: a ResourceRegistry (or a function returning one) for nodes' Resource(...) "
        "parameters, e.g. trioworks.demo.etl:resources",
    )
    parser.add_argument(
        "--max-inline-bytes",
        type=int,
        metavar="N",
        help="with --dag: a node output whose JSON is larger than N bytes travels as a file of its "
        "activity, streamed (default 65536; a workflow's DistributedRuntime(max_inline_bytes=...) wins)",
    )
    for flag, dest, kind, text in _FLAGS:
        metavar = {int: "N", float: "S"}.get(kind, flag.removeprefix("--").upper().replace("-", "_"))
        parser.add_argument(flag, dest=dest, type=kind, default=None, metavar=metavar, help=text)
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve the workers' metrics in the Prometheus text format at http://127.0.0.1:PORT/metrics",
    )
    parser.add_argument("--check", action="store_true", help="load and validate, print the setup, do not run")
    parser.set_defaults(handler=_worker_command)


def load_activities(target: str) -> list[ActivityDefinition | Activity]:
    """The activities of module ``target``; :class:`CliError` when it has none."""
    if "" not in sys.path:
        sys.path.insert(0, "")  # `--app my_module` finds modules in the working directory
    module, shown, _filename = _import(target)
    return _collect(module, shown)


def _collect(module: types.ModuleType, shown: str) -> list[ActivityDefinition | Activity]:
    declared = getattr(module, "activities", None)
    if declared is not None:
        items = list(declared)
        bad = [repr(x) for x in items if not isinstance(x, ActivityDefinition | Activity)]
        if bad:
            raise CliError(f"{shown}: `activities` holds non-activities: {', '.join(bad[:3])}")
    else:
        items = [v for v in vars(module).values() if isinstance(v, ActivityDefinition | Activity)]
    if not items:
        raise CliError(
            f"{shown}: no activities found (decorate functions with @activity or list them in `activities`)"
        )
    return items


def _plan(args: argparse.Namespace) -> list[tuple[dict[str, Any], list[ActivityDefinition | Activity]]]:
    """(config overrides, activities) of each worker to run."""
    if args.app is None and not args.std and not args.dag:
        raise CliError("give --app MODULE (your activities), --std (the standard activities) or --dag")
    activities = load_activities(args.app) if args.app is not None else []
    overrides = {dest: getattr(args, dest) for _flag, dest, _kind, _text in _FLAGS}
    if args.dag:
        from ..worker import DAG_WORKER, dag_activities

        inline = {} if args.max_inline_bytes is None else {"max_inline_bytes": args.max_inline_bytes}
        if args.max_inline_bytes is not None and args.max_inline_bytes < 0:
            raise CliError(f"--max-inline-bytes must be >= 0, got {args.max_inline_bytes}")
        dag = [*dag_activities(_dag_resources(args.dag_resources), **inline), *activities]
        if not args.std:
            return [({**overrides, "worker": args.worker or DAG_WORKER}, dag)]
        dag_id = f"{args.worker_id}-dag" if args.worker_id else None
        return [
            *_std_plan(args, overrides, []),
            ({**overrides, "worker": DAG_WORKER, "worker_id": dag_id}, dag),
        ]
    if args.dag_resources is not None:
        raise CliError("--dag-resources needs --dag")
    if args.max_inline_bytes is not None:
        raise CliError("--max-inline-bytes needs --dag")
    if not args.std:
        return [(overrides, activities)]
    return _std_plan(args, overrides, activities)


def _dag_resources(target: str | None) -> Any:
    """The registry ``--dag-resources MODULE:ATTR`` names (called if it is a function)."""
    if target is None:
        return None
    from ..dag import ResourceRegistry

    module_name, _, attr = target.partition(":")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"--dag-resources {target}: cannot import {module_name!r}: {exc}") from exc
    value = getattr(module, attr or "resources", None)
    if callable(value) and not isinstance(value, ResourceRegistry):
        value = value()
    if not isinstance(value, ResourceRegistry):
        raise CliError(f"--dag-resources {target}: expected a ResourceRegistry or a function returning one")
    return value


def _std_plan(
    args: argparse.Namespace, overrides: dict[str, Any], activities: list[ActivityDefinition | Activity]
) -> list[tuple[dict[str, Any], list[ActivityDefinition | Activity]]]:
    from ..worker.std import PY_STD_ACTIVITIES, PY_STD_WORKER, STD_ACTIVITIES, STD_WORKER

    # The original's std worker is worker type `std`; py-std's `script` polls `py-std` beside it.
    main = {**overrides, "worker": args.worker or STD_WORKER}
    plan = [(main, [*STD_ACTIVITIES, *activities])]
    if main["worker"] == STD_WORKER:
        worker_id = f"{args.worker_id}-py-std" if args.worker_id else None
        plan.append(({**overrides, "worker": PY_STD_WORKER, "worker_id": worker_id}, list(PY_STD_ACTIVITIES)))
    return plan


def _worker_command(args: argparse.Namespace, io: Streams) -> int:
    workers: list[Worker] = []
    for overrides, activities in _plan(args):
        try:
            config = WorkerConfig.from_env(**overrides)
            # The command owns the process: freezing the start-up heap keeps full GCs off the loop.
            # Signals are watched here, not by the worker, to tell Ctrl-C (130) from SIGTERM (0).
            workers.append(Worker(config, activities, freeze_gc=True))
        except ConfigError as exc:
            flag = next((f for f, dest, _k, _t in _FLAGS if dest == exc.source), None)
            raise CliError(f"{flag or exc.source}: {exc.message}") from exc
        except (TypeError, ValueError) as exc:
            raise CliError(f"{args.app or '--std'}: {exc}") from exc
    for worker in workers:
        config = worker.config
        names = ", ".join(f"{name} ({d.kind.value})" for name, d in sorted(worker.registry.items()))
        io.note(
            f"worker {config.worker_id} ({config.worker}) -> {config.api_url}: "
            f"{config.max_activities} slots; activities: {names}"
        )
    if args.check:
        return 0
    code = trio.run(_run_until_stopped, workers, io, args.metrics_port)
    for worker in workers:
        io.note(f"worker stopped: {worker.stats().line()}")
    return code


def _metrics_text(workers: list[Worker]) -> bytes:
    return prometheus_text(
        *((w.metrics, {"queue": w.config.worker}) for w in workers), prefix="trioworks_worker"
    )


async def _run_until_stopped(workers: list[Worker], io: Streams, metrics_port: int | None = None) -> int:
    """Run the ``workers`` until they end; SIGINT or SIGTERM drains them, a second one cuts the drain short.

    Returns the exit code: 130 when a SIGINT stopped it, else 0.
    """
    code = 0

    async def watch(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal code
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            draining = False
            async for signum in signals:
                code = 130 if signum == signal.SIGINT else code
                io.note(
                    f"{signal.Signals(signum).name}: {'cutting the drain short' if draining else 'draining'}"
                )
                for worker in workers:
                    worker.request_drain()  # the second call forces
                draining = True

    async with trio.open_nursery() as nursery:
        await nursery.start(watch)
        if metrics_port is not None:
            bound = await nursery.start(serve_prometheus, metrics_port, lambda: _metrics_text(workers))
            io.note(f"metrics at http://127.0.0.1:{bound}/metrics")
        async with trio.open_nursery() as running:
            for worker in workers:
                running.start_soon(worker.run)
        nursery.cancel_scope.cancel()
    return code
