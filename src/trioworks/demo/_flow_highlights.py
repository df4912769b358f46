"""Section 2 of the demo, judged: :class:`FlowRun` (what the run showed) and its highlights.

:func:`flow_highlights` is a pure function of a :class:`FlowRun`, so that a test can change
one fact of a real run and see the one highlight about it turn false.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ..worker import FileReference, WorkerStats
from . import activities as acts
from ._highlight import Highlight

__all__ = ["FlowRun", "flow_highlights"]


def _documents(items: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    return tuple(items)  # typed: ``converter=tuple`` gives mypy a generic it cannot match


@attrs.frozen
class FlowRun:
    """What the run saw; the server's JSON documents are kept as they came (the demo is a client)."""

    workflow: Mapping[str, Any]
    """``GET /api/v1/workflows/{id}`` once it ended (or when the section gave up)."""
    files: tuple[Mapping[str, Any], ...] = attrs.field(converter=_documents)
    """The files the server holds for ``extract`` (``.../activities/extract/output``)."""
    stats: WorkerStats
    """The worker's counters after it drained."""
    drain_seconds: float
    shutdown_timeout: float
    lag_interval: float
    lag_samples: tuple[tuple[float, float], ...]
    """``(time.time(), lag)`` of each look of the run's own lag probe (see ``_flow._probe_lag``)."""
    demo_pid: int
    problem: str | None = None
    """Why the workflow did not complete (timed out, failed), if it did not."""

    @property
    def statuses(self) -> dict[str, str]:
        return {a["activity_key"]: a["status"] for a in self.workflow.get("activities", ())}

    def lag_during(self, started: float, finished: float) -> float | None:
        """The worst loop lag over the probe periods that overlap ``[started, finished]``."""
        # A sample taken at ``t`` covers ``[t - interval - lag, t]``.
        seen = [
            lag for t, lag in self.lag_samples if t >= started and t - self.lag_interval - lag <= finished
        ]
        return max(seen, default=None)

    @property
    def activities(self) -> list[Mapping[str, Any]]:
        """The workflow's activities as the server reported them last (empty if it never answered)."""
        return list(self.workflow.get("activities", ()))

    @property
    def report(self) -> str | None:
        """The workflow's result: the last activity's report line (None if it did not get there)."""
        report = self.output(acts.REPORT).get("report")
        return str(report) if report else None

    @staticmethod
    def kind(key: str) -> str:
        """How the activity ``key`` runs: ``thread``, ``process`` or ``async``."""
        return acts.KINDS.get(key, "")

    def output(self, key: str) -> Mapping[str, Any]:
        for activity in self.workflow.get("activities", ()):
            if activity["activity_key"] == key:
                # The server's (the original's) [{name, type, value}]
                return {o["name"]: o["value"] for o in activity.get("outputs") or ()}
        return {}


def flow_highlights(run: FlowRun) -> list[Highlight]:
    """The section's claims, each checked against ``run``."""
    if run.problem is not None:
        return [Highlight(f"the workflow completes ({run.problem})", False)]
    return [
        Highlight(*_fan_out(run)),
        Highlight(*_cpu(run)),
        Highlight(*_file(run)),
        Highlight(*_branch(run)),
        Highlight(*_exactly_once(run)),
        Highlight(*_drain(run)),
    ]


def _fan_out(run: FlowRun) -> tuple[str, bool]:
    outs = [run.output(k) for k in acts.REGION_KEYS]
    if not all("started" in o and "finished" in o for o in outs):
        return "the fan-out overlapped (the region activities did not all say when they ran)", False
    first_end = min(o["finished"] for o in outs)
    last_start = max(o["started"] for o in outs)
    busy = sum(o["finished"] - o["started"] for o in outs)
    span = max(o["finished"] for o in outs) - min(o["started"] for o in outs)
    threads = len({o["thread"] for o in outs})
    gap = first_end - last_start
    text = (
        f"the fan-out overlapped: the last of the {len(outs)} region activities started "
        f"{abs(gap) * 1000:.0f} ms {'before' if gap > 0 else 'after'} the first one finished; "
        f"{threads} worker threads did {busy:.2f} s of blocking work in {span:.2f} s"
    )
    return text, last_start < first_end and threads == len(outs) and span < 0.75 * busy


def _cpu(run: FlowRun) -> tuple[str, bool]:
    cpu = run.output(acts.CPU)
    missing = _missing(cpu, "pid", "started", "finished", "primes", "limit")
    if missing:
        return f"'{acts.CPU}' ran in a worker process (its output lacks {missing})", False
    seconds = cpu["finished"] - cpu["started"]
    lag = run.lag_during(cpu["started"], cpu["finished"])
    text = (
        f"'{acts.CPU}' ran in worker process {cpu['pid']} (this is {run.demo_pid}): {cpu['primes']:,} primes "
        f"below {cpu['limit']:,} in {seconds:.2f} s; meanwhile the event loop (server, worker and demo) "
        f"lagged at worst {_ms(lag)} (probed every {run.lag_interval * 1000:.0f} ms; the worker's probe saw "
        f"{_ms(run.stats.loop_lag_max)} at worst over the whole run, start-up included)"
    )
    # Run on the loop, the count would have stalled it for its whole duration. The bound is half
    # of that, not less: on a busy shared machine the OS alone can hold the process off the CPU
    # for a few hundred milliseconds.
    return text, cpu["pid"] != run.demo_pid and lag is not None and lag < seconds / 2


def _missing(output: Mapping[str, Any], *names: str) -> str:
    return ", ".join(name for name in names if name not in output)


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.0f} ms"


def _file(run: FlowRun) -> tuple[str, bool]:
    made = run.output(acts.EXTRACT)
    reference = made.get("orders", "")
    try:
        ref = FileReference.parse(reference)
        if _missing(made, "bytes", "sha256"):
            raise ValueError("no size or checksum")
    except ValueError:
        return (
            f"'{acts.EXTRACT}' wrote {acts.ORDERS_FILE} and output its reference (it gave {reference!r})",
            False,
        )
    stored = [f for f in run.files if f.get("filename") == ref.filename]
    reads = [run.output(k) for k in acts.REGION_KEYS]
    held = f"{stored[0]['size']:,}" if stored else "no"
    matching = sum(
        r.get("read_bytes") == made["bytes"] and r.get("read_sha256") == made["sha256"] for r in reads
    )
    text = (
        f"'{acts.EXTRACT}' wrote {ref.filename} ({made['bytes']:,} bytes, sha256 {made['sha256'][:12]}…); the worker "
        f"uploaded it (the server holds {held} bytes) and passed it on as "
        f"{ref.provider}://…/{ref.activity_key}/{ref.filename}; {matching} "
        f"of {len(reads)} region activities downloaded it and read the same bytes"
    )
    ok = (
        matching == len(reads)
        and len(stored) == 1
        and stored[0]["size"] == made["bytes"]
        and ref.workflow_id == run.workflow.get("id")
        and ref.activity_key == acts.EXTRACT
    )
    return text, ok


def _branch(run: FlowRun) -> tuple[str, bool]:
    status = run.statuses
    agg = run.output(acts.AGGREGATE)
    ran = [k for k in (acts.TAKEN, acts.SKIPPED) if status.get(k) == "completed"]
    skipped = [k for k in (acts.TAKEN, acts.SKIPPED) if status.get(k) == "skipped"]
    text = (
        f"the condition on '{acts.AGGREGATE}'.needs_review ({agg.get('total_eur', 0):,.2f} EUR vs threshold "
        f"{agg.get('review_threshold', 0):,.0f}) ran {', '.join(ran) or 'no branch'} and skipped "
        f"{', '.join(skipped) or 'none'}; '{acts.REPORT}' went on with the branch that ran"
    )
    return text, len(ran) == 1 and len(skipped) == 1 and status.get(acts.REPORT) == "completed"


def _exactly_once(run: FlowRun) -> tuple[str, bool]:
    status = run.statuses
    completed = sum(s == "completed" for s in status.values())
    skipped = sum(s == "skipped" for s in status.values())
    stats = run.stats
    text = (
        f"every activity ran exactly once: the server shows {completed} completed and {skipped} skipped "
        f"of {len(status)}; the worker started {stats.started}, completed {stats.completed}, failed {stats.failed}"
    )
    ok = (
        completed + skipped == len(status) == len(acts.DEFINITION["activities"])
        and stats.started == stats.completed == completed
        and stats.failed == 0
        and stats.lease_lost == 0
    )
    return text, ok


def _drain(run: FlowRun) -> tuple[str, bool]:
    stats = run.stats
    text = (
        f"the worker drained cleanly in {run.drain_seconds * 1000:.0f} ms (limit {run.shutdown_timeout:g} s): "
        f"{stats.running} running, {stats.slots_used} slots held, {stats.reports_lost} reports lost, "
        f"{stats.poll_errors} failed polls"
    )
    ok = (
        run.drain_seconds < run.shutdown_timeout
        and stats.running == 0
        and stats.slots_used == 0
        and stats.reports_lost == 0
        and stats.poll_errors == 0
    )
    return text, ok
