"""The voice services as one stack: settings, buses, and starting the chosen services.

Used by ``trioworks services run|say|ask`` and by the demo's voice section, so that the services are
wired in one place. Heavy modules (numpy, pocketsphinx) are imported only when a service that needs
them is started, after :func:`prepare_process` has set the process-wide knobs they read at import.

Nursery tree of :func:`start_stack` (the caller's nursery)::

    caller's nursery
    ├── MemoryService.run   indexer, ingest, Service (limiters: model, query, db, index)
    ├── LLMService.run      Service, one task per turn (generation_limiter)
    ├── TtsService.run      speaker, Service (file_limiter)
    ├── RouterService.run   Service, the turn task (no limiter)
    └── SttService.run      Service, transcribe(source) (decoder_limiter)

They are started concurrently (the slow ones, memory and stt, load their models at the same time)
and each is serving when :func:`start_stack` returns.
"""

from __future__ import annotations

import gc
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from ..bus import Bus, InProcessBroker, InProcessTransport, MqttTransport
from ..core import RetryPolicy, find_error, single_error
from ..services.llm import LLMConfig, LLMService
from ..services.router import RouterConfig, RouterService
from ..services.stt import SttConfig, SttService
from ..services.tts import TtsConfig, TtsService
from ._errors import CliError, did_you_mean

if TYPE_CHECKING:
    from ..services.memory import MemoryService
    from ..services.stt import AudioSource

__all__ = [
    "SERVICE_NAMES",
    "BusFactory",
    "Unavailable",
    "VoiceSettings",
    "VoiceStack",
    "default_data_dir",
    "freeze_heap",
    "parse_bus",
    "parse_only",
    "prepare_process",
    "probe_broker",
    "start_stack",
]

SERVICE_NAMES: tuple[str, ...] = ("stt", "memory", "llm", "tts", "router")
"""Every service ``services run`` can run, in the pipeline's order."""

MEMORY_FILE = "memory.db"
RAG_K = 3
"""Memories the router asks the llm to fetch for each turn."""


class Unavailable(CliError):
    """Something the command needs is not there (a broker, a program): exit 1, not a usage error."""

    exit_code = 1


def default_data_dir() -> Path:
    """``$TRIOWORKS_DATA``, else ``$XDG_DATA_HOME/trioworks/voice``, else ``~/.local/share/trioworks/voice``."""
    if os.environ.get("TRIOWORKS_DATA"):
        return Path(os.environ["TRIOWORKS_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(base).expanduser() / "trioworks" / "voice"


def parse_bus(text: str) -> str:
    """``"memory"`` or an ``mqtt://host:port`` URL; :class:`CliError` naming ``--bus`` otherwise."""
    if text == "memory":
        return text
    try:
        MqttTransport(text, client_id="check")  # parses the URL; connects nothing
    except ValueError:
        raise CliError(f"--bus: expected 'memory' or mqtt://host:port, got {text!r}") from None
    return text


def parse_only(text: str) -> tuple[str, ...]:
    """``"stt,llm"`` -> ``("stt", "llm")`` in pipeline order; :class:`CliError` naming an unknown name."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise CliError(f"--only: expected a comma-separated list of {', '.join(SERVICE_NAMES)}, got {text!r}")
    for name in names:
        if name not in SERVICE_NAMES:
            raise CliError(
                f"--only: unknown service {name!r}{did_you_mean(name, SERVICE_NAMES)} "
                f"(expected some of {', '.join(SERVICE_NAMES)})"
            )
    return tuple(n for n in SERVICE_NAMES if n in names)


def prepare_process() -> None:
    """Process-wide settings of a program that runs the voice services; call before numpy loads.

    ``OPENBLAS_NUM_THREADS=1`` (only if unset): the memory service's limiters, not OpenBLAS,
    decide how many cores embedding uses, and the Trio loop keeps one (docs/memory.md). Worker
    processes (BM25 rebuilds, the stt decoder) inherit it.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def freeze_heap() -> None:
    """Move everything allocated during start-up out of the garbage collector's reach.

    A full collection walks every object while holding the GIL (25-30 ms for the models' and
    modules' objects): frozen, they are never walked again, so the loop does not stall on them.
    """
    gc.collect()
    gc.freeze()


def _strings(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)  # typed: ``converter=tuple`` gives mypy a generic it cannot match


@attrs.frozen(kw_only=True)
class VoiceSettings:
    """What the services are given; made from the command line (or by the demo)."""

    bus: str = "memory"
    """``"memory"`` (in process) or an ``mqtt://host:port`` URL."""
    data_dir: Path = attrs.field(factory=default_data_dir, converter=Path)
    """Where the memory store lives (``<data_dir>/memory.db``)."""
    audio_dir: Path | None = None
    """Spoken replies as WAV files here; None: a sound card when one exists, else WAV files in
    the tts default directory."""
    llm: LLMConfig = attrs.field(factory=LLMConfig)
    stt: SttConfig = attrs.field(factory=SttConfig)
    voice: str = "en-us"
    realtime: bool = True
    """Pace speech as a listener hears it (False: write WAV files as fast as espeak-ng goes)."""
    remember: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    """Facts stored in memory at start-up (needs the memory service in this process)."""
    rag_k: int = RAG_K
    """Memories the router asks the llm to fetch per turn; 0: no RAG (no memory service to ask)."""

    @property
    def memory_path(self) -> Path:
        return self.data_dir / MEMORY_FILE


class BusFactory:
    """One :class:`Bus` per service: on a shared in-process broker, or each its own MQTT client."""

    def __init__(self, url: str, *, reconnect: RetryPolicy | None = None) -> None:
        self.url = url
        self.broker = InProcessBroker() if url == "memory" else None
        self._reconnect = reconnect

    @property
    def in_process(self) -> bool:
        return self.broker is not None

    def __call__(self, source: str) -> Bus:
        if self.broker is not None:
            return Bus(InProcessTransport(self.broker, client_id=source), source=source)
        # MQTT client ids must be unique per connection; the health topic uses ``source``.
        client_id = f"{source}-{secrets.token_hex(4)}"
        extra: dict[str, Any] = {"reconnect": self._reconnect} if self._reconnect is not None else {}
        return Bus(MqttTransport(self.url, client_id=client_id, **extra), source=source)


async def probe_broker(url: str, *, attempts: int = 1) -> None:
    """Connect to the broker once and disconnect; :class:`Unavailable` (exit 1) when it cannot.

    The services themselves retry forever (a broker restart must not kill them), so an address
    that is wrong from the start is caught here instead, in about a second.
    """
    policy = RetryPolicy(max_attempts=attempts, base_delay=0.2, max_delay=1.0, jitter=0.2)
    transport = MqttTransport(url, client_id=f"trioworks-probe-{secrets.token_hex(4)}", reconnect=policy)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(transport.run)
            nursery.cancel_scope.cancel()
    except Exception as exc:
        cause = single_error(exc)
        if isinstance(cause, OSError | trio.TooSlowError):
            raise Unavailable(f"--bus: cannot reach the MQTT broker at {url}: {_reason(cause)}") from exc
        # The broker answered but refused (a bad CONNACK), or something else went wrong.
        raise Unavailable(f"--bus: the MQTT broker at {url} refused us: {cause}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "no answer (connect timed out)"
    cause = exc.__cause__  # trio's "all attempts to connect failed" holds the real errors
    if isinstance(cause, BaseExceptionGroup):
        exc = find_error(cause, OSError) or exc
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


@attrs.define
class VoiceStack:
    """The services started in this process (None for those running elsewhere or not at all)."""

    stt: SttService | None = None
    memory: MemoryService | None = None
    llm: LLMService | None = None
    tts: TtsService | None = None
    router: RouterService | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n in SERVICE_NAMES if getattr(self, n) is not None)


def _make(
    name: str, settings: VoiceSettings, bus: Bus, source: AudioSource | None
) -> SttService | MemoryService | LLMService | TtsService | RouterService:
    if name == "stt":
        return SttService(bus, settings.stt, source=source)
    if name == "memory":
        from ..services.memory import MemoryService  # numpy and the model: only when asked for

        return MemoryService(bus, settings.memory_path)
    if name == "llm":
        return LLMService(bus, settings.llm)  # speak=False: the router says the reply
    if name == "tts":
        player: Literal["auto", "wav"] = "wav" if settings.audio_dir is not None else "auto"
        extra: dict[str, Any] = {"out_dir": settings.audio_dir} if settings.audio_dir is not None else {}
        return TtsService(
            bus, TtsConfig(voice=settings.voice, player=player, realtime=settings.realtime, **extra)
        )
    if name == "router":
        rag = settings.rag_k > 0
        return RouterService(bus, RouterConfig(use_rag=rag, rag_k=settings.rag_k if rag else RAG_K))
    raise AssertionError(name)


async def start_stack(
    nursery: trio.Nursery,
    names: Sequence[str],
    settings: VoiceSettings,
    buses: Callable[[str], Bus],
    *,
    stt_source: AudioSource | None = None,
) -> VoiceStack:
    """Start the services ``names`` in ``nursery`` (concurrently) and return them once all serve.

    Then the ``settings.remember`` facts are stored in memory (embedded and searchable when this
    returns). Cancellation: a checkpoint; services already started keep running in ``nursery``
    (cancel it to stop them: each publishes its retained ``stopped`` health on the way out).
    Errors from a service's start-up (a missing program, a store written by another model)
    propagate as they are.
    """
    stack = VoiceStack()
    for name in names:
        setattr(stack, name, _make(name, settings, buses(name), stt_source if name == "stt" else None))

    async def start(service: SttService | MemoryService | LLMService | TtsService | RouterService) -> None:
        await nursery.start(service.run)

    async with trio.open_nursery() as starting:
        for name in names:
            starting.start_soon(start, getattr(stack, name))
    if settings.remember:
        if stack.memory is None:
            raise CliError("--remember: the memory service does not run in this process")
        await remember(stack.memory, settings.remember)
    return stack


async def remember(memory: MemoryService, facts: Sequence[str]) -> None:
    """Store ``facts`` in ``memory`` now (source ``note``), searchable when this returns."""
    from ..services.memory import NewDocument

    now = time.time()
    await memory.add([NewDocument(text=fact, timestamp=now, source="note") for fact in facts])
