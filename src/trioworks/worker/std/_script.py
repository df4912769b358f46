"""``script``: py-std's activity, running the user's Python in a child process.

Parameters (as py-std's): ``script`` (Python source) and ``inputs`` (the ``INPUT`` dict). The
script sets ``OUTPUT``, which becomes output ``result``. It sees ``INPUT``, ``OUTPUT``, ``ctx``
(``workflow_id``, ``activity_key``, ``activity_id``, ``logger``; ``heartbeat()`` is a no-op, the
worker heartbeats), ``logger``, ``workflow_id`` and ``activity_key``. Errors as py-std's:
``MISSING_SCRIPT``, ``SYNTAX_ERROR`` ("SyntaxError at line N: ..."), ``SCRIPT_ERROR`` ("Type:
message"), none of them retried.

Unlike py-std, which ``exec``s the script inside the worker process, the script runs in a fresh
Python process (``sys.executable``, the worker's environment), so a crash, a blocking call or a
runaway loop cannot stall the worker: the process is killed when the activity is cancelled
(its timeout, a lost lease, shutdown) or when the optional ``timeout_seconds`` parameter (ours)
expires (``TIMEOUT``). Top-level ``await`` is accepted (the SDK's ``ScriptActivity.from_function``
generates it for ``async def``; py-std itself rejects it as a syntax error); such scripts run
under Trio.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import attrs
import trio

from .._context import ActivityContext
from .._errors import ActivityError, TerminalActivityError
from .._results import ActivityResult

__all__ = ["ScriptParams", "script"]

_CHILD = Path(__file__).with_name("_script_child.py")
_TAIL = 2000


@attrs.frozen(kw_only=True)
class ScriptParams:
    script: str = ""
    inputs: Any = attrs.field(factory=dict)
    timeout_seconds: float | None = None


def _tail(data: bytes) -> str:
    return data[-_TAIL:].decode("utf-8", errors="replace").strip()


async def script(params: ScriptParams, ctx: ActivityContext) -> ActivityResult:
    """Run ``params.script`` in a child process; cancellation kills the process."""
    if not params.script:
        return ActivityResult.error("No script provided", code="MISSING_SCRIPT", retryable=False)
    result_path = Path(await ctx.temp_dir()) / "script-result.json"
    job = {
        "script": params.script,
        "inputs": params.inputs if params.inputs is not None else {},
        "workflow_id": ctx.workflow_id,
        "activity_key": ctx.activity_key,
        "activity_id": ctx.activity_id,
    }
    timeout = params.timeout_seconds if params.timeout_seconds is not None else float("inf")
    with trio.move_on_after(timeout) as scope:
        # run_process kills the child if this scope (or the activity's) is cancelled.
        done = await trio.run_process(
            [sys.executable, str(_CHILD), str(result_path)],
            stdin=json.dumps(job).encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    if scope.cancelled_caught:
        raise ActivityError(
            f"script: killed after timeout_seconds={params.timeout_seconds:g}", code="TIMEOUT"
        )
    if done.stdout:
        ctx.logger.info("script stdout: %s", _tail(done.stdout))
    try:
        outcome = json.loads(await trio.Path(result_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ActivityError(
            f"script: the script process exited with code {done.returncode} without a result: {_tail(done.stderr)}"
        ) from None
    if not outcome["ok"]:
        if done.stderr:
            ctx.logger.error("script failed:\n%s", _tail(done.stderr))
        raise TerminalActivityError(outcome["message"], code=outcome["code"])
    return ActivityResult.value("result", outcome["output"])
