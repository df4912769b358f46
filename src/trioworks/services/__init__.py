"""The voice-assistant services on the bus (py-tars' contracts): one subpackage per service.

Each service is a :class:`trioworks.bus.Service` (a supervised nursery of routes with a retained
``system/health/<service>``) and is imported from its own subpackage, e.g.
``from trioworks.services.memory import MemoryService``, so that importing one does not load the
models of the others.

Shared by the services (pure, no models): :func:`chunk_sentences` / :class:`SentenceChunker`, the
sentence chunker of streamed replies for ``tts/say``; :func:`find_program` (an external program's
path, :exc:`ProgramMissing` naming it when absent).
"""

from ._audio import ProgramMissing, find_program
from ._text import BOUNDARIES, SentenceChunker, chunk_sentences

__all__ = ["BOUNDARIES", "ProgramMissing", "SentenceChunker", "chunk_sentences", "find_program"]
