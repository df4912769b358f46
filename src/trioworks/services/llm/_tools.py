"""Tool calls over the bus: the retained registry, and calls answered by ``call_id`` in time."""

from __future__ import annotations

import json
import logging
from typing import Any

import trio
from trio_util import AsyncValue

from ...bus import Bus, Message, ToolCallRequest, ToolCallResult, ToolSpec, ToolsRegistry, new_id
from ...core import Correlator
from ._chat import ChatMessage, ToolCall

__all__ = ["ToolCaller"]

logger = logging.getLogger("trioworks.services.llm")


class ToolCaller:
    """The tools on offer (``llm/tools/registry``) and the calls waiting for their results.

    :meth:`on_registry` and :meth:`on_result` are the handlers of the two routes; :meth:`call_all`
    runs one model round's calls concurrently.
    """

    def __init__(self, bus: Bus, *, timeout: float) -> None:
        self.bus = bus
        self.timeout = timeout
        self.registry: AsyncValue[tuple[ToolSpec, ...]] = AsyncValue(())
        """The tools of the latest ``llm/tools/registry`` (an observable value)."""
        self._waiters: Correlator[str, ToolCallResult] = Correlator()
        self.metrics = bus.metrics

    @property
    def pending(self) -> int:
        """Calls waiting for their result (0 whenever none is in flight)."""
        return len(self._waiters)

    async def on_registry(self, message: Message) -> None:
        registry: ToolsRegistry = message.data
        self.registry.value = registry.tools
        logger.info(
            "llm: %d tools registered: %s", len(registry.tools), [t.function.name for t in registry.tools]
        )

    async def on_result(self, message: Message) -> None:
        result: ToolCallResult = message.data
        if not self._waiters.resolve(result.call_id, result):
            self.metrics.counter("llm.tool.result.unmatched").inc()  # late, or another llm's

    async def call_all(self, calls: tuple[ToolCall, ...]) -> list[ChatMessage]:
        """Make ``calls`` concurrently; one ``tool`` message per call, in the calls' order.

        Never raises for a tool's failure, an unknown tool or a timeout (the model is told).
        Cancellation: every pending call is abandoned at once and its waiter removed.
        """
        results: list[ChatMessage | None] = [None] * len(calls)

        async def one(i: int, call: ToolCall) -> None:
            content = await self._call(call)
            results[i] = ChatMessage(role="tool", content=content, tool_call_id=call.id, name=call.name)

        async with trio.open_nursery() as nursery:
            for i, call in enumerate(calls):
                nursery.start_soon(one, i, call)
        return [r for r in results if r is not None]

    async def _call(self, call: ToolCall) -> str:
        if call.name not in {t.function.name for t in self.registry.value}:
            self.metrics.counter("llm.tool.unknown").inc()
            return json.dumps({"error": f"unknown tool {call.name!r}"})
        # Our own wire id: the model's ids may repeat across turns or hold characters a topic
        # level cannot (the model keeps its own id in the tool message).
        call_id = new_id()
        self.metrics.counter("llm.tool.calls").inc()
        with self._waiters.expect(call_id) as waiter:
            with trio.move_on_after(self.timeout):
                request = ToolCallRequest(call_id=call_id, name=call.name, arguments=call.arguments)
                await self.bus.publish(f"llm/tool.call.request/{call_id}", request)
                return _text(await waiter.wait())
        self.metrics.counter("llm.tool.timed_out").inc()
        logger.warning("llm: tool %s (call %s) did not answer within %s s", call.name, call_id, self.timeout)
        return json.dumps({"error": f"tool {call.name!r} did not answer within {self.timeout} s"})


def _text(result: ToolCallResult) -> str:
    if result.error is not None:
        return json.dumps({"error": result.error})
    value: Any = result.result
    return value if isinstance(value, str) else json.dumps(value)
