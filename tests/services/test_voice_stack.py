"""The public API for the whole stack: :class:`trioworks.services.VoiceStack` and its settings.

Real tts (espeak-ng) on the in-process bus, a refused TCP port for the broker; the whole turn with
all five services is in tests/cli/test_services_cli.py (``services ask`` and the demo run it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from _services import free_port
from trioworks.services import (
    SERVICE_NAMES,
    BrokerUnavailable,
    VoiceSettings,
    VoiceStack,
    VoiceStackError,
    say,
)


def test_a_bad_bus_url_is_named() -> None:
    with pytest.raises(VoiceStackError, match="bus: expected 'memory' or mqtt://host:port, got 'http://b:1'"):
        VoiceSettings(bus="http://b:1")
    assert VoiceSettings(bus="mqtt://127.0.0.1:1883").in_process is False


def test_unknown_services_and_misplaced_facts_are_named(tmp_path: Path) -> None:
    settings = VoiceSettings(data_dir=tmp_path)
    with pytest.raises(VoiceStackError, match="services: unknown service 'rooter'") as caught:
        VoiceStack(settings, services=("llm", "rooter"))
    assert caught.value.field == "services"
    with pytest.raises(VoiceStackError, match="names: unknown service 'mic'"):
        VoiceStack(settings, names={"mic": "tars-mic"})
    with pytest.raises(VoiceStackError, match="remember: the memory service does not run in this stack"):
        VoiceStack(VoiceSettings(data_dir=tmp_path, remember=["a fact"]), services=("llm",))


def test_services_are_kept_in_pipeline_order(tmp_path: Path) -> None:
    stack = VoiceStack(VoiceSettings(data_dir=tmp_path), services=("router", "stt", "tts"))
    assert stack.services == ("stt", "tts", "router")
    assert VoiceStack(VoiceSettings(data_dir=tmp_path)).services == SERVICE_NAMES
    assert stack.tts is None  # nothing runs before run()


async def test_an_unreachable_broker_fails_the_start_naming_it() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    stack = VoiceStack(VoiceSettings(bus=url), services=("llm",))
    async with trio.open_nursery() as nursery:
        with pytest.raises(BrokerUnavailable) as caught:
            await nursery.start(stack.run)  # raised here, in the starting task
    assert caught.value.url == url and "refused" in caught.value.reason
    assert str(caught.value).startswith(f"cannot reach the MQTT broker at {url}: ")
    assert stack.llm is None


async def test_started_services_serve_a_client_until_cancelled(espeak_ng: str, tmp_path: Path) -> None:
    settings = VoiceSettings(data_dir=tmp_path / "data", audio_dir=tmp_path / "audio", realtime=False)
    stack = VoiceStack(settings, services=("llm", "tts", "router"), names={"tts": "tars-tts"})
    async with trio.open_nursery() as nursery:
        await nursery.start(stack.run)
        assert (stack.stt, stack.memory) == (None, None)
        assert stack.llm is not None and stack.tts is not None and stack.router is not None
        assert stack.tts.bus.source == "tars-tts"
        client = stack.client("cli")
        await nursery.start(client.run)
        spoken = await say(client, "hello there", limit=30)
        assert spoken.event == "speaking_end", spoken
        assert spoken.path is not None and spoken.path.parent == tmp_path / "audio"
        nursery.cancel_scope.cancel()
    assert spoken.path.stat().st_size > 44  # more than a WAV header
    with pytest.raises(RuntimeError, match="runs once"):
        await stack.run()


async def test_pytars_names_put_health_where_pytars_router_waits(tmp_path: Path) -> None:
    from trioworks.services import PYTARS_NAMES

    stack = VoiceStack(
        VoiceSettings(data_dir=tmp_path, audio_dir=tmp_path, realtime=False),
        services=("tts", "router", "persona"),
        names=PYTARS_NAMES,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(stack.run)
        assert stack._buses.broker is not None
        retained = set(stack._buses.broker.retained)
        assert stack.persona is not None and stack.persona.character.name == "TARS"
        nursery.cancel_scope.cancel()
    assert {"system/health/tars-tts", "system/health/router", "system/character/current"} <= retained
