"""``trioworks server``: run the reference server (Kruxia Flow's HTTP API)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
from pathlib import Path

import trio

from ..core import single_error
from ..server import (
    Client,
    ConfigurationError,
    Server,
    ServerConfig,
    StorageUnavailable,
    load_clients_file,
    mask_url,
    parse_clients,
)
from ._errors import CliError
from ._streams import Streams

__all__ = ["register"]


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    server = commands.add_parser(
        "server",
        parents=[common],
        help="run the reference workflow server (Kruxia Flow API)",
        description="Serve the Kruxia Flow HTTP API until Ctrl-C. Clients come from --client and "
        "TRIOWORKS_CLIENTS=id:secret,...; the JWT secret from TRIOWORKS_JWT_SECRET, else one stored "
        "in the database.",
    )
    server.add_argument(
        "--db",
        default=os.environ.get("TRIOWORKS_DB", "sqlite:///trioworks.db"),
        metavar="URL",
        help="sqlite:///path.db (default sqlite:///trioworks.db, or $TRIOWORKS_DB) or postgresql://...",
    )
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    server.add_argument(
        "--port", type=_port, default=8080, help="port to listen on; 0 picks a free one (default 8080)"
    )
    server.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET[:WORKER,...]",
        help="an OAuth client (repeatable); with worker types, it may only poll and report on those",
    )
    server.add_argument(
        "--clients-file",
        type=Path,
        metavar="TOML",
        help="clients from a file: [clients.ID] tables with secret (or secret_file) and workers = [...]",
    )
    server.add_argument(
        "--jwt-secret-file",
        type=Path,
        metavar="FILE",
        help="the token signing secret (mode 0600, created if missing; default: next to the database "
        "or files directory); $TRIOWORKS_JWT_SECRET takes precedence",
    )
    server.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=4 * 1024 * 1024,
        metavar="N",
        help="largest JSON/YAML request body (default 4 MiB; file uploads: 50 MiB, streamed)",
    )
    server.add_argument(
        "--insecure-dev",
        action="store_true",
        help="no authentication (development only; refused with a non-loopback --host)",
    )
    server.add_argument(
        "--insecure-dev-allow-remote",
        action="store_true",
        help="allow --insecure-dev on a non-loopback --host: anyone who reaches the port controls the server",
    )
    server.add_argument("--files-dir", type=Path, metavar="DIR", help="where uploaded files live")
    server.add_argument(
        "--sweep-interval",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="lease sweep period (default 5)",
    )
    server.set_defaults(handler=_serve)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer > 0, got {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _loopback(host: str) -> bool:
    """True if ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name, "", 0.0.0.0...: assume reachable from elsewhere


def _clients(args: argparse.Namespace) -> dict[str, Client]:
    try:
        clients = parse_clients(os.environ.get("TRIOWORKS_CLIENTS", ""))
    except ValueError as exc:
        raise CliError(f"TRIOWORKS_CLIENTS: {exc}") from exc
    if args.clients_file is not None:
        try:
            clients.update(load_clients_file(args.clients_file))
        except ValueError as exc:
            raise CliError(f"--clients-file: {exc}") from exc
    for item in args.client:
        try:
            clients.update(parse_clients(item))
        except ValueError as exc:
            raise CliError(f"--client: {exc}") from exc
    return clients


def _serve(args: argparse.Namespace, io: Streams) -> int:
    clients = _clients(args)
    # No clients: the server itself logs that every token request will be refused (once).
    if args.insecure_dev:
        if not _loopback(args.host):
            if not args.insecure_dev_allow_remote:
                raise CliError(
                    f"--insecure-dev with --host {args.host!r}: an unauthenticated API would be reachable "
                    "from other machines; listen on 127.0.0.1, or add --insecure-dev-allow-remote"
                )
            io.warning(f"--insecure-dev on {args.host!r}: ANYONE who can reach this port controls the server")
        io.warning("--insecure-dev: the API accepts requests without authentication")
    config = ServerConfig(
        db=args.db,
        host=args.host,
        port=args.port,
        clients=clients,
        insecure_dev=args.insecure_dev,
        files_dir=args.files_dir,
        jwt_secret_file=args.jwt_secret_file,
        max_body_bytes=args.max_body_bytes,
        sweep_interval=args.sweep_interval,
    )

    async def main() -> None:
        # SIGTERM (docker stop, systemd) shuts down like Ctrl-C: the HTTP front gives in-flight
        # requests their grace period and the database is closed, but the exit code is 0.
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                url = await nursery.start(Server(config).run)
                io.note(
                    f"trioworks server listening on {url} (database {mask_url(config.db)}); Ctrl-C to stop"
                )
                async for _ in signals:
                    io.note("SIGTERM: shutting down")
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main)
    except BaseException as exc:
        error = single_error(exc)
        if isinstance(error, StorageUnavailable):
            raise CliError(f"--db: {error}") from error
        if isinstance(error, ConfigurationError):
            raise CliError(str(error)) from error
        if isinstance(error, OSError) and not isinstance(error, FileNotFoundError):
            raise CliError(f"cannot serve on {args.host}:{args.port}: {error.strerror or error}") from error
        raise
    return 0
