"""The router service: conversation turns between stt, llm and tts, cancelled as one scope.

- :class:`RouterService`: ``stt/final`` -> ``llm/request`` (with the conversation history) ->
  ``llm/stream`` deltas chunked into sentences -> ``tts/say`` (one ``utt_id`` per turn); a
  ``wake/event`` ``interrupt`` (barge-in) cancels the turn: ``llm/cancel`` and ``tts/control stop``.
- :class:`RouterConfig` (and :exc:`RouterConfigError`): history length, chunk bounds, timeouts.
- :func:`chunk_sentences` / :class:`SentenceChunker`: the pure sentence chunker (defined in
  :mod:`trioworks.services`, re-exported here).
- :class:`History`, :class:`Exchange`: the bounded conversation history.
- :class:`WakeWindow`: when a transcript may start a turn (``RouterConfig.wake_required``).
"""

from .._text import BOUNDARIES, SentenceChunker, chunk_sentences
from ._config import RouterConfig, RouterConfigError
from ._history import Exchange, History, TurnEnd
from ._service import RouterService
from ._wake import WakeWindow

__all__ = [
    "BOUNDARIES",
    "Exchange",
    "History",
    "RouterConfig",
    "RouterConfigError",
    "RouterService",
    "SentenceChunker",
    "TurnEnd",
    "WakeWindow",
    "chunk_sentences",
]
