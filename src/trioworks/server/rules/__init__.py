"""The server's workflow rules: pure functions from rows to rows, shared by every storage backend.

The middle layer of :mod:`trioworks.server` (``http`` → ``rules`` ← ``storage``): no I/O, no
SQL, no HTTP; it imports only the server's models and errors.

- :func:`parse_definition` checks a definition (field errors by path) and ``_templates`` the
  ``{{...}}`` templates and conditions in it;
- ``_engine``: what each queue operation does to a row (claim, complete, fail, expire), and
  scheduling over a whole workflow (used when one is created);
- ``_progress``: the same scheduling applied incrementally from one finished row, reading only
  the rows it changes (through a :class:`RowSource` the storage supplies);
- ``_cadence``: when a recurring schedule fires (cron in a timezone, or an interval).

The stable API is :mod:`trioworks.server`; these names are for the other layers.
"""

from ._cadence import OVERLAP_POLICIES, Cadence, cadence_errors, next_occurrence
from ._definitions import KEY_PATTERN, Loop, parse_definition
from ._engine import (
    advance,
    claim_row,
    complete_row,
    expire_row,
    fail_row,
    fail_workflow,
    new_activities,
    owned_check,
    pending_activity,
    start_row,
    template_context,
    undeliverable_row,
    wait_timeout,
    workflow_cancellation,
    workflow_failure,
)
from ._inputs import missing_inputs, required_inputs
from ._progress import Plan, Progress, RowSource, make_plan, progress, waiting_counts
from ._templates import MissingSecret, TemplateError, fill_secrets, secret_names, secrets_from_env
from ._timing import SignalWait, signal_wait

__all__ = [
    "KEY_PATTERN",
    "OVERLAP_POLICIES",
    "Cadence",
    "Loop",
    "MissingSecret",
    "Plan",
    "Progress",
    "RowSource",
    "SignalWait",
    "TemplateError",
    "advance",
    "cadence_errors",
    "claim_row",
    "complete_row",
    "expire_row",
    "fail_row",
    "fail_workflow",
    "fill_secrets",
    "make_plan",
    "missing_inputs",
    "new_activities",
    "next_occurrence",
    "owned_check",
    "parse_definition",
    "pending_activity",
    "progress",
    "required_inputs",
    "secret_names",
    "secrets_from_env",
    "signal_wait",
    "start_row",
    "template_context",
    "undeliverable_row",
    "wait_timeout",
    "waiting_counts",
    "workflow_cancellation",
    "workflow_failure",
]
