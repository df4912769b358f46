"""Where speech goes: an audio player process, or WAV files when there is no audio device.

A :class:`Sink` opens one :class:`Output` per utterance. Outputs are written from the
speaker task only; ``close`` is called shielded by the caller.
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import wave
from pathlib import Path
from typing import BinaryIO, Protocol

import trio

from ...core import run_in_thread, start_process, stop_process
from .._audio import ProgramMissing, find_program

__all__ = ["CommandSink", "Output", "Sink", "WavSink", "detect_player"]

logger = logging.getLogger("trioworks.services.tts")


class Output(Protocol):
    """One utterance's audio on its way out."""

    path: Path | None
    """The WAV file written, or None for a device."""

    async def write(self, pcm: bytes) -> None: ...

    async def close(self, *, stopped: bool) -> None:
        """Finish the output; ``stopped``: the utterance was cut short (drop buffered audio)."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...


class Sink(Protocol):
    async def open(self, utt_id: str, rate: int) -> Output: ...


# --- WAV files --------------------------------------------------------------------------------


def _safe_name(utt_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", utt_id)[:120].lstrip(".") or "utterance"


class _WavOutput:
    def __init__(
        self, writer: wave.Wave_write, handle: BinaryIO, path: Path, limiter: trio.CapacityLimiter
    ) -> None:
        self._writer = writer
        self._handle = handle
        self.path: Path | None = path
        self._limiter = limiter

    async def write(self, pcm: bytes) -> None:
        await run_in_thread(self._writer.writeframesraw, pcm, limiter=self._limiter)

    async def close(self, *, stopped: bool) -> None:
        # wave patches the RIFF sizes on close: a stopped utterance is still a valid WAV file.
        await run_in_thread(self._close, limiter=self._limiter)

    def _close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._handle.close()  # wave leaves a file object it did not open to its owner

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass


class WavSink:
    """Each utterance to ``<out_dir>/<utt_id>.wav`` (``<utt_id>-2.wav``... when that exists).

    File work runs in threads on ``limiter``. The path of each utterance is logged (logger
    ``trioworks.services.tts``, INFO) and kept in :attr:`TtsService.outputs`.
    """

    def __init__(self, out_dir: Path, *, limiter: trio.CapacityLimiter) -> None:
        self.out_dir = Path(out_dir)
        self.limiter = limiter

    def _create(self, utt_id: str, rate: int) -> tuple[wave.Wave_write, BinaryIO, Path]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        base = _safe_name(utt_id)
        for n in range(1, 10_000):
            path = self.out_dir / (f"{base}.wav" if n == 1 else f"{base}-{n}.wav")
            try:
                handle = path.open("xb")  # exclusive: never overwrite an earlier utterance
            except FileExistsError:
                continue
            writer = wave.open(handle, "wb")
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(rate)
            return writer, handle, path
        raise FileExistsError(f"{self.out_dir}: no free file name for utterance {utt_id!r}")

    async def open(self, utt_id: str, rate: int) -> Output:
        writer, handle, path = await run_in_thread(self._create, utt_id, rate, limiter=self.limiter)
        logger.info("tts: utterance %s -> %s", utt_id, path)
        return _WavOutput(writer, handle, path, self.limiter)


# --- a player process -----------------------------------------------------------------------


class _ProcessOutput:
    path: Path | None = None

    def __init__(self, proc: trio.Process) -> None:
        self._proc = proc

    async def write(self, pcm: bytes) -> None:
        assert self._proc.stdin is not None
        await self._proc.stdin.send_all(pcm)

    async def close(self, *, stopped: bool) -> None:
        # Normal end: close stdin and let the player finish the buffered audio. Stopped: kill
        # it at once, so the speech ends now rather than after the pipe drains.
        assert self._proc.stdin is not None
        try:
            if not stopped:
                await self._proc.stdin.aclose()
                await self._proc.wait()
        finally:
            await stop_process(self._proc)

    def pause(self) -> None:
        if self._proc.returncode is None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc.returncode is None:
            self._proc.send_signal(signal.SIGCONT)


class CommandSink:
    """Each utterance piped (raw s16le mono) into a new ``command`` process; ``{rate}`` is filled in."""

    def __init__(self, command: tuple[str, ...]) -> None:
        self.command = command

    async def open(self, utt_id: str, rate: int) -> Output:
        program = find_program(self.command[0]) if "/" not in self.command[0] else self.command[0]
        args = [program, *(part.replace("{rate}", str(rate)) for part in self.command[1:])]
        return _ProcessOutput(await start_process(args, stdin=subprocess.PIPE))


APLAY = ("aplay", "-q", "-t", "raw", "-f", "S16_LE", "-c", "1", "-r", "{rate}")
PAPLAY = ("paplay", "--raw", "--format=s16le", "--channels=1", "--rate={rate}")


async def detect_player() -> tuple[str, ...] | None:
    """A player command for a working audio device, or None: aplay with a card, else paplay
    with a PulseAudio server. Each probe is a short process (bounded to 3 s)."""
    for command, probe in ((APLAY, ["-l"]), (PAPLAY, None)):
        try:
            program = find_program(command[0])
        except ProgramMissing:
            continue
        if probe is None:
            try:
                probe_cmd = [find_program("pactl"), "info"]
            except ProgramMissing:
                continue
        else:
            probe_cmd = [program, *probe]
        with trio.move_on_after(3):
            result = await trio.run_process(probe_cmd, capture_stdout=True, capture_stderr=True, check=False)
            if result.returncode == 0 and (probe is None or b"card" in result.stdout):
                return command
    return None
