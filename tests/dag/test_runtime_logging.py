"""The runtime logs node start, finish, retry, skip, failure and cancel on ``trioworks.dag``."""

from __future__ import annotations

import logging

import pytest
import trio

from trioworks.dag import AsyncLocalRuntime, WorkflowBuilder, WorkflowTimeoutError


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "trioworks.dag" and r.levelno == level]


async def test_start_finish_retry_skip_and_failure_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("first try fails")
        return 1

    def broken(x: int) -> int:
        raise ValueError("bad")

    def after(y: int) -> int:
        return y

    wb = WorkflowBuilder()
    wb.add_node(flaky, "flaky", retry=1)
    wb.add_node(broken, "broken")
    wb.add_node(after, "after")
    wb.add_connection("flaky", "result", "broken", "x")
    wb.add_connection("broken", "result", "after", "y")
    caplog.set_level(logging.DEBUG, logger="trioworks.dag")
    result = await AsyncLocalRuntime(continue_on_error=True).execute_workflow_async(wb.build())
    assert result.errors.keys() == {"broken"}
    debug, info = _messages(caplog, logging.DEBUG), _messages(caplog, logging.INFO)
    assert "node 'flaky' started" in debug
    assert any(m.startswith("node 'flaky' completed in ") and m.endswith("(attempt 2)") for m in debug)
    assert any(m.startswith("node 'flaky' attempt 1 failed (ConnectionError") for m in info)
    assert any(m.startswith("node 'broken' failed") and "ValueError('bad')" in m for m in info)
    assert "node 'after' skipped: input failed" in info
    record = next(r for r in caplog.records if r.getMessage() == "node 'after' skipped: input failed")
    assert (record.node_id, record.status, record.run_id) == ("after", "skipped", result.run_id)  # type: ignore[attr-defined]


async def test_cancel_is_logged_and_debug_is_quiet_at_info(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.abc.Clock
) -> None:
    async def slow() -> None:
        await trio.sleep(60)

    wb = WorkflowBuilder()
    wb.add_node(slow, "slow")
    caplog.set_level(logging.INFO, logger="trioworks.dag")
    with pytest.raises(WorkflowTimeoutError):
        await AsyncLocalRuntime(execution_timeout=1).execute_workflow_async(wb.build())
    assert any(m.startswith("node 'slow' cancelled in ") for m in _messages(caplog, logging.INFO))
    assert _messages(caplog, logging.DEBUG) == []
