"""The persona service (see the package docstring)."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

import attrs
import trio

from ...bus import (
    Bus,
    CharacterGet,
    CharacterResult,
    CharacterSection,
    CharacterUpdate,
    Message,
    Route,
    Service,
    Task,
    converter,
)
from ...core import RestartPolicy
from .._settings import SettingError

__all__ = ["DEFAULT_CHARACTER", "PersonaConfig", "PersonaConfigError", "PersonaService", "load_character"]

logger = logging.getLogger("trioworks.services.persona")

DEFAULT_CHARACTER = CharacterResult(
    name="TARS",
    description="A dry-witted robot assistant.",
    systemprompt="You are TARS: helpful, brief and a little dry.",
    traits={"honesty": 90, "humor": 75},
    voice={"voice": "en-us"},
)
"""The persona when no character file is given."""


class PersonaConfigError(SettingError):
    """A persona setting is unusable; names the field (``character_file``)."""

    prefix = "persona"


@attrs.frozen(kw_only=True)
class PersonaConfig:
    character_file: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    """A ``character.toml`` in py-tars' layout (``[info]`` name, description, systemprompt;
    ``[traits]``, ``[voice]``, ``[meta]``, ``[scenario]``, ``[personality_notes]``,
    ``[example_interactions]``); None: :data:`DEFAULT_CHARACTER`."""


def _table(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise PersonaConfigError(
            "character_file", f"{path}: [{key}] must be a table, got {type(value).__name__}"
        )
    return value


def load_character(text: str, path: Path) -> CharacterResult:
    """The persona in ``text`` (a ``character.toml`` read from ``path``, named in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PersonaConfigError("character_file", f"{path}: not TOML ({exc})") from None
    info = _table(data, "info", path)
    name = info.get("name") or path.parent.name or "TARS"
    for key in ("name", "description", "systemprompt"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise PersonaConfigError("character_file", f"{path}: info.{key} must be a string")
    return CharacterResult(
        name=name,
        description=info.get("description") or None,
        systemprompt=info.get("systemprompt") or None,
        traits=_table(data, "traits", path),
        voice=_table(data, "voice", path),
        meta=_table(data, "meta", path),
        scenario=_table(data, "scenario", path),
        personality_notes=_table(data, "personality_notes", path),
        example_interactions=_table(data, "example_interactions", path),
    )


class PersonaService(Service):
    """py-tars' character on the bus.

    Routes: ``character/get`` (reply on ``character/result`` under the request's envelope id:
    the whole persona, or ``{section, value}``; an unknown section's value is
    ``{error, available}``, as py-tars answers) and ``character/update`` (a trait set to 0-100,
    or ``action: reset_traits``: the traits the persona started with); each update republishes
    the retained ``system/character/current``, which is also published once at start.

    :attr:`character` is the persona now. Lifecycle: :class:`~trioworks.bus.Service`'s; ``run``
    raises :exc:`PersonaConfigError` before serving for a character file it cannot read.
    """

    def __init__(
        self, bus: Bus, config: PersonaConfig | None = None, *, restart: RestartPolicy = RestartPolicy()
    ) -> None:
        self.config = config if config is not None else PersonaConfig()
        self.character = DEFAULT_CHARACTER
        self._initial = DEFAULT_CHARACTER
        routes = [
            Route("character/get", self._on_get, capacity=16),
            Route("character/update", self._on_update, capacity=16),
        ]
        super().__init__(bus, routes, tasks=[Task("persona.announce", self._announce)], restart=restart)

    async def setup(self) -> None:
        """Read the character file (called by ``run`` before serving)."""
        path = self.config.character_file
        if path is None:
            await trio.lowlevel.checkpoint()
            self._initial = DEFAULT_CHARACTER
        else:
            try:
                text = await trio.Path(path).read_text()
            except OSError as exc:
                raise PersonaConfigError("character_file", f"cannot read {path}: {exc.strerror}") from None
            self._initial = load_character(text, path)
        self.character = self._initial
        logger.info("persona: %s with %d traits", self.character.name, len(self.character.traits))

    async def _announce(self) -> None:
        await self.bus.publish("system/character/current", self.character)

    async def _on_get(self, message: Message) -> None:
        request: CharacterGet = message.data
        reply: CharacterResult | CharacterSection
        if not request.section:
            reply = self.character
        else:
            whole = _as_dict(self.character)
            if request.section in whole:
                reply = CharacterSection(section=request.section, value=whole[request.section])
            else:
                reply = CharacterSection(
                    section=request.section,
                    value={"error": f"unknown section '{request.section}'", "available": sorted(whole)},
                )
        await self.bus.reply(message, "character/result", reply)

    async def _on_update(self, message: Message) -> None:
        update: CharacterUpdate = message.data
        if update.action == "reset_traits":
            self.character = attrs.evolve(self.character, traits=dict(self._initial.traits))
            logger.info("persona: traits reset")
        else:
            assert update.trait is not None and update.value is not None  # the contract's rule
            old = self.character.traits.get(update.trait)
            self.character = attrs.evolve(
                self.character, traits={**self.character.traits, update.trait: update.value}
            )
            logger.info("persona: trait %s %s -> %d", update.trait, old, update.value)
        await self.bus.publish("system/character/current", self.character)


def _as_dict(character: CharacterResult) -> dict[str, Any]:
    data = converter.unstructure(character)
    data.pop("message_id", None)
    return data
