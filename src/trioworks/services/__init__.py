"""The voice-assistant services on the bus (py-tars' contracts): one subpackage per service.

Each service is a :class:`trioworks.bus.Service` (a supervised nursery of routes with a retained
``system/health/<service>``) with its config class and the error a bad setting raises:

- :class:`SttService`, :class:`SttConfig`, :exc:`SttConfigError` (:mod:`trioworks.services.stt`)
- :class:`MemoryService`, :class:`MemoryConfig`, :exc:`MemoryConfigError` (:mod:`trioworks.services.memory`)
- :class:`LLMService`, :class:`LLMConfig`, :exc:`LLMConfigError` (:mod:`trioworks.services.llm`)
- :class:`TtsService`, :class:`TtsConfig`, :exc:`TtsConfigError` (:mod:`trioworks.services.tts`)
- :class:`RouterService`, :class:`RouterConfig`, :exc:`RouterConfigError`
  (:mod:`trioworks.services.router`)
- :class:`WakeService`, :class:`WakeConfig`, :exc:`WakeConfigError` (:mod:`trioworks.services.wake`):
  the wake word, optional in a stack (:data:`OPTIONAL_SERVICE_NAMES`)
- :class:`PersonaService`, :class:`PersonaConfig`, :exc:`PersonaConfigError`
  (:mod:`trioworks.services.persona`): py-tars' ``character/*``; :data:`PYTARS_NAMES` gives every
  service py-tars' bus name (``tars-tts``, ``tars-stt``...)

They are importable from here or from their subpackage (which has the rest: sources, sinks,
backends...). A name is imported on first use, so that ``from trioworks.services import
TtsService`` does not load the models of the others (memory needs numpy and the voice extra).

The whole stack, as a program runs it (docs/router.md, "Running the whole stack from Python"):

- :class:`VoiceStack` runs some or all of the services (:data:`SERVICE_NAMES`) on one bus, started
  with ``await nursery.start(stack.run)``; :class:`VoiceSettings` is what they are given
  (:func:`default_data_dir` for the memory store); :exc:`VoiceStackError` names a bad setting,
  :exc:`BrokerUnavailable` an MQTT broker that cannot be reached.
- :func:`ask_once` runs one voice turn from a WAV file (start the stack, ask, stop) and returns a
  :class:`TurnResult`; :func:`voice_turn` follows one turn on a running stack; :func:`say` speaks a
  text through a running tts (:class:`SayResult`).

Shared by the services (pure, no models): :func:`chunk_sentences` / :class:`SentenceChunker`, the
sentence chunker of streamed replies for ``tts/say``; :func:`local_broker` runs mosquitto with the
shipped ``mosquitto.conf`` (:func:`mosquitto_conf`) for the MQTT quick start; :func:`find_program` (an external program's
path, :exc:`ProgramMissing` naming it when absent).
"""

import typing

from ..core import lazy_exports as _lazy_exports
from ._audio import ProgramMissing, find_program
from ._settings import SettingError
from ._text import BOUNDARIES, SentenceChunker, chunk_sentences

if typing.TYPE_CHECKING:
    from ._broker import local_broker, mosquitto_conf
    from ._stack import (
        OPTIONAL_SERVICE_NAMES,
        PYTARS_NAMES,
        SERVICE_NAMES,
        BrokerUnavailable,
        VoiceSettings,
        VoiceStack,
        VoiceStackError,
        default_data_dir,
    )
    from ._turn import SayResult, TurnResult, ask_once, say, voice_turn
    from .llm import LLMConfig, LLMConfigError, LLMService
    from .memory import MemoryConfig, MemoryConfigError, MemoryService
    from .persona import PersonaConfig, PersonaConfigError, PersonaService
    from .router import RouterConfig, RouterConfigError, RouterService
    from .stt import SttConfig, SttConfigError, SttService
    from .tts import TtsConfig, TtsConfigError, TtsService
    from .wake import WakeConfig, WakeConfigError, WakeService

__all__ = [
    "BOUNDARIES",
    "OPTIONAL_SERVICE_NAMES",
    "PYTARS_NAMES",
    "SERVICE_NAMES",
    "BrokerUnavailable",
    "LLMConfig",
    "LLMConfigError",
    "LLMService",
    "MemoryConfig",
    "MemoryConfigError",
    "MemoryService",
    "PersonaConfig",
    "PersonaConfigError",
    "PersonaService",
    "ProgramMissing",
    "RouterConfig",
    "RouterConfigError",
    "RouterService",
    "SayResult",
    "SentenceChunker",
    "SettingError",
    "SttConfig",
    "SttConfigError",
    "SttService",
    "TtsConfig",
    "TtsConfigError",
    "TtsService",
    "TurnResult",
    "VoiceSettings",
    "VoiceStack",
    "VoiceStackError",
    "WakeConfig",
    "WakeConfigError",
    "WakeService",
    "ask_once",
    "chunk_sentences",
    "default_data_dir",
    "find_program",
    "local_broker",
    "mosquitto_conf",
    "say",
    "voice_turn",
]

# Name -> the subpackage (or private module) that defines it, imported on first access (PEP 562).
_LAZY = {
    "OPTIONAL_SERVICE_NAMES": "_stack",
    "PYTARS_NAMES": "_stack",
    "SERVICE_NAMES": "_stack",
    "BrokerUnavailable": "_stack",
    "VoiceSettings": "_stack",
    "VoiceStack": "_stack",
    "VoiceStackError": "_stack",
    "default_data_dir": "_stack",
    "local_broker": "_broker",
    "mosquitto_conf": "_broker",
    "SayResult": "_turn",
    "TurnResult": "_turn",
    "ask_once": "_turn",
    "say": "_turn",
    "voice_turn": "_turn",
    "LLMConfig": "llm",
    "LLMConfigError": "llm",
    "LLMService": "llm",
    "MemoryConfig": "memory",
    "MemoryConfigError": "memory",
    "MemoryService": "memory",
    "PersonaConfig": "persona",
    "PersonaConfigError": "persona",
    "PersonaService": "persona",
    "RouterConfig": "router",
    "RouterConfigError": "router",
    "RouterService": "router",
    "SttConfig": "stt",
    "SttConfigError": "stt",
    "SttService": "stt",
    "TtsConfig": "tts",
    "TtsConfigError": "tts",
    "TtsService": "tts",
    "WakeConfig": "wake",
    "WakeConfigError": "wake",
    "WakeService": "wake",
}

if not typing.TYPE_CHECKING:  # type checkers see the imports above instead
    # A missing extra raises here, naming the pip command (see trioworks.services.memory).
    __getattr__, __dir__ = _lazy_exports(globals(), _LAZY, __all__)
