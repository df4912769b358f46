"""The whole voice stack for the end-to-end tests: stt, memory, llm, router and tts on one bus.

(Own module name: helper modules collide across test directories. ``speak_wav`` is the stt
tests' recipe: the klatt voice, which pocketsphinx hears best, and phrases as a grammar.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import attrs
import trio

from _collector import Collector
from _embedders import WordEmbedder
from trioworks.bus import Bus, Message
from trioworks.services.llm import LLMConfig, LLMService
from trioworks.services.memory import MemoryConfig, MemoryService
from trioworks.services.router import RouterConfig, RouterService
from trioworks.services.stt import SttConfig, SttService, wav_source
from trioworks.services.tts import TtsConfig, TtsService

QUESTION = "what is the weather in paris today"
PHRASES = (QUESTION, "set a timer for ten minutes", "play some music")
VOICE = "en-us+klatt"
ANSWER = f"I am the offline backend, not a language model. You said: {QUESTION}"

MakeBus = Callable[[str], Bus]


def speak_wav(espeak: str, sox: str, path: Path, text: str) -> Path:
    """``text`` spoken by espeak-ng into a WAV with 0.5 s of silence before and 1 s after."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run([espeak, "-v", VOICE, "-s", "150", "-w", str(raw), text], check=True, timeout=30)
    subprocess.run([sox, "-D", str(raw), str(path), "pad", "0.5", "1.0"], check=True, timeout=30)
    return path


class Wire(Collector):
    """Everything on the bus, in arrival order, with waits on a predicate."""

    def on(self, topic: str) -> list[Message]:
        return [m for m in self.messages if m.topic == topic]

    def status(self, event: str) -> list[Message]:
        return [m for m in self.on("tts/status") if m.data.event == event]

    async def wait_until(self, ready: Callable[[], object]) -> None:
        while not ready():
            await self.wait_for(len(self.messages) + 1)


@attrs.define
class Stack:
    memory: MemoryService
    llm: LLMService
    router: RouterService
    tts: TtsService
    client: Bus
    wire: Wire

    @property
    def buses(self) -> list[Bus]:
        return [self.memory.bus, self.llm.bus, self.router.bus, self.tts.bus, self.client]


async def start_stack(
    nursery: trio.Nursery,
    make_bus: MakeBus,
    tmp_path: Path,
    *,
    tts: TtsService | None = None,
    router_config: RouterConfig | None = None,
) -> Stack:
    """memory, llm (offline), router and tts (real espeak-ng into WAV files unless ``tts``),
    plus a client bus recording everything; all serving when this returns."""
    client = make_bus("client")
    await nursery.start(client.run)
    wire = Wire()
    await client.subscribe("#", wire, capacity=10_000)
    stack = Stack(
        memory=MemoryService(
            make_bus("memory"), MemoryConfig(db_path=tmp_path / "memory.db"), embedder=WordEmbedder()
        ),
        llm=LLMService(make_bus("llm"), LLMConfig(word_delay=0.01)),
        router=RouterService(make_bus("router"), router_config),
        tts=tts
        or TtsService(
            make_bus("tts"), TtsConfig(player="wav", out_dir=tmp_path / "tts", voice=VOICE, realtime=False)
        ),
        client=client,
        wire=wire,
    )
    for service in (stack.memory, stack.llm, stack.tts, stack.router):
        await nursery.start(service.run)
    return stack


def stt_for(make_bus: MakeBus, wav: Path) -> SttService:
    return SttService(
        make_bus("stt"), SttConfig(phrases=PHRASES), source=wav_source(wav, limiter=trio.CapacityLimiter(1))
    )
