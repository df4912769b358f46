"""Helpers of the stt tests (own module name: helper modules collide across test dirs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import trio

from trioworks.bus import Message

# Every word here is in pocketsphinx's en-us dictionary; the klatt voice is what the decoder
# hears best (see notes/voice-research.md).
PHRASES = (
    "what is the weather in paris today",
    "set a timer for ten minutes",
    "turn off the lights in the kitchen",
    "play some music",
)
VOICE = "en-us+klatt"


def speak_wav(espeak: str, sox: str, path: Path, texts: list[str], *, rate: int | None = None) -> Path:
    """A WAV of ``texts`` spoken by espeak-ng, 0.5 s of silence before and 1 s after each.

    ``rate`` None keeps espeak's 22,050 Hz (so the service must resample); else sox converts.
    """
    parts = []
    for i, text in enumerate(texts):
        raw = path.with_suffix(f".{i}.raw.wav")
        subprocess.run([espeak, "-v", VOICE, "-s", "150", "-w", str(raw), text], check=True, timeout=30)
        padded = path.with_suffix(f".{i}.wav")
        subprocess.run([sox, "-D", str(raw), str(padded), "pad", "0.5", "1.0"], check=True, timeout=30)
        parts.append(str(padded))
    out = [sox, "-D", *parts, str(path)]  # -D: no dither, so the audio is the same every run
    if rate is not None:
        out += ["rate", str(rate)]
    subprocess.run(out, check=True, timeout=30)
    return path


class Collector:
    """A handler that records messages and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = trio.Event()

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, count: int) -> list[Message]:
        while len(self.messages) < count:
            await self._changed.wait()
        return self.messages

    @property
    def data(self) -> list[object]:
        return [m.data for m in self.messages]
