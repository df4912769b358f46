"""Settings of the llm service: which backend, where, and every deadline."""

from __future__ import annotations

import os
from typing import Literal

import attrs
from attrs import validators as v

from ...core import RetryPolicy
from .._settings import SettingError

__all__ = ["LLMConfig", "LLMConfigError"]


class LLMConfigError(SettingError):
    """A setting of the llm service is invalid; names the setting and what it expects."""

    prefix = "llm config"


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise LLMConfigError(attribute.name, f"expected a positive number of seconds, got {value!r}")


def _count(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LLMConfigError(attribute.name, f"expected an integer >= 1, got {value!r}")


def _provider(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("offline", "openai"):
        raise LLMConfigError("provider", f"expected 'offline' or 'openai', got {value!r}")


def _base_url(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise LLMConfigError("base_url", f"expected an http:// or https:// URL, got {value!r}")


@attrs.frozen(kw_only=True)
class LLMConfig:
    """How the llm service generates and how long it waits.

    ``provider="openai"`` talks to any OpenAI-compatible server (``base_url`` such as
    ``http://localhost:11434/v1`` for Ollama or ``https://api.openai.com/v1``; ``api_key``
    defaults to ``$OPENAI_API_KEY``). ``provider="offline"`` is the built-in rule-based backend
    (not a language model) used by the demo and the tests.
    """

    provider: Literal["offline", "openai"] = attrs.field(default="offline", validator=_provider)
    base_url: str | None = attrs.field(default=None, validator=_base_url)
    model: str = "offline-rules"
    api_key: str | None = attrs.field(factory=lambda: os.environ.get("OPENAI_API_KEY"), repr=False)
    system_prompt: str = "You are a helpful voice assistant. Answer briefly."
    max_concurrent: int = attrs.field(default=2, validator=_count)
    """Generations running at once; more requests wait (cancellable) for a slot."""
    max_pending: int = attrs.field(default=16, validator=_count)
    """Requests accepted (running or waiting); one more is answered with a ``busy`` error."""
    rag_timeout: float = attrs.field(default=5.0, validator=_positive)
    """The spec's ``memory/query`` deadline; past it the answer is made with no context."""
    tool_timeout: float = attrs.field(default=30.0, validator=_positive)
    """The spec's tool-call deadline; past it the model is told the tool timed out."""
    max_tool_rounds: int = attrs.field(default=4, validator=_count)
    first_token_timeout: float = attrs.field(default=30.0, validator=_positive)
    """From sending the HTTP request to the first streamed event (a retryable failure)."""
    idle_timeout: float = attrs.field(default=30.0, validator=_positive)
    """Longest silence between two streamed events once the reply has begun."""
    retry: RetryPolicy = attrs.field(
        factory=lambda: RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=5.0)
    )
    """Retries of the HTTP request, only before the first token."""
    word_delay: float = attrs.field(default=0.03, validator=v.ge(0))
    """Offline backend: pause between streamed words (a stand-in for generation time)."""

    def __attrs_post_init__(self) -> None:
        if self.provider == "openai" and self.base_url is None:
            raise LLMConfigError(
                "base_url", "provider 'openai' needs a base URL, e.g. http://localhost:11434/v1"
            )
