"""The demo's section 2: server + worker + workflow, end to end (real time, real server).

One real run (:func:`trioworks.demo.run_flow`; ``flow_run``, module scope) feeds every judging
test: the highlights hold on it, and each highlight turns false when the fact it claims is
changed. The command's narration of it is tested in tests/cli/test_cli_demo.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import yaml
from hypothesis import given
from hypothesis import strategies as st

from trioworks.demo import FlowRun, FlowStep, flow_highlights, run_flow
from trioworks.demo import activities as acts
from trioworks.server import parse_definition

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parents[2] / "examples" / "workflows" / "demo.yaml"
TOPICS = ("fan-out", "worker process", "wrote orders.csv", "the condition", "exactly once", "drained")


def _run(steps: list[FlowStep] | None = None) -> FlowRun:
    with tempfile.TemporaryDirectory() as tmp:
        return trio.run(lambda: run_flow(Path(tmp), on_step=None if steps is None else steps.append))


@pytest.fixture(scope="module")
def flow_run() -> FlowRun:
    return _run()


def _verdicts(run: FlowRun) -> dict[str, bool]:
    """Highlight topic -> whether it holds (the topic phrase is in the highlight's text)."""
    found = {}
    for highlight in flow_highlights(run):
        topic = next(t for t in TOPICS if t in highlight.text)
        found[topic] = highlight.ok
    return found


def _only_false(run: FlowRun, topic: str) -> None:
    verdicts = _verdicts(run)
    assert verdicts.pop(topic) is False
    assert all(verdicts.values()), verdicts


def _values(activity: dict[str, Any]) -> dict[str, Any]:
    return {o["name"]: o["value"] for o in activity["outputs"] or ()}


def _listed(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": k, "type": "value", "value": v} for k, v in values.items()]


def _with_output(run: FlowRun, key: str, **changes: Any) -> FlowRun:
    activities = [
        {**a, "outputs": _listed({**_values(a), **changes})} if a["activity_key"] == key else a
        for a in run.workflow["activities"]
    ]
    return attrs.evolve(run, workflow={**run.workflow, "activities": activities})


def _without(run: FlowRun, key: str, name: str) -> FlowRun:
    activities = [
        {**a, "outputs": _listed({k: v for k, v in _values(a).items() if k != name})}
        if a["activity_key"] == key
        else a
        for a in run.workflow["activities"]
    ]
    return attrs.evolve(run, workflow={**run.workflow, "activities": activities})


def _with_status(run: FlowRun, key: str, status: str) -> FlowRun:
    activities = [
        {**a, "status": status} if a["activity_key"] == key else a for a in run.workflow["activities"]
    ]
    return attrs.evolve(run, workflow={**run.workflow, "activities": activities})


# -- the definition -----------------------------------------------------------------


def test_example_yaml_is_the_demo_definition() -> None:
    assert yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")) == acts.DEFINITION
    definition = parse_definition(acts.DEFINITION)  # the server's own check, as deploy runs it
    assert [a.key for a in definition.activities] == list(acts.KINDS)
    served = {d.name for d in acts.ACTIVITIES}
    assert {a.activity_name for a in definition.activities} <= served
    assert {acts.KINDS[k] for k in acts.REGION_KEYS} == {"thread"} and acts.KINDS[acts.CPU] == "process"


# -- a real run ---------------------------------------------------------------------


def test_every_flow_highlight_holds_on_a_real_run(flow_run: FlowRun) -> None:
    verdicts = _verdicts(flow_run)
    assert set(verdicts) == set(TOPICS)
    assert all(verdicts.values()), [h.text for h in flow_highlights(flow_run) if not h.ok]
    assert flow_run.output(acts.REPORT)["workflow_id"] == flow_run.workflow["id"]
    assert flow_run.report is not None and flow_run.report.startswith("2000 orders")


def test_a_workflow_that_fails_on_the_server_is_a_false_highlight(monkeypatch) -> None:
    # With INPUT.orders null, extract's parameters no longer fit, and the workflow fails on the
    # server. (Without the key at all, the server refuses the start: 422 naming input.orders.)
    monkeypatch.setattr(acts, "INPUT", {**acts.INPUT, "orders": None})
    steps: list[FlowStep] = []
    [highlight] = flow_highlights(_run(steps))
    assert not highlight.ok
    assert "it failed: INVALID_PARAMETERS: activity 'extract_orders'" in highlight.text
    assert any(step.text.startswith("worker drained") for step in steps)
    assert ("workflow", "failed") in {(step.activity, step.status) for step in steps}


def test_a_refused_definition_is_a_false_highlight_naming_the_field(monkeypatch) -> None:
    bad = {**acts.DEFINITION, "activities": [{**acts.DEFINITION["activities"][0], "worker": "Not A Slug"}]}
    monkeypatch.setattr(acts, "DEFINITION", bad)
    [highlight] = flow_highlights(_run())
    assert not highlight.ok
    assert "/api/v1/workflow_definitions: the server answered 422 VALIDATION_ERROR" in highlight.text
    assert "activities[0].worker" in highlight.text


# -- each highlight can fail ----------------------------------------------------------


def test_a_failed_workflow_is_one_false_highlight(flow_run: FlowRun) -> None:
    found = flow_highlights(attrs.evolve(flow_run, problem="it failed: activity 'x' failed"))
    assert [(h.ok, "it failed" in h.text) for h in found] == [(False, True)]


def test_fan_out_is_false_when_the_regions_ran_one_after_another(flow_run: FlowRun) -> None:
    run = flow_run
    for i, key in enumerate(acts.REGION_KEYS):
        run = _with_output(run, key, started=100.0 + i, finished=100.5 + i)
    _only_false(run, "fan-out")


def test_fan_out_is_false_when_the_regions_shared_one_thread(flow_run: FlowRun) -> None:
    run = flow_run
    for key in acts.REGION_KEYS:
        run = _with_output(run, key, thread=1)
    _only_false(run, "fan-out")


def test_cpu_is_false_in_the_demo_process_or_with_a_stalled_loop(flow_run: FlowRun) -> None:
    cpu = flow_run.output(acts.CPU)
    _only_false(attrs.evolve(flow_run, demo_pid=cpu["pid"]), "worker process")
    middle = (cpu["started"] + cpu["finished"]) / 2
    stall = cpu["finished"] - cpu["started"]  # as if the count had run on the loop
    stalled = attrs.evolve(flow_run, lag_samples=(*flow_run.lag_samples, (middle, stall)))
    _only_false(stalled, "worker process")
    # A stall before the activity started (say, while its process was spawned) is not counted.
    earlier = attrs.evolve(flow_run, lag_samples=((cpu["started"] - 10, 5.0), *flow_run.lag_samples))
    assert all(_verdicts(earlier).values())


def test_file_is_false_when_a_reader_saw_other_bytes_or_the_server_has_none(flow_run: FlowRun) -> None:
    _only_false(_with_output(flow_run, acts.REGION_KEYS[2], read_sha256="0" * 64), "wrote orders.csv")
    _only_false(attrs.evolve(flow_run, files=[]), "wrote orders.csv")
    truncated = [{**f, "size": f["size"] - 1} for f in flow_run.files]
    _only_false(attrs.evolve(flow_run, files=truncated), "wrote orders.csv")


def test_branch_is_false_when_both_or_neither_ran(flow_run: FlowRun) -> None:
    verdicts = _verdicts(_with_status(flow_run, acts.SKIPPED, "completed"))
    assert verdicts["the condition"] is False
    verdicts = _verdicts(_with_status(flow_run, acts.TAKEN, "skipped"))
    assert verdicts["the condition"] is False


def test_exactly_once_is_false_after_a_retry_or_a_failure(flow_run: FlowRun) -> None:
    stats = flow_run.stats
    again = attrs.evolve(stats, started=stats.started + 1, failed=1)
    _only_false(attrs.evolve(flow_run, stats=again), "exactly once")
    lost = attrs.evolve(stats, lease_lost=1)
    _only_false(attrs.evolve(flow_run, stats=lost), "exactly once")


def test_missing_outputs_give_false_highlights_not_errors(flow_run: FlowRun) -> None:
    _only_false(_without(flow_run, acts.REGION_KEYS[1], "started"), "fan-out")
    _only_false(_without(flow_run, acts.CPU, "pid"), "worker process")
    _only_false(_with_output(flow_run, acts.EXTRACT, orders="orders.csv"), "wrote orders.csv")


def test_drain_is_false_when_work_was_left_or_reports_lost(flow_run: FlowRun) -> None:
    _only_false(attrs.evolve(flow_run, stats=attrs.evolve(flow_run.stats, reports_lost=1)), "drained")
    _only_false(attrs.evolve(flow_run, stats=attrs.evolve(flow_run.stats, running=1)), "drained")
    _only_false(attrs.evolve(flow_run, drain_seconds=flow_run.shutdown_timeout), "drained")


# -- the lag window ----------------------------------------------------------------------


_times = st.floats(0, 100)
_lags = st.floats(0, 5)


@given(
    start=_times,
    length=st.floats(0, 10),
    inside=st.lists(st.tuples(st.floats(0, 1), _lags), max_size=10),
    before=st.lists(st.tuples(st.floats(1e-3, 50), _lags), max_size=10),
    after=st.lists(st.tuples(st.floats(1e-3, 50), _lags), max_size=10),
)
def test_lag_during_counts_the_looks_inside_the_window_and_no_others(
    flow_run: FlowRun,
    start: float,
    length: float,
    inside: list[tuple[float, float]],
    before: list[tuple[float, float]],
    after: list[tuple[float, float]],
) -> None:
    end = start + length
    interval = flow_run.lag_interval
    samples = [
        *[(start + frac * length, lag) for frac, lag in inside],  # taken inside the window
        *[(start - gap, lag) for gap, lag in before],  # taken before it started
        # taken after it ended, by a probe whose sleep began after it ended
        *[(end + interval + lag + gap, lag) for gap, lag in after],
    ]
    run = attrs.evolve(flow_run, lag_samples=tuple(sorted(samples)))
    assert run.lag_during(start, end) == max((lag for _, lag in inside), default=None)
    # A look just after the end whose sleep began before the end saw the window's last moments.
    spanning = attrs.evolve(run, lag_samples=(*run.lag_samples, (end + 0.001, 1e6)))
    assert spanning.lag_during(start, end) == 1e6
