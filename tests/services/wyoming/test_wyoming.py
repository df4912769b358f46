"""The Wyoming clients against a Wyoming server stand-in written here (a Trio TCP server).

The stand-in has its own framing code (not the client's), so a framing mistake on either side
shows. Audio is synthetic (silence and a tone: the stt client's energy gate only needs levels).
"""

from __future__ import annotations

import functools
import json
import math
import struct
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from _collector import Collector
from _services import free_port
from trioworks.bus import Bus, InProcessBroker, InProcessTransport, ServiceFailed, TtsSay
from trioworks.core import Metrics, find_error
from trioworks.services.stt import SttConfig, SttConfigError, SttService, WyomingRecognizer, pcm_source
from trioworks.services.tts import TtsConfig, TtsConfigError, TtsService, WyomingSynthesizer
from trioworks.services.wake import WakeConfig, WakeConfigError, WakeService
from trioworks.services.wyoming import (
    WyomingError,
    describe,
    parse_url,
)

SILENCE = b"\0\0" * 16000  # 1 s
TONE = b"".join(struct.pack("<h", int(8000 * math.sin(i / 5))) for i in range(16000))  # 1 s, loud


class Peer:
    """The server's side of one connection: read and write Wyoming events."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def _need(self, n: int) -> bool:
        while len(self.buffer) < n:
            more = await self.stream.receive_some(65536)
            if not more:
                return False
            self.buffer += more
        return True

    async def read(self) -> tuple[str, dict[str, Any], bytes] | None:
        while b"\n" not in self.buffer:
            more = await self.stream.receive_some(65536)
            if not more:
                return None
            self.buffer += more
        line, self.buffer = self.buffer.split(b"\n", 1)
        header = json.loads(line)
        data = dict(header.get("data") or {})
        size, payload_size = header.get("data_length") or 0, header.get("payload_length") or 0
        if not await self._need(size + payload_size):
            return None
        if size:
            data.update(json.loads(self.buffer[:size]))
        payload = self.buffer[size : size + payload_size]
        self.buffer = self.buffer[size + payload_size :]
        return header["type"], data, payload

    async def write(self, kind: str, data: dict[str, Any] | None = None, payload: bytes = b"") -> None:
        body = json.dumps(data).encode() if data else b""
        header = {"type": kind, "data_length": len(body), "payload_length": len(payload)}
        await self.stream.send_all(json.dumps(header).encode() + b"\n" + body + payload)


Handler = Callable[[Peer, list[tuple[str, dict[str, Any], bytes]]], Awaitable[None]]


async def serve(
    nursery: trio.Nursery, handler: Handler
) -> tuple[str, list[list[tuple[str, dict[str, Any], bytes]]]]:
    """Start the stand-in; its URL and, per connection, the events it received."""
    seen: list[list[tuple[str, dict[str, Any], bytes]]] = []

    async def connection(stream: trio.SocketStream) -> None:
        events: list[tuple[str, dict[str, Any], bytes]] = []
        seen.append(events)
        async with stream:
            await handler(Peer(stream), events)

    listeners = await nursery.start(functools.partial(trio.serve_tcp, connection, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    return f"tcp://127.0.0.1:{port}", seen


async def asr(peer: Peer, events: list[tuple[str, dict[str, Any], bytes]]) -> None:
    while (event := await peer.read()) is not None:
        events.append(event)
        if event[0] == "describe":
            await peer.write("info", {"asr": [{"name": "stand-in", "languages": ["en"]}]})
        if event[0] == "audio-stop":
            audio = sum(len(p) for kind, _, p in events if kind == "audio-chunk")
            await peer.write("transcript", {"text": f" heard {audio} bytes "})


def test_a_url_must_be_tcp_host_port() -> None:
    assert parse_url("tcp://example:10300") == ("example", 10300)
    for bad in ("http://a:1", "tcp://a", "a:1", "tcp://:5"):
        with pytest.raises(ValueError, match="tcp://HOST:PORT"):
            parse_url(bad)
    with pytest.raises(
        SttConfigError,
        match=r"stt config url: expected a Wyoming server URL tcp://HOST:PORT, got 'http://a:1'",
    ):
        SttConfig(url="http://a:1")
    with pytest.raises(TtsConfigError, match="tts config url: expected a Wyoming"):
        TtsConfig(url="piper")
    with pytest.raises(WakeConfigError, match="wake config url: expected a Wyoming"):
        WakeConfig(url="tcp://host")


async def test_stt_sends_each_utterance_and_publishes_the_transcript() -> None:
    broker = InProcessBroker()
    audio = SILENCE + TONE + SILENCE + TONE + SILENCE
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url, seen = await serve(nursery, asr)
            assert (await describe(url))["asr"][0]["name"] == "stand-in"
            client = Bus(InProcessTransport(broker), source="client")
            await nursery.start(client.run)
            got = Collector()
            await client.subscribe("stt/final", got)
            stt = SttService(  # selected by URL: the config's, as `services run --stt-url` does
                Bus(InProcessTransport(broker), source="stt"), SttConfig(url=url), source=pcm_source(audio)
            )
            await nursery.start(stt.run)
            await stt.finished.wait()
            await got.wait_for(2)
            nursery.cancel_scope.cancel()
    utterances = seen[1:]  # the first connection was describe
    assert len(utterances) == 2
    for events in utterances:
        kinds = [kind for kind, _, _ in events]
        assert kinds[:2] == ["transcribe", "audio-start"] and kinds[-1] == "audio-stop"
        assert set(kinds[2:-1]) == {"audio-chunk"}
        assert events[0][1] == {"language": "en"}
        assert events[1][1] == {"rate": 16000, "width": 2, "channels": 1}
    sizes = [sum(len(p) for _, _, p in events) for events in utterances]
    texts = [m.data.text for m in got.messages]
    assert texts == [f"heard {n} bytes" for n in sizes]
    assert all(n >= len(TONE) for n in sizes)  # the whole tone, with its pre-roll


async def test_stt_server_gone_mid_utterance_fails_naming_the_url() -> None:
    async def hang_up(peer: Peer, events: list[tuple[str, dict[str, Any], bytes]]) -> None:
        while (event := await peer.read()) is not None:
            events.append(event)
            if event[0] == "audio-stop":
                return  # closes without a transcript

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url, _ = await serve(nursery, hang_up)
            recognizer = WyomingRecognizer(url, trio.CapacityLimiter(1))
            await recognizer.feed(TONE)
            with pytest.raises(
                WyomingError, match=f"{url}: the server closed the connection while we waited for transcript"
            ):
                await recognizer.flush()
            assert await recognizer.flush() == []  # the utterance is over; a new one reconnects
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b"this is not json\n", "malformed event header b'this is not json'"),
        (b'{"no_type": 1}\n', "no type"),
        (b'{"type": "transcript", "data_length": -4}\n', "data_length -4"),
        (
            b'{"type": "error", "data": {"text": "model missing"}}\n',
            "the server answered an error: model missing",
        ),
        (b'{"type": "info"}\n', "expected transcript, got info"),
    ],
)
async def test_a_malformed_answer_is_a_clear_error_naming_the_url(reply: bytes, problem: str) -> None:
    async def bad(peer: Peer, events: list[tuple[str, dict[str, Any], bytes]]) -> None:
        while (event := await peer.read()) is not None:
            if event[0] == "audio-stop":
                await peer.stream.send_all(reply)
                await trio.sleep_forever()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url, _ = await serve(nursery, bad)
            recognizer = WyomingRecognizer(url, trio.CapacityLimiter(1))
            await recognizer.feed(TONE)
            with pytest.raises(WyomingError) as caught:
                await recognizer.flush()
            assert caught.value.url == url and problem in str(caught.value)
            nursery.cancel_scope.cancel()


async def test_an_unreachable_server_is_named() -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(WyomingError, match=f"Wyoming server {url}: cannot connect"):
        await WyomingRecognizer(url, trio.CapacityLimiter(1)).feed(TONE)


async def test_tts_streams_the_servers_audio() -> None:
    async def tts(peer: Peer, events: list[tuple[str, dict[str, Any], bytes]]) -> None:
        event = await peer.read()
        assert event is not None
        events.append(event)
        fmt = {"rate": 22050, "width": 2, "channels": 1}
        await peer.write("audio-start", fmt)
        for i in range(3):
            await peer.write("audio-chunk", fmt, bytes([i + 1]) * 1000)
        await peer.write("audio-stop")

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url, seen = await serve(nursery, tts)
            synth = WyomingSynthesizer(url, voice="en_US-amy")
            async with synth("Hello there.", voice="en-us", rate_wpm=175, pitch=50, metrics=Metrics()) as out:
                assert out.rate == 22050
                pcm = b""
                while chunk := await out.pcm.receive_some(700):
                    pcm += chunk
            nursery.cancel_scope.cancel()
    assert pcm == b"\x01" * 1000 + b"\x02" * 1000 + b"\x03" * 1000
    assert seen[0][0][:2] == ("synthesize", {"text": "Hello there.", "voice": {"name": "en_US-amy"}})


async def test_tts_refuses_audio_it_cannot_play_naming_the_url() -> None:
    async def stereo(peer: Peer, events: list[tuple[str, dict[str, Any], bytes]]) -> None:
        await peer.read()
        await peer.write("audio-start", {"rate": 22050, "width": 2, "channels": 2})
        await trio.sleep_forever()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url, _ = await serve(nursery, stereo)
            with pytest.raises(WyomingError, match=f"{url}: unsupported audio"):
                async with WyomingSynthesizer(url)("hi", voice="x", rate_wpm=1, pitch=1, metrics=Metrics()):
                    pass
            nursery.cancel_scope.cancel()


async def test_wake_over_wyoming_publishes_wake_event() -> None:
    async def wake_server(peer: Peer, events: list[tuple[str, dict[str, Any], bytes]]) -> None:
        chunks = 0
        while (event := await peer.read()) is not None:
            events.append(event)
            if event[0] == "audio-chunk":
                chunks += 1
                if chunks == 5:
                    await peer.write("detection", {"name": "hey_jarvis", "timestamp": 500})

    broker = InProcessBroker()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url, seen = await serve(nursery, wake_server)
            client = Bus(InProcessTransport(broker), source="client")
            await nursery.start(client.run)
            got = Collector()
            await client.subscribe("wake/event", got)
            mic_send, mic_receive = trio.open_memory_channel[bytes](0)

            async def mic() -> Any:
                async for chunk in mic_receive:
                    yield chunk

            wake = WakeService(
                Bus(InProcessTransport(broker), source="wake"),
                WakeConfig(idle_timeout=0, url=url, wyoming_names=["hey_jarvis"]),
                source=mic(),
            )
            await nursery.start(wake.run)
            for _ in range(8):
                await mic_send.send(SILENCE[:3200])
            await got.wait_for(1)
            await mic_send.aclose()
            await wake.finished.wait()
            nursery.cancel_scope.cancel()
    assert [m.data.type for m in got.messages] == ["wake"]
    kinds = [kind for kind, _, _ in seen[0]]
    assert kinds[:2] == ["detect", "audio-start"] and seen[0][0][1] == {"names": ["hey_jarvis"]}
    assert kinds.count("audio-chunk") == 8


async def test_the_tts_service_speaks_through_the_server_its_url_names(tmp_path: Path) -> None:
    """``TtsConfig(url=...)``: the service's utterance is the server's audio, written as a WAV."""

    async def tts(peer: Peer, events: list[tuple[str, dict[str, Any], bytes]]) -> None:
        event = await peer.read()
        assert event is not None
        events.append(event)
        fmt = {"rate": 16000, "width": 2, "channels": 1}
        await peer.write("audio-start", fmt)
        await peer.write("audio-chunk", fmt, TONE[:8000])
        await peer.write("audio-stop")

    broker = InProcessBroker()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url, seen = await serve(nursery, tts)
            client = Bus(InProcessTransport(broker), source="client")
            await nursery.start(client.run)
            got = Collector()
            await client.subscribe("tts/output", got)
            config = TtsConfig(player="wav", out_dir=tmp_path, realtime=False, url=url, wyoming_voice="amy")
            service = TtsService(Bus(InProcessTransport(broker), source="tts"), config)
            await nursery.start(service.run)
            await client.publish("tts/say", TtsSay(text="Hello from piper.", utt_id="u1"))
            [output] = [m.data for m in await got.wait_for(1)]
            nursery.cancel_scope.cancel()
    assert seen[0][0][:2] == ("synthesize", {"text": "Hello from piper.", "voice": {"name": "amy"}})
    with wave.open(output.path, "rb") as wav:
        assert wav.getframerate() == 16000 and wav.readframes(wav.getnframes()) == TONE[:8000]


async def test_a_wake_server_gone_mid_stream_fails_the_service_naming_the_url() -> None:
    async def gone(peer: Peer, events: list[tuple[str, dict[str, Any], bytes]]) -> None:
        for _ in range(3):
            event = await peer.read()
            if event is not None:
                events.append(event)

    broker = InProcessBroker()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url, _ = await serve(nursery, gone)
            wake = WakeService(
                Bus(InProcessTransport(broker), source="wake"),
                WakeConfig(url=url),
                source=pcm_source(SILENCE * 5, chunk_seconds=0.1),
            )
            with pytest.raises(ServiceFailed) as caught:
                await wake.run()
            nursery.cancel_scope.cancel()
    last = caught.value.cause.__cause__  # the task's last error (through listen's nursery)
    assert last is not None
    error = find_error(last, WyomingError)
    assert error is not None and error.url == url
    assert "closed the connection" in error.problem or "broke" in error.problem
    health = json.loads(broker.retained["system/health/wake"].payload)["data"]
    assert health["ok"] is False and url in health["err"]
