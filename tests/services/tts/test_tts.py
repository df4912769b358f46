"""The tts service on an in-process bus with real espeak-ng. Real time (audio): bounds are lower
bounds (pacing) or ``fail_after`` guards against a hang, none a speed the machine must reach."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from tts_helpers import Collector

from _offloaded import CallSites
from trioworks.bus import Bus, InProcessBroker, InProcessTransport, LLMCancel, TtsControl, TtsSay
from trioworks.services.tts import (
    PlaybackClock,
    ProgramMissing,
    TtsConfig,
    TtsConfigError,
    TtsService,
    WavSink,
    _sinks,
)

LONG = " ".join(f"This is sentence number {i} of a long answer." for i in range(1, 31))  # ~80 s


@attrs.define
class Rig:
    tts: TtsService
    client: Bus
    status: Collector
    nursery: trio.Nursery
    outputs: Collector
    """``tts/output``: the file of each utterance, sent just before its end status."""

    def output_of(self, utt_id: str) -> str | None:
        return next((m.data.path for m in self.outputs.messages if m.data.utt_id == utt_id), None)

    async def say(self, text: str, utt_id: str | None = None, **kw: object) -> None:
        await self.client.publish("tts/say", TtsSay(text=text, utt_id=utt_id, **kw))  # type: ignore[arg-type]

    async def control(self, action: str, reason: str | None = None, utt_id: str | None = None) -> None:
        await self.client.publish("tts/control", TtsControl(action=action, reason=reason, utt_id=utt_id))  # type: ignore[arg-type]


@pytest.fixture
def config(request: pytest.FixtureRequest, tmp_path: Path) -> TtsConfig:
    """WAV files in the test's own directory; ``parametrize("config", [{...}], indirect=True)``
    overrides other settings."""
    overrides = getattr(request, "param", {})
    return TtsConfig(**{"player": "wav", "out_dir": tmp_path / "out", **overrides})


@pytest.fixture
async def rig(espeak_ng: str, config: TtsConfig) -> AsyncIterator[Rig]:
    broker = InProcessBroker()
    async with trio.open_nursery() as nursery:
        client = Bus(InProcessTransport(broker), source="client")
        await nursery.start(client.run)
        status = Collector()
        await client.subscribe("tts/status", status)
        outputs = Collector()
        await client.subscribe("tts/output", outputs)
        tts = TtsService(Bus(InProcessTransport(broker), source="tts"), config)
        await nursery.start(tts.run)
        yield Rig(tts, client, status, nursery, outputs)
        nursery.cancel_scope.cancel()


async def _until(ready: Callable[[], object]) -> None:
    """Wait for what a worker thread or process does (no event to wait on), polling."""
    while not ready():  # noqa: ASYNC110
        await trio.sleep(0.01)


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return wav.getnframes() / wav.getframerate()


async def test_say_writes_a_wav_paced_like_a_device(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    # The file work (open, write, close) runs in threads: the loop is never held by a disk.
    sites = CallSites()
    sites.patch(monkeypatch, WavSink, "_create")
    sites.patch(monkeypatch, _sinks._WavOutput, "_close")
    sites.patch(monkeypatch, wave.Wave_write, "writeframesraw")
    with trio.fail_after(20):
        await rig.say("Hello there. This is a short test of the speech service.", utt_id="u1")
        start = await rig.status.wait_event("speaking_start", "u1")
        began = trio.current_time()
        end = await rig.status.wait_event("speaking_end", "u1")
        took = trio.current_time() - began
    assert sites.labels() == {"WavSink._create", "Wave_write.writeframesraw", "_WavOutput._close"}
    assert sites.on_loop() == []
    assert start.data.text.startswith("Hello there")
    assert end.data.text == "Hello there. This is a short test of the speech service."
    path = rig.tts.outputs["u1"]
    assert path.name == "u1.wav"
    assert rig.output_of("u1") == str(path)  # tts/output says where the audio went
    seconds = _wav_seconds(path)
    assert seconds > 2.0
    # Real-time pacing: speaking_end comes when a listener would have heard it all.
    assert took >= seconds - 0.3
    assert rig.status.events() == [("speaking_start", "u1"), ("speaking_end", "u1")]


async def test_stop_during_a_long_utterance_kills_synthesis_promptly(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = CallSites()
    written.patch(monkeypatch, wave.Wave_write, "writeframesraw")
    # ~80 s of speech, paced in real time: a stop that waited for synthesis or playback to end
    # would run into fail_after.
    with trio.fail_after(20):
        await rig.say(LONG, utt_id="long")
        await rig.status.wait_event("speaking_start", "long")
        await _until(lambda: written.calls)  # audio is being played
        await rig.control("stop", reason="user said stop")
        stopped = await rig.status.wait_event("stopped", "long")
    assert stopped.data.reason == "user said stop"
    assert ("speaking_end", "long") not in rig.status.events()
    assert rig.tts.bus.metrics.snapshot()["tts.synth.killed"] == 1
    # The file is valid and holds only what was played before the stop (a part of ~80 s).
    assert 0 < _wav_seconds(rig.tts.outputs["long"]) < 20


async def test_pause_holds_playback_until_resume(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    written = CallSites()
    written.patch(monkeypatch, wave.Wave_write, "writeframesraw")
    with trio.fail_after(20):
        await rig.say("One two three four five six seven eight.", utt_id="p")
        await rig.status.wait_event("speaking_start", "p")
        began = trio.current_time()
        await _until(lambda: written.calls)  # mid-utterance: audio is being played
        await rig.control("pause", reason="wake")
        paused = await rig.status.wait_event("paused")
        await trio.sleep(1.5)
        assert ("speaking_end", "p") not in rig.status.events()
        await rig.control("resume")
        await rig.status.wait_event("resumed")
        await rig.status.wait_event("speaking_end", "p")
        took = trio.current_time() - began
    assert paused.data.utt_id == "p" and paused.data.reason == "wake"
    seconds = _wav_seconds(rig.tts.outputs["p"])
    assert took >= seconds + 1.5 - 0.3  # the pause added its length
    assert [e for e, _ in rig.status.events()] == ["speaking_start", "paused", "resumed", "speaking_end"]


@pytest.mark.parametrize("config", [{"realtime": False, "aggregate_window": 0.5}], indirect=True)
async def test_chunks_with_one_utt_id_form_one_utterance_in_order(rig: Rig) -> None:
    with trio.fail_after(20):
        await rig.say("First part.", utt_id="a")
        await rig.say("Someone else.", utt_id="b")
        await rig.say("Second part.", utt_id="a")
        await rig.say("Third part.", utt_id="a")
        await rig.status.wait_event("speaking_end", "b")
    assert rig.status.events() == [
        ("speaking_start", "a"),
        ("speaking_end", "a"),
        ("speaking_start", "b"),
        ("speaking_end", "b"),
    ]
    assert rig.status.messages[1].data.text == "First part. Second part. Third part."
    assert _wav_seconds(rig.tts.outputs["a"]) > _wav_seconds(rig.tts.outputs["b"]) * 2


async def test_a_redelivered_say_is_spoken_once(rig: Rig) -> None:
    # QoS 1 is at least once: the same envelope can arrive twice (a resend, a resumed session).
    with trio.fail_after(20):
        for _ in range(2):
            await rig.client.publish("tts/say", TtsSay(text="Only once.", utt_id="a"), id="say-1")
        await rig.say("Then this.", utt_id="b")
        await rig.status.wait_event("speaking_end", "b")
    assert rig.status.events() == [
        ("speaking_start", "a"),
        ("speaking_end", "a"),
        ("speaking_start", "b"),
        ("speaking_end", "b"),
    ]
    assert rig.status.messages[1].data.text == "Only once."
    assert rig.tts.bus.metrics.snapshot()["bus.sub.tts/say.duplicates"] == 1


async def test_llm_cancel_stops_only_the_speech_it_fed(rig: Rig) -> None:
    with trio.fail_after(20):
        await rig.say(LONG, utt_id="turn-1")
        await rig.say("Next.", utt_id="turn-2")
        await rig.status.wait_event("speaking_start", "turn-1")
        await rig.client.publish("llm/cancel", LLMCancel(id="turn-1"))
        stopped = await rig.status.wait_event("stopped", "turn-1")
        await rig.status.wait_event("speaking_end", "turn-2")
    assert stopped.data.reason == "llm_cancel"


async def test_stop_by_utt_id_removes_a_queued_utterance(rig: Rig) -> None:
    with trio.fail_after(20):
        await rig.say("Short one.", utt_id="x")
        await rig.say("Never spoken.", utt_id="y")
        await trio.testing.wait_all_tasks_blocked()  # the say handler has queued it
        assert rig.tts.stop("y", reason="superseded") == 1
        await rig.status.wait_event("stopped", "y")
    assert rig.status.events() == [("speaking_start", "x"), ("speaking_end", "x"), ("stopped", "y")]
    assert "y" not in rig.tts.outputs


async def test_control_stop_with_utt_id_stops_only_that_utterance(rig: Rig) -> None:
    with trio.fail_after(20):
        await rig.say(LONG, utt_id="a")
        await rig.say("Next.", utt_id="b")
        await rig.status.wait_event("speaking_start", "a")
        await _until(lambda: "a" in rig.tts.outputs)  # a file to name
        await rig.control("stop", reason="barge_in", utt_id="a")
        cut = await rig.status.wait_event("stopped", "a")
        await rig.status.wait_event("speaking_end", "b")  # b was not stopped with it
    assert cut.data.reason == "barge_in"
    assert rig.output_of("a") == str(rig.tts.outputs["a"])  # stopped: the file holds what was said
    assert rig.status.events() == [
        ("speaking_start", "a"),
        ("stopped", "a"),
        ("speaking_start", "b"),
        ("speaking_end", "b"),
    ]


@pytest.mark.parametrize("config", [{"max_queued": 2}], indirect=True)
async def test_a_full_queue_drops_new_utterances_with_a_status(rig: Rig) -> None:
    with trio.fail_after(20):
        await rig.say(LONG, utt_id="q1")
        await rig.say("Waiting.", utt_id="q2")
        await rig.say("One too many.", utt_id="q3")
        await rig.say("More of the first.", utt_id="q1")  # joins q1: not a new utterance
        dropped = await rig.status.wait_event("stopped", "q3")
        await trio.testing.wait_all_tasks_blocked()  # the last say has been handled too
        rig.tts.stop()
        await rig.status.wait_event("stopped", "q2")
    assert dropped.data.reason == "queue full"
    assert rig.tts.bus.metrics.snapshot()["tts.say.dropped"] == 1


async def test_mute_stops_speech_and_drops_says_until_unmute(rig: Rig) -> None:
    with trio.fail_after(20):
        await rig.say(LONG, utt_id="m1")
        await rig.status.wait_event("speaking_start", "m1")
        await rig.control("mute", reason="privacy")
        assert (await rig.status.wait_event("stopped", "m1")).data.reason == "privacy"
        await rig.say("Dropped.", utt_id="m2")
        await rig.control("unmute")
        await rig.say("Heard.", utt_id="m3")
        await rig.status.wait_event("speaking_end", "m3")
    assert ("speaking_start", "m2") not in rig.status.events()
    assert rig.tts.bus.metrics.snapshot()["tts.say.muted"] == 1


async def test_an_unknown_voice_falls_back_to_the_configured_one_and_health_says_so(rig: Rig) -> None:
    health = Collector()
    await rig.client.subscribe("system/health/tts", health)
    with trio.fail_after(20):
        await rig.say("Hello.", utt_id="amy", voice="piper/en_US/amy")  # py-tars' default voice
        await rig.status.wait_event("speaking_end", "amy")
        await health.wait_for(2)  # the retained ready, then the fallback
    assert rig.tts.voice_fallbacks == {"piper/en_US/amy": "en-us"}
    said = health.messages[-1].data
    assert (said.ok, said.event) == (True, "voice_fallback") and "piper/en_US/amy" in said.err


async def test_a_bad_voice_fails_its_utterance_only(rig: Rig) -> None:
    rig.tts.voices = None  # espeak-ng's voices unknown: every voice is tried as asked
    with trio.fail_after(20):
        await rig.say("Hello.", utt_id="bad", voice="nosuch")
        await rig.say("Still here.", utt_id="good")
        stopped = await rig.status.wait_event("stopped", "bad")
        await rig.status.wait_event("speaking_end", "good")
    assert "nosuch" in stopped.data.reason and "does not exist" in stopped.data.reason


@pytest.mark.parametrize(
    "config",
    [{"player": ("sh", "-c", 'cat > "$PLAYED"; echo {rate} > "$PLAYED.rate"'), "realtime": False}],
    indirect=True,
)
async def test_a_player_command_gets_the_pcm(
    espeak_ng: str, config: TtsConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    played = tmp_path / "played.raw"
    monkeypatch.setenv("PLAYED", str(played))
    broker = InProcessBroker()
    status = Collector()
    async with trio.open_nursery() as nursery:
        client = Bus(InProcessTransport(broker), source="client")
        await nursery.start(client.run)
        await client.subscribe("tts/status", status)
        outputs = Collector()
        await client.subscribe("tts/output", outputs)
        tts = TtsService(Bus(InProcessTransport(broker), source="tts"), config)
        await nursery.start(tts.run)
        with trio.fail_after(20):
            await client.publish("tts/say", TtsSay(text="Played, not written.", utt_id="d"))
            await status.wait_event("speaking_end", "d")
        nursery.cancel_scope.cancel()
    assert played.stat().st_size > 22050  # more than half a second of s16le at 22,050 Hz
    assert (await trio.Path(f"{played}.rate").read_text()).strip() == "22050"
    assert tts.outputs == {}


async def test_missing_espeak_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    tts = TtsService(Bus(InProcessTransport(InProcessBroker()), source="tts"), TtsConfig(player="wav"))
    with pytest.raises(ProgramMissing, match=r"espeak-ng is not installed \(Debian package 'espeak-ng'"):
        await tts.run()


async def test_auto_player_falls_back_to_wav_files_without_a_device(
    espeak_ng: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "espeak-ng").symlink_to(espeak_ng)
    monkeypatch.setenv("PATH", str(bin_dir))  # espeak-ng, but no aplay, paplay or pactl
    tts = TtsService(Bus(InProcessTransport(InProcessBroker()), source="tts"), TtsConfig(out_dir=tmp_path))
    async with trio.open_nursery() as nursery:
        await nursery.start(tts.run)
        assert isinstance(tts.sink, WavSink) and tts.sink.out_dir == tmp_path
        nursery.cancel_scope.cancel()


def test_config_errors_name_the_field() -> None:
    with pytest.raises(TtsConfigError, match=r"rate_wpm: expected a number in \[80, 450\], got 10"):
        TtsConfig(rate_wpm=10)
    with pytest.raises(TtsConfigError, match="player: expected 'auto', 'wav' or a command"):
        TtsConfig(player="speakers")  # type: ignore[arg-type]


async def test_playback_clock_stops_while_paused(autojump_clock: trio.testing.MockClock) -> None:
    clock = PlaybackClock()
    origin = clock.now()
    await trio.sleep(1)
    assert clock.pause() and not clock.pause()
    await trio.sleep(5)
    assert clock.now() - origin == pytest.approx(1)
    assert clock.resume() and not clock.resume()
    done_at: list[float] = []

    async def waiter() -> None:
        await clock.wait_until(origin + 3)
        done_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(1)
        clock.pause()  # 1 s before the waiter is due
        await trio.sleep(10)
        assert done_at == []
        clock.resume()
    assert done_at == [pytest.approx(6 + 1 + 10 + 1)]
