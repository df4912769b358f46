"""Response bodies in the original server's shapes (what Kruxia scripts and ``jq`` lines read).

- a definition version is the original's timestamp string (``20251105.143022.123456``, the UTC
  time of the deploy); the stored number is kept beside it as ``version_number``;
- an activity's ``outputs`` is the stored list ``[{name, type, value}]`` and its ``error`` the
  message string (the structured error is ``error_code`` / ``error_details``);
- a workflow has ``state_data`` (an object; the original's is ``{}`` unless its state says more).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .._errors import NotFound
from .._models import ActivityRow, ActivityStatus, Definition, DefinitionSummary, WorkflowRow
from .._wire import iso
from ..storage import Storage

__all__ = [
    "activity_view",
    "decimal_text",
    "error_text",
    "first_failure",
    "outputs_list",
    "resolve_version",
    "terminal_keys",
    "version_stamp",
    "workflow_summary",
]


def version_stamp(created_at: float) -> str:
    """The original's version string for a definition deployed at ``created_at``."""
    return dt.datetime.fromtimestamp(created_at, dt.UTC).strftime("%Y%m%d.%H%M%S.%f")


def resolve_version(storage: Storage, name: str, version: int | str | None) -> int | None:
    """The stored version number of ``version`` (a number, a timestamp string, or None: latest).

    Synchronous (a storage read): call it through ``ctx.db``. :exc:`NotFound` naming the
    definition and the version when no version has that stamp. Two versions deployed within the
    same microsecond share a stamp: the newer one wins.
    """
    if not isinstance(version, str):
        return version
    versions: list[DefinitionSummary] = storage.definition_versions(name)
    for summary in reversed(versions):
        if version_stamp(summary.created_at) == version:
            return summary.version
    raise NotFound(f"workflow definition {name!r} version {version!r} not found")


def outputs_list(output: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The stored ``{name: value}`` as the original's ``[{name, type, value}]`` (None stays None)."""
    if output is None:
        return None
    return [{"name": name, "type": "value", "value": value} for name, value in output.items()]


def error_text(error: dict[str, Any] | None) -> str | None:
    """The original's ``error`` string: ``CODE: message`` of the structured error."""
    if not error:
        return None
    message, code = error.get("message"), error.get("code")
    if code and message:
        return f"{code}: {message}"
    return str(message or code or error)


def workflow_summary(w: WorkflowRow, stamp: str | None) -> dict[str, Any]:
    return {
        "id": w.id,
        "status": w.status.value,
        "definition_name": w.definition_name,
        "definition_version": stamp,
        "definition_version_number": w.definition_version,
        "created_at": iso(w.created_at),
        "updated_at": iso(w.updated_at),
        "error_message": w.error_message,
    }


def activity_view(a: ActivityRow) -> dict[str, Any]:
    return {
        "activity_key": a.key,
        "activity_id": a.id,
        "status": a.status.value,
        "worker": a.worker,
        "activity_name": a.activity_name,
        "outputs": outputs_list(a.output),
        "error": error_text(a.error),
        "error_code": (a.error or {}).get("code"),
        "error_details": a.error,
        "retry_count": a.retry_count,
        "cost_usd": a.cost_usd,
        "started_at": iso(a.started_at),
        "completed_at": iso(a.completed_at) if a.status.terminal else None,
    }


def first_failure(rows: list[ActivityRow]) -> str | None:
    """The original's workflow ``error_message``: the first failed activity's error, if any."""
    for a in rows:
        if a.status is ActivityStatus.FAILED and a.error:
            return error_text(a.error)
    return None


def terminal_keys(definition: Definition) -> set[str]:
    """Activities no other activity depends on (the original's ``terminal_outputs``)."""
    depended = {d.activity_key for a in definition.activities for d in a.depends_on}
    return {a.key for a in definition.activities if a.key not in depended}


def decimal_text(amount: float) -> str:
    """A USD amount as the original's decimal string (``"0.0023"``): no float noise, no exponent."""
    text = f"{amount:.10f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
