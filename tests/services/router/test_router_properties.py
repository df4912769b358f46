"""Random interleavings of speech, barge-ins and time against the router (virtual time).

Whatever the order: no ``tts/say`` of a turn follows its ``llm/cancel``; every cancelled turn
sent both ``llm/cancel`` and ``tts/control stop`` for its id; every turn ends; the history
holds at most its bound; the llm is never left generating for a turn the router gave up.
"""

from __future__ import annotations

import hypothesis.strategies as st
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from router_helpers import FakeLlm, fake_synthesizer

from _collector import Collector
from _fake_tts import NullSink
from trioworks.bus import Bus, FinalTranscript, InProcessBroker, InProcessTransport, WakeEvent
from trioworks.services.router import RouterConfig, RouterService
from trioworks.services.tts import TtsConfig, TtsService

REPLY = " ".join(f"Sentence {i} of a reply that is long enough to be spoken by itself." for i in range(6))
STEPS = st.lists(
    st.one_of(
        st.just(("hear", None)),
        st.just(("interrupt", None)),
        st.tuples(st.just("sleep"), st.sampled_from([0.0, 0.05, 0.5, 2.0, 10.0])),
    ),
    max_size=12,
)


async def _scenario(steps: list[tuple[str, float | None]]) -> None:
    broker = InProcessBroker()

    def bus(name: str) -> Bus:
        return Bus(InProcessTransport(broker), source=name)

    tts = TtsService(bus("tts"), TtsConfig(player="wav"), synthesizer=fake_synthesizer, sink=NullSink())
    llm = FakeLlm(bus("llm"), lambda r: REPLY, step=0.1)
    router = RouterService(bus("router"), RouterConfig(history_exchanges=3, reply_timeout=5))
    wire = Collector()
    heard = 0
    async with trio.open_nursery() as nursery:
        client = bus("client")
        await nursery.start(client.run)
        await client.subscribe("#", wire, capacity=100_000)
        for component in (tts, llm.service, router):
            await nursery.start(component.run)
        for kind, arg in steps:
            if kind == "hear":
                heard += 1
                await client.publish("stt/final", FinalTranscript(text=f"question {heard}"))
            elif kind == "interrupt":
                await client.publish("wake/event", WakeEvent(type="interrupt"))
            else:
                await trio.sleep(arg)  # type: ignore[arg-type]
        await trio.sleep(1000)  # everything settles
        nursery.cancel_scope.cancel()

    assert router.current_turn is None
    assert len(router.history) <= 3
    turns = {r.id for r in llm.requests}
    assert router.turns_done == len(turns) <= heard
    messages = wire.messages
    ended = {e.turn_id: e.ended for e in router.history.exchanges}
    for turn in turns:
        said = [i for i, m in enumerate(messages) if m.topic == "tts/say" and m.data.utt_id == turn]
        cancels = [i for i, m in enumerate(messages) if m.topic == "llm/cancel" and m.data.id == turn]
        stops = [
            i
            for i, m in enumerate(messages)
            if m.topic == "tts/control" and m.data.utt_id == turn and m.data.action == "stop"
        ]
        assert len(cancels) == len(stops) <= 1
        if turn in ended:  # the history (last 3) says the same as the wire
            assert bool(cancels) == (ended[turn] in ("barge_in", "superseded", "timeout"))
        if cancels:
            assert not said or max(said) < cancels[0] < stops[0]
            if turn in llm.finished:  # generation was over before the barge-in
                replies = [
                    i for i, m in enumerate(messages) if m.topic == "llm/response" and m.data.id == turn
                ]
                assert replies[0] < cancels[0]
            else:  # ...or it stopped at the cancel
                assert turn in llm.cancelled
                assert not [
                    i
                    for i, m in enumerate(messages[cancels[0] :])
                    if m.topic == "llm/stream" and m.data.id == turn
                ]
        # Speech of every turn is over: its last status is an end.
        events = [m.data.event for m in messages if m.topic == "tts/status" and m.data.utt_id == turn]
        assert not events or events[-1] in ("speaking_end", "stopped")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
@example([("hear", None), ("sleep", 2.0), ("interrupt", None)])  # barge-in mid-stream
@example([("hear", None), ("sleep", 2.0), ("sleep", 2.0), ("interrupt", None)])  # ...while it is spoken
@example([("hear", None), ("sleep", 0.5), ("hear", None), ("sleep", 0.05), ("hear", None)])  # replaced twice
@example([("interrupt", None), ("hear", None), ("interrupt", None), ("interrupt", None)])
def test_random_turns_and_barge_ins_keep_the_invariants(steps: list[tuple[str, float | None]]) -> None:
    trio.run(_scenario, steps, clock=trio.testing.MockClock(autojump_threshold=0))
