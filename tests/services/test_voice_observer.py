"""The voice turn's observer (:func:`trioworks.services.voice_turn`, :func:`~trioworks.services.say`)
against a scripted stack, in virtual time.

The scripted "rest of the stack" answers ``stt/final`` the way router, llm, memory and tts do
on the bus, with delays and twists a test chooses: a reply spoken as two utterances, a tts that
never ends, one that stops, several transcripts. The real services are in test_services_cli.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from trioworks.bus import (
    Bus,
    FinalTranscript,
    InProcessBroker,
    InProcessTransport,
    LLMRequest,
    LLMResponse,
    MemoryQuery,
    MemoryResult,
    MemoryResults,
    Message,
    TtsOutput,
    TtsStatus,
    new_id,
)
from trioworks.services import say, voice_turn

FACT = "My sister lives in Bergen."
ANSWER = "From memory: My sister lives in Bergen. It is a rainy city on the west coast."


@attrs.define
class Script:
    """How the scripted stack behaves; times are virtual seconds after the stt/final."""

    rag_delay: float = 0.02
    first_audio: float = 0.3
    utterances: tuple[str, ...] = (
        "From memory: My sister lives in Bergen.",
        "It is a rainy city on the west coast.",
    )
    end: str | None = "speaking_end"  # None: the tts never reports an end
    answer: str = ANSWER
    seen: list[str] = attrs.field(factory=list)


async def _stack(broker: InProcessBroker, script: Script, nursery: trio.Nursery) -> None:
    """router + llm + memory + tts, scripted: every stt/final starts a turn."""
    bus = Bus(InProcessTransport(broker, client_id="stack"), source="stack")
    await nursery.start(bus.run)

    async def turn(message: Message) -> None:
        text = message.data.text
        script.seen.append(text)
        turn_id = new_id()
        start = trio.current_time()
        await bus.publish("llm/request", LLMRequest(id=turn_id, text=text, use_rag=True))
        query = await bus.publish("memory/query", MemoryQuery(text=text, top_k=3))
        await trio.sleep(script.rag_delay)
        hits = (
            MemoryResult(document={"text": text}, score=0.04),  # the question itself (memory ingests it)
            MemoryResult(document={"text": FACT}, score=0.03),
        )
        await bus.publish("memory/results", MemoryResults(query=text, k=3, results=hits), id=query.id)
        await bus.publish("llm/response", LLMResponse(id=turn_id, reply=script.answer, provider="offline"))
        await trio.sleep_until(start + script.first_audio)
        for i, part in enumerate(script.utterances):
            await bus.publish("tts/status", TtsStatus(event="speaking_start", text=part, utt_id=turn_id))
            await trio.sleep(1.0)
            if script.end is not None:
                path = f"/audio/{turn_id}{'' if i == 0 else f'-{i + 1}'}.wav"
                await bus.publish("tts/output", TtsOutput(utt_id=turn_id, path=path))
                await bus.publish("tts/status", TtsStatus(event=script.end, text=part, utt_id=turn_id))
            if script.end == "stopped":
                return

    await bus.subscribe("stt/final", turn, concurrency=4)


async def _turn(script: Script, finals: tuple[str, ...], limit: float = 30.0):
    broker = InProcessBroker()
    async with trio.open_nursery() as nursery:
        await _stack(broker, script, nursery)
        client = Bus(InProcessTransport(broker, client_id="cli"), source="cli")
        stt = Bus(InProcessTransport(broker, client_id="stt"), source="stt")
        await nursery.start(client.run)
        await nursery.start(stt.run)

        async def transcribe() -> int:
            spoken = [text for text in finals if text.strip()]  # the stt service skips empty finals
            for text in spoken:
                await trio.sleep(0.5)  # an utterance
                await stt.publish("stt/final", FinalTranscript(text=text, utt_id=new_id()))
            return len(spoken)

        result = await voice_turn(client, transcribe, limit=limit)
        nursery.cancel_scope.cancel()
    return result


async def test_a_whole_turn_spoken_as_two_utterances(autojump_clock: trio.testing.MockClock) -> None:
    script = Script()
    result = await _turn(script, ("where does my sister live",))
    assert result.problem is None
    assert result.transcript == "where does my sister live"
    assert result.answer == ANSWER and result.provider == "offline"
    assert [h.document["text"] for h in result.used_hits] == [FACT]  # the question itself left out
    assert result.rag_seconds == pytest.approx(0.02)
    assert result.first_audio == pytest.approx(0.3)
    assert result.reply_paths == (
        Path(f"/audio/{result.turn_id}.wav"),
        Path(f"/audio/{result.turn_id}-2.wav"),
    )
    assert result.spoken == " ".join(script.utterances)
    # The turn ends with the second utterance's end, not the first one's.
    assert result.seconds == pytest.approx(0.5 + 0.3 + 2.0)


async def test_the_last_transcript_is_the_question(autojump_clock: trio.testing.MockClock) -> None:
    script = Script()
    result = await _turn(script, ("hello there", "where does my sister live"))
    assert script.seen == ["hello there", "where does my sister live"]
    assert result.transcript == "where does my sister live" and result.problem is None


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda s: attrs.evolve(s, end=None),
            "waited 30 s for the tts's speaking_end of the whole answer in vain",
        ),
        (
            lambda s: attrs.evolve(s, utterances=("From memory: My sister lives in Bergen.",)),
            "waited 30 s for the tts's speaking_end of the whole answer in vain",
        ),
        (lambda s: attrs.evolve(s, rag_delay=40.0), "waited 30 s for the llm's llm/response in vain"),
    ],
)
async def test_a_step_that_never_comes_is_named(
    autojump_clock: trio.testing.MockClock, change: Callable[[Script], Script], problem: str
) -> None:
    result = await _turn(change(Script()), ("where does my sister live",))
    assert result.problem == problem
    assert result.seconds == pytest.approx(30.0)
    assert result.transcript == "where does my sister live"


async def test_a_stopped_reply_ends_the_turn_with_its_reason(autojump_clock: trio.testing.MockClock) -> None:
    result = await _turn(Script(end="stopped"), ("where does my sister live",))
    assert result.problem is None and result.stopped == "stopped"
    assert len(result.reply_paths) == 1


async def test_no_speech_is_a_problem_not_a_hang(autojump_clock: trio.testing.MockClock) -> None:
    result = await _turn(Script(), ("   ",))
    assert result.problem == "no speech was recognised" and result.transcript is None


async def test_say_reports_the_end_or_the_tts_health(autojump_clock: trio.testing.MockClock) -> None:
    broker = InProcessBroker()
    async with trio.open_nursery() as nursery:
        client = Bus(InProcessTransport(broker, client_id="cli"), source="cli")
        tts = Bus(InProcessTransport(broker, client_id="tts"), source="tts")
        await nursery.start(client.run)
        await nursery.start(tts.run)
        await tts.publish_health(False, "crashed", "child 'tts.speaker' failed")
        nobody = await say(client, "anyone there", limit=2)
        assert nobody.event is None and nobody.health == "not ok crashed (child 'tts.speaker' failed)"

        async def speak(message: Message) -> None:
            await trio.sleep(1.5)
            await tts.publish("tts/output", TtsOutput(utt_id=message.data.utt_id, path="/a.wav"))
            done = TtsStatus(event="speaking_end", text=message.data.text, utt_id=message.data.utt_id)
            await tts.publish("tts/status", done)

        await tts.subscribe("tts/say", speak)
        await tts.publish_health(True, "ready")
        spoken = await say(client, "hello", limit=5)
        assert (spoken.event, spoken.path) == ("speaking_end", Path("/a.wav"))
        nursery.cancel_scope.cancel()


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(ANSWER) - 1), unique=True, max_size=3))
def test_the_turn_ends_exactly_when_the_whole_answer_was_spoken(cuts: list[int]) -> None:
    """However the tts splits the reply into utterances, the turn waits for the last one."""
    bounds = [0, *sorted(cuts), len(ANSWER)]
    parts = tuple(ANSWER[a:b].strip() for a, b in itertools.pairwise(bounds))
    parts = tuple(p for p in parts if p)
    result = trio.run(
        _turn, Script(utterances=parts), ("where does my sister live",), clock=MockClock(autojump_threshold=0)
    )
    assert result.problem is None
    assert len(result.reply_paths) == len(parts)
    assert result.seconds == pytest.approx(0.5 + 0.3 + len(parts))
