"""One lifecycle for the five voice services, pinned once for all of them.

Each service is a :class:`trioworks.bus.Service`: it declares routes and tasks, and the base owns
supervision, health and shutdown. A crashing task or a handler past its restart intensity ends
as health ``crashed`` and :exc:`ServiceFailed` from ``run``; a cancel ends as health ``stopped``
with nothing raised; either way what the service acquired in ``setup`` is released. The crash is
one route or task added to what the service declares, so the test is the same for all five.
Heavy models are fakes (as in the services' own tests); the clock is virtual.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from _collector import Collector
from _embedders import WordEmbedder
from _fake_tts import NullSink, make_synthesizer
from trioworks.bus import (
    Bus,
    InProcessBroker,
    InProcessTransport,
    Message,
    Route,
    Service,
    ServiceFailed,
    Task,
)
from trioworks.core import RestartPolicy, RetryPolicy
from trioworks.services.llm import LLMService, OfflineBackend
from trioworks.services.memory import MemoryConfig, MemoryService
from trioworks.services.router import RouterService
from trioworks.services.stt import Recognition, SttService
from trioworks.services.tts import TtsConfig, TtsService

QUICK = RestartPolicy(max_restarts=2, window=60, backoff=RetryPolicy(base_delay=0.1, jitter=0))
FAILURES = QUICK.max_restarts + 1  # the first run and every restart the policy allows


class FakeRecognizer:
    """Hears nothing; records that the service closed it."""

    closed = False

    async def feed(self, pcm: bytes) -> list[Recognition]:
        await trio.lowlevel.checkpoint()
        return []

    async def flush(self) -> list[Recognition]:
        await trio.lowlevel.checkpoint()
        return []

    async def reset(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
        self.closed = True


class ClosingBackend(OfflineBackend):
    closed = False

    async def aclose(self) -> None:
        await super().aclose()
        self.closed = True


@attrs.define
class Made:
    service: Service
    released: Callable[[], bool] | None
    """Whether what the service acquired in setup was released (None: it acquires nothing)."""

    def check_released(self) -> None:
        assert self.released is None or self.released()


def _stt(bus: Bus, tmp_path: Path) -> Made:
    recognizer = FakeRecognizer()
    return Made(SttService(bus, restart=QUICK, recognizer=recognizer), lambda: recognizer.closed)


def _memory(bus: Bus, tmp_path: Path) -> Made:
    memory = MemoryService(
        bus, MemoryConfig(db_path=tmp_path / "m.db"), embedder=WordEmbedder(), restart=QUICK
    )
    return Made(memory, lambda: memory._store is None)


def _llm(bus: Bus, tmp_path: Path) -> Made:
    backend = ClosingBackend()
    return Made(LLMService(bus, backend=backend, restart=QUICK), lambda: backend.closed)


def _tts(bus: Bus, tmp_path: Path) -> Made:
    tts = TtsService(
        bus,
        TtsConfig(player="wav", out_dir=tmp_path, realtime=False),
        restart=QUICK,
        synthesizer=make_synthesizer(rate=1000, bytes_per_char=10, delay=0.01),
        sink=NullSink(),
    )
    return Made(tts, None)


def _router(bus: Bus, tmp_path: Path) -> Made:
    return Made(RouterService(bus, restart=QUICK), None)


SERVICES = {"stt": _stt, "memory": _memory, "llm": _llm, "tts": _tts, "router": _router}


@pytest.fixture(params=list(SERVICES))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broker() -> InProcessBroker:
    return InProcessBroker()


@pytest.fixture
def made(name: str, broker: InProcessBroker, tmp_path: Path) -> Made:
    return SERVICES[name](Bus(InProcessTransport(broker, client_id=name), source=name), tmp_path)


def _health(broker: InProcessBroker, name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(broker.retained[f"system/health/{name}"].payload)["data"]
    assert isinstance(data.pop("timestamp"), float)  # py-tars' HealthPing has one
    return data


async def test_a_crashing_task_leaves_crashed_health_and_raises_service_failed(
    name: str, made: Made, broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    runs = 0

    async def crash() -> None:
        nonlocal runs
        runs += 1
        await trio.lowlevel.checkpoint()
        raise RuntimeError("task bug")

    made.service.tasks.append(Task("lifecycle.task", crash))
    with pytest.raises(ServiceFailed) as info:
        await made.service.run()
    assert (info.value.service, info.value.cause.name, runs) == (name, "lifecycle.task", FAILURES)
    health = _health(broker, name)
    assert (health["ok"], health["event"]) == (False, "crashed")
    assert "'lifecycle.task' failed after 2 restart(s)" in str(health["err"])
    assert str(health["err"]).endswith("RuntimeError: task bug")
    made.check_released()


async def test_a_handler_past_its_restart_intensity_leaves_crashed_health_and_raises_service_failed(
    name: str, made: Made, broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    handled: list[object] = []

    async def crash(message: Message) -> None:
        handled.append(message.data["n"])
        raise RuntimeError("handler bug")

    made.service.routes.append(Route("lifecycle/boom", crash))
    client = Bus(InProcessTransport(broker, client_id="client"), source="client")
    health = Collector()
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        await client.subscribe(f"system/health/{name}", health)

        async def feed() -> None:
            await health.wait_for(1)  # ready: the route is subscribed
            for n in range(FAILURES):
                await client.publish("lifecycle/boom", {"n": n})

        nursery.start_soon(feed)
        with pytest.raises(ServiceFailed) as info:
            await made.service.run()
        nursery.cancel_scope.cancel()
    assert (info.value.service, info.value.cause.name, handled) == (name, "lifecycle/boom", [0, 1, 2])
    assert [(m.data.ok, m.data.event) for m in health.messages] == [(True, "ready"), (False, "crashed")]
    assert str(health.messages[-1].data.err).endswith("RuntimeError: handler bug")
    made.check_released()


async def test_a_clean_stop_leaves_stopped_health_and_raises_nothing(
    name: str, made: Made, broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(made.service.run)
        assert _health(broker, name) == {"ok": True, "event": "ready", "err": None}
        assert made.released is None or not made.released()
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert _health(broker, name) == {"ok": False, "event": "stopped", "err": None}
    made.check_released()
