"""An activity app for ``trioworks worker``: one of each kind of activity.

Run it against a Kruxia Flow server (or ``trioworks server``)::

    KRUXIAFLOW_API_URL=http://127.0.0.1:8080 KRUXIAFLOW_CLIENT_ID=... KRUXIAFLOW_CLIENT_SECRET=... \
        trioworks worker --app examples.worker_app --max-activities 8

(from the repository root, so that ``examples.worker_app`` is importable by worker processes).
"""

from __future__ import annotations

import hashlib
import time

import attrs
import trio

from trioworks.worker import Activity, ActivityContext, ActivityResult, TerminalActivityError, activity


@attrs.frozen
class Greeting:
    name: str
    excited: bool = False


@activity()
async def greet(params: Greeting, ctx: ActivityContext) -> ActivityResult:
    """Async: runs on the loop. Parameters are checked against ``Greeting``."""
    ctx.logger.info("greeting %s", params.name)
    return ActivityResult.value("greeting", f"hello {params.name}{'!' if params.excited else ''}")


@activity()
def checksum(params: dict, ctx: ActivityContext) -> ActivityResult:
    """Plain def: blocking work in a thread, never on the loop."""
    time.sleep(params.get("sleep", 0))
    return ActivityResult.value("sha256", hashlib.sha256(params["text"].encode()).hexdigest())


@activity(process=True)
def primes(params: dict) -> ActivityResult:
    """CPU-bound: in a worker process, killed if it runs past its timeout."""
    limit = int(params["below"])
    sieve = bytearray([1]) * limit
    sieve[:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return ActivityResult.value("count", sum(sieve))


@activity()
async def write_report(params: dict, ctx: ActivityContext) -> ActivityResult:
    """A FILE output: the worker uploads it and reports its reference string."""
    if not params.get("lines"):
        raise TerminalActivityError("lines must be a non-empty list", code="INVALID_PARAMETERS")
    path = (await ctx.temp_dir()) / "report.txt"
    await trio.Path(path).write_text("\n".join(map(str, params["lines"])) + "\n")
    return ActivityResult.file("report", str(path)).with_output("count", len(params["lines"]))


class WordCount(Activity):
    """The class-based form."""

    name = "word_count"

    async def execute(self, params: dict, ctx: ActivityContext) -> ActivityResult:
        local = await ctx.download_file(params["report"])
        text = await trio.Path(local).read_text()
        return ActivityResult.value("words", len(text.split()))


activities = [greet, checksum, primes, write_report, WordCount()]
