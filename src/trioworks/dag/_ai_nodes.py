"""Kailash's ``LLMAgentNode`` and ``EmbeddingGeneratorNode``, on the voice services' backends.

``LLMAgentNode`` talks to any OpenAI-compatible endpoint through
:class:`trioworks.services.llm.OpenAIBackend` (httpx, on the Trio loop), or, by default
(Kailash's ``provider="mock"``), to the built-in :class:`~trioworks.services.llm.OfflineBackend`
(deterministic rules, **not a language model**). ``EmbeddingGeneratorNode`` embeds with the
memory service's all-MiniLM-L6-v2 (:class:`trioworks.services.memory.MiniLM`, numpy), loaded
once per process; it is CPU-bound, so it is a sync node and the runtime runs it in a thread.

Output shapes are Kailash's: ``{"success", "response": {"content", "role", "tool_calls",
"finish_reason", "usage", ...}, "usage", "metadata", ...}`` and ``{"success", "embedding",
"dimensions", ...}`` / ``{"success", "embeddings": [{"text", "embedding", ...}], ...}``.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ._errors import NodeConfigurationError, NodeValidationError
from ._node_api import AsyncNode, Node, NodeParameter, register_node

__all__ = ["EmbeddingGeneratorNode", "LLMAgentNode"]


def _opt(name: str, kind: Any, default: Any = None, description: str = "") -> NodeParameter:
    return NodeParameter(name=name, type=kind, required=False, default=default, description=description)


OFFLINE_PROVIDERS = frozenset({"mock", "offline"})
_DEFAULT_BASE_URLS = {
    "openai": ("OPENAI_BASE_URL", "https://api.openai.com/v1"),
    "ollama": ("OLLAMA_BASE_URL", "http://localhost:11434/v1"),
}

LLM_PARAMETERS: dict[str, NodeParameter] = {
    "provider": _opt(
        "provider", str, "mock", "mock/offline (built-in rules), openai, ollama, or any with base_url"
    ),
    "model": _opt("model", str, "gpt-4", "model name sent to the endpoint"),
    "messages": _opt("messages", list, [], "conversation in OpenAI format"),
    "prompt": _opt("prompt", str, None, "a user message appended to messages"),
    "system_prompt": _opt("system_prompt", str),
    "tools": _opt("tools", list, [], "OpenAI-format tool definitions"),
    "conversation_id": _opt("conversation_id", str),
    "generation_config": _opt("generation_config", dict, {}, "temperature, max_tokens, top_p"),
    "base_url": _opt("base_url", str, None, "the OpenAI-compatible endpoint, e.g. http://localhost:11434/v1"),
    "api_key": _opt("api_key", str, None, "default: $OPENAI_API_KEY"),
    "timeout": _opt("timeout", float, 120, "seconds to the first token, and between tokens"),
    "max_retries": _opt("max_retries", int, 3, "retries before the first token"),
    "streaming": _opt("streaming", bool, False),
}


def _message(node_id: str, raw: Any) -> Any:
    from ..services.llm import ChatMessage, ToolCall

    if not isinstance(raw, Mapping) or raw.get("role") not in ("system", "user", "assistant", "tool"):
        raise NodeValidationError(
            f"LLMAgentNode {node_id!r}: each message must be a dict with a role of system, user, "
            f"assistant or tool, got {raw!r}"
        )
    content = raw.get("content") or ""
    if isinstance(content, list):  # OpenAI content parts: keep the text
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    calls = tuple(
        ToolCall(
            id=str(c.get("id", "")),
            name=str((c.get("function") or {}).get("name", "")),
            arguments=json.loads((c.get("function") or {}).get("arguments") or "{}"),
        )
        for c in raw.get("tool_calls") or []
    )
    return ChatMessage(
        role=raw["role"],
        content=str(content),
        tool_calls=calls,
        tool_call_id=raw.get("tool_call_id"),
        name=raw.get("name"),
    )


def _tools(node_id: str, tools: Sequence[Any]) -> tuple[Any, ...]:
    from ..bus import ToolFunction, ToolSpec

    specs = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            raise NodeValidationError(f"LLMAgentNode {node_id!r}: a tool must be a dict, got {tool!r}")
        function = tool.get("function", tool)
        if not isinstance(function, Mapping) or not function.get("name"):
            raise NodeValidationError(f"LLMAgentNode {node_id!r}: a tool needs a function name: {tool!r}")
        specs.append(
            ToolSpec(
                function=ToolFunction(
                    name=str(function["name"]),
                    description=str(function.get("description", "")),
                    parameters=dict(function.get("parameters") or {}),
                )
            )
        )
    return tuple(specs)


def make_llm_backend(node_id: str, kwargs: Mapping[str, Any]) -> Any:
    """The services' backend for ``provider`` (+ ``base_url``, ``api_key``, ``timeout``...)."""
    from ..core import RetryPolicy
    from ..services.llm import LLMConfig, OfflineBackend, OpenAIBackend

    provider = str(kwargs.get("provider") or "mock").lower()
    if provider in OFFLINE_PROVIDERS:
        return OfflineBackend(LLMConfig(word_delay=0))
    base_url = kwargs.get("base_url")
    if not base_url and provider in _DEFAULT_BASE_URLS:
        env, default = _DEFAULT_BASE_URLS[provider]
        base_url = os.environ.get(env, default)
    if not base_url:
        raise NodeValidationError(
            f"LLMAgentNode {node_id!r}: provider {provider!r} needs base_url, the address of an "
            "OpenAI-compatible endpoint (or use provider 'openai', 'ollama' or 'mock')"
        )
    timeout = float(kwargs.get("timeout") or 120)
    settings: dict[str, Any] = {
        "provider": "openai",
        "base_url": str(base_url),
        "model": str(kwargs.get("model") or "gpt-4"),
        "first_token_timeout": timeout,
        "idle_timeout": timeout,
        "retry": RetryPolicy(max_attempts=max(int(kwargs.get("max_retries") or 0), 0) + 1, base_delay=0.5),
    }
    if kwargs.get("api_key"):
        settings["api_key"] = str(kwargs["api_key"])
    return OpenAIBackend(LLMConfig(**settings))


@register_node()
class LLMAgentNode(AsyncNode):
    """One chat turn with an LLM (offline rules by default, or any OpenAI-compatible endpoint)."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return dict(LLM_PARAMETERS)

    def get_output_schema(self) -> dict[str, NodeParameter]:
        return {n: _opt(n, Any) for n in ("success", "response", "usage", "metadata", "conversation_id")}

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        from ..bus import LLMParams
        from ..services.llm import BackendError

        raw = [*(kwargs.get("messages") or [])]
        if kwargs.get("system_prompt"):
            raw.insert(0, {"role": "system", "content": kwargs["system_prompt"]})
        if kwargs.get("prompt"):
            raw.append({"role": "user", "content": kwargs["prompt"]})
        if not any(isinstance(m, Mapping) and m.get("role") != "system" for m in raw):
            raise NodeValidationError(
                f"LLMAgentNode {self.id!r}: give 'messages' or 'prompt' (nothing to answer)"
            )
        messages = tuple(_message(self.id, m) for m in raw)
        tools = _tools(self.id, kwargs.get("tools") or [])
        generation = dict(kwargs.get("generation_config") or {})
        params = LLMParams(
            model=kwargs.get("model"),
            max_tokens=generation.get("max_tokens"),
            temperature=generation.get("temperature"),
            top_p=generation.get("top_p"),
        )
        provider = str(kwargs.get("provider") or "mock")
        backend = make_llm_backend(self.id, kwargs)
        start = time.perf_counter()

        async def ignore(_: str) -> None:
            pass

        try:
            completion = await backend.complete(messages, tools=tools, params=params, on_delta=ignore)
        except BackendError as exc:
            self.logger.warning("node %r: %s", self.id, exc)
            return {
                "success": False,
                "error": str(exc),
                "error_type": type(exc).__name__,
                "provider": provider,
                "model": kwargs.get("model"),
                "conversation_id": kwargs.get("conversation_id"),
                "recovery_suggestions": [
                    "Check that the endpoint (base_url) is reachable and OpenAI-compatible",
                    "Check the API key and the model name",
                ],
            }
        finally:
            await backend.aclose()
        return _llm_output(completion, kwargs, provider, backend.model, time.perf_counter() - start, raw)


def _llm_output(
    completion: Any, kwargs: Mapping[str, Any], provider: str, model: str, elapsed: float, raw: list[Any]
) -> dict[str, Any]:
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
        for c in completion.tool_calls
    ]
    given = dict(completion.usage or {})
    prompt_tokens = given.get("prompt_tokens", sum(len(str(m.get("content", ""))) for m in raw) // 4)
    completion_tokens = given.get("completion_tokens", len(completion.text) // 4)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": given.get("total_tokens", prompt_tokens + completion_tokens),
    }
    model_name = completion.model or model
    return {
        "success": True,
        "response": {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "content": completion.text,
            "role": "assistant",
            "model": model_name,
            "created": int(time.time()),
            "tool_calls": calls,
            "finish_reason": "tool_calls" if calls else "stop",
            "usage": usage,
        },
        "conversation_id": kwargs.get("conversation_id"),
        "usage": {**usage, "model": model_name, "provider": provider},
        "context": {"tools_available": len(kwargs.get("tools") or []), "tools_executed": 0},
        "metadata": {
            "provider": provider,
            "model": model_name,
            "streaming": bool(kwargs.get("streaming")),
            "generation_config": dict(kwargs.get("generation_config") or {}),
            "execution_time_ms": round(elapsed * 1000, 2),
        },
    }


# --- embeddings ------------------------------------------------------------------------------

EMBEDDING_PROVIDERS = frozenset({"mock", "minilm", "local", "huggingface", "sentence-transformers"})
OPERATIONS = ("embed_text", "embed_batch", "calculate_similarity")
MINILM = "all-MiniLM-L6-v2"

_model_lock = threading.Lock()
_model: Any = None


def shared_minilm() -> Any:
    """The process's MiniLM, loaded on first use (blocking: call it from a worker thread)."""
    global _model
    with _model_lock:
        if _model is None:
            try:
                from ..services.memory import MiniLM
            except ModuleNotFoundError as exc:
                raise NodeConfigurationError(
                    f"EmbeddingGeneratorNode needs the voice extra (missing {exc.name!r}): "
                    "pip install 'trioworks[voice]'"
                ) from exc
            _model = MiniLM()
        return _model


def similarity(a: Sequence[float], b: Sequence[float], metric: str) -> float:
    if len(a) != len(b):
        raise NodeValidationError(f"embeddings differ in length ({len(a)} and {len(b)})")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    if metric == "dot_product":
        return dot
    if metric == "euclidean":
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))
    if metric == "cosine":
        norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
        return dot / norm if norm else 0.0
    raise NodeValidationError(f"similarity_metric must be cosine, euclidean or dot_product, got {metric!r}")


@register_node()
class EmbeddingGeneratorNode(Node):
    """Sentence embeddings (384 dims) with the memory service's all-MiniLM-L6-v2."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "operation": _opt("operation", str, "embed_text", ", ".join(OPERATIONS)),
            "provider": _opt("provider", str, "minilm", "minilm (Kailash's mock maps here too)"),
            "model": _opt("model", str, MINILM),
            "input_text": _opt("input_text", str),
            "input_texts": _opt("input_texts", list),
            "embedding_1": _opt("embedding_1", list),
            "embedding_2": _opt("embedding_2", list),
            "similarity_metric": _opt("similarity_metric", str, "cosine"),
            "batch_size": _opt("batch_size", int, 32),
            "normalize": _opt("normalize", bool, True, "MiniLM's vectors are unit length already"),
        }

    def get_output_schema(self) -> dict[str, NodeParameter]:
        return {n: _opt(n, Any) for n in ("success", "embedding", "embeddings", "dimensions", "similarity")}

    def run(self, **kwargs: Any) -> dict[str, Any]:
        operation = kwargs.get("operation") or "embed_text"
        provider = str(kwargs.get("provider") or "minilm").lower()
        if operation not in OPERATIONS:
            raise NodeValidationError(
                f"EmbeddingGeneratorNode {self.id!r}: operation must be one of {', '.join(OPERATIONS)}, "
                f"got {operation!r}"
            )
        if provider not in EMBEDDING_PROVIDERS:
            raise NodeValidationError(
                f"EmbeddingGeneratorNode {self.id!r}: provider {provider!r} is not available; "
                f"trioworks embeds with {MINILM} (provider 'minilm')"
            )
        start = time.perf_counter()
        common = {"success": True, "operation": operation, "provider": provider, "model": MINILM}
        metric = kwargs.get("similarity_metric") or "cosine"
        if operation == "calculate_similarity":
            a, b = kwargs.get("embedding_1"), kwargs.get("embedding_2")
            texts = kwargs.get("input_texts") or []
            if not (a and b):
                if len(texts) < 2:
                    raise NodeValidationError(
                        f"EmbeddingGeneratorNode {self.id!r}: calculate_similarity needs embedding_1 and "
                        "embedding_2, or input_texts with two texts"
                    )
                a, b = self._encode(texts[:2], kwargs)
                common["texts"] = list(texts[:2])
            return {**common, "similarity": similarity(a, b, metric), "metric": metric}
        if operation == "embed_text":
            text = kwargs.get("input_text")
            if not text:
                raise NodeValidationError(
                    f"EmbeddingGeneratorNode {self.id!r}: input_text is required for embed_text"
                )
            (vector,) = self._encode([str(text)], kwargs)
            return {
                **common,
                "embedding": vector,
                "dimensions": len(vector),
                "text_length": len(text),
                "cached": False,
                "processing_time_ms": round((time.perf_counter() - start) * 1000, 2),
                "usage": {"tokens": len(str(text).split())},
            }
        texts = [str(t) for t in kwargs.get("input_texts") or []]
        if not texts:
            raise NodeValidationError(
                f"EmbeddingGeneratorNode {self.id!r}: input_texts (a non-empty list) is required for embed_batch"
            )
        vectors = self._encode(texts, kwargs)
        return {
            **common,
            "embeddings": [
                {
                    "text": t[:100] + "..." if len(t) > 100 else t,
                    "embedding": v,
                    "cached": False,
                    "dimensions": len(v),
                    "chunks": 1,
                }
                for t, v in zip(texts, vectors, strict=True)
            ],
            "total_texts": len(texts),
            "total_embeddings": len(vectors),
            "cache_hits": 0,
            "batch_size": kwargs.get("batch_size") or 32,
            "processing_time_ms": round((time.perf_counter() - start) * 1000, 2),
            "usage": {"total_tokens": sum(len(t.split()) for t in texts)},
        }

    def _encode(self, texts: list[str], kwargs: Mapping[str, Any]) -> list[list[float]]:
        rows = shared_minilm().encode(texts, batch_size=int(kwargs.get("batch_size") or 32))
        return [[float(x) for x in row] for row in rows]
