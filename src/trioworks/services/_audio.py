"""Audio plumbing shared by the speech services: programs, WAV files, sox resampling.

Everything that blocks (file reads and writes) runs through :func:`trioworks.core.run_in_thread`
on the caller's limiter; external programs run with :func:`trio.run_process`. Audio inside the
services is always raw little-endian signed 16-bit mono PCM (``s16le``).
"""

from __future__ import annotations

import os
import shutil
import wave
from pathlib import Path

import attrs
import trio

from ..core import run_in_thread

__all__ = [
    "STT_RATE",
    "AudioError",
    "AudioFormat",
    "ProgramMissing",
    "find_program",
    "pcm_seconds",
    "read_wav",
    "read_wav_16k",
    "resample_to_16k",
]

STT_RATE = 16_000
"""The sample rate the recognizer works at (pocketsphinx's en-us model)."""

_EXTRA_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox", "aplay": "alsa-utils", "arecord": "alsa-utils"}


class AudioError(Exception):
    """Audio input or output that cannot be used; the message names the file or program."""


class ProgramMissing(AudioError):
    """An external program the speech services need is not installed."""

    def __init__(self, program: str) -> None:
        package = _PACKAGES.get(program, program)
        super().__init__(
            f"{program} is not installed (Debian package {package!r}; scripts/system-deps.sh installs it)"
        )
        self.program = program
        self.package = package


def find_program(name: str) -> str:
    """Absolute path of ``name`` on PATH (or in ``/usr/sbin``); :exc:`ProgramMissing` if absent.

    Not a checkpoint; a few ``stat`` calls, cheap enough for the loop.
    """
    found = shutil.which(name)
    if found is None:
        found = next((f"{d}/{name}" for d in _EXTRA_DIRS if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        raise ProgramMissing(name)
    return found


@attrs.frozen
class AudioFormat:
    """Sample rate (Hz), channels and bytes per sample of a WAV file."""

    rate: int
    channels: int
    width: int

    @property
    def is_stt_ready(self) -> bool:
        return (self.rate, self.channels, self.width) == (STT_RATE, 1, 2)


def pcm_seconds(n_bytes: int, rate: int) -> float:
    """Duration of ``n_bytes`` of mono s16le PCM at ``rate``."""
    return n_bytes / (2 * rate)


def _read_wav(path: Path) -> tuple[AudioFormat, bytes]:
    try:
        with wave.open(str(path), "rb") as wav:
            fmt = AudioFormat(wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
            return fmt, wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"{path}: not a PCM WAV file ({exc})") from None


async def read_wav(path: Path, *, limiter: trio.CapacityLimiter) -> tuple[AudioFormat, bytes]:
    """The format and the frames of a PCM WAV file, read in a thread on ``limiter``."""
    return await run_in_thread(_read_wav, Path(path), limiter=limiter)


async def resample_to_16k(path: Path) -> bytes:
    """Any audio file sox reads, as 16 kHz mono s16le PCM (sox's band-limited resampler).

    Runs ``sox`` with :func:`trio.run_process`; cancelling kills it. Raises
    :exc:`ProgramMissing` without sox and :exc:`AudioError` if sox rejects the file.
    """
    sox = find_program("sox")
    # -D: no dither, so the same file always gives the same samples (and the same transcript).
    cmd = [
        sox,
        "-q",
        "-D",
        str(path),
        "-t",
        "raw",
        "-r",
        str(STT_RATE),
        "-c",
        "1",
        "-b",
        "16",
        "-e",
        "signed",
        "-",
    ]
    result = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    if result.returncode != 0:
        raise AudioError(
            f"{path}: sox could not convert it: {result.stderr.decode(errors='replace').strip()}"
        )
    return result.stdout


async def read_wav_16k(path: Path, *, limiter: trio.CapacityLimiter) -> bytes:
    """16 kHz mono s16le PCM from a WAV file: read as is when already in that format, else via sox."""
    fmt, frames = await read_wav(path, limiter=limiter)
    if fmt.is_stt_ready:
        return frames
    return await resample_to_16k(path)
