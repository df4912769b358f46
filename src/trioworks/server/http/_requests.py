"""Request bodies of the JSON routes, checked into frozen attrs classes.

Each ``parse_*`` takes the decoded JSON and returns a typed request or raises
:exc:`ValidationFailed` whose ``field_errors`` name every bad field (``error.code``,
``usage[1].input_tokens``...). Nothing reaches the storage before this check.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import ValidationFailed

__all__ = [
    "VERSION_STAMP",
    "CompleteRequest",
    "FailRequest",
    "PollRequest",
    "SignalRequest",
    "SubmitRequest",
    "WorkerRequest",
    "parse_complete",
    "parse_fail",
    "parse_poll",
    "parse_signal",
    "parse_submit",
    "parse_worker",
]

_MISSING = object()
VERSION_STAMP = re.compile(r"^\d{8}\.\d{6}\.\d{6}$")
"""The original's definition version: the UTC time of the deploy, ``YYYYMMDD.HHMMSS.micros``."""
MAX_COST = 1e9
"""Largest ``cost_usd`` one report may carry (costs add up over retries: they must stay finite)."""


class _Fields:
    """Reads fields of one JSON object, collecting errors instead of raising at the first.

    Its readers are named after the JSON types (``str``, ``int``...), so below ``def str`` the
    annotations spell the builtin as ``builtins.str``.
    """

    def __init__(self, data: Any, prefix: str = "", errors: dict[str, list[str]] | None = None) -> None:
        self.errors: dict[str, list[str]] = {} if errors is None else errors
        self.prefix = prefix
        if isinstance(data, Mapping):
            self.data: Mapping[str, Any] = data
        else:
            self.data = {}
            self.add("", "must be a JSON object")

    def add(self, field: str, message: str) -> None:
        path = f"{self.prefix}.{field}" if self.prefix and field else (self.prefix or field or "body")
        self.errors.setdefault(path, []).append(message)

    def str(self, name: str, *, required: bool = True) -> Any:
        value = self.data.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.add(name, "required: a non-empty string")
            return None
        if not isinstance(value, str) or (required and not value):
            self.add(name, "must be a non-empty string")
            return None
        if "\x00" in value:  # Postgres text cannot hold NUL; no name or id needs one
            self.add(name, "must not contain a NUL character")
            return None
        return value

    def int(self, name: builtins.str, default: int, lo: int, hi: int) -> int:
        value = self.data.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            self.add(name, f"must be an integer from {lo} to {hi}")
            return default
        return value

    def number(self, name: builtins.str, default: float) -> float:
        """A number from 0 to :data:`MAX_COST`; a decimal string is accepted too (the original SDK
        sends Decimal as str). Bounded so that costs summed over attempts stay finite."""
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                value = None
        # The range check also refuses inf and nan, and compares a huge int without converting it
        # (math.isfinite would raise OverflowError on one).
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= MAX_COST:
            self.add(name, f"must be a number from 0 to {MAX_COST:g} (or a decimal string)")
            return default
        return float(value)

    def object(self, name: builtins.str, *, required: bool) -> Any:
        value = self.data.get(name)
        if value is None:
            if required:
                self.add(name, "required: a JSON object")
            return None
        if not isinstance(value, Mapping):
            self.add(name, "must be a JSON object")
            return None
        return dict(value)

    def bool(self, name: builtins.str) -> bool:
        value = self.data.get(name)
        if not isinstance(value, bool):
            self.add(name, "required: true or false")
            return False
        return value

    def done(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)


@attrs.frozen
class PollRequest:
    worker: str
    worker_id: str
    max_activities: int = 1


@attrs.frozen
class WorkerRequest:
    worker_id: str


@attrs.frozen
class CompleteRequest:
    worker_id: str
    output: dict[str, Any]
    cost_usd: float = 0.0
    usage: list[dict[str, Any]] | None = None


@attrs.frozen
class FailRequest:
    worker_id: str
    error: dict[str, Any]  # {code, message, retryable}, checked
    cost_usd: float = 0.0
    usage: list[dict[str, Any]] | None = None


@attrs.frozen
class SubmitRequest:
    definition_name: str
    input: dict[str, Any]
    version: int | str | None = None  # a number, or the original's timestamp string (resolved later)
    unique_key: str | None = None


@attrs.frozen
class SignalRequest:
    activity_key: str
    event_name: str
    data: dict[str, Any] | None = None


def parse_poll(data: Any) -> PollRequest:
    f = _Fields(data)
    request = PollRequest(f.str("worker"), f.str("worker_id"), f.int("max_activities", 1, 1, 100))
    f.done()
    return request


def parse_worker(data: Any) -> WorkerRequest:
    f = _Fields(data)
    worker_id = f.str("worker_id")
    f.done()
    return WorkerRequest(worker_id)


_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")


def _usage(f: _Fields) -> list[dict[str, Any]] | None:
    raw = f.data.get("usage")
    if raw is None:
        return None
    if not isinstance(raw, list):
        f.add("usage", "must be a list of usage entries")
        return None
    entries = []
    for i, item in enumerate(raw):
        e = _Fields(item, f"usage[{i}]", f.errors)
        entry: dict[str, Any] = {"provider": e.str("provider"), "model": e.str("model")}
        for name in _TOKEN_FIELDS:
            entry[name] = e.int(name, 0, 0, 2**62)
        if e.data.get("cost_usd") is not None:
            entry["cost_usd"] = e.number("cost_usd", 0.0)
        entries.append(entry)
    return entries


def parse_complete(data: Any) -> CompleteRequest:
    f = _Fields(data)
    request = CompleteRequest(
        worker_id=f.str("worker_id"),
        output=f.object("output", required=True),
        cost_usd=f.number("cost_usd", 0.0),
        usage=_usage(f),
    )
    f.done()
    return request


def parse_fail(data: Any) -> FailRequest:
    f = _Fields(data)
    worker_id = f.str("worker_id")
    error: dict[str, Any] = {}
    if not isinstance(f.data.get("error"), Mapping):
        f.add("error", "required: {code, message, retryable}")
    else:
        e = _Fields(f.data["error"], "error", f.errors)
        error = {"code": e.str("code"), "message": e.str("message"), "retryable": e.bool("retryable")}
        if e.data.get("details") is not None:
            error["details"] = e.data["details"]
    request = FailRequest(worker_id, error, f.number("cost_usd", 0.0), _usage(f))
    f.done()
    return request


def parse_submit(data: Any) -> SubmitRequest:
    f = _Fields(data)
    version = f.data.get("version")
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if isinstance(version, str) and not VERSION_STAMP.match(version):
        f.add("version", "must be a version number or a timestamp version like 20251105.143022.123456")
    elif (
        version is not None
        and not isinstance(version, str)
        and (not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= 2**31)
    ):
        f.add("version", "must be an integer from 1 to 2147483648")
    input_ = f.object("input", required=False)
    request = SubmitRequest(
        definition_name=f.str("definition_name"),
        input=input_ if input_ is not None else {},
        version=version,
        unique_key=f.str("unique_key", required=False),
    )
    f.done()
    return request


def parse_signal(data: Any) -> SignalRequest:
    f = _Fields(data)
    request = SignalRequest(f.str("activity_key"), f.str("event_name"), f.object("data", required=False))
    f.done()
    return request
