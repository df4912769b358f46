"""The persona service: py-tars' character/get, character/update and system/character/current."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from trioworks.bus import (
    Bus,
    CharacterGet,
    CharacterResult,
    CharacterSection,
    CharacterUpdate,
    InProcessBroker,
    InProcessTransport,
    Message,
)
from trioworks.services.persona import DEFAULT_CHARACTER, PersonaConfig, PersonaConfigError, PersonaService

CHARACTER = """
[info]
name = "TARS"
description = "Ex-Marine robot"
systemprompt = "Be brief."

[traits]
humor = 75
honesty = 90

[voice]
voice = "en-us"
"""


async def _rig(
    nursery: trio.Nursery, config: PersonaConfig
) -> tuple[PersonaService, Bus, trio.MemoryReceiveChannel[Message]]:
    broker = InProcessBroker()
    persona = PersonaService(Bus(InProcessTransport(broker, client_id="persona"), source="persona"), config)
    client = Bus(InProcessTransport(broker, client_id="client"), source="client")
    await nursery.start(client.run)
    send, current = trio.open_memory_channel[Message](16)
    await client.subscribe("system/character/current", send.send)
    await nursery.start(persona.run)
    return persona, client, current


async def test_get_update_and_reset(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    path = tmp_path / "TARS" / "character.toml"
    path.parent.mkdir()
    path.write_text(CHARACTER)
    async with trio.open_nursery() as nursery:
        persona, client, current = await _rig(nursery, PersonaConfig(character_file=path))
        whole = await client.request(
            "character/get", CharacterGet(), reply_topic="character/result", timeout=5
        )
        assert isinstance(whole.data, CharacterResult) and whole.data.traits == {"humor": 75, "honesty": 90}
        assert whole.data.description == "Ex-Marine robot"
        part = await client.request(
            "character/get", CharacterGet(section="traits"), reply_topic="character/result", timeout=5
        )
        assert part.data == CharacterSection(section="traits", value={"humor": 75, "honesty": 90})
        unknown = await client.request(
            "character/get", CharacterGet(section="nope"), reply_topic="character/result", timeout=5
        )
        assert "unknown section 'nope'" in unknown.data.value["error"]
        assert (await current.receive()).data.traits["humor"] == 75  # published at start
        await client.publish("character/update", CharacterUpdate(trait="humor", value=10))
        assert (await current.receive()).data.traits["humor"] == 10
        await client.publish("character/update", CharacterUpdate(action="reset_traits"))
        assert (await current.receive()).data.traits["humor"] == 75 == persona.character.traits["humor"]
        nursery.cancel_scope.cancel()


async def test_without_a_file_the_built_in_persona(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        persona, _client, current = await _rig(nursery, PersonaConfig())
        assert (await current.receive()).data == DEFAULT_CHARACTER == persona.character
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("[info", "not TOML"), ("traits = 5", "[traits] must be a table"), (None, "cannot read")],
)
async def test_a_bad_character_file_names_the_field(tmp_path: Path, text: str | None, fragment: str) -> None:
    path = tmp_path / "character.toml"
    if text is not None:
        path.write_text(text)
    persona = PersonaService(
        Bus(InProcessTransport(InProcessBroker()), source="p"), PersonaConfig(character_file=path)
    )
    with pytest.raises(PersonaConfigError, match="character_file") as info:
        await persona.setup()
    assert fragment in str(info.value)
