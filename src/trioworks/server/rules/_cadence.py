"""When a schedule fires: a cron expression in an IANA timezone, or a fixed interval, as the
original Kruxia Flow's ``core/src/scheduler/mod.rs`` reads them (``validate_cadence``,
``next_occurrence``).

Pure functions of POSIX seconds. Cron expressions are parsed and iterated by ``croniter``
(standard crontab: 5 fields, or 6/7 with leading seconds / trailing year, names, ranges, steps,
lists, ``@daily`` and friends); timezones are ``zoneinfo`` names.

One deliberate difference: the original hands its expressions to the Rust ``cron`` crate, whose
day-of-week field counts 1-7 from *Sunday* (so its ``0 9 * * 1`` fires on Sundays and ``0`` is
refused). Here the field is standard crontab (0-7, 0 and 7 both Sunday, ``1`` is Monday), as
the original's documentation promises.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo

import attrs
from croniter import CroniterBadCronError, CroniterBadDateError, croniter

__all__ = ["OVERLAP_POLICIES", "Cadence", "cadence_errors", "next_occurrence"]

OVERLAP_POLICIES = ("skip", "allow")
"""``skip`` (default): no run while the previous one is still active; ``allow``: always run."""


@attrs.frozen
class Cadence:
    """Exactly one of ``cron`` (with an optional ``timezone``, default UTC) and ``interval_seconds``."""

    cron: str | None = None
    timezone: str | None = None
    interval_seconds: int | None = None


def _zone(name: str | None) -> dt.tzinfo:
    if name is None:
        return dt.UTC
    return zoneinfo.ZoneInfo(name)


def _cron_after(expression: str, zone: dt.tzinfo, after: float) -> float:
    # Whole seconds (cron fires on them): fromtimestamp would round 59.9999998 up to the next
    # minute, and the fire at that minute would be skipped.
    start = dt.datetime.fromtimestamp(math.floor(after), zone)
    # second_at_beginning: a 6-field expression is "sec min hour dom mon dow", as the original.
    following = croniter(expression, start, second_at_beginning=True).get_next(dt.datetime)
    return float(following.timestamp())


def cadence_errors(cadence: Cadence, now: float) -> dict[str, str]:
    """Field errors (field -> message) of ``cadence``; empty when it can fire.

    A cron expression that parses but never matches (``0 0 31 2 *``) is an error of ``cron``.
    """
    cron, zone_name, interval = cadence.cron, cadence.timezone, cadence.interval_seconds
    if cron is not None and interval is not None:
        return {"cron": "provide exactly one of cron or interval_seconds, not both"}
    if cron is None and interval is None:
        return {"cron": "provide exactly one of cron or interval_seconds"}
    if interval is not None:
        if zone_name is not None:
            return {"timezone": "timezone only applies to cron schedules"}
        if interval < 1:
            return {"interval_seconds": "must be at least 1"}
        return {}
    assert cron is not None
    try:
        zone = _zone(zone_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return {"timezone": f"unknown IANA timezone {zone_name!r} (e.g. UTC, America/Chicago)"}
    if not croniter.is_valid(cron, second_at_beginning=True):
        return {
            "cron": f"invalid cron expression {cron!r}: expected 5 fields (minute hour day-of-month "
            "month day-of-week) or 6 with leading seconds, e.g. '*/5 * * * *' or '0 9 * * mon-fri'"
        }
    try:
        _cron_after(cron, zone, now)
    except (CroniterBadDateError, CroniterBadCronError, ValueError, OverflowError):
        return {"cron": f"cron expression {cron!r} yields no future occurrence"}
    return {}


def next_occurrence(cadence: Cadence, anchor: float, after: float) -> float:
    """The first occurrence strictly after ``after`` (POSIX seconds).

    An interval keeps its phase: ``anchor + k * interval_seconds`` for the smallest ``k`` that
    lands after ``after`` (``anchor`` itself when it is later), so a long downtime advances
    arithmetically, not by looping. Assumes :func:`cadence_errors` found nothing; raises
    ``ValueError`` otherwise (e.g. a timezone that vanished from the system's database).
    """
    if cadence.interval_seconds is not None:
        step = cadence.interval_seconds
        if step < 1:
            raise ValueError(f"interval_seconds must be at least 1, got {step}")
        if anchor > after:
            return anchor
        return anchor + (math.floor((after - anchor) / step) + 1) * step
    if cadence.cron is None:
        raise ValueError("a cadence needs cron or interval_seconds")
    try:
        return _cron_after(cadence.cron, _zone(cadence.timezone), after)
    except (CroniterBadDateError, CroniterBadCronError, zoneinfo.ZoneInfoNotFoundError) as exc:
        raise ValueError(f"cron {cadence.cron!r} in {cadence.timezone or 'UTC'}: {exc}") from exc
