"""Typed errors of the reference server; each maps to one HTTP status and error code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "ConfigurationError",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "ServerError",
    "StorageUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
]


class ServerError(Exception):
    """Base of every error the API reports in its error body.

    ``status`` and ``code`` are what the client sees; ``details`` (optional) is copied into the
    error body's ``details``.
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details) if details else None

    def body(self) -> dict[str, Any]:
        """The spec's error body: ``{"error": {"code", "message", "details"?}}``."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class BadRequest(ServerError):
    status = 400
    code = "BAD_REQUEST"


class Unauthorized(ServerError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(ServerError):
    """403: authenticated, but this client may not touch that worker type, worker or workflow."""

    status = 403
    code = "FORBIDDEN"


class NotFound(ServerError):
    status = 404
    code = "NOT_FOUND"


class Conflict(ServerError):
    status = 409
    code = "CONFLICT"


class PayloadTooLarge(ServerError):
    status = 413
    code = "BAD_REQUEST"


class UnsupportedMediaType(ServerError):
    status = 415
    code = "BAD_REQUEST"


class ValidationFailed(ServerError):
    """422: one or more fields are wrong; ``field_errors`` maps each field path to its messages."""

    status = 422
    code = "VALIDATION_ERROR"

    def __init__(self, field_errors: Mapping[str, Sequence[str]], message: str | None = None) -> None:
        self.field_errors = {field: list(msgs) for field, msgs in field_errors.items()}
        if message is None:
            first, msgs = next(iter(self.field_errors.items()))
            more = len(self.field_errors) - 1
            message = f"{first}: {msgs[0]}" + (f" (and {more} more field errors)" if more else "")
        super().__init__(message, details={"field_errors": self.field_errors})

    @classmethod
    def one(cls, field: str, message: str) -> ValidationFailed:
        return cls({field: [message]})


class StorageUnavailable(ServerError):
    """The database cannot be reached (503), or its URL names a backend that is not available or
    is malformed (at open). The message names the database, never its password."""

    status = 503
    code = "UNAVAILABLE"


class ConfigurationError(Exception):
    """The server cannot start with its configuration (e.g. an unreadable JWT secret file)."""
