"""Properties of the llm service under random requests, cancels and tool replies (virtual time).

Whatever the interleaving: every request gets exactly one response; its stream is seq 0..n with
exactly one ``done``, last; the response's reply is the deltas joined (cancelled: the text so
far); nothing is left in flight (turns, tool waiters, RAG waiters).
"""

from __future__ import annotations

import hypothesis.strategies as st
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from llm_helpers import GET_TIME, rig

from trioworks.bus import MemoryResults, Message, ToolCallResult
from trioworks.services.llm import CANCELLED, LLMConfig

REQUEST = st.fixed_dictionaries(
    {
        "text": st.sampled_from(["hello", "what time is it", "tell me " + "more " * 20, "remember?"]),
        "use_rag": st.booleans(),
        "stream": st.booleans(),
        "cancel_after": st.none() | st.floats(min_value=0, max_value=3),
    }
)
TOOL_DELAY = st.none() | st.floats(min_value=0, max_value=40)  # None: the tool never answers


async def _scenario(
    requests: list[dict[str, object]], tool_delay: float | None, rag_delay: float | None
) -> None:
    config = LLMConfig(word_delay=0.05, max_concurrent=2, rag_timeout=5.0, tool_timeout=30.0)
    async with rig(config) as r:
        await r.register(GET_TIME)

        async def tool(message: Message) -> None:
            if tool_delay is not None:
                await trio.sleep(tool_delay)
                await r.client.publish(
                    "llm/tool.call.result", ToolCallResult(call_id=message.data.call_id, result="9")
                )

        async def memory(message: Message) -> None:
            if rag_delay is not None:
                await trio.sleep(rag_delay)
                await r.client.reply(message, "memory/results", MemoryResults(query="", k=0))

        await r.client.subscribe("llm/tool.call.request/+", tool, concurrency=8, name="tool")
        await r.client.subscribe("memory/query", memory, concurrency=8, name="memory")
        async with trio.open_nursery() as nursery:
            for i, spec in enumerate(requests):
                request_id = f"q{i}"
                await r.ask(str(spec["text"]), request_id, use_rag=spec["use_rag"], stream=spec["stream"])
                if spec["cancel_after"] is not None:
                    nursery.start_soon(_cancel_later, r, request_id, spec["cancel_after"])
        with trio.fail_after(200):
            await r.responses.wait_for(len(requests))
        await trio.sleep(50)  # anything late would show up now
        assert r.llm.turns == {} and r.llm.pending_tool_calls == 0 and r.llm.bus.pending_requests == 0
        for i, spec in enumerate(requests):
            [response] = r.responses.for_id(f"q{i}")
            deltas = r.deltas(f"q{i}")
            if spec["cancel_after"] is None:
                assert response.error is None
            else:
                assert response.error in (None, CANCELLED)
            if not spec["stream"]:
                assert deltas == []
                continue
            assert [d.seq for d in deltas] == list(range(len(deltas)))
            assert [d.done for d in deltas] == [False] * (len(deltas) - 1) + [True]
            assert (response.reply or "") == "".join(d.delta for d in deltas)


async def _cancel_later(r: object, request_id: str, delay: float) -> None:
    await trio.sleep(delay)
    await r.cancel(request_id)  # type: ignore[attr-defined]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(REQUEST, min_size=1, max_size=4), TOOL_DELAY, st.none() | st.floats(min_value=0, max_value=8))
def test_every_request_ends_once_and_cleanly(
    requests: list[dict[str, object]], tool_delay: float | None, rag_delay: float | None
) -> None:
    trio.run(_scenario, requests, tool_delay, rag_delay, clock=trio.testing.MockClock(autojump_threshold=0))
