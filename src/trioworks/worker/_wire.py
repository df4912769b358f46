"""Wire messages of the Kruxia Flow worker API and the worker's one cattrs converter."""

from __future__ import annotations

import re
from typing import Any

import attrs
import cattrs

__all__ = ["FileReference", "PendingActivity", "UsageEntry", "converter", "pending_activity"]

converter = cattrs.Converter()
"""The worker's converter: wire JSON <-> these classes, and activity parameters -> attrs classes."""

_FILENAME = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_./-]*$")
_IDENT = re.compile(r"^[a-zA-Z0-9_-]+$")
_REFERENCE = re.compile(r"^(\w+)://([0-9a-fA-F-]+)/([^/]+)/(.+)$")


@attrs.frozen
class PendingActivity:
    """One claimed activity, as ``POST /api/v1/workers/poll`` returns it."""

    activity_id: str
    workflow_id: str
    activity_key: str
    worker: str
    activity_name: str
    parameters: dict[str, Any] = attrs.field(factory=dict)
    settings: dict[str, Any] | None = None
    timeout_seconds: int | None = None
    output_definitions: list[dict[str, Any]] | None = None
    signal_data: dict[str, Any] | None = None


_IDS = ("activity_id", "workflow_id", "activity_key", "worker", "activity_name")
_OBJECTS = ("settings", "signal_data")


def pending_activity(item: Any) -> PendingActivity:
    """One item of a poll answer -> :class:`PendingActivity`; ValueError naming what does not fit.

    Written out rather than left to cattrs: it runs for every claimed activity (a third of the
    cost of cattrs' generated function, which also copied every mapping). Extra keys are ignored;
    ids may be strings or integers; ``parameters`` null is ``{}``.
    """
    if not isinstance(item, dict):
        raise ValueError(f"a polled activity must be an object, got {type(item).__name__}")
    ids = []
    for name in _IDS:
        value = item.get(name)
        if type(value) is not str:
            if type(value) is not int:
                raise ValueError(f"a polled activity's {name!r} must be a string, got {value!r}")
            value = str(value)
        ids.append(value)
    parameters = item.get("parameters")
    if parameters is None:
        parameters = {}
    elif not isinstance(parameters, dict):
        raise ValueError(f"a polled activity's 'parameters' must be an object, got {parameters!r}")
    objects = []
    for name in _OBJECTS:
        value = item.get(name)
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"a polled activity's {name!r} must be an object or null, got {value!r}")
        objects.append(value)
    timeout = item.get("timeout_seconds")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout != timeout:
            raise ValueError(f"a polled activity's 'timeout_seconds' must be a number, got {timeout!r}")
        timeout = int(timeout)
    outputs = item.get("output_definitions")
    if outputs is not None and (
        not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs)
    ):
        raise ValueError(
            f"a polled activity's 'output_definitions' must be a list of objects, got {outputs!r}"
        )
    return PendingActivity(
        ids[0],
        ids[1],
        ids[2],
        ids[3],
        ids[4],
        parameters,
        objects[0],
        timeout,
        outputs,
        objects[1],
    )


@attrs.frozen
class UsageEntry:
    """LLM usage, reported with complete/fail."""

    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: float | None = None


@attrs.frozen
class FileReference:
    """``{provider}://{workflow_id}/{activity_key}/{filename}``."""

    workflow_id: str
    activity_key: str
    filename: str
    provider: str = "postgres"

    def __attrs_post_init__(self) -> None:
        check_filename(self.filename)
        if not _IDENT.match(self.activity_key):
            raise ValueError(f"activity key must match {_IDENT.pattern}, got {self.activity_key!r}")

    def __str__(self) -> str:
        return f"{self.provider}://{self.workflow_id}/{self.activity_key}/{self.filename}"

    @classmethod
    def parse(cls, reference: str) -> FileReference:
        """Parse a reference string; ValueError naming the expected shape when it is not one."""
        match = _REFERENCE.match(reference)
        if match is None:
            raise ValueError(
                f"expected a file reference 'provider://workflow_id/activity_key/filename', got {reference!r}"
            )
        provider, workflow_id, key, filename = match.groups()
        return cls(workflow_id, key, filename, provider)


def check_filename(filename: str) -> None:
    if not _FILENAME.match(filename) or ".." in filename.split("/"):
        raise ValueError(f"filename must match {_FILENAME.pattern} with no '..' segment, got {filename!r}")


def unstructure_usage(entries: tuple[UsageEntry, ...]) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        data = converter.unstructure(entry)
        if data["cost_usd"] is None:
            del data["cost_usd"]
        out.append(data)
    return out
