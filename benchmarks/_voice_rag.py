"""RAG round trips: trioworks' llm + memory services next to py-tars' single dispatch loop.

Measured per request, from the client's publish of ``llm/request`` (``use_rag``, ``stream:
false``) to its ``llm/response`` (a :meth:`Bus.request`: the response's envelope id is the
request's), through llm -> ``memory/query`` -> memory (real embedding + hybrid search) ->
``memory/results`` -> llm -> ``llm/response``. The ``memory/query`` round trip alone is measured
too, from the same client.

The baseline is the original's design in a few lines (:class:`SingleLoopLLM`): every topic the
llm subscribes to feeds **one** queue, read by one loop that awaits each handler inline. Its RAG
handler publishes ``memory/query`` and waits for ``memory/results``, which that same loop can
only deliver after the handler has returned: every RAG wait runs into its timeout and the answer
has no context. It runs on the same bus, transports and memory service as ours.
"""

from __future__ import annotations

import time
from typing import Any

import trio

from _voice_common import (
    FACTS,
    QUESTIONS,
    MakeTransport,
    begin_phase,
    bus,
    lag_fields,
    running_memory,
    summary_ms,
)
from trioworks.bus import Bus, LLMRequest, LLMResponse, MemoryQuery, Message, new_id
from trioworks.services.llm import LLMConfig, LLMService

CONTEXT_PREFIX = "From memory:"  # how the offline backend starts an answer that used memory


class SingleLoopLLM:
    """py-tars' llm-worker dispatch, reproduced: one queue, one loop, handlers awaited inline."""

    def __init__(self, bus: Bus, rag_timeout: float) -> None:
        self.bus = bus
        self.rag_timeout = rag_timeout
        self._waiting: dict[str, list[Any]] = {}  # correlation id -> [event, results]
        self.timed_out = 0
        self.late_results = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        send, receive = trio.open_memory_channel[Message](256)
        async with trio.open_nursery() as nursery:
            await nursery.start(self.bus.run)
            await self.bus.subscribe("llm/request", send.send)
            await self.bus.subscribe("memory/results", send.send)
            task_status.started()
            async for message in receive:  # the original's loop: the next message waits
                await self._dispatch(message)

    async def _dispatch(self, message: Message) -> None:
        if message.topic == "memory/results":
            waiter = self._waiting.get(message.envelope.id)
            if waiter is None:
                self.late_results += 1  # its request gave up long ago
            else:
                waiter[1] = message.data.results
                waiter[0].set()
            return
        request: LLMRequest = message.data
        query_id = new_id()
        waiter: list[Any] = [trio.Event(), []]
        self._waiting[query_id] = waiter
        try:
            await self.bus.publish(
                "memory/query", MemoryQuery(text=request.text, top_k=request.rag_k), id=query_id
            )
            with trio.move_on_after(self.rag_timeout) as scope:
                await waiter[0].wait()
            self.timed_out += scope.cancelled_caught
        finally:
            del self._waiting[query_id]
        texts = [r.document["text"] for r in waiter[1]]
        reply = f"{CONTEXT_PREFIX} {texts[0]}" if texts else "I don't remember anything about that."
        await self.bus.reply(
            message, "llm/response", LLMResponse(id=request.id, reply=reply, provider="baseline")
        )


async def _ask(client: Bus, n: int, *, reply_within: float) -> tuple[list[float], int]:
    times, with_context = [], 0
    for i in range(n):
        request = LLMRequest(
            id=f"q{i}", text=QUESTIONS[i % len(QUESTIONS)], stream=False, use_rag=True, rag_k=3
        )
        start = time.perf_counter()
        reply = await client.request("llm/request", request, reply_topic="llm/response", timeout=reply_within)
        times.append(time.perf_counter() - start)
        with_context += (reply.data.reply or "").startswith(CONTEXT_PREFIX)
    return times, with_context


async def _query(client: Bus, n: int) -> list[float]:
    times = []
    for i in range(n):
        query = MemoryQuery(text=QUESTIONS[i % len(QUESTIONS)], top_k=3)
        start = time.perf_counter()
        await client.request("memory/query", query, reply_topic="memory/results", timeout=30)
        times.append(time.perf_counter() - start)
    return times


async def bench_rag(
    make: MakeTransport,
    embedder: Any,
    filler: list[str],
    *,
    requests: int,
    baseline_requests: int,
    baseline_timeout: float,
    lag: Any,
) -> dict[str, Any]:
    """Ours (``requests`` round trips of each kind) and the baseline (``baseline_requests``)."""
    out: dict[str, Any] = {}
    async with running_memory(make, embedder, [*FACTS, *filler]) as _, trio.open_nursery() as nursery:
        client = bus(make, "bench-client")
        await nursery.start(client.run)
        llm = LLMService(bus(make, "llm"), LLMConfig(word_delay=0))
        await nursery.start(llm.run)
        await _ask(client, 3, reply_within=30)  # warm-up: reply routes, first embedding
        await _query(client, 3)
        await begin_phase(lag)
        times, found = await _ask(client, requests, reply_within=30)
        out["rag"] = {**summary_ms(times), "with_context": found, **lag_fields(lag)}
        out["memory_query"] = {**summary_ms(await _query(client, requests)), **lag_fields(lag)}
        nursery.cancel_scope.cancel()

    # The baseline on a bus of its own: "llm" must not answer twice.
    async with running_memory(make, embedder, [*FACTS, *filler], name="memory-b") as _:
        async with trio.open_nursery() as nursery:
            client = bus(make, "bench-client-b")
            await nursery.start(client.run)
            baseline = SingleLoopLLM(bus(make, "llm-b"), baseline_timeout)
            await nursery.start(baseline.run)
            times, found = await _ask(client, baseline_requests, reply_within=baseline_timeout + 30)
            out["baseline"] = {
                **summary_ms(times),
                "with_context": found,
                "rag_timeouts": baseline.timed_out,
                "rag_timeout_s": baseline_timeout,
            }
            nursery.cancel_scope.cancel()
    return out
