""":class:`Server`: the API served by its own HTTP/1.1 front, plus the lease sweeper.

Where the three layers meet: it opens the ``storage``, builds the ``http`` layer's
:class:`~trioworks.server.http.Context` over it, and serves the app (the ``rules`` are called by
the storage). Nothing below imports this module.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs
import trio

from ..core import Metrics, RestartPolicy, run_in_thread, supervise
from ._errors import ConfigurationError, StorageUnavailable
from .http import (
    Authenticator,
    Client,
    Context,
    build_app,
    direct_responder,
    parse_clients,
    secret_from_file,
    serve_http,
)
from .rules import secrets_from_env
from .storage import FileStore, Storage, open_storage

__all__ = ["Server", "ServerConfig"]

logger = logging.getLogger("trioworks.server")
MB = 1024 * 1024
_SCHEDULE_BATCH = 100  # schedules fired per transaction (the original's KRUXIAFLOW_SCHEDULER_BATCH_LIMIT)
GRACE = 5.0  # seconds requests in flight get to finish at shutdown
WAKE_COALESCE = 0.05
"""Seconds the signal-timeout timer waits after a wake-up before reading the earliest deadline:
under load every completion wakes it, and one read then covers a burst (deadlines are seconds)."""


def _env_clients() -> dict[str, Client]:
    return parse_clients(os.environ.get("TRIOWORKS_CLIENTS", ""))


@attrs.frozen
class ServerConfig:
    """Everything a :class:`Server` needs. All fields have working defaults.

    ``storage`` injects an already open backend (tests, embedding); it is then not closed by the
    server. Otherwise ``db`` is opened with :func:`open_storage`. ``clock`` gives POSIX seconds
    and drives leases, retries and token expiry (tests pass a controllable one).

    ``clients`` maps a client id to its secret, or to a :class:`Client` that also limits the
    worker types it may touch. The JWT signing secret is ``jwt_secret`` (``TRIOWORKS_JWT_SECRET``)
    or else kept in ``jwt_secret_file`` (mode 0600, created on first start; default: next to a
    SQLite database, else next to the files directory); it is never stored in the database.
    ``max_body_bytes`` caps every JSON or YAML body (a request costs at most ~24 times that:
    see docs/server.md); file uploads are streamed to disk under ``max_file_bytes``.
    """

    db: str = "sqlite:///trioworks.db"
    host: str = "127.0.0.1"
    port: int = 8080
    clients: Mapping[str, str | Client] = attrs.field(factory=_env_clients)
    insecure_dev: bool = False
    jwt_secret: str | None = attrs.field(factory=lambda: os.environ.get("TRIOWORKS_JWT_SECRET") or None)
    jwt_secret_file: Path | None = None
    secrets: Mapping[str, str] = attrs.field(factory=lambda: secrets_from_env(os.environ), repr=False)
    """``{{SECRET.name}}`` values: ``KRUXIAFLOW_SECRET_<NAME>`` of the environment, as the original."""
    token_ttl: int = 3600
    files_dir: Path | None = None  # default: next to a SQLite database, else ./trioworks-files
    max_body_bytes: int = 4 * MB
    max_file_bytes: int = 50 * MB
    sweep_interval: float = 5.0
    schedule_poll: float = 30.0  # the schedules task reads the next due time at least this often
    storage_threads: int | None = None  # default: the backend's max_threads; also sizes its pool
    control_threads: int = 2
    file_threads: int = 4
    clock: Callable[[], float] = time.time
    storage: Storage | None = None
    metrics: Metrics = attrs.field(factory=Metrics)  # also served at GET /api/v1/metrics


class Server:
    """The reference server. Start it with ``url = await nursery.start(Server(config).run)``."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.storage: Storage | None = None
        self.url: str | None = None

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the storage, listen, then serve until cancelled.

        Calls ``task_status.started(url)`` (``http://host:port``, the real port when ``port=0``)
        once the socket is listening and the sweeper runs.

        Resource handling:
            The nursery holds the HTTP front (:func:`~trioworks.server.http.serve_http`), the lease
            sweeper, the signal-timeout timer and the schedules task; cancelling ``run`` stops them
            all (the front closes its listeners and gives requests in flight 5 s to finish).
            A storage opened here (not injected) is closed on the way out, in a shielded scope.

        Error handling:
            Errors opening the database or binding the port propagate before ``started``.
            A failing sweep (or timer, or schedules task) is logged and retried under
            :func:`trioworks.core.supervise`;
            failing too often (5 times in 60 s) ends the server with
            :exc:`~trioworks.core.RestartIntensityExceeded`.
        """
        config = self.config
        opener = trio.CapacityLimiter(1)
        owned = config.storage is None
        storage: Storage
        if config.storage is not None:
            storage = config.storage
        else:
            storage = await run_in_thread(
                functools.partial(
                    open_storage,
                    config.db,
                    max_threads=config.storage_threads,
                    control_threads=config.control_threads,
                ),
                limiter=opener,
            )
        self.storage = storage
        try:
            ctx = await self._context(storage, opener)
            async with trio.open_nursery() as nursery:
                for name, task in (
                    ("lease-sweeper", self._sweep_forever),
                    ("signal-timeouts", self._signal_timeouts),
                    ("schedules", self._fire_schedules),
                ):
                    await nursery.start(
                        functools.partial(
                            supervise,
                            functools.partial(task, ctx),
                            name=name,
                            policy=RestartPolicy(max_restarts=5, window=60.0),
                        )
                    )
                urls = await nursery.start(
                    functools.partial(
                        serve_http,
                        direct_responder(build_app(ctx)),
                        config.host,
                        config.port,
                        grace=GRACE,
                        # A backstop only: the handlers refuse bodies past their own caps first.
                        max_body=max(config.max_body_bytes, config.max_file_bytes) + MB,
                    )
                )
                self.url = urls[0]
                logger.info("trioworks server listening on %s", self.url)
                task_status.started(self.url)
        finally:
            if owned:
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await run_in_thread(storage.close, limiter=opener)

    async def _context(self, storage: Storage, limiter: trio.CapacityLimiter) -> Context:
        config = self.config
        auth = None
        files_dir = Path(config.files_dir or getattr(storage, "files_dir", None) or "trioworks-files")
        if not config.insecure_dev:
            secret = config.jwt_secret
            if not secret:  # none configured: the 0600 file beside the data (made on first start)
                secret = await run_in_thread(self._secret_from_file, storage, files_dir, limiter=limiter)
            if not config.clients:
                logger.warning("no clients configured (--client ID:SECRET): every token request will get 401")
            auth = Authenticator(secret, dict(config.clients), config.clock, config.token_ttl)
        file_limiter = trio.CapacityLimiter(config.file_threads)
        return Context(
            storage=storage,
            auth=auth,
            clock=config.clock,
            storage_limiter=trio.CapacityLimiter(config.storage_threads or storage.max_threads),
            control_limiter=trio.CapacityLimiter(config.control_threads),
            file_limiter=file_limiter,
            max_body_bytes=config.max_body_bytes,
            max_file_bytes=config.max_file_bytes,
            files=FileStore(Path(files_dir), file_limiter),
            metrics=config.metrics,
            secrets=config.secrets,
        )

    def _secret_from_file(self, storage: Storage, files_dir: Path) -> str:
        """The signing secret of ``jwt_secret_file`` (see :class:`ServerConfig`); blocking.

        Older versions kept the secret in clear in the database: it is moved into the file (so
        that tokens already issued stay valid) and deleted from the database.
        """
        path = self.config.jwt_secret_file
        if path is None:
            db_path = getattr(storage, "path", None)
            base = Path(db_path) if db_path is not None else files_dir
            path = base.with_name(base.name + ".jwt-secret")
        legacy = storage.meta_take("jwt_secret")
        try:
            if path.exists() or legacy is None:
                return secret_from_file(path)
            logger.info("moving the JWT secret out of the database into %s", path)
            return secret_from_file(path, legacy)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"JWT secret file {path}: {exc}") from exc

    async def _sweep_forever(self, ctx: Context) -> None:
        """Reclaim expired leases every ``sweep_interval`` seconds (polls also do it lazily)."""
        while True:
            await trio.sleep(self.config.sweep_interval)
            try:
                count = await ctx.control(ctx.storage.sweep, ctx.clock())
            except StorageUnavailable as exc:  # an outage is not a failing sweeper: try next time
                logger.warning("lease sweep skipped: %s", exc.message)
                continue
            ctx.metrics.counter("server.leases_reclaimed").inc(count)
            if count:
                logger.info("lease sweep: %d expired activities requeued or failed", count)

    async def _signal_timeouts(self, ctx: Context) -> None:
        """Apply ``on_timeout`` to signal waits when their deadline passes.

        Sleeps until the earliest deadline stored (read again whenever a request may have added
        one, see :class:`~trioworks.server.http.Context`), so a wait started before a restart
        still times out on time (read at most every ``WAKE_COALESCE`` seconds under a burst of
        wake-ups). Delays need no timer: a poll hands out a pending row only once
        its ``scheduled_for`` has passed.
        """
        while True:
            try:
                deadline = await ctx.control(ctx.storage.next_wait_deadline)
                if deadline is not None and deadline <= ctx.clock():
                    count = await ctx.control(ctx.storage.expire_waits, ctx.clock())
                    ctx.metrics.counter("server.signal_timeouts").inc(count)
                    continue
            except StorageUnavailable as exc:
                logger.warning("signal timeouts not checked: %s", exc.message)
                deadline = ctx.clock() + self.config.sweep_interval
            delay = math.inf if deadline is None else max(0.0, deadline - ctx.clock())
            with trio.move_on_after(delay):
                await ctx.timers.wait()
                await trio.sleep(WAKE_COALESCE)

    async def _fire_schedules(self, ctx: Context) -> None:
        """Fire recurring schedules when they are due (``POST /api/v1/schedules``).

        Sleeps until the earliest ``next_run_at`` stored, woken when a route creates, changes or
        deletes a schedule, and reads it again at least every ``schedule_poll`` seconds (another
        server on the same Postgres may have changed it). Each firing is one transaction that
        claims the occurrence and creates the run (:meth:`Storage.fire_schedules`), so a restart
        neither loses a due occurrence nor fires one twice, and several servers fire it once.
        """
        config = self.config
        while True:
            try:
                due = await ctx.control(ctx.storage.next_schedule_due)
                if due is not None and due <= ctx.clock():
                    # Runs are created like submits: on the storage limiter, not the control plane.
                    fires = await ctx.db(ctx.storage.fire_schedules, ctx.clock(), _SCHEDULE_BATCH)
                    started = [f for f in fires if f.workflow_id is not None]
                    ctx.metrics.counter("server.schedule_runs").inc(len(started))
                    ctx.metrics.counter("server.schedule_skips").inc(len(fires) - len(started))
                    for fire in fires:
                        logger.info(
                            "schedule %r: %s",
                            fire.name,
                            f"started workflow {fire.workflow_id}"
                            if fire.workflow_id
                            else f"no run ({fire.reason})",
                        )
                    if started:
                        ctx.timers.set()  # a new run may wait for a signal with a timeout
                    continue
            except StorageUnavailable as exc:
                logger.warning("schedules not checked: %s", exc.message)
                due = ctx.clock() + config.sweep_interval
            delay = (
                config.schedule_poll
                if due is None
                else max(0.0, min(due - ctx.clock(), config.schedule_poll))
            )
            with trio.move_on_after(delay):
                await ctx.schedule_timer.wait()
