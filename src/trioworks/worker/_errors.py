"""Error types of the activity worker: configuration, HTTP API and activity failures."""

from __future__ import annotations

__all__ = [
    "ActivityError",
    "ApiError",
    "AuthenticationError",
    "ConfigError",
    "LeaseLostError",
    "TerminalActivityError",
    "WorkerError",
]


class WorkerError(Exception):
    """Base class of every error the worker package raises on its own."""


class ConfigError(WorkerError):
    """Bad configuration. ``source`` names the env var, flag or field at fault."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(source, message)
        self.source = source
        self.message = message

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


class ApiError(WorkerError):
    """The server answered a worker call with a 4xx/5xx status.

    ``code`` and ``message`` come from the Kruxia error body ``{"error": {code, message}}``
    when the server sent one.
    """

    def __init__(self, method: str, path: str, status: int, code: str, message: str) -> None:
        super().__init__(method, path, status, code, message)
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.message = message

    @property
    def transient(self) -> bool:
        """True for statuses worth retrying: 5xx and 429."""
        return self.status >= 500 or self.status == 429

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status} {self.code}: {self.message}"


class AuthenticationError(ApiError):
    """The token endpoint refused the credentials, or a call stayed 401 after a fresh token."""


class LeaseLostError(ApiError):
    """409 (or 404) on heartbeat/complete/fail: the activity is no longer ours to report."""


class ActivityError(Exception):
    """Raise from an activity to fail it with a chosen ``code`` and ``retryable`` flag.

    Any other exception is reported as ``EXECUTION_ERROR``, retryable (unless the activity
    declared that exception type terminal with ``@activity(terminal=(...))``).
    """

    retryable_default = True

    def __init__(self, message: str, *, code: str = "EXECUTION_ERROR", retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = self.retryable_default if retryable is None else retryable


class TerminalActivityError(ActivityError):
    """An :class:`ActivityError` that is not retried (``retryable=False``)."""

    retryable_default = False
