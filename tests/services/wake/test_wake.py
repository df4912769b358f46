"""The wake service: real espeak-ng audio through pocketsphinx, and its py-tars state machine.

The audio tests run in real time (``fail_after`` guards only against a hang); where the spotter
ran is checked with ``_offloaded``. The interrupt and timer tests use a scripted detector on the
autojump clock.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from _collector import Collector
from _offloaded import CallSites
from trioworks.bus import (
    Bus,
    FinalTranscript,
    InProcessBroker,
    InProcessTransport,
    MicCommand,
    TtsControl,
    TtsStatus,
    WakeEvent,
)
from trioworks.services.stt import wav_source
from trioworks.services.wake import Detection, Spotter, WakeConfig, WakeConfigError, WakeService

VOICE = "en-us+klatt"


def speak(espeak: str, sox: str, path: Path, texts: list[str]) -> Path:
    """``texts`` spoken one after another, 0.5 s of silence before and 1 s after each."""
    parts = []
    for i, text in enumerate(texts):
        raw = path.with_suffix(f".{i}.raw.wav")
        subprocess.run([espeak, "-v", VOICE, "-s", "150", "-w", str(raw), text], check=True, timeout=30)
        padded = path.with_suffix(f".{i}.wav")
        subprocess.run([sox, "-D", str(raw), str(padded), "pad", "0.5", "1.0"], check=True, timeout=30)
        parts.append(str(padded))
    subprocess.run([sox, "-D", *parts, str(path)], check=True, timeout=30)
    return path


async def _client(broker: InProcessBroker, nursery: trio.Nursery) -> tuple[Bus, Collector]:
    client = Bus(InProcessTransport(broker), source="client")
    await nursery.start(client.run)
    got = Collector()
    for topic in ("wake/event", "wake/mic", "tts/control"):
        await client.subscribe(topic, got)
    return client, got


def _of(got: Collector, topic: str) -> list[Any]:
    return [m.data for m in got.messages if m.topic == topic]


async def test_the_phrase_in_espeak_speech_is_heard_once_and_nothing_else_is(
    espeak_ng: str, sox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wav = speak(
        espeak_ng,
        sox,
        tmp_path / "talk.wav",
        ["what is the weather in paris today", "hey tars what time is it", "turn off the lights"],
    )
    sites = CallSites()
    sites.patch(monkeypatch, Spotter, "__init__", "feed")
    broker = InProcessBroker()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            _, got = await _client(broker, nursery)
            wake = WakeService(
                Bus(InProcessTransport(broker), source="wake"),
                WakeConfig(idle_timeout=0),
                source=wav_source(wav, limiter=trio.CapacityLimiter(1)),
            )
            await nursery.start(wake.run)
            await wake.finished.wait()
            await got.wait_for(2)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    [event] = _of(got, "wake/event")
    assert isinstance(event, WakeEvent)
    assert event.type == "wake" and event.cause == "wake_phrase" and event.tts_id is None
    assert event.confidence is not None and 0 <= event.confidence <= 1
    assert event.energy is not None and event.energy > 0 and event.ts is not None
    assert _of(got, "wake/mic") == [MicCommand(action="unmute", reason="wake", ttl_ms=None)]
    assert _of(got, "tts/control") == []
    assert wake.detections == 1
    assert {"Spotter.__init__", "Spotter.feed"} <= sites.labels() and sites.on_loop() == []


def _heard(spotter: Spotter, pcm: bytes) -> bool:
    detections = [spotter.feed(pcm[i : i + 3200]) for i in range(0, len(pcm), 3200)]  # 100 ms chunks
    spotter.close()
    return any(d is not None for d in detections)


def test_a_british_hey_tars_is_heard_through_the_second_pronunciation(
    espeak_ng: str, sox: str, tmp_path: Path
) -> None:
    wav, raw = tmp_path / "gb.wav", tmp_path / "gb.raw"
    text = "hey tars turn off the lights"  # en+f3 (en-gb): t'A@z, no "r"
    subprocess.run([espeak_ng, "-v", "en+f3", "-s", "140", "-w", str(wav), text], check=True, timeout=30)
    pcm_format = ["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw"]
    subprocess.run([sox, "-D", str(wav), *pcm_format, str(raw), "pad", "0.5", "1.0"], check=True, timeout=30)
    pcm = raw.read_bytes()
    spotter = Spotter(WakeConfig())
    assert spotter.spellings == ["hey tars", "hey tars(2)"]
    assert _heard(spotter, pcm)
    assert not _heard(Spotter(WakeConfig(words={"tars": "T AA R Z"})), pcm)  # the rhotic one alone misses it


def test_a_word_without_pronunciation_names_the_phrase() -> None:
    with pytest.raises(WakeConfigError, match=r"phrase: .*zorblax"):
        Spotter(WakeConfig(phrase="hey zorblax"))
    Spotter(WakeConfig(phrase="hey zorblax", words={"zorblax": "Z AO R B L AE K S"})).close()
    with pytest.raises(WakeConfigError, match=r"words\['zorblax\(2\)'\]: .*no first one"):
        Spotter(WakeConfig(phrase="hey zorblax", words={"zorblax(2)": "Z AO R B L AE K S"}))
    for bad, field in (
        (dict(words={"Tars(2)": "T AA Z"}), "words"),
        (dict(words={"tars(x)": "T AA Z"}), "words"),
        (dict(phrase=" "), "phrase"),
        (dict(threshold=2), "threshold"),
        (dict(idle_timeout=-1), "idle_timeout"),
    ):
        with pytest.raises(WakeConfigError, match=field):
            WakeConfig(**bad)  # type: ignore[arg-type]


class Scripted:
    """A detector that hears the phrase whenever a chunk is ``b"WAKE"``."""

    def __init__(self) -> None:
        self.closed = False

    async def feed(self, pcm: bytes) -> Detection | None:
        await trio.lowlevel.checkpoint()
        return Detection("hey tars", 0.0, 0.7, 0.1) if pcm == b"WAKE" else None

    async def aclose(self) -> None:
        self.closed = True


class Mic:
    """A source the test feeds chunk by chunk."""

    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[bytes](16)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.receive:
            yield chunk


async def _settle(seconds: float = 0.1) -> None:
    await trio.sleep(seconds)  # virtual time: everyone has done what they can


@pytest.fixture
def rig() -> tuple[InProcessBroker, Mic, Scripted]:
    return InProcessBroker(), Mic(), Scripted()


async def _start(
    nursery: trio.Nursery, rig: tuple[InProcessBroker, Mic, Scripted], **config: float
) -> tuple[Bus, Collector, WakeService]:
    broker, mic, detector = rig
    client, got = await _client(broker, nursery)
    wake = WakeService(
        Bus(InProcessTransport(broker), source="wake"),
        WakeConfig(**config),
        source=mic.__aiter__(),
        detector=detector,
    )
    await nursery.start(wake.run)
    return client, got, wake


async def test_idle_timeout_after_a_wake_word_unless_the_user_speaks(
    autojump_clock: trio.testing.MockClock, rig: tuple[InProcessBroker, Mic, Scripted]
) -> None:
    async with trio.open_nursery() as nursery:
        client, got, _ = await _start(nursery, rig)
        await rig[1].send.send(b"WAKE")
        await _settle(3.5)
        assert [e.type for e in _of(got, "wake/event")] == ["wake", "timeout"]
        assert _of(got, "wake/event")[1].cause == "silence"
        assert _of(got, "wake/mic") == [MicCommand(action="unmute", reason="wake", ttl_ms=3000)]
        await rig[1].send.send(b"WAKE")
        await _settle(1)
        await client.publish("stt/final", FinalTranscript(text="what time is it"))
        await _settle(5)
        nursery.cancel_scope.cancel()
    assert [e.type for e in _of(got, "wake/event")] == ["wake", "timeout", "wake"]
    assert rig[2].closed


async def test_a_retrigger_within_a_second_is_ignored(
    autojump_clock: trio.testing.MockClock, rig: tuple[InProcessBroker, Mic, Scripted]
) -> None:
    async with trio.open_nursery() as nursery:
        _, got, wake = await _start(nursery, rig, idle_timeout=0)
        await rig[1].send.send(b"WAKE")
        await _settle(0.5)
        await rig[1].send.send(b"WAKE")
        await _settle(1)
        await rig[1].send.send(b"WAKE")
        await _settle(1)
        nursery.cancel_scope.cancel()
    assert [e.type for e in _of(got, "wake/event")] == ["wake", "wake"] and wake.detections == 2


async def _speaking(client: Bus, got: Collector, rig: tuple[InProcessBroker, Mic, Scripted]) -> None:
    await client.publish("tts/status", TtsStatus(event="speaking_start", utt_id="u1", text="a long answer"))
    await _settle()
    await rig[1].send.send(b"WAKE")
    await _settle()


async def test_a_wake_word_while_speaking_pauses_it_and_silence_resumes_it(
    autojump_clock: trio.testing.MockClock, rig: tuple[InProcessBroker, Mic, Scripted]
) -> None:
    async with trio.open_nursery() as nursery:
        client, got, wake = await _start(nursery, rig, idle_timeout=0)
        await _speaking(client, got, rig)
        [event] = _of(got, "wake/event")
        assert (event.type, event.cause, event.tts_id) == ("interrupt", "double_wake", "u1")
        assert _of(got, "tts/control") == [TtsControl(action="pause", reason="wake_interrupt", utt_id="u1")]
        assert wake.interrupt_open
        await _settle(2.5)
        nursery.cancel_scope.cancel()
    assert [(e.type, e.cause, e.tts_id) for e in _of(got, "wake/event")][1] == ("resume", "timeout", "u1")
    assert _of(got, "tts/control")[1] == TtsControl(action="resume", reason="wake_resume", utt_id="u1")
    assert not wake.interrupt_open


@pytest.mark.parametrize(
    ("said", "stops"), [("Cancel that!", True), ("never mind", True), ("what about tomorrow", False)]
)
async def test_after_an_interrupt_a_cancel_phrase_stops_the_speech_and_other_speech_ends_it(
    autojump_clock: trio.testing.MockClock, rig: tuple[InProcessBroker, Mic, Scripted], said: str, stops: bool
) -> None:
    async with trio.open_nursery() as nursery:
        client, got, wake = await _start(nursery, rig, idle_timeout=0)
        await _speaking(client, got, rig)
        await client.publish("stt/final", FinalTranscript(text=said))
        await _settle(5)
        nursery.cancel_scope.cancel()
    events = [(e.type, e.cause, e.tts_id) for e in _of(got, "wake/event")]
    controls = _of(got, "tts/control")
    if stops:
        assert events == [("interrupt", "double_wake", "u1"), ("cancelled", "cancel", "u1")]
        assert controls[1:] == [TtsControl(action="stop", reason="wake_cancel", utt_id="u1")]
    else:  # no resume: the router answers what was said
        assert events == [("interrupt", "double_wake", "u1")] and len(controls) == 1
    assert not wake.interrupt_open


async def test_the_end_of_speech_ends_an_interrupt(
    autojump_clock: trio.testing.MockClock, rig: tuple[InProcessBroker, Mic, Scripted]
) -> None:
    async with trio.open_nursery() as nursery:
        client, got, _ = await _start(nursery, rig, idle_timeout=0)
        await _speaking(client, got, rig)
        await client.publish("tts/status", TtsStatus(event="stopped", utt_id="u1"))
        await _settle(5)
        await rig[1].send.send(b"WAKE")  # quiet again: a plain wake word
        await _settle()
        nursery.cancel_scope.cancel()
    assert [e.type for e in _of(got, "wake/event")] == ["interrupt", "wake"]


async def test_in_a_stack_the_wake_word_opens_the_router_which_acknowledges_it(
    espeak_ng: str, sox: str, tmp_path: Path
) -> None:
    """``services=(..., "wake")``: the wake service hears the phrase in the audio, the router
    (now needing the wake word) says py-tars' acknowledgement and opens its window."""
    from trioworks.bus import TtsSay
    from trioworks.services import VoiceSettings, VoiceStack

    wav = speak(espeak_ng, sox, tmp_path / "hey.wav", ["hey tars"])
    stack = VoiceStack(
        VoiceSettings(data_dir=tmp_path, rag_k=0, wake=WakeConfig(idle_timeout=0)),
        services=("router", "wake"),
        wake_source=wav_source(wav, limiter=trio.CapacityLimiter(1)),
    )
    assert stack.services == ("router", "wake")
    got = Collector()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            client = stack.client("test")
            await nursery.start(client.run)
            await client.subscribe("tts/say", got)
            await nursery.start(stack.run)
            assert stack.router is not None and stack.wake is not None
            assert stack.router.config.wake_required and not stack.router.wake.is_open
            await got.wait_for(1)
            assert stack.router.wake.is_open
            nursery.cancel_scope.cancel()
    [ack] = got.data
    assert isinstance(ack, TtsSay) and ack.wake_ack is True and ack.text == "Hmm?"
