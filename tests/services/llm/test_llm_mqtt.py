"""The llm service over a real mosquitto broker: RAG, a tool call from the retained registry,
streamed deltas and a cancel, each crossing the broker. Real time, seconds-scale bounds."""

from __future__ import annotations

import itertools

import trio
from llm_helpers import GET_TIME, Collector, nested_request

from _services import MosquittoBroker
from trioworks.bus import (
    Bus,
    LLMCancel,
    LLMRequest,
    MemoryResult,
    MemoryResults,
    Message,
    MqttTransport,
    ToolCallResult,
    ToolSpec,
    ToolsRegistry,
)
from trioworks.core import RetryPolicy
from trioworks.services.llm import CANCELLED, LLMConfig, LLMService

FAST = RetryPolicy(max_attempts=100, base_delay=0.05, factor=2.0, max_delay=0.5, jitter=0.5)
_ids = itertools.count()


def _bus(broker: MosquittoBroker, source: str) -> Bus:
    return Bus(MqttTransport(broker.url, client_id=f"{source}-{next(_ids)}", reconnect=FAST), source=source)


async def test_rag_tools_stream_and_cancel_over_mqtt(fresh_mosquitto: MosquittoBroker) -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            client = _bus(fresh_mosquitto, "client")
            await nursery.start(client.run)
            stream, responses = Collector(), Collector()
            await client.subscribe("llm/stream", stream, capacity=1024)
            await client.subscribe("llm/response", responses)

            async def memory(message: Message) -> None:
                doc = MemoryResult(document={"text": "the spare key is under the mat"}, score=1.0)
                await client.reply(
                    message, "memory/results", MemoryResults(query=message.data.text, k=1, results=(doc,))
                )

            async def tool(message: Message) -> None:
                await client.publish(
                    "llm/tool.call.result", ToolCallResult(call_id=message.data.call_id, result="07:30")
                )

            await client.subscribe("memory/query", memory)
            await client.subscribe("llm/tool.call.request/+", tool)
            # Retained before the llm starts: it must pick the registry up when it subscribes.
            await client.publish("llm/tools/registry", ToolsRegistry(tools=(ToolSpec(function=GET_TIME),)))

            llm = LLMService(_bus(fresh_mosquitto, "llm"), LLMConfig(word_delay=0.02))
            await nursery.start(llm.run)
            await llm.registry.wait_value(lambda tools: len(tools) == 1)

            await client.publish("llm/request", LLMRequest(id="rag", text="where is the key", use_rag=True))
            await client.publish("llm/request", LLMRequest(id="tool", text="what time is it"))
            [rag] = await responses.wait_id("rag")
            [tool_reply] = await responses.wait_id("tool")
            assert rag.reply == "From memory: the spare key is under the mat"
            assert tool_reply.reply == "The get_time tool says: 07:30."
            # The response and the stream are separate subscriptions: the response can be
            # handled before the last deltas.
            while not any(d.done for d in stream.for_id("rag")):
                await stream.wait_id("rag", len(stream.for_id("rag")) + 1)
            deltas = stream.for_id("rag")
            assert "".join(d.delta for d in deltas) == rag.reply and deltas[-1].done

            await client.publish("llm/request", LLMRequest(id="long", text="say " * 500))
            await stream.wait_id("long", 3)
            await client.publish("llm/cancel", LLMCancel(id="long"))
            [cancelled] = await responses.wait_id("long")
            assert cancelled.error == CANCELLED
            # Cut short: the reply so far lacks most of the 500 words a finished one would echo.
            assert cancelled.reply is None or cancelled.reply.count("say") < 500
            nursery.cancel_scope.cancel()


async def test_deeply_nested_requests_over_mqtt_leave_the_service_serving(
    fresh_mosquitto: MosquittoBroker,
) -> None:
    # Issue 10, case 2, across a real broker: five ~100 KB nested requests, then a normal one.
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            client = _bus(fresh_mosquitto, "client")
            await nursery.start(client.run)
            responses, health = Collector(), Collector()
            await client.subscribe("llm/response", responses)
            llm = LLMService(_bus(fresh_mosquitto, "llm"), LLMConfig(word_delay=0.0))
            await nursery.start(llm.run)
            for n in range(5):
                await client.transport.publish(nested_request(f"deep-{n}"))
            for n in range(5):
                [bad] = await responses.wait_id(f"deep-{n}")
                assert "nested deeper than 64 levels" in bad.error
            reply = await client.request(
                "llm/request", LLMRequest(id="ok", text="hello"), reply_topic="llm/response", timeout=10
            )
            assert reply.data.error is None and reply.data.reply
            await client.subscribe("system/health/llm", health)  # retained: the service's latest
            [status] = await health.wait_for(1)
            assert (status.data.ok, status.data.event) == (True, "ready")
            assert llm.metrics.snapshot()["bus.sub.llm/request.failed"] == 0
            nursery.cancel_scope.cancel()
