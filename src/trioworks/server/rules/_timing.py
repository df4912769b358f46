"""When a ready activity may run: ``settings.delay``, ``settings.scheduled_for`` and the
``settings.wait_for_signal`` timeout, as the original Kruxia Flow reads them
(``core/src/workflow/definition.rs``: ``apply_duration``, ``parse_scheduled_for``,
``WaitForSignalSettings``).

Pure functions of a POSIX time: the storage keeps the result in the row's ``scheduled_for``
(a pending row is not handed out before it; a waiting row times out at it), so both survive a
restart.
"""

from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ._templates import TemplateError

__all__ = [
    "ON_TIMEOUT",
    "ScheduleError",
    "SignalWait",
    "add_duration",
    "check_timing",
    "parse_instant",
    "signal_wait",
]

_DURATION = re.compile(r"^(\d+)(ms|s|mi|mo|m|h|d|w|y)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "mi": 60, "h": 3600, "d": 86400, "w": 604800}
ON_TIMEOUT = ("fail", "skip", "continue")


class ScheduleError(TemplateError):
    """A ``delay`` or ``scheduled_for`` (after templates) that is not a duration or a time."""


def _add_months(base: float, months: int) -> float:
    t = datetime.datetime.fromtimestamp(base, datetime.UTC)
    index = t.month - 1 + months
    year, month = t.year + index // 12, index % 12 + 1
    if year > datetime.MAXYEAR:
        raise ScheduleError(f"delay of {months} months goes past year {datetime.MAXYEAR}")
    day = min(t.day, calendar.monthrange(year, month)[1])  # Jan 31 + 1mo = Feb 28/29, as chrono
    return t.replace(year=year, month=month, day=day).timestamp()


def add_duration(base: float, text: Any) -> float:
    """``base`` (POSIX seconds) plus a duration ``<n><unit>``, unit ms, s, m (mi), h, d, w, mo, y.

    Months and years are calendar months in UTC (the day is clamped to the month's last).
    Raises :exc:`ScheduleError` naming the value otherwise.
    """
    m = _DURATION.match(text) if isinstance(text, str) else None
    if m is None:
        raise ScheduleError(
            f"settings.delay {text!r}: expected <number><unit>, unit one of ms, s, m, mi, h, d, w, mo, y "
            "(e.g. 500ms, 5s, 30m, 2h, 7d, 2mo)"
        )
    amount, unit = int(m.group(1)), m.group(2)
    if unit in ("mo", "y"):
        return _add_months(base, amount * (12 if unit == "y" else 1))
    return base + amount * _SECONDS[unit]


def parse_instant(text: Any) -> float:
    """An ISO 8601 / RFC 3339 time with its offset (``2025-12-01T09:00:00-08:00``) as POSIX seconds.

    A time without an offset is read as UTC. Raises :exc:`ScheduleError` naming the value.
    """
    if not isinstance(text, str):
        raise ScheduleError(f"settings.scheduled_for {text!r}: expected an ISO 8601 time string")
    try:
        t = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ScheduleError(
            f"settings.scheduled_for {text!r}: expected an ISO 8601 time such as 2025-12-01T09:00:00Z"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return t.timestamp()


@attrs.frozen
class SignalWait:
    """``settings.wait_for_signal`` read: the event (None: any), timeout (None: none), action."""

    event_name: str | None
    timeout_seconds: float | None = None
    on_timeout: str = "fail"


def signal_wait(settings: Mapping[str, Any] | None) -> SignalWait | None:
    """The activity's signal wait, or None. Accepts ``true``, an event name (this server's short
    forms) and the original's ``{event_name, timeout_seconds, on_timeout}``. Assumes it was checked."""
    value = (settings or {}).get("wait_for_signal")
    if not value:
        return None
    if isinstance(value, str):
        return SignalWait(value)
    if isinstance(value, Mapping):
        timeout = value.get("timeout_seconds")
        return SignalWait(
            value.get("event_name"),
            None if timeout is None else float(timeout),
            str(value.get("on_timeout", "fail")),
        )
    return SignalWait(None)


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_timing(settings: Mapping[str, Any], path: str, max_seconds: float) -> dict[str, str]:
    """Field errors (path -> message) of ``delay``, ``scheduled_for`` and ``wait_for_signal``.

    A templated ``delay`` / ``scheduled_for`` is checked when the activity becomes ready.
    """
    errors: dict[str, str] = {}
    delay, at = settings.get("delay"), settings.get("scheduled_for")
    if delay is not None and at is not None:
        errors[path] = "cannot specify both 'delay' and 'scheduled_for' (they are mutually exclusive)"
    for name, check in (("delay", lambda v: add_duration(0.0, v)), ("scheduled_for", parse_instant)):
        value = settings.get(name)
        if value is None or _templated(value):
            continue
        try:
            check(value)
        except ScheduleError as exc:
            errors[f"{path}.{name}"] = str(exc).split(": ", 1)[1]
    signal = settings.get("wait_for_signal")
    if signal is None or isinstance(signal, bool | str):
        return errors
    where = f"{path}.wait_for_signal"
    if not isinstance(signal, Mapping):
        errors[where] = "must be true, an event name, or {event_name, timeout_seconds, on_timeout}"
        return errors
    if not isinstance(signal.get("event_name"), str) or not signal["event_name"]:
        errors[f"{where}.event_name"] = "required: a non-empty string"
    timeout = signal.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= max_seconds
    ):
        errors[f"{where}.timeout_seconds"] = f"must be a number > 0 and <= {max_seconds:g}"
    if signal.get("on_timeout", "fail") not in ON_TIMEOUT:
        errors[f"{where}.on_timeout"] = f"must be one of {', '.join(ON_TIMEOUT)}"
    unknown = sorted(set(signal) - {"event_name", "timeout_seconds", "on_timeout"})
    if unknown:
        errors[where] = f"unknown field(s) {', '.join(unknown)}"
    return errors
