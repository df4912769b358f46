"""The llm service: chat generation on the bus with RAG, tool calls, streaming and cancel.

- :class:`LLMService`: ``llm/request`` in; ``llm/stream`` deltas and ``llm/response`` out;
  RAG through ``memory/query``; tool calls through ``llm/tool.call.request/<call_id>``;
  ``llm/cancel`` cancels one request's generation, RAG wait and pending tool calls.
- :class:`LLMConfig` (and :exc:`LLMConfigError`): backend, model, deadlines, concurrency.
- Backends: :class:`OpenAIBackend` (any OpenAI-compatible server, httpx streaming) and
  :class:`OfflineBackend` (built-in rules, **not a language model**; for the demo and tests).
"""

from ._chat import Backend, BackendError, ChatMessage, Completion, OnDelta, ToolCall
from ._config import LLMConfig, LLMConfigError
from ._offline import CONTEXT_MARKER, OfflineBackend
from ._openai import OpenAIBackend, StreamParser
from ._service import CANCELLED, LLMService, make_backend
from ._tools import ToolCaller

__all__ = [
    "CANCELLED",
    "CONTEXT_MARKER",
    "Backend",
    "BackendError",
    "ChatMessage",
    "Completion",
    "LLMConfig",
    "LLMConfigError",
    "LLMService",
    "OfflineBackend",
    "OnDelta",
    "OpenAIBackend",
    "StreamParser",
    "ToolCall",
    "ToolCaller",
    "make_backend",
]
