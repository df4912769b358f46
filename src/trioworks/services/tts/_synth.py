"""espeak-ng synthesis streamed from its stdout, killed when its caller is cancelled."""

from __future__ import annotations

import contextlib
import logging
import struct
import subprocess
from collections.abc import AsyncIterator
from typing import Protocol

import attrs
import trio

from ...core import Metrics, read_exactly, start_process, stop_process
from .._audio import AudioError, find_program

__all__ = ["Synthesis", "SynthesisError", "Synthesizer", "espeak_voices", "has_voice", "synthesize"]

logger = logging.getLogger("trioworks.services.tts")

_HEADER = 44  # espeak-ng's RIFF header; its size fields are placeholders when streaming


class SynthesisError(AudioError):
    """espeak-ng failed for one chunk of text (bad voice, crash); carries its stderr."""


@attrs.frozen
class Synthesis:
    """A running synthesis: its sample rate and its PCM stream (s16le mono)."""

    rate: int
    pcm: trio.abc.ReceiveStream
    process: trio.Process | None = None


class Synthesizer(Protocol):
    """What :class:`TtsService` calls to speak one chunk; :func:`synthesize` is the real one.

    Leaving the context early (cancelled) must stop the synthesis.
    """

    def __call__(
        self, text: str, *, voice: str, rate_wpm: int, pitch: int, metrics: Metrics
    ) -> contextlib.AbstractAsyncContextManager[Synthesis]: ...


@contextlib.asynccontextmanager
async def synthesize(
    text: str, *, voice: str, rate_wpm: int, pitch: int, metrics: Metrics
) -> AsyncIterator[Synthesis]:
    """Start ``espeak-ng --stdout`` for ``text``; yield once its WAV header has been read.

    The first PCM arrives after ~20 ms whatever the text's length. Leaving the block before
    espeak-ng ended (cancelled: ``tts/control stop``) kills it, waits for it (shielded, at most
    a second) and counts ``tts.synth.killed``. Raises :exc:`SynthesisError` with espeak-ng's
    message when it produces no audio, ``ProgramMissing`` without espeak-ng.
    """
    cmd = [find_program("espeak-ng"), "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "--stdout"]
    # "--": text starting with "-" is speech, not an option.
    proc = await start_process([*cmd, "--", text], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        header = await read_exactly(proc.stdout, _HEADER)
        if len(header) < _HEADER or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            with trio.move_on_after(5):
                await proc.wait()
            err = (await read_exactly(proc.stderr, 4096)).decode(errors="replace").strip()
            raise SynthesisError(f"espeak-ng (voice {voice!r}) produced no audio: {err or 'no message'}")
        (rate,) = struct.unpack("<I", header[24:28])
        yield Synthesis(rate, proc.stdout, proc)
        # The caller drained stdout: espeak-ng is exiting on its own; do not count it as killed.
        with trio.move_on_after(5):
            await proc.wait()
    finally:
        if await stop_process(proc):
            metrics.counter("tts.synth.killed").inc()
            logger.info("killed espeak-ng (pid %d) mid-synthesis", proc.pid)


async def espeak_voices() -> frozenset[str] | None:
    """Every name espeak-ng takes for ``-v`` (languages, voice names, voice files; lower case),
    from ``espeak-ng --voices``; None when it cannot be listed (then no voice is refused)."""
    try:
        done = await trio.run_process(
            [find_program("espeak-ng"), "--voices"], capture_stdout=True, capture_stderr=True, check=False
        )
    except OSError:
        return None
    names: set[str] = set()
    for line in done.stdout.decode(errors="replace").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:  # Pty Language Age/Gender VoiceName File [Other languages]
            language, name, file = fields[1], fields[3], fields[4]
            names.update({language.lower(), name.lower(), file.lower(), file.rsplit("/", 1)[-1].lower()})
    return frozenset(names) or None


def has_voice(voices: frozenset[str], voice: str) -> bool:
    """Whether espeak-ng has ``voice`` (a variant suffix ``+f3`` aside)."""
    return voice.split("+", 1)[0].strip().lower() in voices
