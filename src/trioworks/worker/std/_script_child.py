"""The child side of the ``script`` activity: run as a program, imports only the standard library.

stdin: JSON ``{script, inputs, workflow_id, activity_key, activity_id}``; argv[1]: where to write
the JSON outcome ``{"ok": true, "output": ...}`` or ``{"ok": false, "code", "message"}``. The
user's own prints go to stdout/stderr, which the parent captures.
"""

from __future__ import annotations

import ast
import inspect
import json
import logging
import sys
import traceback
from typing import Any


class ScriptContext:
    """What a script sees as ``ctx``: identity and a logger (the parent heartbeats for it)."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.workflow_id = job.get("workflow_id", "")
        self.activity_key = job.get("activity_key", "")
        self.activity_id = job.get("activity_id", "")
        self.logger = logging.getLogger(f"script.{self.activity_key}")

    async def heartbeat(self, details: Any = None) -> None:
        """A no-op kept for scripts written for the original: the worker heartbeats on its own."""


def _default(value: Any) -> Any:
    for method in ("item", "isoformat", "tolist"):
        if hasattr(value, method):
            return getattr(value, method)()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def run(job: dict[str, Any]) -> dict[str, Any]:
    script = job.get("script") or ""
    if not script:
        return {"ok": False, "code": "MISSING_SCRIPT", "message": "No script provided"}
    ctx = ScriptContext(job)
    namespace: dict[str, Any] = {
        "INPUT": job.get("inputs") or {},
        "OUTPUT": {},
        "ctx": ctx,
        "logger": ctx.logger,
        "workflow_id": ctx.workflow_id,
        "activity_key": ctx.activity_key,
        "__name__": "__script__",
    }
    try:
        # Top-level await is allowed (the SDK's ScriptActivity.from_function writes
        # ``OUTPUT = await f(...)``); such a script runs under Trio.
        code = compile(script, "<script>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as exc:
        return {
            "ok": False,
            "code": "SYNTAX_ERROR",
            "message": f"SyntaxError at line {exc.lineno}: {exc.msg}",
        }
    try:
        if code.co_flags & inspect.CO_COROUTINE:
            import trio

            async def main() -> None:
                await eval(code, namespace)

            trio.run(main)
        else:
            exec(code, namespace)
    except Exception as exc:
        traceback.print_exc()
        return {"ok": False, "code": "SCRIPT_ERROR", "message": f"{type(exc).__name__}: {exc}"}
    try:
        return {"ok": True, "output": json.loads(json.dumps(namespace.get("OUTPUT", {}), default=_default))}
    except (TypeError, ValueError) as exc:
        return {"ok": False, "code": "SCRIPT_ERROR", "message": f"OUTPUT is not JSON: {exc}"}


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    outcome = run(json.load(sys.stdin))
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(outcome, out)


if __name__ == "__main__":
    main()
