"""Recurring schedules as the layers pass them: a stored :class:`ScheduleRow`, a
:class:`NewSchedule` to create, :class:`ScheduleChanges` to apply (PATCH), a :class:`ScheduleFire`.

The original Kruxia Flow's ``WorkflowSchedule`` / ``NewSchedule`` / ``ScheduleUpdate``
(``core/src/scheduler/mod.rs``); times are POSIX seconds, as in every row of this server.
"""

from __future__ import annotations

from typing import Any

import attrs

from .rules import Cadence

__all__ = ["NewSchedule", "ScheduleChanges", "ScheduleFire", "ScheduleRow"]


@attrs.frozen
class ScheduleRow:
    """One schedule. ``definition_version`` None: the latest version when it fires."""

    id: str
    name: str
    definition_name: str
    definition_version: int | None
    input: dict[str, Any]
    cadence: Cadence
    overlap_policy: str
    enabled: bool
    next_run_at: float
    last_run_at: float | None
    last_workflow_id: str | None
    created_by: str | None
    created_at: float
    updated_at: float


@attrs.frozen
class NewSchedule:
    """A schedule to create; its cadence has been checked (:func:`~.rules.cadence_errors`)."""

    name: str
    definition_name: str
    definition_version: int | None
    input: dict[str, Any]
    cadence: Cadence
    overlap_policy: str = "skip"
    enabled: bool = True
    created_by: str | None = None


@attrs.frozen
class ScheduleChanges:
    """A PATCH: None leaves a field as it is.

    ``cron`` or ``interval_seconds`` replaces the cadence wholesale (the other is cleared; a new
    ``cron`` takes ``timezone`` from the same request, default UTC); ``timezone`` alone retunes
    an existing cron. Both at once, or an interval with a timezone, is refused (the original
    takes the cron, or drops the timezone, silently). A new cadence, or enabling a disabled schedule, recomputes ``next_run_at``
    from now: a stale past-due time does not fire at once.
    """

    input: dict[str, Any] | None = None
    cron: str | None = None
    timezone: str | None = None
    interval_seconds: int | None = None
    overlap_policy: str | None = None
    enabled: bool | None = None

    def cadence(self, current: Cadence) -> Cadence:
        """The cadence after this change."""
        if self.cron is not None or self.interval_seconds is not None:
            # Both, or an interval with a timezone: kept as sent, for the check to refuse.
            return Cadence(self.cron, self.timezone, self.interval_seconds)
        if self.timezone is not None:
            return attrs.evolve(current, timezone=self.timezone)
        return current

    @property
    def changes_cadence(self) -> bool:
        return self.cron is not None or self.interval_seconds is not None or self.timezone is not None


@attrs.frozen
class ScheduleFire:
    """What one due schedule did: ``workflow_id`` of the run it submitted, or None with the
    ``reason`` it did not (``overlap``: the previous run is still active; ``error``: the
    submission failed, e.g. the definition is gone: ``message`` says why)."""

    schedule_id: str
    name: str
    occurrence: float
    workflow_id: str | None
    reason: str | None = None
    message: str | None = None
