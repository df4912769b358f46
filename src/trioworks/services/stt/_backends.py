"""Where the recognizer runs: a worker thread, or a decoder process of its own.

Both have the same async face (:class:`AsyncRecognizer`), so the service does not care.

- :class:`ThreadRecognizer`: :func:`~trioworks.core.run_in_thread` on the service's one-slot
  decoder limiter. Right for grammars and keyphrases: each pocketsphinx call (one 30 ms frame)
  takes a few ms, so the GIL it holds never stalls the loop for long (measured: worst loop lag
  2–7 ms).
- :class:`ProcessRecognizer`: ``python -m trioworks.services.stt._worker`` over pipes. Right for
  the general language model, whose calls hold the GIL for up to ~400 ms (measured worst loop
  lag 240–430 ms in a thread, which breaks the 50 ms bar).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from typing import Any, Protocol

import trio

from ...core import read_exactly, run_in_thread, start_process, stop_process
from ._config import SttConfig, SttConfigError
from ._recognizer import Recognition, Recognizer, VoiceUnavailable
from ._worker import config_to_json
from ._wyoming import WyomingRecognizer

__all__ = ["AsyncRecognizer", "ProcessRecognizer", "RecognizerDied", "ThreadRecognizer", "open_recognizer"]


class RecognizerDied(RuntimeError):
    """The decoder process ended or broke the protocol (its stderr tail is in the message)."""


class AsyncRecognizer(Protocol):
    async def feed(self, pcm: bytes) -> list[Recognition]: ...

    async def flush(self) -> list[Recognition]: ...

    async def reset(self) -> None: ...

    async def aclose(self) -> None: ...


class ThreadRecognizer:
    """A :class:`Recognizer` driven through ``run_in_thread`` on ``limiter`` (one slot)."""

    def __init__(self, recognizer: Recognizer, limiter: trio.CapacityLimiter) -> None:
        self._recognizer = recognizer
        self._limiter = limiter

    @classmethod
    async def open(cls, config: SttConfig, limiter: trio.CapacityLimiter) -> ThreadRecognizer:
        return cls(await run_in_thread(Recognizer, config, limiter=limiter), limiter)

    async def feed(self, pcm: bytes) -> list[Recognition]:
        return await run_in_thread(self._recognizer.feed, pcm, limiter=self._limiter)

    async def flush(self) -> list[Recognition]:
        return await run_in_thread(self._recognizer.flush, limiter=self._limiter)

    async def reset(self) -> None:
        await run_in_thread(self._recognizer.reset, limiter=self._limiter)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class ProcessRecognizer:
    """A :class:`Recognizer` in a child process; one request at a time under ``limiter``.

    Cancelling a request midway leaves the pipe protocol mid-message, so the process is
    killed and later calls raise :exc:`RecognizerDied`. :meth:`aclose` kills it too.
    """

    def __init__(self, proc: trio.Process, limiter: trio.CapacityLimiter) -> None:
        self._proc = proc
        self._limiter = limiter
        self._broken = False

    @classmethod
    async def open(cls, config: SttConfig, limiter: trio.CapacityLimiter) -> ProcessRecognizer:
        cmd = [sys.executable, "-m", "trioworks.services.stt._worker", config_to_json(config)]
        proc = await start_process(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self = cls(proc, limiter)
        try:
            async with limiter:
                reply = await self._receive()
        except BaseException:
            await self.aclose()
            raise
        if "error" in reply:
            await self.aclose()
            if reply["field"] is None:
                raise VoiceUnavailable(reply["error"])
            raise SttConfigError(reply["field"], reply["error"])
        return self

    async def _receive_exactly(self, n: int) -> bytes:
        assert self._proc.stdout is not None
        data = await read_exactly(self._proc.stdout, n)
        if len(data) < n:
            raise RecognizerDied(f"the decoder process ended: {await self._stderr_tail()}")
        return data

    async def _stderr_tail(self) -> str:
        assert self._proc.stderr is not None
        with trio.move_on_after(1):
            await self._proc.wait()
        with trio.move_on_after(1):
            err = await self._proc.stderr.receive_some(65536)
            return err.decode(errors="replace").strip()[-500:] or f"exit code {self._proc.returncode}"
        return "no message"

    async def _receive(self) -> dict[str, Any]:
        (length,) = struct.unpack("<I", await self._receive_exactly(4))
        return json.loads(await self._receive_exactly(length))

    async def _request(self, op: bytes, pcm: bytes = b"") -> list[Recognition]:
        if self._broken:
            raise RecognizerDied("the decoder process was stopped mid-request earlier")
        assert self._proc.stdin is not None
        async with self._limiter:
            try:
                await self._proc.stdin.send_all(op + struct.pack("<I", len(pcm)) + pcm)
                reply = await self._receive()
            except trio.BrokenResourceError:
                self._broken = True
                raise RecognizerDied(f"the decoder process ended: {await self._stderr_tail()}") from None
            except BaseException:
                # Cancelled (or worse) mid-message: the pipe is out of step for good.
                self._broken = True
                await stop_process(self._proc, reap_timeout=2)
                raise
        if "error" in reply:
            raise RecognizerDied(f"the decoder process failed: {reply['error']}")
        return [Recognition(**r) for r in reply["results"]]

    async def feed(self, pcm: bytes) -> list[Recognition]:
        return await self._request(b"F", pcm)

    async def flush(self) -> list[Recognition]:
        return await self._request(b"L")

    async def reset(self) -> None:
        await self._request(b"R")

    async def aclose(self) -> None:
        """Kill the decoder process and wait for it (shielded, at most 2 s)."""
        self._broken = True
        await stop_process(self._proc, reap_timeout=2)


async def open_recognizer(config: SttConfig, limiter: trio.CapacityLimiter) -> AsyncRecognizer:
    """The backend ``config.backend`` asks for (``auto``: a thread for grammars and keyphrases,
    a process for a language model), or the Wyoming server of ``config.url``."""
    if config.url is not None:
        await trio.lowlevel.checkpoint()
        return WyomingRecognizer(config.url, limiter)
    backend = config.backend
    if backend == "auto":
        backend = "thread" if (config.phrases or config.jsgf_path or config.keyphrases) else "process"
    if backend == "thread":
        return await ThreadRecognizer.open(config, limiter)
    return await ProcessRecognizer.open(config, limiter)
