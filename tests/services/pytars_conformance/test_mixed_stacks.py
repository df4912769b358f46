"""Mixed stacks on mosquitto: a trioworks service among py-tars components played by the test.

Each played component applies py-tars' own check to what it receives and, like py-tars, drops
what fails it: the test then records the refusal and stops at once (no waiting for a deadline).
"""

from __future__ import annotations

from pathlib import Path

import pytars_contracts as P
import pytest
import trio
from harness import RawClient, service_bus

from _services import MosquittoBroker
from trioworks.bus import RawMessage
from trioworks.services.llm import LLMConfig, LLMService
from trioworks.services.router import RouterService


def _item(n: int, why: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"issue 14 item {n}: {why}")


class Played:
    """py-tars components played on a raw client: refusals collected, the stack stopped on one."""

    def __init__(self, client: RawClient, nursery: trio.Nursery) -> None:
        self.client = client
        self.nursery = nursery
        self.refusals: list[str] = []

    def refuse(self, exc: P.Refused) -> None:
        self.refusals.append(str(exc))
        self.nursery.cancel_scope.cancel()

    async def on(self, pattern: str, handler: object) -> None:
        async def sink(message: RawMessage) -> None:
            try:
                await handler(message.payload)  # type: ignore[operator]
            except P.Refused as exc:
                self.refuse(exc)

        await self.client.transport.subscribe(pattern, 1, sink)


async def test_trioworks_router_with_pytars_llm_and_tts_workers(mosquitto_broker: MosquittoBroker) -> None:
    bus, metrics = service_bus(mosquitto_broker.url, "router")
    router = RouterService(bus)
    spoken: list[str] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(router.run)
            client = RawClient(mosquitto_broker.url, "pytars")
            await nursery.start(client.run)
            played = Played(client, nursery)

            async def llm_worker(payload: bytes) -> None:
                request = P.decode_event(payload, P.LLMRequest, "llm-worker")
                corr = P.Envelope.model_validate_json(payload).id
                for chunk in P.llm_stream(request.id, correlate=corr, deltas=["Paris is ", "the capital."]):
                    await client.send("llm/stream", chunk)
                await client.send(
                    "llm/response", P.llm_response(request.id, "Paris is the capital.", correlate=corr)
                )

            async def tts_worker(payload: bytes) -> None:
                say = P.decode_event(payload, P.TtsSay, "tts-worker")
                spoken.append(say.text)
                for event in ("speaking_start", "speaking_end"):
                    await client.send("tts/status", P.tts_status(event, text=say.text, utt_id=say.utt_id))

            async def router_refuses(pattern: str) -> None:
                # The router drops what py-tars' workers send as malformed: stop at once.
                if await metrics.verdict(pattern, 0) == "malformed":
                    played.refuse(P.Refused(f"trioworks router: {pattern} from py-tars dropped as malformed"))

            nursery.start_soon(router_refuses, "llm/stream")
            nursery.start_soon(router_refuses, "tts/status")
            await played.on("llm/request", llm_worker)
            await played.on("tts/say", tts_worker)
            await client.send("stt/final", P.stt_final("what is the capital of france"))
            await router.wait_turns(1)
            nursery.cancel_scope.cancel()
    assert not played.refusals, played.refusals
    assert " ".join(spoken).replace("  ", " ").strip() == "Paris is the capital."


async def test_trioworks_llm_with_a_pytars_memory_worker(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    bus, metrics = service_bus(mosquitto_broker.url, "llm")
    llm = LLMService(bus, LLMConfig(word_delay=0))
    request = P.LLMRequest(id="ui-7", text="where is the spare key", stream=False, use_rag=True, rag_k=3)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(llm.run)
            client = RawClient(mosquitto_broker.url, "pytars")
            await nursery.start(client.run)
            await client.listen("llm/response")
            played = Played(client, nursery)

            async def memory_worker(payload: bytes) -> None:
                query = P.memory_worker_query(payload)
                corr = P.Envelope.model_validate_json(payload).id
                await client.send(
                    "memory/results",
                    P.memory_results(query.text, ["the spare key is under the mat"], correlate=corr),
                )

            async def llm_refuses() -> None:
                if await metrics.verdict("replies:memory/results", 0) == "malformed":
                    played.refuse(P.Refused("trioworks llm: py-tars' memory/results dropped as malformed"))

            nursery.start_soon(llm_refuses)
            await played.on("memory/query", memory_worker)
            await client.send(
                "llm/request", P.wrap("llm.request", request.model_dump(exclude_none=True), source="ui")
            )
            (response,) = await client.wait("llm/response")
            nursery.cancel_scope.cancel()
    assert not played.refusals, played.refusals
    reply = P.router_dispatch(response, P.LLMResponse)
    assert reply.reply is not None and "under the mat" in reply.reply
