"""The built-in offline backend: deterministic rules, NOT a language model.

It exists so that the demo and the tests exercise the whole llm pipeline (streaming, RAG,
tool calls, cancellation) on a machine without a model. What it answers:

1. after a tool result: ``"The <tool> tool says: <result>."``;
2. a request that names a registered tool (a word of the tool's name, other than a generic verb
   such as ``get``, appears in the text; e.g. "what time is it" -> ``get_time``): a call to it;
3. with RAG context: ``"From memory: <best document>"`` (an earlier answer of its own only when
   nothing else was found);
4. otherwise: ``"I am the offline backend, not a language model. You said: <text>"``.
"""

from __future__ import annotations

import re
from typing import Any

import trio

from ...bus import LLMParams, ToolSpec
from ._chat import ChatMessage, Completion, OnDelta, ToolCall
from ._config import LLMConfig

__all__ = ["CONTEXT_MARKER", "OfflineBackend"]

CONTEXT_MARKER = "Relevant memories:\n"
"""Starts the RAG context block the service appends to the system prompt (one memory a line)."""

_ANSWER = "From memory: "

_GENERIC = frozenset({"get", "set", "do", "run", "call", "fetch", "make", "the", "a", "of", "to", "for"})


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _tool_words(spec: ToolSpec) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", spec.function.name.lower())) - _GENERIC - {""}


def _arguments(spec: ToolSpec, text: str) -> dict[str, Any]:
    # A tool taking exactly one required string gets the user's text; others get no arguments.
    params = spec.function.parameters
    required = params.get("required") or []
    props = params.get("properties") or {}
    if len(required) == 1 and (props.get(required[0]) or {}).get("type") == "string":
        return {required[0]: text}
    return {}


class OfflineBackend:
    """Rule-based replies streamed word by word (``word_delay`` apart). Deterministic."""

    provider = "offline"

    def __init__(self, config: LLMConfig | None = None) -> None:
        config = config if config is not None else LLMConfig()
        self.model = config.model if config.provider == "offline" else "offline-rules"
        self.word_delay = config.word_delay
        self._calls = 0

    async def aclose(self) -> None:
        pass

    def _decide(self, messages: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...]) -> Completion | str:
        last = messages[-1] if messages else ChatMessage(role="user")
        if last.role == "tool":
            return f"The {last.name or 'tool'} tool says: {last.content.strip()}."
        text = last.content
        words = _words(text)
        for spec in tools:
            if _tool_words(spec) & words:
                self._calls += 1
                call = ToolCall(
                    id=f"offline-{self._calls}", name=spec.function.name, arguments=_arguments(spec, text)
                )
                return Completion(tool_calls=(call,), model=self.model)
        system = next((m.content for m in messages if m.role == "system"), "")
        if CONTEXT_MARKER in system:
            memories = [
                m.lstrip("- ").strip() for m in system.split(CONTEXT_MARKER, 1)[1].strip().splitlines()
            ]
            # Memory also holds what was said back (every tts/say): quoting an earlier answer of
            # ours would nest "From memory: From memory: ...", so the best memory of another kind wins.
            memories = [m for m in memories if not m.startswith(_ANSWER)] or memories
            if memories:
                return f"{_ANSWER}{memories[0].removeprefix(_ANSWER)}"
        return f"I am the offline backend, not a language model. You said: {text.strip()}"

    async def complete(
        self,
        messages: tuple[ChatMessage, ...],
        *,
        tools: tuple[ToolSpec, ...],
        params: LLMParams | None,
        on_delta: OnDelta,
    ) -> Completion:
        """See :meth:`Backend.complete`. Checkpoints before every word (a :func:`trio.sleep`)."""
        decided = self._decide(messages, tools)
        if isinstance(decided, Completion):
            await trio.lowlevel.checkpoint()
            return decided
        words = decided.split(" ")
        if params is not None and params.max_tokens is not None:
            words = words[: params.max_tokens]
        for i, word in enumerate(words):
            await trio.sleep(self.word_delay)
            await on_delta(word if i == 0 else " " + word)
        return Completion(
            text=" ".join(words),
            model=self.model,
            usage={"completion_tokens": len(words), "total_tokens": len(words)},
        )
