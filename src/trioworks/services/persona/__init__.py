"""The persona service: py-tars' character, held and served on the bus.

- :class:`PersonaService`: answers ``character/get`` on ``character/result`` (the whole persona,
  or one ``section`` of it), holds the retained ``system/character/current`` and applies
  ``character/update`` (one trait 0-100, or ``reset_traits``), as py-tars' memory-worker does.
- :class:`PersonaConfig` (and :exc:`PersonaConfigError`): the character file (py-tars'
  ``character.toml`` layout) or the built-in persona.
- :func:`load_character`: a ``character.toml`` as a :class:`~trioworks.bus.CharacterResult`.
"""

from ._service import DEFAULT_CHARACTER, PersonaConfig, PersonaConfigError, PersonaService, load_character

__all__ = ["DEFAULT_CHARACTER", "PersonaConfig", "PersonaConfigError", "PersonaService", "load_character"]
