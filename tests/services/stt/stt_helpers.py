"""Helpers of the stt tests (own module name: helper modules collide across test dirs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from _collector import Collector

__all__ = ["PHRASES", "VOICE", "Collector", "speak_wav"]

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
