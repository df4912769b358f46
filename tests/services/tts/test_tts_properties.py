"""Properties of the tts service under random says and controls (fake synthesis, virtual time).

The synthesizer and the sink are swapped for in-memory fakes (the service takes them as
arguments), so hypothesis can run many interleavings of ``tts/say`` and ``tts/control`` quickly.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import hypothesis.strategies as st
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings

from trioworks.bus import Bus, InProcessBroker, InProcessTransport, Message, TtsControl, TtsSay
from trioworks.core import Metrics
from trioworks.services.tts import Synthesis, TtsConfig, TtsService

RATE = 1000  # fake audio: 1000 samples/s, 100 bytes per character = 50 ms per character


class FakePcm(trio.abc.ReceiveStream):
    def __init__(self, size: int) -> None:
        self.left = size

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep(0.01)  # synthesis takes (virtual) time
        n = min(self.left, 200)
        self.left -= n
        return b"\0" * n

    async def aclose(self) -> None:
        pass


class FakeSynth:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = 0

    @contextlib.asynccontextmanager
    async def __call__(
        self, text: str, *, voice: str, rate_wpm: int, pitch: int, metrics: Metrics
    ) -> AsyncIterator[Synthesis]:
        self.calls.append(text)
        self.running += 1
        try:
            yield Synthesis(RATE, FakePcm(len(text) * 100))
        finally:
            self.running -= 1


class FakeOutput:
    path = None

    def __init__(self, sink: FakeSink) -> None:
        self.sink = sink

    async def write(self, pcm: bytes) -> None:
        assert self.sink.tts is not None
        # Nothing is written while paused: the playback clock holds the speaker.
        assert not self.sink.tts.clock.paused.value, "audio written while paused"
        self.sink.written += len(pcm)
        await trio.lowlevel.checkpoint()

    async def close(self, *, stopped: bool) -> None:
        self.sink.open_outputs -= 1
        await trio.lowlevel.checkpoint()

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass


class FakeSink:
    def __init__(self) -> None:
        self.tts: TtsService | None = None
        self.written = 0
        self.open_outputs = 0

    async def open(self, utt_id: str, rate: int) -> FakeOutput:
        self.open_outputs += 1
        await trio.lowlevel.checkpoint()
        return FakeOutput(self)


UTT_IDS = st.sampled_from(["a", "b", "c", None])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("say"), UTT_IDS),
        st.tuples(st.just("stop"), UTT_IDS),
        st.tuples(st.sampled_from(["pause", "resume", "mute", "unmute"]), st.none()),
        st.tuples(st.just("sleep"), st.sampled_from([0.0, 0.05, 0.3, 1.0])),
    ),
    max_size=25,
)


async def _scenario(steps: list[tuple[str, object]]) -> None:
    broker = InProcessBroker()
    synth, sink = FakeSynth(), FakeSink()
    tts = TtsService(
        Bus(InProcessTransport(broker), source="tts"),
        TtsConfig(player="wav", aggregate_window=0.1, max_queued=3),
        synthesizer=synth,
        sink=sink,
    )
    sink.tts = tts
    statuses: list[Message] = []
    published: dict[str | None, list[str]] = {}

    async def on_status(message: Message) -> None:
        statuses.append(message)

    async with trio.open_nursery() as nursery:
        client = Bus(InProcessTransport(broker), source="client")
        await nursery.start(client.run)
        await client.subscribe("tts/status", on_status, capacity=1000)
        await nursery.start(tts.run)
        for i, (kind, arg) in enumerate(steps):
            if kind == "say":
                text = f"text number {i}."
                published.setdefault(arg, []).append(text)  # type: ignore[arg-type]
                await client.publish("tts/say", TtsSay(text=text, utt_id=arg))  # type: ignore[arg-type]
            elif kind == "stop" and arg is not None:
                tts.stop(arg)  # type: ignore[arg-type]
            elif kind == "sleep":
                await trio.sleep(arg)  # type: ignore[arg-type]
            else:
                await client.publish("tts/control", TtsControl(action=kind))  # type: ignore[arg-type]
        await client.publish("tts/control", TtsControl(action="resume"))
        await trio.sleep(1000)  # everything queued is spoken by now
        nursery.cancel_scope.cancel()

    # Nothing is left speaking, queued or running.
    assert tts._waiting == [] and synth.running == 0 and sink.open_outputs == 0
    # One utterance at a time: every speaking_start is closed (speaking_end or stopped) before
    # the next one, and for the same utt_id.
    active: str | None = None
    for message in statuses:
        event, utt_id = message.data.event, message.data.utt_id
        if event == "speaking_start":
            assert active is None, f"{utt_id} started while {active} was speaking"
            active = utt_id
        elif event in ("speaking_end", "stopped") and utt_id == active:
            active = None
    assert active is None
    # Every utt_id that was said ends with a final status.
    for utt_id in published:
        if utt_id is not None:
            last = [m.data.event for m in statuses if m.data.utt_id == utt_id]
            assert not last or last[-1] in ("speaking_end", "stopped"), (utt_id, last)
    # Chunks of one utt_id are synthesized in the order they were said (some may be skipped:
    # stopped, muted or dropped, never reordered or repeated).
    for utt_id, texts in published.items():
        spoken = [t for t in synth.calls if t in texts]
        positions = [texts.index(t) for t in spoken]
        assert positions == sorted(set(positions)), (utt_id, texts, spoken)
    # A speaking_end carries exactly the chunks that were spoken, in order.
    for message in statuses:
        if message.data.event == "speaking_end":
            parts = message.data.text.split(". ")
            assert all(p.startswith("text number") for p in parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
def test_random_says_and_controls_keep_the_invariants(steps: list[tuple[str, object]]) -> None:
    trio.run(_scenario, steps, clock=trio.testing.MockClock(autojump_threshold=0))
