"""Errors of the client, with the original SDK's names."""

from __future__ import annotations

__all__ = ["AuthenticationError", "DeploymentError", "KruxiaFlowError", "WorkflowNotFoundError"]


class KruxiaFlowError(Exception):
    """A request failed; ``status_code`` is the HTTP status (None for a network error)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class AuthenticationError(KruxiaFlowError):
    """401: no token, a bad token, or refused client credentials."""


class DeploymentError(KruxiaFlowError):
    """The server refused the workflow definition; the message carries its reasons."""


class WorkflowNotFoundError(KruxiaFlowError):
    """404: no such workflow (or activity, or definition)."""
