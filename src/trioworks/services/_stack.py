"""The five voice services as one stack: :class:`VoiceSettings` and :class:`VoiceStack`.

The one place the services are wired together (``trioworks services run|say|ask`` and the demo
use it too). Heavy modules (numpy, the embedding model) are imported only when the memory service
is started, after the process-wide knob they read at import is set.

Nursery tree of :meth:`VoiceStack.run` (started with ``nursery.start``)::

    VoiceStack.run
    ├── (over MQTT) one probe connection to the broker, closed again
    └── nursery
        ├── MemoryService.run   Service: setup (store, model), routes, tasks (indexer, ingest)
        ├── LLMService.run      Service, one task per turn (generation_limiter)
        ├── TtsService.run      speaker, Service (file_limiter)
        ├── RouterService.run   Service, the turn task (no limiter)
        ├── SttService.run      Service, transcribe(source) (decoder_limiter)
        └── WakeService.run     (optional) Service, listen(source) (detector_limiter)

The services are started concurrently (the slow ones, memory and stt, load their models at the
same time) and each is serving when ``nursery.start(stack.run)`` returns.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from ..bus import Bus, InProcessBroker, InProcessTransport, MqttTransport
from ..core import RetryPolicy, find_error, single_error
from .llm import LLMConfig, LLMService
from .persona import PersonaConfig, PersonaService
from .router import RouterConfig, RouterService
from .stt import SttConfig, SttService
from .tts import TtsConfig, TtsService
from .wake import WakeConfig, WakeService

if TYPE_CHECKING:
    from .memory import MemoryService
    from .stt import AudioSource

__all__ = [
    "OPTIONAL_SERVICE_NAMES",
    "PYTARS_NAMES",
    "SERVICE_NAMES",
    "BrokerUnavailable",
    "VoiceSettings",
    "VoiceStack",
    "VoiceStackError",
    "default_data_dir",
]

SERVICE_NAMES: tuple[str, ...] = ("stt", "memory", "llm", "tts", "router", "persona")
"""Every service a :class:`VoiceStack` can run, in the pipeline's order (the persona, py-tars'
``character/*``, beside it)."""

PYTARS_NAMES: Mapping[str, str] = {
    "stt": "tars-stt",
    "tts": "tars-tts",
    "llm": "llm-worker",
    "memory": "memory-worker",
    "router": "router",
    "persona": "memory-worker-persona",
    "wake": "wake-activation",
}
"""py-tars' names of the services (its envelope ``source`` and health topic): py-tars' router
waits for ``system/health/tars-tts`` and ``system/health/tars-stt``. Pass as
``VoiceStack(names=PYTARS_NAMES)`` (``trioworks services run --pytars-names``)."""

OPTIONAL_SERVICE_NAMES: tuple[str, ...] = ("wake",)
"""Services a :class:`VoiceStack` runs only when named in ``services``."""

MEMORY_FILE = "memory.db"
RAG_K = 3
"""Memories the router asks the llm to fetch for each turn."""


@attrs.define
class _Running:
    """The services a stack runs (None: not run by this stack)."""

    stt: SttService | None = None
    memory: MemoryService | None = None
    llm: LLMService | None = None
    tts: TtsService | None = None
    router: RouterService | None = None
    persona: PersonaService | None = None
    wake: WakeService | None = None

    def each(
        self,
    ) -> list[
        SttService | MemoryService | LLMService | TtsService | RouterService | PersonaService | WakeService
    ]:
        found = (self.stt, self.memory, self.llm, self.tts, self.router, self.persona, self.wake)
        return [service for service in found if service is not None]


class VoiceStackError(ValueError):
    """A setting of the stack is unusable; names the field (``bus``, ``services``, ``remember``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"voice stack {field}: {problem}")
        self.field = field
        self.problem = problem


class BrokerUnavailable(Exception):
    """The MQTT broker of :attr:`VoiceSettings.bus` could not be reached, or refused the connection."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the MQTT broker at {url}: {reason}")
        self.url = url
        self.reason = reason


def default_data_dir() -> Path:
    """``$TRIOWORKS_DATA``, else ``$XDG_DATA_HOME/trioworks/voice``, else ``~/.local/share/trioworks/voice``."""
    if os.environ.get("TRIOWORKS_DATA"):
        return Path(os.environ["TRIOWORKS_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(base).expanduser() / "trioworks" / "voice"


def _strings(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)  # typed: ``converter=tuple`` gives mypy a generic it cannot match


def _bus_url(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value == "memory":
        return
    try:
        MqttTransport(value, client_id="check")  # parses the URL; connects nothing
    except ValueError:
        raise VoiceStackError("bus", f"expected 'memory' or mqtt://host:port, got {value!r}") from None


@attrs.frozen(kw_only=True)
class VoiceSettings:
    """What the services of a :class:`VoiceStack` are given. Bad values raise :exc:`VoiceStackError`
    (``bus``) or the service's own config error (``llm``, ``stt``)."""

    bus: str = attrs.field(default="memory", validator=_bus_url)
    """``"memory"`` (a broker in this process) or an ``mqtt://host:port`` URL."""
    data_dir: Path = attrs.field(factory=default_data_dir, converter=Path)
    """Where the memory store lives (``<data_dir>/memory.db``); the caller creates the folder."""
    audio_dir: Path | None = None
    """Spoken replies as WAV files here; None: a sound card when one exists, else WAV files in
    the tts default directory."""
    llm: LLMConfig = attrs.field(factory=LLMConfig)
    stt: SttConfig = attrs.field(factory=SttConfig)
    voice: str = "en-us"
    realtime: bool = True
    """Pace speech as a listener hears it (False: write WAV files as fast as espeak-ng goes)."""
    remember: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    """Facts stored in memory at start-up (needs the memory service in the same stack)."""
    rag_k: int = RAG_K
    """Memories the router asks the llm to fetch per turn; 0: no RAG (no memory service to ask)."""
    tts_url: str | None = None
    """A Wyoming TTS server for the tts service (``TtsConfig.url``); None: espeak-ng."""
    wake: WakeConfig = attrs.field(factory=WakeConfig)
    """The wake service's settings (when ``"wake"`` is among the stack's services)."""
    wake_required: bool | None = None
    """Whether a transcript starts a turn only after the wake word (the router's wake window);
    None: when this stack runs the wake service."""
    persona: PersonaConfig = attrs.field(factory=PersonaConfig)
    """The persona service's character (py-tars' ``character.toml``; default the built-in one)."""

    @property
    def memory_path(self) -> Path:
        return self.data_dir / MEMORY_FILE

    @property
    def in_process(self) -> bool:
        return self.bus == "memory"


class _Buses:
    """One :class:`Bus` per service: on a shared in-process broker, or each its own MQTT client."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.broker = InProcessBroker() if url == "memory" else None

    def __call__(self, source: str) -> Bus:
        if self.broker is not None:
            return Bus(InProcessTransport(self.broker, client_id=source), source=source)
        # MQTT client ids must be unique per connection; the health topic uses ``source``.
        return Bus(MqttTransport(self.url, client_id=f"{source}-{secrets.token_hex(4)}"), source=source)


class VoiceStack:
    """Some or all of the five voice services, run together on one bus.

    ``services`` (default all of :data:`SERVICE_NAMES`) are the ones run in this process; on an
    MQTT bus the others may run elsewhere. ``stt_source`` is what stt listens to continuously
    (say :func:`~trioworks.services.stt.mic_source`); without one, call ``stack.stt.transcribe``.
    ``"wake"`` in ``services`` (:data:`OPTIONAL_SERVICE_NAMES`) adds the wake service, listening
    to ``wake_source`` (or ``stack.wake.listen``); the router then needs the wake word
    (``settings.wake_required``). ``names`` gives a service another bus name (its envelope ``source`` and health topic
    ``system/health/<name>``), for example so that a second stt does not report as the first.

    Start it with ``await nursery.start(stack.run)``; cancel the nursery to stop it. Once started,
    :attr:`stt`, :attr:`memory`, :attr:`llm`, :attr:`tts`, :attr:`router` and :attr:`wake` are the running
    services (None for those not run here), and :meth:`client` gives a bus to talk to them.

    Raises :exc:`VoiceStackError` for an unknown service name, or ``remember`` facts without the
    memory service in ``services``.
    """

    def __init__(
        self,
        settings: VoiceSettings,
        *,
        services: Iterable[str] = SERVICE_NAMES,
        stt_source: AudioSource | None = None,
        wake_source: AudioSource | None = None,
        names: Mapping[str, str] | None = None,
    ) -> None:
        chosen = set(services)
        known = (*SERVICE_NAMES, *OPTIONAL_SERVICE_NAMES)
        for name in sorted(chosen - set(known)):
            raise VoiceStackError(
                "services", f"unknown service {name!r} (expected some of {', '.join(known)})"
            )
        for name in sorted(set(names or {}) - set(known)):
            raise VoiceStackError("names", f"unknown service {name!r}")
        if settings.remember and "memory" not in chosen:
            raise VoiceStackError("remember", "the memory service does not run in this stack")
        self.settings = settings
        self.services: tuple[str, ...] = tuple(n for n in known if n in chosen)
        """The services run here, in pipeline order."""
        self._stt_source = stt_source
        self._wake_source = wake_source
        self._names = dict(names or {})
        self._buses = _Buses(settings.bus)
        self._running = _Running()
        self._started = False

    @property
    def in_process(self) -> bool:
        """True on the in-process bus: every service and client of this stack shares its broker."""
        return self._buses.broker is not None

    def client(self, source: str) -> Bus:
        """A new bus on the stack's broker for a client named ``source`` (not running yet: start it
        with ``await nursery.start(bus.run)``)."""
        return self._buses(source)

    @property
    def stt(self) -> SttService | None:
        return self._running.stt

    @property
    def memory(self) -> MemoryService | None:
        return self._running.memory

    @property
    def llm(self) -> LLMService | None:
        return self._running.llm

    @property
    def tts(self) -> TtsService | None:
        return self._running.tts

    @property
    def router(self) -> RouterService | None:
        return self._running.router

    @property
    def wake(self) -> WakeService | None:
        return self._running.wake

    @property
    def persona(self) -> PersonaService | None:
        return self._running.persona

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the services (concurrently), store ``settings.remember`` in memory, then report
        started and serve until cancelled.

        Over MQTT the broker is probed first (one connection): the services themselves reconnect
        forever (a broker restart must not kill them), so an address that is wrong from the start
        raises :exc:`BrokerUnavailable` here instead, within about a second. With the memory service,
        ``OPENBLAS_NUM_THREADS=1`` is set for the process if unset, before numpy loads (the memory
        service's limiters, not OpenBLAS, decide how many cores embedding uses; docs/memory.md).

        Resource handling: every service runs in this call's nursery; on cancellation each stops
        as it does when cancelled (its retained health says ``stopped``). A stack runs once.

        Error handling: errors from a service's start-up (a missing program, a store written by
        another model, missing weights) and a service failing later (``ServiceFailed``) propagate,
        the latter inside the nursery's exception group; the other services are cancelled.
        """
        if self._started:
            raise RuntimeError("a VoiceStack runs once; make a new one")
        self._started = True
        if not self.in_process:
            await probe_broker(self.settings.bus)
        if "memory" in self.services:
            os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        made = self._make()
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as starting:
                for service in made.each():
                    starting.start_soon(nursery.start, service.run)
            self._running = made
            if self.settings.remember and self.memory is not None:
                await _remember(self.memory, self.settings.remember)
            task_status.started()
            await trio.sleep_forever()

    def _make(self) -> _Running:
        settings, chosen = self.settings, self.services
        made = _Running()
        if "stt" in chosen:
            made.stt = SttService(self._bus("stt"), settings.stt, source=self._stt_source)
        if "memory" in chosen:
            from .memory import MemoryConfig, MemoryService  # numpy and the model: only when asked for

            made.memory = MemoryService(self._bus("memory"), MemoryConfig(db_path=settings.memory_path))
        if "llm" in chosen:
            made.llm = LLMService(self._bus("llm"), settings.llm)  # speak=False: the router says the reply
        if "tts" in chosen:
            player: Literal["auto", "wav"] = "wav" if settings.audio_dir is not None else "auto"
            extra: dict[str, Any] = {"out_dir": settings.audio_dir} if settings.audio_dir is not None else {}
            config = TtsConfig(
                voice=settings.voice, player=player, realtime=settings.realtime, url=settings.tts_url, **extra
            )
            made.tts = TtsService(self._bus("tts"), config)
        if "router" in chosen:
            rag = settings.rag_k > 0
            gated = settings.wake_required if settings.wake_required is not None else "wake" in chosen
            config_r = RouterConfig(use_rag=rag, rag_k=settings.rag_k if rag else RAG_K, wake_required=gated)
            made.router = RouterService(self._bus("router"), config_r)
        if "wake" in chosen:
            made.wake = WakeService(self._bus("wake"), settings.wake, source=self._wake_source)
        if "persona" in chosen:
            made.persona = PersonaService(self._bus("persona"), settings.persona)
        return made

    def _bus(self, service: str) -> Bus:
        return self._buses(self._names.get(service, service))


async def _remember(memory: MemoryService, facts: Sequence[str]) -> None:
    """Store ``facts`` in ``memory`` now (source ``note``), searchable when this returns."""
    from .memory import NewDocument

    now = time.time()
    await memory.add([NewDocument(text=fact, timestamp=now, source="note") for fact in facts])


async def probe_broker(url: str, *, attempts: int = 1) -> None:
    """Connect to the broker once and disconnect; :exc:`BrokerUnavailable` when that fails."""
    policy = RetryPolicy(max_attempts=attempts, base_delay=0.2, max_delay=1.0, jitter=0.2)
    transport = MqttTransport(url, client_id=f"trioworks-probe-{secrets.token_hex(4)}", reconnect=policy)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(transport.run)
            nursery.cancel_scope.cancel()
    except Exception as exc:
        cause = single_error(exc)
        if isinstance(cause, OSError | trio.TooSlowError):
            raise BrokerUnavailable(url, _reason(cause)) from exc
        # The broker answered but refused (a bad CONNACK), or something else went wrong.
        raise BrokerUnavailable(url, f"it refused us: {cause}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "no answer (connect timed out)"
    cause = exc.__cause__  # trio's "all attempts to connect failed" holds the real errors
    if isinstance(cause, BaseExceptionGroup):
        exc = find_error(cause, OSError) or exc
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
