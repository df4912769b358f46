"""Helpers of the llm tests (own module name: helper modules collide across test dirs)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

import _collector
from trioworks.bus import (
    DEFAULT_MAX_PAYLOAD,
    Bus,
    Envelope,
    InProcessBroker,
    InProcessTransport,
    LLMCancel,
    LLMRequest,
    Message,
    RawMessage,
    ToolFunction,
    ToolSpec,
    ToolsRegistry,
)
from trioworks.services.llm import Backend, LLMConfig, LLMService


class Collector(_collector.Collector):
    """The shared collector, plus waiting for one request's messages."""

    def for_id(self, request_id: str) -> list[Any]:
        return [d for d in self.data if getattr(d, "id", None) == request_id]

    async def wait_id(self, request_id: str, count: int = 1) -> list[Any]:
        while len(self.for_id(request_id)) < count:
            await self._changed.wait()
        return self.for_id(request_id)


@attrs.define
class Rig:
    llm: LLMService
    client: Bus
    stream: Collector
    responses: Collector
    tool_requests: Collector
    says: Collector
    nursery: trio.Nursery

    async def ask(self, text: str, request_id: str = "r1", **kw: Any) -> Envelope:
        """Publish an llm/request; the returned envelope's id is the response's."""
        return await self.client.publish("llm/request", LLMRequest(id=request_id, text=text, **kw))

    async def cancel(self, request_id: str = "r1") -> None:
        await self.client.publish("llm/cancel", LLMCancel(id=request_id))

    async def register(self, *functions: ToolFunction) -> None:
        await self.client.publish(
            "llm/tools/registry", ToolsRegistry(tools=tuple(ToolSpec(function=f) for f in functions))
        )
        # The registry route is its own task: wait until it has taken the new list.
        await self.llm.registry.wait_value(lambda tools: len(tools) == len(functions))

    async def serve(self, pattern: str, handler: Callable[[Message], Awaitable[object]]) -> None:
        await self.client.subscribe(pattern, handler, name=f"serve:{pattern}")

    def deltas(self, request_id: str = "r1") -> list[Any]:
        return self.stream.for_id(request_id)


GET_TIME = ToolFunction(name="get_time", description="The current time of day", parameters={"type": "object"})


@asynccontextmanager
async def rig(
    config: LLMConfig | None = None,
    *,
    backend: Backend | None = None,
    speak: bool = False,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> AsyncIterator[Rig]:
    """The llm service and a client on one in-process broker; ``max_payload`` is the llm's bus's."""
    broker = InProcessBroker()
    async with trio.open_nursery() as nursery:
        client = Bus(InProcessTransport(broker, client_id="client"), source="client")
        await nursery.start(client.run)
        collectors = [Collector() for _ in range(4)]
        for topic, collector in zip(
            ("llm/stream", "llm/response", "llm/tool.call.request/+", "tts/say"), collectors, strict=True
        ):
            await client.subscribe(topic, collector, capacity=1024)
        llm = LLMService(
            Bus(InProcessTransport(broker, client_id="llm"), source="llm", max_payload=max_payload),
            config if config is not None else LLMConfig(word_delay=0.05),
            backend=backend,
            speak=speak,
        )
        await nursery.start(llm.run)
        yield Rig(llm, client, *collectors, nursery)
        nursery.cancel_scope.cancel()


def nested_request(request_id: str, depth: int = 50_000) -> RawMessage:
    """An llm/request of ~100 KB (under the size cap) nesting ``depth`` levels deep in its data."""
    body = {"id": f"env-{request_id}", "type": "llm.request", "ts": 1.0, "source": "evil"}
    body["data"] = {"id": request_id, "text": "hi", "history": "@"}
    payload = json.dumps(body).encode().replace(b'"@"', b"[" * depth + b"]" * depth)
    return RawMessage("llm/request", payload, qos=1)
