"""End of speech -> first TTS audio through the whole offline voice stack.

A spoken question (espeak-ng, ``en-us+klatt``, resampled to 16 kHz by sox, silence trimmed) is
played into the stt service by :class:`Microphone`, a source paced like a real microphone: it
streams silence between questions and hands over each 0.1 s chunk when its last sample has been
"recorded". The stack is the real one on an in-process bus: stt (pocketsphinx) -> router (RAG on)
-> llm (offline backend) -> memory (all-MiniLM-L6-v2) -> router -> tts (espeak-ng, WAV output).

The clock starts at the instant the last speech sample of the question would have left the
speaker's mouth, and stops when the tts writes the first PCM of the reply to its output
(:class:`TimedSink`). In between, the client bus timestamps ``stt/final``, ``llm/request``, the
first ``llm/stream`` delta, the first ``tts/say`` and ``speaking_start``. The stt endpointer's
wait for silence (``vad_window``) is part of the time, as it is for a user.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import trio

from _voice_common import FACTS, QUESTIONS, begin_phase, bus, in_process, lag_fields, running_memory
from trioworks.bus import Message
from trioworks.services._audio import STT_RATE, ProgramMissing, find_program, resample_to_16k
from trioworks.services.llm import LLMConfig, LLMService
from trioworks.services.router import RouterConfig, RouterService
from trioworks.services.stt import SttConfig, SttService
from trioworks.services.tts import Output, Sink, TtsConfig, TtsService, WavSink

VOICE = "en-us+klatt"  # the voice pocketsphinx hears best (docs/speech.md)
_STAGES = ("stt_final", "llm_request", "first_delta", "first_say", "speaking_start", "first_audio")


async def speak_question(text: str, workdir: Path) -> bytes:
    """``text`` spoken by espeak-ng as 16 kHz mono s16le, leading and trailing silence cut."""
    wav = workdir / f"{'_'.join(text.split())}.wav"
    await trio.run_process([find_program("espeak-ng"), "-v", VOICE, "-s", "150", "-w", str(wav), text])
    samples = np.frombuffer(await resample_to_16k(wav), dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)  # ~1 % of full scale
    return samples[loud[0] : loud[-1] + 1].tobytes()


@attrs.define
class Trial:
    question: str
    end_of_speech: float | None = None
    marks: dict[str, float] = attrs.field(factory=dict)
    transcript: str | None = None
    turn_id: str | None = None
    done: trio.Event = attrs.field(factory=trio.Event)

    def mark(self, stage: str) -> None:
        self.marks.setdefault(stage, trio.current_time())


class Microphone:
    """A paced audio source: silence, and each queued utterance once; ``chunk_seconds`` per read."""

    def __init__(self, chunk_seconds: float = 0.1) -> None:
        self.chunk = int(STT_RATE * chunk_seconds)
        self._queue: deque[tuple[bytes, Trial]] = deque()

    def say(self, pcm: bytes, trial: Trial) -> None:
        self._queue.append((pcm, trial))

    async def stream(self) -> AsyncIterator[bytes]:
        start = trio.current_time()
        sent = 0  # samples delivered so far
        pending = b""
        speaking: tuple[int, Trial] | None = None  # (sample index where speech ends, trial)
        while True:
            if not pending and self._queue:
                pending, trial = self._queue.popleft()
                speaking = (sent + len(pending) // 2, trial)
            chunk, pending = pending[: 2 * self.chunk], pending[2 * self.chunk :]
            chunk += bytes(2 * self.chunk - len(chunk))  # silence after (or instead of) speech
            await trio.sleep_until(start + (sent + self.chunk) / STT_RATE)
            yield chunk
            sent += self.chunk
            if speaking is not None and sent >= speaking[0]:
                speaking[1].end_of_speech = start + speaking[0] / STT_RATE
                speaking = None


class _TimedOutput:
    def __init__(self, inner: Output, on_first_write: Any) -> None:
        self.inner = inner
        self.path = inner.path
        self._on_first_write = on_first_write

    async def write(self, pcm: bytes) -> None:
        if self._on_first_write is not None:
            self._on_first_write()
            self._on_first_write = None
        await self.inner.write(pcm)

    async def close(self, *, stopped: bool) -> None:
        await self.inner.close(stopped=stopped)

    def pause(self) -> None:
        self.inner.pause()

    def resume(self) -> None:
        self.inner.resume()


class TimedSink:
    """A sink that calls ``on_first_write(utt_id)`` when an utterance's first PCM is written."""

    def __init__(self, inner: Sink, on_first_write: Any) -> None:
        self.inner = inner
        self.on_first_write = on_first_write

    async def open(self, utt_id: str, rate: int) -> Output:
        output = await self.inner.open(utt_id, rate)
        return _TimedOutput(output, lambda: self.on_first_write(utt_id))


class _Recorder:
    def __init__(self) -> None:
        self.trial: Trial | None = None

    def first_audio(self, utt_id: str) -> None:
        if self.trial is not None and utt_id == self.trial.turn_id:
            self.trial.mark("first_audio")

    async def on_message(self, message: Message) -> None:
        trial, data, topic = self.trial, message.data, message.topic
        if trial is None:
            return
        if topic == "stt/final":
            trial.transcript = data.text
            trial.mark("stt_final")
        elif topic == "llm/request":
            trial.turn_id = data.id
            trial.mark("llm_request")
        elif topic == "llm/stream" and data.id == trial.turn_id:
            trial.mark("first_delta")
        elif topic == "tts/say" and data.utt_id == trial.turn_id:
            trial.mark("first_say")
        elif topic == "tts/status" and data.utt_id == trial.turn_id:
            if data.event == "speaking_start":
                trial.mark("speaking_start")
            elif data.event in ("speaking_end", "stopped"):
                trial.done.set()


async def bench_turns(
    embedder: Any,
    *,
    stt: SttConfig,
    word_delay: float,
    trials: int,
    lag: Any,
    workdir: Path,
    router: RouterConfig = RouterConfig(use_rag=True, rag_k=3),
) -> dict[str, Any]:
    """``trials`` spoken questions through one stack; times in ms from the end of speech."""
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(trials)]
    speech = {q: await speak_question(q, workdir) for q in set(questions)}
    make = in_process()
    recorder = _Recorder()
    mic = Microphone()
    done: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="voice-turn-") as out_dir:
        sink = TimedSink(WavSink(Path(out_dir), limiter=trio.CapacityLimiter(1)), recorder.first_audio)
        async with running_memory(make, embedder, list(FACTS)) as _, trio.open_nursery() as nursery:
            client = bus(make, "bench-client")
            await nursery.start(client.run)
            for topic in ("stt/final", "llm/request", "llm/stream", "tts/say", "tts/status"):
                await client.subscribe(topic, recorder.on_message, capacity=1024)
            for service in (
                TtsService(
                    bus(make, "tts"), TtsConfig(player="wav", voice="en-us", realtime=False), sink=sink
                ),
                LLMService(bus(make, "llm"), LLMConfig(word_delay=word_delay)),
                RouterService(bus(make, "router"), router),
                SttService(bus(make, "stt"), stt, source=mic.stream()),
            ):
                await nursery.start(service.run)
            await begin_phase(lag, freeze=True)
            await trio.sleep(0.5)  # the microphone's silence is flowing
            await begin_phase(lag)
            for question in questions:
                trial = Trial(question)
                recorder.trial = trial
                mic.say(speech[question], trial)
                with trio.move_on_after(30):
                    await trial.done.wait()
                done.append(trial)
                recorder.trial = None
                await trio.sleep(0.3)
            worst_lag = lag_fields(lag)
            nursery.cancel_scope.cancel()
        gc.unfreeze()
    return _summarise(done, worst_lag)


def _summarise(trials: list[Trial], worst_lag: dict[str, float]) -> dict[str, Any]:
    complete = [t for t in trials if t.end_of_speech is not None and "first_audio" in t.marks]
    stages: dict[str, float] = {}
    for stage in _STAGES:
        values = [1000 * (t.marks[stage] - t.end_of_speech) for t in complete if stage in t.marks]  # type: ignore[operator]
        if values:
            stages[stage] = statistics.median(values)
    firsts = [1000 * (t.marks["first_audio"] - t.end_of_speech) for t in complete]  # type: ignore[operator]
    return {
        "trials": len(trials),
        "answered": len(complete),
        "heard_right": sum(t.transcript == t.question for t in trials),
        "p50_ms": statistics.median(firsts) if firsts else float("nan"),
        "max_ms": max(firsts) if firsts else float("nan"),
        "median_stage_ms": stages,
        **worst_lag,
    }


def programs_missing() -> str | None:
    """Why the voice turn cannot run here (a missing OS program), or None."""
    try:
        for program in ("espeak-ng", "sox"):
            find_program(program)
    except ProgramMissing as exc:
        return str(exc)
    return None
