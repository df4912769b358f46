"""The OpenAI-compatible backend against a fake server (an httpx.MockTransport streaming SSE)."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import given
from llm_helpers import GET_TIME, rig

from trioworks.bus import LLMParams, Message, ToolCallResult, ToolSpec
from trioworks.core import RetryPolicy
from trioworks.services.llm import BackendError, ChatMessage, LLMConfig, OpenAIBackend, StreamParser, ToolCall

URL = "http://llm.test/v1"


def sse(*events: dict[str, Any] | str) -> list[bytes]:
    return [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events]


def text_event(text: str) -> dict[str, Any]:
    return {"model": "fake-1", "choices": [{"index": 0, "delta": {"content": text}}]}


def tool_event(
    index: int, *, id: str | None = None, name: str | None = None, args: str = ""
) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": args}
    if name is not None:
        function["name"] = name
    call: dict[str, Any] = {"index": index, "function": function}
    if id is not None:
        call |= {"id": id, "type": "function"}
    return {"model": "fake-1", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}


class FakeServer:
    """Answers each POST with the next scripted reply: a status and SSE chunks, with pauses."""

    def __init__(self, *replies: tuple[int, list[bytes]], pause: float = 0.01) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []
        self.pause = pause

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, chunks = self.replies.pop(0)

        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                await trio.sleep(self.pause)
                if chunk == b"HANG":
                    await trio.sleep_forever()
                if chunk == b"DROP":
                    raise httpx.ReadError("connection reset by fake server")
                yield chunk

        return httpx.Response(status, headers={"content-type": "text/event-stream"}, content=body())


def backend(server: FakeServer, **config: Any) -> OpenAIBackend:
    settings = {
        "provider": "openai",
        "base_url": URL,
        "model": "fake-1",
        "api_key": "sk-test",
        "retry": RetryPolicy(max_attempts=3, base_delay=0.5, jitter=0),
        **config,
    }
    return OpenAIBackend(LLMConfig(**settings), transport=httpx.MockTransport(server))


async def complete(b: OpenAIBackend, tools: tuple[ToolSpec, ...] = ()) -> tuple[list[str], Any]:
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    messages = (ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content="hi"))
    completion = await b.complete(messages, tools=tools, params=LLMParams(temperature=0.2), on_delta=on_delta)
    return deltas, completion


async def test_streams_text_deltas_and_sends_an_openai_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chunks = [*sse(text_event("Hel")), b": keep-alive\n\nevent: x\n", *sse(text_event("lo"), "[DONE]")]
    server = FakeServer((200, chunks))
    b = backend(server)
    deltas, completion = await complete(b, (ToolSpec(function=GET_TIME),))
    assert deltas == ["Hel", "lo"]
    assert (completion.text, completion.model, completion.tool_calls) == ("Hello", "fake-1", ())
    [request] = server.requests
    assert (request.method, str(request.url)) == ("POST", f"{URL}/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    body = server.bodies[0]
    assert body["stream"] is True and body["model"] == "fake-1" and body["temperature"] == 0.2
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert body["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The current time of day",
            "parameters": {"type": "object"},
        },
    }
    await b.aclose()


async def test_tool_call_deltas_are_merged(autojump_clock: trio.testing.MockClock) -> None:
    events = sse(
        tool_event(0, id="call_a", name="get_time", args=""),
        tool_event(1, id="call_b", name="get_weather", args='{"ci'),
        tool_event(0, args="{}"),
        tool_event(1, args='ty": "Oslo"}'),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "usage": {"total_tokens": 7}},
        "[DONE]",
    )
    _, completion = await complete(backend(FakeServer((200, events))))
    assert completion.tool_calls == (
        ToolCall(id="call_a", name="get_time", arguments={}),
        ToolCall(id="call_b", name="get_weather", arguments={"city": "Oslo"}),
    )
    assert completion.usage == {"total_tokens": 7}


async def test_server_error_before_the_first_token_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer((503, [b"overloaded"]), (200, sse(text_event("ok"), "[DONE]")))
    start = trio.current_time()
    deltas, completion = await complete(backend(server))
    assert (deltas, completion.text, len(server.requests)) == (["ok"], "ok", 2)
    assert trio.current_time() - start >= 0.5  # the policy's backoff


async def test_client_error_is_not_retried_and_is_named(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer((401, [b'{"error": "bad key"}']))
    with pytest.raises(BackendError) as caught:
        await complete(backend(server))
    assert len(server.requests) == 1
    assert "HTTP 401" in str(caught.value) and "bad key" in str(caught.value)


async def test_failure_after_the_first_token_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer(
        (200, [*sse(text_event("partial")), b"DROP"]), (200, sse(text_event("again"), "[DONE]"))
    )
    with pytest.raises(BackendError, match="ReadError"):
        await complete(backend(server))
    assert len(server.requests) == 1


async def test_first_token_timeout_is_a_cancel_scope_and_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer((200, [b"HANG"]), (200, [b"HANG"]))
    start = trio.current_time()
    with pytest.raises(BackendError, match=r"no stream event within 2\.0 s"):
        await complete(backend(server, first_token_timeout=2.0, retry=RetryPolicy(max_attempts=2, jitter=0)))
    assert len(server.requests) == 2
    assert 4.0 <= trio.current_time() - start < 5.0


async def test_idle_timeout_after_the_first_token(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer((200, [*sse(text_event("a")), b"HANG"]))
    with pytest.raises(BackendError, match=r"no stream event within 3\.0 s"):
        await complete(backend(server, idle_timeout=3.0))
    assert len(server.requests) == 1


async def test_error_event_in_the_stream(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer((200, sse({"error": {"message": "model crashed"}})), (200, sse({"error": "x"})))
    with pytest.raises(BackendError, match="model crashed"):
        await complete(backend(server, retry=RetryPolicy(max_attempts=1)))


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=6))
def test_arguments_split_anywhere_parse_the_same(cuts: list[int]) -> None:
    arguments = json.dumps({"city": "Oslo", "units": "metric", "days": [1, 2]})
    bounds = sorted({0, len(arguments), *(min(c, len(arguments)) for c in cuts)})
    parser = StreamParser()
    parser.feed("data: " + json.dumps(tool_event(0, id="c", name="get_weather")))
    for lo, hi in itertools.pairwise(bounds):
        parser.feed("data: " + json.dumps(tool_event(0, args=arguments[lo:hi])))
    assert parser.completion().tool_calls == (
        ToolCall(id="c", name="get_weather", arguments=json.loads(arguments)),
    )


async def test_service_over_the_fake_server_calls_a_tool_then_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer(
        (200, sse(tool_event(0, id="call_1", name="get_time", args="{}"), "[DONE]")),
        (200, sse(text_event("It is "), text_event("noon."), "[DONE]")),
    )
    async with rig(backend=backend(server)) as r:
        await r.register(GET_TIME)

        async def tool(message: Message) -> None:
            await r.client.publish(
                "llm/tool.call.result", ToolCallResult(call_id=message.data.call_id, result="12:00")
            )

        await r.serve("llm/tool.call.request/+", tool)
        await r.ask("what time is it?")
        [response] = await r.responses.wait_id("r1")
        assert (response.reply, response.provider, response.model) == ("It is noon.", "openai", "fake-1")
        assert [d.delta for d in r.deltas()] == ["It is ", "noon.", ""]
        second = server.bodies[1]["messages"]
        assert second[-2]["tool_calls"][0]["id"] == "call_1"
        assert second[-1] == {
            "role": "tool",
            "content": "12:00",
            "tool_call_id": "call_1",
            "name": "get_time",
        }


async def test_service_cancel_closes_the_http_stream(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer((200, [*sse(text_event("one"), text_event(" two")), b"HANG"]))
    async with rig(backend=backend(server)) as r:
        await r.ask("talk")
        await r.stream.wait_id("r1", 2)
        await r.cancel()
        [response] = await r.responses.wait_id("r1")
        assert (response.error, response.reply) == ("cancelled", "one two")


async def test_service_reports_a_backend_failure(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer((500, [b"boom"]))
    async with rig(backend=backend(server, retry=RetryPolicy(max_attempts=1))) as r:
        await r.ask("hi")
        [response] = await r.responses.wait_id("r1")
        assert response.error.startswith("openai backend: HTTP 500") and response.reply is None
