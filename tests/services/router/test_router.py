"""The router on the in-process bus with a scripted llm and the real tts service (fake synthesis).

Virtual time throughout (``autojump_clock``): the fake llm streams a delta every 0.1 s and the
fake synthesis speaks 20 ms per character, so a turn takes seconds of virtual time.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from router_helpers import LONG, echo, running

from trioworks.bus import LLMCancel, LLMResponse, LLMStreamDelta, TtsControl, TtsSay
from trioworks.services.router import RouterConfig, RouterConfigError, chunk_sentences


async def test_a_full_turn_speaks_the_reply_in_sentences(autojump_clock: trio.testing.MockClock) -> None:
    async with running(lambda r: LONG) as rig:
        await rig.hear("tell me something long")
        with trio.fail_after(120):
            await rig.router.wait_turns(1)
    (request,) = rig.llm.requests
    assert request.text == "tell me something long" and request.stream
    assert request.conversation_history == ()
    says = rig.on("tts/say")
    assert {s.utt_id for s in says} == {request.id}  # one utterance per turn, named by the request
    assert [s.text for s in says] == [c.strip() for c in chunk_sentences(LONG)]
    assert all(60 <= len(s.text) <= 240 for s in says[:-1])
    assert rig.on("llm/cancel") == [] and rig.on("tts/control") == []
    (end,) = [s for s in rig.on("tts/status") if s.event == "speaking_end"]
    assert end.utt_id == request.id
    (exchange,) = rig.router.history.exchanges
    assert (exchange.user, exchange.reply, exchange.ended) == ("tell me something long", LONG, "done")


async def test_barge_in_mid_stream_stops_generation_and_speech_together(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(lambda r: LONG) as rig:
        await rig.hear("tell me something long")
        with trio.fail_after(60):
            await rig.wait_for("tts/say", 2)
            await rig.interrupt()
            await rig.router.wait_turns(1)
            await trio.sleep(30)  # time for any straggler to show up
    (request,) = rig.llm.requests
    turn = request.id
    (cancel,) = rig.order("llm/cancel", id=turn)
    (stop,) = rig.order("tts/control", action="stop", utt_id=turn)
    assert rig.on("tts/control")[0].reason == "barge_in"
    says = rig.order("tts/say", utt_id=turn)
    assert 2 <= len(says) < len(chunk_sentences(LONG))
    assert max(says) < cancel < stop  # nothing said for the turn once it was cancelled
    # The llm stopped generating: fewer deltas than the reply has, no final response.
    assert turn in rig.llm.cancelled and turn not in rig.llm.finished
    assert rig.on("llm/response") == []
    # The tts stopped the turn's speech instead of finishing it.
    events = [(s.event, s.reason) for s in rig.on("tts/status") if s.utt_id == turn]
    assert events[0] == ("speaking_start", None) and events[-1][0] == "stopped"
    assert "speaking_end" not in [e for e, _ in events]
    # The partial reply is remembered as interrupted.
    (exchange,) = rig.router.history.exchanges
    assert exchange.ended == "barge_in" and LONG.startswith(exchange.reply) and exchange.reply != LONG
    assert exchange.messages()[1].content.endswith("[interrupted by the user]")


async def test_barge_in_while_the_finished_reply_is_still_spoken(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(lambda r: LONG) as rig:
        await rig.hear("tell me something long")
        with trio.fail_after(60):
            await rig.wait_for("llm/response")  # generation over (13 s); speech goes on for ~30 s
            assert rig.router.current_turn is not None
            await rig.interrupt()
            await rig.router.wait_turns(1)
            turn = rig.llm.requests[0].id
            while not rig.order("tts/status", event="stopped", utt_id=turn):
                await rig.wire.wait_for(len(rig.wire.messages) + 1)
    assert rig.order("tts/control", action="stop", utt_id=turn)
    assert [s.event for s in rig.on("tts/status") if s.utt_id == turn] == ["speaking_start", "stopped"]
    (exchange,) = rig.router.history.exchanges
    assert exchange.ended == "barge_in" and exchange.reply == LONG  # all generated, not all heard


async def test_barge_in_with_no_turn_stops_all_speech(autojump_clock: trio.testing.MockClock) -> None:
    async with running() as rig:
        await rig.interrupt()
        with trio.fail_after(5):
            await rig.wait_for("tts/control")
    (control,) = rig.on("tts/control")
    assert (control.action, control.utt_id, control.reason) == ("stop", None, "barge_in")
    assert rig.router.history.exchanges == ()


async def test_history_grows_and_is_bounded(autojump_clock: trio.testing.MockClock) -> None:
    async with running(config=RouterConfig(history_exchanges=2)) as rig:
        for i in range(4):
            await rig.hear(f"question {i}")
            with trio.fail_after(60):
                await rig.router.wait_turns(i + 1)
    histories = [r.conversation_history for r in rig.llm.requests]
    assert [len(h) for h in histories] == [0, 2, 4, 4]
    assert [(m.role, m.content) for m in histories[1]] == [
        ("user", "question 0"),
        ("assistant", echo(rig.llm.requests[0])),
    ]
    assert [m.content for m in histories[3] if m.role == "user"] == ["question 1", "question 2"]
    assert [e.user for e in rig.router.history.exchanges] == ["question 2", "question 3"]


async def test_a_new_transcript_replaces_the_running_turn(autojump_clock: trio.testing.MockClock) -> None:
    async with running(lambda r: LONG if r.text == "first" else echo(r)) as rig:
        await rig.hear("first")
        with trio.fail_after(60):
            await rig.wait_for("tts/say")
            await rig.hear("second")
            await rig.router.wait_turns(2)
    first, second = rig.llm.requests
    assert rig.order("llm/cancel", id=first.id) and not rig.order("llm/cancel", id=second.id)
    assert [e.ended for e in rig.router.history.exchanges] == ["superseded", "done"]
    # The second request already knows the first was cut off.
    assert second.conversation_history[1].content.endswith("[interrupted: the user spoke again]")
    assert max(rig.order("tts/say", utt_id=first.id)) < min(rig.order("tts/say", utt_id=second.id))


async def test_an_llm_that_never_answers_times_out_the_turn(autojump_clock: trio.testing.MockClock) -> None:
    async with running(lambda r: None, RouterConfig(reply_timeout=5)) as rig:
        await rig.hear("hello?")
        with trio.fail_after(60):
            await rig.router.wait_turns(1)
            took = trio.current_time()
    assert 5 <= took < 6
    assert rig.order("llm/cancel", id=rig.llm.requests[0].id)
    (exchange,) = rig.router.history.exchanges
    assert exchange.ended == "timeout" and exchange.reply == ""


async def test_an_llm_error_ends_the_turn_without_speech(autojump_clock: trio.testing.MockClock) -> None:
    async with running(lambda r: "!model exploded") as rig:
        await rig.hear("hello")
        with trio.fail_after(60):
            await rig.router.wait_turns(1)
    assert rig.on("tts/say") == [] and rig.on("llm/cancel") == []
    (exchange,) = rig.router.history.exchanges
    assert exchange.ended == "error"
    assert exchange.messages()[1].content == "[cut off: the model failed]"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"history_exchanges": -1}, "history_exchanges"),
        ({"history_exchanges": 2.5}, "history_exchanges"),
        ({"min_chunk": 100, "max_chunk": 50}, "max_chunk"),
        ({"first_chunk": 300}, "first_chunk"),
        ({"first_chunk": 0}, "first_chunk"),
        ({"reply_timeout": 0}, "reply_timeout"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(RouterConfigError, match=f"router config {field}:"):
        RouterConfig(**kwargs)  # type: ignore[arg-type]


async def test_a_chunk_arriving_after_its_turn_was_stopped_is_not_spoken(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Over MQTT tts/say and tts/control are separate queues at the tts: the stop of a barge-in
    # can be handled before a chunk that was published just before it.
    async with running() as rig:
        await rig.client.publish("tts/control", TtsControl(action="stop", utt_id="turn-1"))
        await rig.client.publish("tts/say", TtsSay(text="Too late.", utt_id="turn-1"))
        await rig.client.publish("tts/say", TtsSay(text="Another turn.", utt_id="turn-2"))
        with trio.fail_after(30):
            while not rig.order("tts/status", event="speaking_end", utt_id="turn-2"):
                await rig.wire.wait_for(len(rig.wire.messages) + 1)
    assert [s.utt_id for s in rig.on("tts/status")] == ["turn-2", "turn-2"]


async def test_stopping_the_router_mid_turn_still_cancels_llm_and_speech(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(lambda r: LONG, start_router=False) as rig:
        with trio.CancelScope() as scope:  # the router's own: the other services stay up
            async with trio.open_nursery() as nursery:
                await nursery.start(rig.router.run)
                await rig.hear("tell me something long")
                with trio.fail_after(60):
                    await rig.wait_for("tts/say", 2)
                scope.cancel()
        turn = rig.llm.requests[0].id
        with trio.fail_after(10):
            await rig.wait_for("llm/cancel")
            while not rig.order("tts/status", event="stopped", utt_id=turn):
                await rig.wire.wait_for(len(rig.wire.messages) + 1)
    assert rig.order("tts/control", action="stop", utt_id=turn, reason="shutdown")
    assert rig.router.history.exchanges[0].ended == "shutdown"
    assert turn in rig.llm.cancelled


async def test_speech_that_ended_before_the_stream_did_ends_the_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Every sentence is complete before ``done`` comes (25 s later, say after a slow tool):
    # the tts has long reported the end of speech, and the turn must not wait for another.
    async with running(lambda r: LONG + " ", done_after=25) as rig:
        await rig.hear("tell me something long")
        with trio.fail_after(200):
            await rig.router.wait_turns(1)
            took = trio.current_time()
    assert took < 60  # ~13 s of deltas + 25 s; not the 300 s speech_timeout
    done = [i for i, m in enumerate(rig.wire.messages) if m.topic == "llm/stream" and m.data.done]
    assert rig.order("tts/status", event="speaking_end")[-1] < done[0]  # the case under test
    assert rig.router.history.exchanges[0].ended == "done"


async def test_a_response_that_overtakes_the_last_deltas_still_says_the_whole_reply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Over MQTT llm/stream and llm/response are separate subscriptions (separate queues and
    # tasks at the router): the response can be handled before the last deltas.
    reply = "The first part of the answer comes streamed. The rest of it only with the response!"
    async with running(lambda r: None, config=RouterConfig(min_chunk=10)) as rig:
        await rig.hear("a question")
        with trio.fail_after(30):
            await rig.wait_for("llm/request")
            request_id = rig.llm.requests[0].id
            await rig.llm.bus.publish("llm/stream", LLMStreamDelta(id=request_id, seq=0, delta=reply[:30]))
            await rig.llm.bus.publish("llm/response", LLMResponse(id=request_id, reply=reply))
            await rig.router.wait_turns(1)
            # The overtaken deltas arrive after the turn is over: ignored, not said again.
            await rig.llm.bus.publish(
                "llm/stream", LLMStreamDelta(id=request_id, seq=1, delta=reply[30:], done=True)
            )
            await trio.sleep(5)
    assert " ".join(s.text for s in rig.on("tts/say")) == reply
    (exchange,) = rig.router.history.exchanges
    assert (exchange.reply, exchange.ended) == (reply, "done")
    assert rig.router.bus.metrics.counter("router.reply.from_response").value == 1


async def test_an_llm_cancel_from_another_client_ends_the_turn_without_waiting_for_speech(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(lambda r: LONG) as rig:
        await rig.hear("tell me something long")
        with trio.fail_after(60):
            await rig.wait_for("tts/say", 2)
            turn = rig.llm.requests[0].id
            await rig.client.publish("llm/cancel", LLMCancel(id=turn))
            await rig.router.wait_turns(1)
            took = trio.current_time()
            await trio.sleep(30)
    assert took < 20  # not the 300 s speech timeout
    assert len(rig.order("llm/cancel", id=turn)) == 1  # the client's: the router does not repeat it
    assert rig.order("tts/control", action="stop", utt_id=turn, reason="cancelled")
    assert max(rig.order("tts/say", utt_id=turn)) < rig.order("llm/cancel", id=turn)[0]
    (exchange,) = rig.router.history.exchanges
    assert exchange.ended == "cancelled"
    assert exchange.messages()[1].content.endswith("[cut off: the request was cancelled]")


async def test_an_llm_error_after_some_of_the_reply_says_nothing_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(lambda r: None) as rig:
        await rig.hear("hello")
        with trio.fail_after(30):
            await rig.wait_for("llm/request")
            turn = rig.llm.requests[0].id
            await rig.llm.bus.publish("llm/stream", LLMStreamDelta(id=turn, seq=0, delta="Half a sentence"))
            await rig.llm.bus.publish("llm/response", LLMResponse(id=turn, error="backend failed"))
            await rig.router.wait_turns(1)
    assert rig.on("tts/say") == []  # the tail is not said: the reply is broken
    (exchange,) = rig.router.history.exchanges
    assert (exchange.reply, exchange.ended) == ("Half a sentence", "error")


async def test_each_turn_is_logged_at_info_with_its_stage_latencies(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="trioworks.services.router")
    async with running(lambda r: "Paris is the capital.") as rig:
        await rig.hear("what is the capital of france")
        with trio.fail_after(120):
            await rig.router.wait_turns(1)
    lines = [r.getMessage() for r in caplog.records if r.name == "trioworks.services.router"]
    assert any("heard 'what is the capital of france'" in line for line in lines), lines
    (over,) = [line for line in lines if "turn over" in line]
    assert "done: answer 'Paris is the capital.'" in over
    assert "llm first text" in over and " ms" in over and "first speech sent" in over and "- " not in over
