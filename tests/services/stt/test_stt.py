"""The stt service end to end on an in-process bus, with real espeak-ng audio and pocketsphinx.

Audio is real, so these tests run in real time; ``fail_after`` bounds only guard against a hang.
That the loop stays free while decoding is shown by where the decoder runs (``_offloaded``).
"""

from __future__ import annotations

import json
from pathlib import Path

import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from stt_helpers import PHRASES, Collector, speak_wav

from _offloaded import CallSites
from trioworks.bus import Bus, FinalTranscript, InProcessBroker, InProcessTransport, MicCommand, TtsStatus
from trioworks.services._audio import AudioError, ProgramMissing
from trioworks.services.stt import (
    ProcessRecognizer,
    Recognizer,
    RecognizerDied,
    SttConfig,
    SttConfigError,
    SttService,
    pcm_source,
    stream_source,
    wav_source,
)

GRAMMAR = SttConfig(phrases=PHRASES)


@pytest.fixture
def broker() -> InProcessBroker:
    return InProcessBroker()


async def _listen(broker: InProcessBroker, nursery: trio.Nursery) -> tuple[Bus, Collector]:
    client = Bus(InProcessTransport(broker), source="client")
    await nursery.start(client.run)
    got = Collector()
    await client.subscribe("stt/+", got)
    return client, got


async def test_wav_at_22khz_gives_partials_then_exact_finals(
    broker: InProcessBroker, espeak_ng: str, sox: str, tmp_path: Path
) -> None:
    wav = speak_wav(espeak_ng, sox, tmp_path / "two.wav", [PHRASES[0], PHRASES[1]])  # 22,050 Hz
    files = trio.CapacityLimiter(1)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            _, got = await _listen(broker, nursery)
            stt = SttService(
                Bus(InProcessTransport(broker), source="stt"),
                GRAMMAR,
                source=wav_source(wav, limiter=files),
            )
            await nursery.start(stt.run)
            health = json.loads(broker.retained["system/health/stt"].payload)["data"]
            assert health["ok"] is True
            await stt.finished.wait()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()

    finals = [m.data for m in got.messages if m.topic == "stt/final"]
    assert [f.text for f in finals] == [PHRASES[0], PHRASES[1]]
    assert all(f.is_final and f.lang == "en" and 0 < f.confidence <= 1 for f in finals)
    assert len({f.utt_id for f in finals}) == 2
    for final in finals:
        utterance = [m for m in got.messages if m.data.utt_id == final.utt_id]
        topics = [m.topic for m in utterance]
        # ~2.5 s of speech: partials every 0.6 s of it, all before the final.
        assert topics.count("stt/partial") >= 2
        assert topics[-1] == "stt/final" and topics.count("stt/final") == 1
        partials = [m.data for m in utterance[:-1]]
        assert all(not p.is_final and final.text.startswith(p.text) for p in partials)
    assert stt.bus.metrics.snapshot()["stt.finals"] == 2


@pytest.mark.parametrize(
    ("config", "texts", "where"),
    [
        # Phrases: decoded in a worker thread (each pocketsphinx call takes a few ms).
        (GRAMMAR, list(PHRASES), "thread"),
        # The general language model: in a decoder process (its calls hold the GIL for up to
        # ~400 ms, so in a thread the loop stalled 240-430 ms). These two it gets exactly right.
        (SttConfig(), [PHRASES[1], PHRASES[2]], "process"),
    ],
    ids=["phrases-thread", "general-lm-process"],
)
async def test_decoding_never_runs_on_the_loop(
    broker: InProcessBroker,
    espeak_ng: str,
    sox: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    config: SttConfig,
    texts: list[str],
    where: str,
) -> None:
    """Where the decoder ran, not how long a ticker waited: the loop-lag figures are measured
    by ``benchmarks/voice.py --only lag`` (docs/performance.md), not asserted here."""
    wav = speak_wav(espeak_ng, sox, tmp_path / "many.wav", texts, rate=16000)
    sites = CallSites()
    sites.patch(monkeypatch, Recognizer, "__init__", "feed", "flush", "reset")
    stt = SttService(
        Bus(InProcessTransport(broker), source="stt"),
        config,
        source=wav_source(wav, limiter=trio.CapacityLimiter(1)),  # as fast as it decodes
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            _, got = await _listen(broker, nursery)
            await nursery.start(stt.run)
            await stt.finished.wait()
            nursery.cancel_scope.cancel()
    assert [m.data.text for m in got.messages if m.topic == "stt/final"] == texts
    if where == "thread":
        # Every decoder call (loading it included) in a worker thread, none on the loop.
        assert {"Recognizer.__init__", "Recognizer.feed"} <= sites.labels()
        assert sites.on_loop() == []
    else:
        # The transcripts came from the decoder process: no decoder call in this one at all.
        assert sites.calls == []


async def test_process_backend_reports_config_errors_and_death() -> None:
    limiter = trio.CapacityLimiter(1)
    with pytest.raises(SttConfigError, match=r"phrases\[0\].*zzqxv"):
        await ProcessRecognizer.open(SttConfig(phrases=("play zzqxv",)), limiter)
    recognizer = await ProcessRecognizer.open(SttConfig(phrases=PHRASES), limiter)
    assert await recognizer.feed(b"\0\0" * 1600) == []
    recognizer._proc.kill()
    with pytest.raises(RecognizerDied, match="the decoder process ended"):
        await recognizer.feed(b"\0\0" * 1600)
    await recognizer.aclose()


async def test_muted_microphone_is_not_transcribed_until_unmuted(
    broker: InProcessBroker, espeak_ng: str, sox: str, tmp_path: Path
) -> None:
    wav = speak_wav(espeak_ng, sox, tmp_path / "one.wav", [PHRASES[2]], rate=16000)
    files = trio.CapacityLimiter(1)
    stt = SttService(Bus(InProcessTransport(broker), source="stt"), GRAMMAR)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            client, got = await _listen(broker, nursery)
            await nursery.start(stt.run)
            await client.publish("wake/mic", MicCommand(action="mute", reason="tts speaking"))
            await trio.testing.wait_all_tasks_blocked()
            assert stt.muted
            await stt.transcribe(wav_source(wav, limiter=files))
            assert got.messages == []
            assert stt.bus.metrics.snapshot()["stt.chunks.muted"] > 10

            await client.publish("wake/mic", MicCommand(action="unmute"))
            await trio.testing.wait_all_tasks_blocked()
            await stt.transcribe(wav_source(wav, limiter=files))
            nursery.cancel_scope.cancel()
    assert [m.data.text for m in got.messages if m.topic == "stt/final"] == [PHRASES[2]]


async def test_mute_with_ttl_expires(broker: InProcessBroker, autojump_clock: trio.testing.MockClock) -> None:
    stt = SttService(Bus(InProcessTransport(broker), source="stt"), GRAMMAR)
    async with trio.open_nursery() as nursery:
        client, _ = await _listen(broker, nursery)
        await nursery.start(stt.run)
        await client.publish("wake/mic", MicCommand(action="mute", ttl_ms=1500))
        await trio.testing.wait_all_tasks_blocked()
        assert stt.muted
        await trio.sleep(1.0)
        assert stt.muted
        await trio.sleep(1.0)
        assert not stt.muted
        nursery.cancel_scope.cancel()


async def test_echo_suppression_mutes_while_the_assistant_speaks(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    stt = SttService(
        Bus(InProcessTransport(broker), source="stt"), SttConfig(phrases=PHRASES, mute_while_speaking=True)
    )
    async with trio.open_nursery() as nursery:
        client, _ = await _listen(broker, nursery)
        await nursery.start(stt.run)
        seen = []
        for event, utt_id in [
            ("speaking_start", "a"),
            ("speaking_start", "b"),  # queued speech may overlap in status order
            ("speaking_end", "a"),
            ("stopped", "b"),
        ]:
            await client.publish("tts/status", TtsStatus(event=event, utt_id=utt_id))
            await trio.testing.wait_all_tasks_blocked()
            seen.append(stt.muted)
        nursery.cancel_scope.cancel()
    assert seen == [True, True, True, False]


@settings(max_examples=50, deadline=None)
@given(
    pcm=st.binary(min_size=0, max_size=4000).map(lambda b: b[: len(b) - len(b) % 2]),
    splits=st.lists(st.integers(1, 700), min_size=1, max_size=20),
)
def test_a_stream_source_splits_no_sample(pcm: bytes, splits: list[int]) -> None:
    """Whatever sizes the reads come in, chunks hold whole samples and nothing is lost."""

    async def main() -> list[bytes]:
        send, receive = trio.testing.memory_stream_pair()

        async def writer() -> None:
            offset, i = 0, 0
            while offset < len(pcm):
                size = splits[i % len(splits)]
                await send.send_all(pcm[offset : offset + size])
                offset, i = offset + size, i + 1
            await send.aclose()

        chunks: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            async for chunk in stream_source(receive, chunk_seconds=0.01):
                chunks.append(chunk)
        return chunks

    chunks = trio.run(main)
    assert all(len(c) % 2 == 0 and c for c in chunks)
    assert b"".join(chunks) == pcm


async def test_pcm_source_paces_like_a_microphone(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    chunks = [c async for c in pcm_source(b"\0\0" * 16000 * 2, chunk_seconds=0.1, realtime=True)]
    assert len(chunks) == 20
    assert trio.current_time() - start == pytest.approx(1.9)


# --- bad input ----------------------------------------------------------------------------------


def test_a_word_outside_the_dictionary_is_named() -> None:
    with pytest.raises(SttConfigError, match=r"phrases\[1\].*zzqxv"):
        Recognizer(SttConfig(phrases=("play some music", "play zzqxv")))


def test_config_rejects_two_search_modes_and_bad_values() -> None:
    with pytest.raises(SttConfigError, match="only one of phrases, jsgf_path, keyphrases"):
        SttConfig(phrases=("stop",), keyphrases=(("hey", 1e-20),))
    with pytest.raises(SttConfigError, match="partial_interval: must be > 0"):
        SttConfig(partial_interval=0)
    with pytest.raises(SttConfigError, match=r"keyphrases\[0\]: expected \(phrase, threshold\)"):
        SttConfig(keyphrases=("hey tars",))  # type: ignore[arg-type]
    with pytest.raises(SttConfigError, match=r"jsgf_path: /nonexistent.gram: no such file"):
        Recognizer(SttConfig(jsgf_path=Path("/nonexistent.gram")))


async def test_missing_wav_file_is_named(tmp_path: Path) -> None:
    source = wav_source(tmp_path / "nope.wav", limiter=trio.CapacityLimiter(1))
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        async for _ in source:
            pass


async def test_missing_sox_is_a_clear_error(
    espeak_ng: str, sox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wav = speak_wav(espeak_ng, sox, tmp_path / "x.wav", ["stop"])  # 22,050 Hz: needs sox
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProgramMissing, match=r"sox is not installed \(Debian package 'sox'"):
        async for _ in wav_source(wav, limiter=trio.CapacityLimiter(1)):
            pass


async def test_keyphrase_spotting_finds_the_phrase(espeak_ng: str, sox: str, tmp_path: Path) -> None:
    wav = speak_wav(espeak_ng, sox, tmp_path / "kw.wav", ["please play some music now"], rate=16000)
    found: list[FinalTranscript] = []
    stt = SttService(
        Bus(InProcessTransport(InProcessBroker()), source="stt"),
        # Spotting thresholds need tuning per phrase and voice: 1e-20 misses this one, 1e-30 finds
        # it (the audio is identical on every run: sox without dither).
        SttConfig(keyphrases=(("play some music", 1e-30),)),
    )

    async def keep(result) -> None:  # type: ignore[no-untyped-def]
        found.append(result)

    stt._publish = keep  # type: ignore[method-assign]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(stt.run)
            await stt.transcribe(wav_source(wav, limiter=trio.CapacityLimiter(1)))
            nursery.cancel_scope.cancel()
    assert any("play some music" in r.text for r in found if r.kind == "final"), found
