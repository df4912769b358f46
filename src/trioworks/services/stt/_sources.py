"""Audio sources for the stt service: async iterators of 16 kHz mono s16le PCM chunks.

Any ``AsyncIterable[bytes]`` of that format is a source; these are the ones provided. A source
that owns a process (the microphone) is an async generator: the service closes it with
``aclose()`` when it stops, which kills the process.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import trio

from ...core import child_process
from .._audio import STT_RATE, find_program, read_wav_16k

__all__ = ["AudioSource", "mic_source", "pcm_source", "stream_source", "wav_source"]

AudioSource = AsyncIterable[bytes]
"""Chunks of 16 kHz mono s16le PCM (any chunk size; an even number of bytes)."""


def _chunk_bytes(chunk_seconds: float) -> int:
    return max(2, int(STT_RATE * chunk_seconds) * 2)


async def pcm_source(
    pcm: bytes, *, chunk_seconds: float = 0.1, realtime: bool = False
) -> AsyncIterator[bytes]:
    """``pcm`` in chunks of ``chunk_seconds``; with ``realtime``, paced like a microphone.

    Every chunk is a checkpoint (pacing sleeps on the Trio clock, so virtual time works too).
    """
    size = _chunk_bytes(chunk_seconds)
    start = trio.current_time()
    for i, offset in enumerate(range(0, len(pcm), size)):
        if realtime:
            await trio.sleep_until(start + i * chunk_seconds)
        else:
            await trio.lowlevel.checkpoint()
        yield pcm[offset : offset + size]


async def wav_source(
    path: Path | str,
    *,
    limiter: trio.CapacityLimiter,
    chunk_seconds: float = 0.1,
    realtime: bool = False,
) -> AsyncIterator[bytes]:
    """A WAV file as a source. Files not at 16 kHz mono 16-bit are converted with sox first.

    The file is read in a thread on ``limiter``; raises :exc:`~trioworks.services._audio.AudioError`
    naming the file (missing, not a WAV, sox failed) or ``ProgramMissing`` without sox.
    """
    pcm = await read_wav_16k(Path(path), limiter=limiter)
    async for chunk in pcm_source(pcm, chunk_seconds=chunk_seconds, realtime=realtime):
        yield chunk


async def stream_source(
    stream: trio.abc.ReceiveStream, *, chunk_seconds: float = 0.1
) -> AsyncIterator[bytes]:
    """Raw PCM from a Trio stream (a pipe, a socket) until it ends, in chunks of at most ``chunk_seconds``."""
    size = _chunk_bytes(chunk_seconds)
    carry = b""
    while data := await stream.receive_some(size):
        data = carry + data
        # Keep whole samples only: a read may split one.
        cut = len(data) - len(data) % 2
        carry = data[cut:]
        if cut:
            yield data[:cut]


async def mic_source(*, device: str | None = None, chunk_seconds: float = 0.1) -> AsyncIterator[bytes]:
    """The microphone through ALSA's ``arecord`` (16 kHz mono s16le), until closed.

    Raises ``ProgramMissing`` without arecord. Closing the generator (the service does) kills
    arecord and waits for it, shielded, for at most a second.
    """
    cmd = [find_program("arecord"), "-q", "-t", "raw", "-f", "S16_LE", "-r", str(STT_RATE), "-c", "1"]
    if device is not None:
        cmd += ["-D", device]
    async with child_process(cmd, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        async for chunk in stream_source(proc.stdout, chunk_seconds=chunk_seconds):
            yield chunk
