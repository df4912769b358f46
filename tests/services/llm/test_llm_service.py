"""The llm service with the offline backend on an in-process bus, in virtual time."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing
from llm_helpers import GET_TIME, nested_request, rig

from trioworks.bus import (
    LLMParams,
    LLMRequest,
    MemoryResult,
    MemoryResults,
    Message,
    RawMessage,
    ToolCallResult,
    ToolFunction,
    encode,
)
from trioworks.services.llm import CANCELLED, Completion, LLMConfig, LLMConfigError, OnDelta

LONG = " ".join(f"word{i}" for i in range(200))


async def test_deltas_stream_in_order_then_done_and_one_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with rig() as r:
        sent = await r.ask("hello there")
        [response] = await r.responses.wait_id("r1")
        deltas = r.deltas()
        assert [d.seq for d in deltas] == list(range(len(deltas)))
        assert deltas[-1].done and deltas[-1].delta == ""
        assert not any(d.done for d in deltas[:-1])
        reply = "".join(d.delta for d in deltas)
        assert (
            reply == response.reply == "I am the offline backend, not a language model. You said: hello there"
        )
        assert response.error is None
        assert (response.provider, response.model) == ("offline", "offline-rules")
        assert response.tokens == {"completion_tokens": 13, "total_tokens": 13}
        # The response correlates with the request by envelope id.
        assert r.responses.messages[-1].envelope.id == sent.id
        assert r.llm.turns == {}


async def test_stream_false_sends_only_the_response(autojump_clock: trio.testing.MockClock) -> None:
    async with rig() as r:
        await r.ask("hi", stream=False, params=LLMParams(max_tokens=3))
        [response] = await r.responses.wait_id("r1")
        assert response.reply == "I am the"
        assert r.deltas() == []


async def test_rag_context_from_memory(autojump_clock: trio.testing.MockClock) -> None:
    async with rig() as r:
        queries: list[Message] = []

        async def memory(message: Message) -> None:
            queries.append(message)
            doc = MemoryResult(document={"text": "the cat is called Tom"}, score=0.9)
            await r.client.reply(
                message, "memory/results", MemoryResults(query=message.data.text, k=1, results=(doc,))
            )

        await r.serve("memory/query", memory)
        await r.ask("what is the cat called", use_rag=True, rag_k=99)
        [response] = await r.responses.wait_id("r1")
        assert response.reply == "From memory: the cat is called Tom"
        assert queries[0].data.top_k == 50  # clamped to the contract's maximum


async def test_rag_timeout_answers_without_context_after_5_s(autojump_clock: trio.testing.MockClock) -> None:
    async with rig() as r:
        start = trio.current_time()
        await r.ask("what is the cat called", use_rag=True)
        [response] = await r.responses.wait_id("r1")
        assert response.error is None
        assert response.reply.endswith("You said: what is the cat called")
        assert 5.0 <= trio.current_time() - start < 6.0
        assert r.llm.metrics.counter("llm.rag.timed_out").value == 1


async def test_tool_call_round_trip(autojump_clock: trio.testing.MockClock) -> None:
    async with rig() as r:
        await r.register(GET_TIME, ToolFunction(name="play_music", description="Play a song"))

        async def tool(message: Message) -> None:
            await r.client.publish(
                "llm/tool.call.result", ToolCallResult(call_id=message.data.call_id, result="12:00")
            )

        await r.serve("llm/tool.call.request/+", tool)
        await r.ask("what time is it")
        [response] = await r.responses.wait_id("r1")
        assert response.reply == "The get_time tool says: 12:00."
        [call] = r.tool_requests.messages
        assert call.topic == f"llm/tool.call.request/{call.data.call_id}"
        assert (call.data.name, call.data.arguments) == ("get_time", {})
        assert r.llm.pending_tool_calls == 0


async def test_a_tool_error_reaches_the_model(autojump_clock: trio.testing.MockClock) -> None:
    async with rig() as r:
        await r.register(GET_TIME)

        async def tool(message: Message) -> None:
            await r.client.publish(
                "llm/tool.call.result", ToolCallResult(call_id=message.data.call_id, error="clock broken")
            )

        await r.serve("llm/tool.call.request/+", tool)
        await r.ask("what time is it")
        [response] = await r.responses.wait_id("r1")
        assert response.reply == 'The get_time tool says: {"error": "clock broken"}.'


async def test_tool_timeout_after_30_s(autojump_clock: trio.testing.MockClock) -> None:
    async with rig() as r:
        await r.register(GET_TIME)
        start = trio.current_time()
        await r.ask("what time is it")
        [response] = await r.responses.wait_id("r1")
        assert 30.0 <= trio.current_time() - start < 31.0
        assert "did not answer within 30.0 s" in response.reply
        assert r.llm.pending_tool_calls == 0
        assert r.llm.metrics.counter("llm.tool.timed_out").value == 1


async def test_cancel_mid_stream_stops_deltas(autojump_clock: trio.testing.MockClock) -> None:
    async with rig() as r:
        await r.ask(LONG)
        await r.stream.wait_id("r1", 5)
        await r.cancel()
        [response] = await r.responses.wait_id("r1")
        assert response.error == CANCELLED
        deltas = r.deltas()
        assert deltas[-1].done
        assert response.reply == "".join(d.delta for d in deltas)
        await trio.sleep(60)  # nothing more comes
        assert len(r.deltas()) == len(deltas) < 10
        assert r.llm.turns == {}


async def test_cancel_stops_a_pending_tool_call_promptly(autojump_clock: trio.testing.MockClock) -> None:
    async with rig() as r:
        await r.register(GET_TIME)
        await r.ask("what time is it")
        await r.tool_requests.wait_for(1)
        assert r.llm.pending_tool_calls == 1
        start = trio.current_time()
        await r.cancel()
        [response] = await r.responses.wait_id("r1")
        assert trio.current_time() - start < 0.1
        assert response.error == CANCELLED and response.reply is None
        assert r.llm.pending_tool_calls == 0


async def test_cancel_during_rag_wait(autojump_clock: trio.testing.MockClock) -> None:
    async with rig() as r:
        await r.ask("remember anything?", use_rag=True)
        await trio.sleep(1)
        await r.cancel()
        [response] = await r.responses.wait_id("r1")
        assert response.error == CANCELLED
        assert trio.current_time() < 2
        assert r.llm.bus.pending_requests == 0


async def test_cancel_of_a_queued_request(autojump_clock: trio.testing.MockClock) -> None:
    async with rig(LLMConfig(max_concurrent=1, word_delay=0.05)) as r:
        await r.ask(LONG, "first")
        await r.ask("second", "second")
        await r.stream.wait_id("first", 2)
        await r.cancel("second")
        [second] = await r.responses.wait_id("second")
        assert second.error == CANCELLED
        assert r.responses.for_id("first") == []  # still generating: the queued one left at once
        await r.cancel("first")
        await r.responses.wait_id("first")


async def test_concurrency_limit_serialises_generation(autojump_clock: trio.testing.MockClock) -> None:
    async with rig(LLMConfig(max_concurrent=1, word_delay=0.05)) as r:
        await r.ask("one", "a")
        await r.ask("two", "b")
        await r.responses.wait_for(2)
        order = [(m.data.id, m.data.done) for m in r.stream.messages]
        a_done = order.index(("a", True))
        assert all(i == "a" for i, _ in order[: a_done + 1])


async def test_bad_requests_get_clear_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with rig() as r:
        await r.ask("   ", "empty")
        [empty] = await r.responses.wait_id("empty")
        assert empty.error == "bad request 'empty': $.data.text must not be empty"
        await r.ask(LONG, "dup")
        await r.ask("again", "dup")
        [dup] = await r.responses.wait_id("dup")
        assert dup.error == "bad request 'dup': a request with this id is already in flight"
        assert r.llm.metrics.counter("llm.requests.refused").value == 2


async def test_a_malformed_request_is_answered_with_the_field_at_fault(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def raw(id_: object, data: object) -> RawMessage:
        body = {"id": id_, "type": "llm.request", "ts": 1.0, "source": "evil", "data": data}
        return RawMessage("llm/request", json.dumps(body).encode(), qos=1)

    async with rig() as r:
        broker = r.client.transport.broker
        await broker.publish(raw("env-1", {"id": "m1", "text": "hi", "rag_k": 0}))
        [bad] = await r.responses.wait_id("m1")
        assert bad.error.startswith("bad request: malformed envelope on 'llm/request'")
        assert "$.data.rag_k: must be >= 1, got 0" in bad.error
        [message] = [m for m in r.responses.messages if m.data.id == "m1"]
        assert message.envelope.id == "env-1"  # the request's correlation id
        # No data.id: the envelope id stands in for it.
        await broker.publish(raw("env-2", {"text": "hi", "stream": "yes"}))
        [no_data_id] = await r.responses.wait_id("env-2")
        assert "$.data.stream: expected bool, got str" in no_data_id.error
        # Nothing to correlate with: only logged and counted.
        await broker.publish(raw(5, ["not", "an", "object"]))
        # A requester waiting on the envelope id gets its answer now, not at its deadline.
        request = LLMRequest(id="m3", text="hi")
        object.__setattr__(request, "rag_k", -1)  # a peer with a looser contract
        with trio.fail_after(1):
            reply = await r.client.request("llm/request", request, reply_topic="llm/response", timeout=30)
        assert reply.data.id == "m3" and "$.data.rag_k" in reply.data.error
        await r.ask("still serving", "ok")
        [ok] = await r.responses.wait_id("ok")
        assert ok.error is None
        snap = r.llm.metrics.snapshot()
        assert snap["bus.sub.llm/request.malformed"] == 4
        assert (snap["llm.requests.malformed"], snap["llm.requests.unanswerable"]) == (3, 1)


async def test_a_redelivered_request_is_answered_once(autojump_clock: trio.testing.MockClock) -> None:
    # QoS 1 is at least once: the same envelope can arrive twice (a resend, a resumed session).
    async with rig() as r:
        sent = await r.ask(LONG, "once")
        await r.client.transport.broker.publish(RawMessage("llm/request", encode("llm/request", sent), qos=1))
        [response] = await r.responses.wait_id("once")
        await trio.sleep(30)
        assert len(r.responses.for_id("once")) == 1 and response.error is None
        assert r.llm.metrics.snapshot()["bus.sub.llm/request.duplicates"] == 1


async def test_busy_when_max_pending_reached(autojump_clock: trio.testing.MockClock) -> None:
    async with rig(LLMConfig(max_concurrent=1, max_pending=1, word_delay=0.05)) as r:
        await r.ask(LONG, "a")
        await r.ask("b", "b")
        [busy] = await r.responses.wait_id("b")
        assert busy.error.startswith("busy: 1 requests in flight")


async def test_speak_sends_sentences_with_the_request_id_as_utt_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with rig(speak=True) as r:
        await r.ask("short")
        [response] = await r.responses.wait_id("r1")
        await r.says.wait_for(1)
        assert [s.utt_id for s in r.says.data] == ["r1"] * len(r.says.data)
        assert " ".join(s.text for s in r.says.data) == response.reply


class BigBackend:
    """Replies 10,000 characters: more than the llm bus's payload limit in the test below."""

    provider = "stub"
    model = "big"

    async def complete(
        self, messages: object, *, tools: object, params: object, on_delta: OnDelta
    ) -> Completion:
        await trio.lowlevel.checkpoint()
        return Completion(text="x" * 10_000)

    async def aclose(self) -> None:
        pass


async def test_a_reply_too_large_to_send_is_answered_with_an_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with rig(max_payload=4096, backend=BigBackend()) as r:
        with trio.fail_after(10):
            await r.ask("hi", stream=False)
            [response] = await r.responses.wait_id("r1")
        assert response.error.startswith("response not sent: message on 'llm/response' is")
        assert r.llm.metrics.counter("llm.responses.failed").value == 1


async def test_a_request_cancelled_while_rag_starts_does_not_break_later_rag(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Found by test_llm_properties: the bus left the reply route's subscription name taken when
    # the first request on it was cancelled while subscribing, so every later RAG query failed.
    async with rig() as r:
        await r.ask("hello", "q0", use_rag=True)
        await r.ask("hello", "q1", use_rag=True)
        await r.cancel("q0")
        [response] = await r.responses.wait_id("q1")
        assert response.error is None


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(LLMConfigError, match="llm config base_url: provider 'openai' needs a base URL"):
        LLMConfig(provider="openai")
    with pytest.raises(LLMConfigError, match="llm config base_url: expected an http"):
        LLMConfig(provider="openai", base_url="localhost:11434")
    with pytest.raises(
        LLMConfigError, match="llm config tool_timeout: expected a positive number of seconds, got 0"
    ):
        LLMConfig(tool_timeout=0)
    with pytest.raises(
        LLMConfigError, match="llm config provider: expected 'offline' or 'openai', got 'gpt'"
    ):
        LLMConfig(provider="gpt")  # type: ignore[arg-type]
    assert "sk-secret" not in repr(LLMConfig(api_key="sk-secret"))


async def test_offline_tool_with_one_string_parameter_gets_the_text(
    autojump_clock: trio.testing.MockClock,
) -> None:
    search = ToolFunction(
        name="web_search",
        description="Search the web",
        parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    )
    async with rig() as r:
        await r.register(search)

        async def tool(message: Message) -> None:
            result = ToolCallResult(call_id=message.data.call_id, result={"hits": 3})
            await r.client.publish("llm/tool.call.result", result)

        await r.serve("llm/tool.call.request/+", tool)
        await r.ask("search for trio nurseries")
        [response] = await r.responses.wait_id("r1")
        assert r.tool_requests.data[0].arguments == {"query": "search for trio nurseries"}
        assert response.reply == 'The web_search tool says: {"hits": 3}.'


async def test_a_cancel_handled_before_its_request_still_cancels_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Separate routes, separate tasks: the cancel can overtake the request it cancels.
    async with rig() as r:
        await r.cancel("early")
        await trio.sleep(1)
        await r.ask("hello", "early")
        [response] = await r.responses.wait_id("early")
        assert response.error == CANCELLED and response.reply is None
        assert [d.done for d in r.deltas("early")] == [True]
        # Remembered for 30 s only, and used once.
        await r.cancel("late")
        await trio.sleep(31)
        await r.ask("hello", "late")
        [late] = await r.responses.wait_id("late")
        assert late.error is None


async def test_deeply_nested_requests_are_answered_as_bad_and_the_service_lives_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Issue 10, case 2: five of these used to stop the service (RecursionError in the decoder,
    # the handler restarted past its intensity).
    async with rig() as r:
        broker = r.client.transport.broker
        for n in range(5):
            await broker.publish(nested_request(f"deep-{n}"))
        for n in range(5):
            [bad] = await r.responses.wait_id(f"deep-{n}")
            assert "nested deeper than 64 levels" in bad.error
        await r.ask("still serving", "ok")
        [ok] = await r.responses.wait_id("ok")
        assert ok.error is None and ok.reply
        health = json.loads(broker.retained["system/health/llm"].payload)["data"]
        assert (health["ok"], health["event"]) == (True, "ready")
        snap = r.llm.metrics.snapshot()
        assert (snap["bus.sub.llm/request.malformed"], snap["bus.sub.llm/request.failed"]) == (5, 0)
