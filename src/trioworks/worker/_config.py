"""Worker configuration: the original SDK's ``KRUXIAFLOW_*`` variables and defaults, plus ours."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._errors import ConfigError

__all__ = ["ENV_VARS", "WorkerConfig"]

_SLUG = re.compile(r"^[a-z][a-z0-9_-]*$")


def _default_worker_id() -> str:
    return f"worker_{uuid.uuid4().hex[:12]}"


def _default_processes() -> int:
    return os.cpu_count() or 1


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ConfigError(attribute.name, f"expected a number > 0, got {value!r}")


def _at_least_one(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(attribute.name, f"expected a whole number >= 1, got {value!r}")


def _url(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not re.match(r"^https?://[^/\s]+", value or ""):
        raise ConfigError(attribute.name, f"expected an http:// or https:// URL, got {value!r}")


def _slug(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _SLUG.match(value):
        raise ConfigError(attribute.name, f"expected a worker slug matching {_SLUG.pattern}, got {value!r}")


def _non_empty(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value:
        raise ConfigError(attribute.name, "must not be empty")


@attrs.frozen(kw_only=True)
class WorkerConfig:
    """Everything a :class:`~trioworks.worker.Worker` needs to know; times in seconds.

    Build it directly, or with :meth:`from_env` from the same ``KRUXIAFLOW_*`` variables and
    defaults as the original Python SDK (see :data:`ENV_VARS`). Invalid values raise
    :class:`ConfigError` naming the field (or the env var, from :meth:`from_env`).
    """

    api_url: str = attrs.field(validator=_url)
    client_id: str = ""
    """Empty client id and secret: no token is fetched (a server in insecure development mode)."""
    client_secret: str = ""
    worker_id: str = attrs.field(factory=_default_worker_id, validator=_non_empty)
    worker: str = attrs.field(default="py-std", validator=_slug)
    poll_max_activities: int = attrs.field(default=10, validator=_at_least_one)
    """Most activities asked for in one poll (the server caps it at 100)."""
    poll_interval: float = attrs.field(default=0.1, validator=_positive)
    """First idle backoff after an empty poll; it doubles (with jitter) up to ``poll_interval_max``.
    An activity of this worker finishing ends the wait (its completion may have made work)."""
    max_activities: int = attrs.field(default=16, validator=_at_least_one)
    """Work slots: activities running at once."""
    activity_timeout: float = attrs.field(default=300.0, validator=_positive)
    """Timeout of an activity whose ``timeout_seconds`` is null."""
    heartbeat_interval: float = attrs.field(default=30.0, validator=_positive)
    """Upper bound on the heartbeat period; the period is also at most a third of the lease."""
    shutdown_timeout: float = attrs.field(default=30.0, validator=_positive)
    """How long a drain waits for running activities before cancelling them."""
    # Ours, not in the original SDK.
    poll_interval_max: float = attrs.field(default=1.0, validator=_positive)
    max_threads: int | None = None
    """Threads for plain ``def`` activities; default ``max_activities``."""
    max_processes: int = attrs.field(factory=_default_processes, validator=_at_least_one)
    """Worker processes for ``process=True`` activities."""
    report_timeout: float = attrs.field(default=30.0, validator=_positive)
    """Deadline for reporting one result (complete/fail, retries included)."""
    request_timeout: float = attrs.field(default=30.0, validator=_positive)
    """httpx timeout of a single HTTP request."""
    health_interval: float = attrs.field(default=30.0, validator=_positive)
    """Period of the INFO health log line."""
    lag_interval: float = attrs.field(default=0.1, validator=_positive)
    """Period of the event-loop lag probe (a sleep whose lateness is the lag)."""
    server_lease: float = attrs.field(default=60.0, validator=_positive)
    """The server's lease when ``timeout_seconds`` is null (Kruxia: 60 s)."""

    def __attrs_post_init__(self) -> None:
        if self.max_threads is not None:
            _at_least_one(self, attrs.fields(WorkerConfig).max_threads, self.max_threads)
        if self.client_id and not self.client_secret:
            raise ConfigError("client_secret", "client_id is set but client_secret is empty")

    @property
    def thread_slots(self) -> int:
        return self.max_threads if self.max_threads is not None else self.max_activities

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> WorkerConfig:
        """Read :data:`ENV_VARS` from ``environ`` (default ``os.environ``); ``overrides`` win.

        Overrides whose value is ``None`` are ignored (so CLI flags not given fall through).
        ``WORKER_TYPE`` (the original's Docker images) is read when ``KRUXIAFLOW_WORKER`` is unset.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, (var, parse) in ENV_VARS.items():
            text = env.get(var)
            if field == "worker" and not text:
                text = env.get("WORKER_TYPE")
            if text is None or text == "":
                continue
            try:
                values[field] = parse(text)
            except ValueError:
                raise ConfigError(var, f"expected {_SHAPES[parse]}, got {text!r}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "api_url" not in values:
            raise ConfigError("KRUXIAFLOW_API_URL", "not set (give the server URL, or --url)")
        try:
            return cls(**values)
        except ConfigError as exc:
            source_var = ENV_VARS.get(exc.source, (None,))[0]  # the variable the bad value came from
            if source_var and exc.source not in overrides and source_var in env:
                raise ConfigError(source_var, exc.message) from None
            raise


_SHAPES: dict[Callable[[str], Any], str] = {int: "a whole number", float: "a number of seconds", str: "text"}

ENV_VARS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "api_url": ("KRUXIAFLOW_API_URL", str),
    "client_id": ("KRUXIAFLOW_CLIENT_ID", str),
    "client_secret": ("KRUXIAFLOW_CLIENT_SECRET", str),
    "worker_id": ("KRUXIAFLOW_WORKER_ID", str),
    "worker": ("KRUXIAFLOW_WORKER", str),
    "poll_max_activities": ("KRUXIAFLOW_WORKER_POLL_MAX_ACTIVITIES", int),
    "poll_interval": ("KRUXIAFLOW_WORKER_POLL_INTERVAL", float),
    "max_activities": ("KRUXIAFLOW_WORKER_MAX_ACTIVITIES", int),
    "activity_timeout": ("KRUXIAFLOW_WORKER_ACTIVITY_TIMEOUT", float),
    "heartbeat_interval": ("KRUXIAFLOW_WORKER_HEARTBEAT_INTERVAL", float),
    "shutdown_timeout": ("KRUXIAFLOW_WORKER_SHUTDOWN_TIMEOUT", float),
    "max_threads": ("KRUXIAFLOW_WORKER_MAX_THREADS", int),
    "max_processes": ("KRUXIAFLOW_WORKER_MAX_PROCESSES", int),
}
"""Config field -> (environment variable, parser). The first ten are the original SDK's."""
