"""The one cattrs converter of the server: attrs classes <-> JSON-ready values.

Used at both edges: the HTTP responses, and the definition bodies a backend stores as JSON.
Times (POSIX seconds internally) become ISO 8601 UTC strings here and only here.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import cattrs

from ._models import Definition, OutputDef, PendingActivity

__all__ = ["canonical_json", "converter", "definition_body", "iso", "load_definition", "undeliverable"]

converter = cattrs.Converter(omit_if_default=False)


def iso(timestamp: float | None) -> str | None:
    """``2026-01-25T10:00:00.000000Z`` for POSIX seconds; None stays None."""
    if timestamp is None:
        return None
    return (
        dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def definition_body(definition: Definition) -> dict[str, Any]:
    return converter.unstructure(definition)


def load_definition(body: dict[str, Any]) -> Definition:
    return converter.structure(body, Definition)


def _pending(activity: PendingActivity) -> dict[str, Any]:
    out: dict[str, Any] = {
        "activity_id": activity.activity_id,
        "workflow_id": activity.workflow_id,
        "activity_key": activity.activity_key,
        "worker": activity.worker,
        "activity_name": activity.activity_name,
        "parameters": activity.parameters,
        "settings": activity.settings,
        "timeout_seconds": activity.timeout_seconds,
    }
    if activity.output_definitions:
        out["output_definitions"] = [converter.unstructure(o, OutputDef) for o in activity.output_definitions]
    if activity.signal_data is not None:
        out["signal_data"] = activity.signal_data
    return out


converter.register_unstructure_hook(PendingActivity, _pending)


def undeliverable(activity: PendingActivity) -> str | None:
    """Why ``activity`` cannot be encoded in a poll response (JSON, UTF-8), or None if it can.

    A poll checks each activity before it commits the claim, so that one row that cannot be
    encoded is failed on its own instead of failing the response that carries other rows.
    """
    try:
        json.dumps(converter.unstructure(activity), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, TypeError, UnicodeError, RecursionError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
