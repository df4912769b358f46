"""``llm_prompt`` and ``embedding``: the original std worker's LLM activities.

The original calls Anthropic, OpenAI, Google or Ollama by the ``provider/model`` names in
``model`` (one name, or a list tried in order: the fallback chain). Here every provider is
reached through its OpenAI-compatible endpoint, and by default (``TRIOWORKS_STD_LLM=offline``)
**nothing leaves the machine**: every model of the chain is answered by the llm service's
offline backend (deterministic rules, not a language model) and embeddings come from the memory
service's all-MiniLM-L6-v2. ``TRIOWORKS_STD_LLM=remote`` sends each chain entry to
``<PROVIDER>_BASE_URL`` (defaults: OpenAI, Anthropic's and Google's OpenAI-compatible endpoints,
Ollama on localhost) with ``<PROVIDER>_API_KEY``.

Budget and cost as the original: with ``model_pricing`` (``{"provider/model":
{input_price_per_million, output_price_per_million}}``) and a budget limit
(``activity_budget_limit_usd`` / ``workflow_budget_limit_usd``, the smaller wins), a chain entry
whose estimated cost (prompt tokens estimated at 4 characters each, ``max_tokens`` or 4096
output tokens) would take ``cumulative_activity_cost_usd`` over the limit is skipped and listed
in ``budget_skipped_models``. ``cost_usd`` is the actual cost from the usage and the pricing (a
decimal string, as the original's ``Decimal``), else ``null``; it is also reported to the server
as the activity's cost and usage.
"""

from __future__ import annotations

import math
import os
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import httpx
import trio

from ...core import run_in_thread
from .._context import ActivityContext
from .._errors import ActivityError, TerminalActivityError
from .._results import ActivityResult
from .._wire import UsageEntry

__all__ = ["EmbeddingParams", "LLMPromptParams", "embedding", "llm_prompt"]

MODE_ENV = "TRIOWORKS_STD_LLM"
_REMOTE_DEFAULTS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
    "google": "https://generativelanguage.googleapis.com/v1beta/openai",
    "ollama": "http://localhost:11434/v1",
}
_MODEL_LIMITER = trio.CapacityLimiter(1)
"""The ``embedding model`` limiter: MiniLM loading and encoding (CPU-bound) one at a time."""
_minilm: Any = None


def _chain(model: Any) -> list[tuple[str, str]]:
    names = [model] if isinstance(model, str) else model
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise TerminalActivityError(
            f"parameter 'model' must be 'provider/model' or a non-empty list of them, got {model!r}",
            code="INVALID_PARAMETERS",
        )
    chain = []
    for name in names:
        provider, sep, rest = name.partition("/")
        if not sep or not provider or not rest or "/" in rest:
            raise TerminalActivityError(
                f"parameter 'model': expected 'provider/model', got {name!r}", code="INVALID_PARAMETERS"
            )
        chain.append((provider, rest))
    return chain


def _remote() -> bool:
    mode = os.environ.get(MODE_ENV, "offline")
    if mode not in ("offline", "remote"):
        raise TerminalActivityError(
            f"{MODE_ENV} must be 'offline' or 'remote', got {mode!r}", code="CONFIG_ERROR"
        )
    return mode == "remote"


def _endpoint(provider: str) -> tuple[str, str | None]:
    base = os.environ.get(f"{provider.upper()}_BASE_URL") or _REMOTE_DEFAULTS.get(provider)
    if base is None:
        raise ActivityError(f"no endpoint for provider {provider!r}: set {provider.upper()}_BASE_URL")
    return base, os.environ.get(f"{provider.upper()}_API_KEY")


def _decimal(field: str, value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise TerminalActivityError(
            f"parameter {field!r} must be a number, got {value!r}", code="INVALID_PARAMETERS"
        ) from None


def estimate_tokens(text: str) -> int:
    """The original's rough estimate: about four characters a token."""
    return max(1, math.ceil(len(text) / 4))


@attrs.frozen(kw_only=True)
class LLMPromptParams:
    model: Any
    prompt: str
    system_prompt: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: list[str] | None = None
    model_pricing: dict[str, dict[str, Any]] | None = None
    activity_budget_limit_usd: Any = None
    workflow_budget_limit_usd: Any = None
    cumulative_activity_cost_usd: Any = None


@attrs.frozen
class _Reply:
    content: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str


def _price(pricing: dict[str, Any] | None, key: str) -> tuple[Decimal, Decimal] | None:
    entry = (pricing or {}).get(key)
    if entry is None:
        return None
    return (
        _decimal(f"model_pricing.{key}.input_price_per_million", entry.get("input_price_per_million"))
        or Decimal(0),
        _decimal(f"model_pricing.{key}.output_price_per_million", entry.get("output_price_per_million"))
        or Decimal(0),
    )


def _budget_limit(params: LLMPromptParams) -> Decimal | None:
    limits = [
        d
        for d in (
            _decimal("activity_budget_limit_usd", params.activity_budget_limit_usd),
            _decimal("workflow_budget_limit_usd", params.workflow_budget_limit_usd),
        )
        if d is not None
    ]
    return min(limits) if limits else None


async def _complete(provider: str, model: str, params: LLMPromptParams) -> _Reply:
    from ...bus import LLMParams
    from ...services.llm import BackendError, ChatMessage, LLMConfig, OfflineBackend, OpenAIBackend

    messages = (
        *([ChatMessage(role="system", content=params.system_prompt)] if params.system_prompt else []),
        ChatMessage(role="user", content=params.prompt),
    )
    llm_params = LLMParams(
        model=model, max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p
    )
    backend: Any
    if _remote() and provider != "offline":
        base, key = _endpoint(provider)
        backend = OpenAIBackend(LLMConfig(provider="openai", base_url=base, model=model, api_key=key))
    else:
        backend = OfflineBackend(LLMConfig(word_delay=0.0))

    async def ignore(_text: str) -> None:
        pass

    try:
        completion = await backend.complete(messages, tools=(), params=llm_params, on_delta=ignore)
    except BackendError as exc:
        raise ActivityError(str(exc), retryable=exc.retryable) from None
    finally:
        await backend.aclose()
    text = completion.text
    usage = completion.usage or {}
    prompt_tokens = usage.get("prompt_tokens") or estimate_tokens(
        (params.system_prompt or "") + params.prompt
    )
    output_tokens = usage.get("completion_tokens") or estimate_tokens(text)
    finish = "MaxTokens" if params.max_tokens is not None and output_tokens >= params.max_tokens else "Stop"
    if params.stop_sequences:
        cut = [text.index(s) for s in params.stop_sequences if s and s in text]
        text = text[: min(cut)] if cut else text
    return _Reply(text, int(prompt_tokens), int(output_tokens), finish)


async def llm_prompt(params: LLMPromptParams, ctx: ActivityContext) -> ActivityResult:
    """Try the chain in order; the first entry within budget that answers gives output ``result``."""
    chain = _chain(params.model)
    limit = _budget_limit(params) if params.model_pricing else None
    spent = _decimal("cumulative_activity_cost_usd", params.cumulative_activity_cost_usd) or Decimal(0)
    skipped: list[str] = []
    errors: list[str] = []
    for provider, model in chain:
        key = f"{provider}/{model}"
        price = _price(params.model_pricing, key)
        if limit is not None and price is not None:
            estimate_in = estimate_tokens(params.prompt + (params.system_prompt or ""))
            estimate = (estimate_in * price[0] + (params.max_tokens or 4096) * price[1]) / Decimal(1_000_000)
            if spent + estimate > limit:
                skipped.append(key)
                continue
        try:
            reply = await _complete(provider, model, params)
        except ActivityError as exc:
            errors.append(f"{key}: {exc.message}")
            continue
        cost = (
            None
            if price is None
            else (reply.prompt_tokens * price[0] + reply.output_tokens * price[1]) / Decimal(1_000_000)
        )
        result = ActivityResult.value(
            "result",
            {
                "content": reply.content,
                "model": model,
                "provider": provider,
                "finish_reason": reply.finish_reason,
                "cost_usd": None if cost is None else str(cost),
                "budget_skipped_models": skipped,
                "usage": {
                    "prompt_tokens": reply.prompt_tokens,
                    "output_tokens": reply.output_tokens,
                    "total_tokens": reply.prompt_tokens + reply.output_tokens,
                    "cached_tokens": None,
                },
            },
        )
        usage = UsageEntry(
            provider=provider,
            model=model,
            input_tokens=reply.prompt_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=None if cost is None else float(cost),
        )
        result = result.with_usage(usage)
        return result if cost is None else result.with_cost(cost)
    if not errors:
        raise TerminalActivityError(
            f"llm_prompt: every model exceeds the budget (skipped: {', '.join(skipped)})",
            code="BUDGET_EXCEEDED",
        )
    raise ActivityError(f"llm_prompt: all providers failed: {'; '.join(errors)}")


@attrs.frozen(kw_only=True)
class EmbeddingParams:
    model: Any
    input: list[str]
    batch_size: int = 500


def _encode(texts: list[str], batch_size: int) -> list[list[float]]:
    global _minilm
    if _minilm is None:
        from ...services.memory import MiniLM

        _minilm = MiniLM()
    vectors = _minilm.encode(texts, batch_size=max(1, min(batch_size, 64)))
    return [[float(x) for x in row] for row in vectors]


async def _remote_embed(provider: str, model: str, texts: list[str]) -> tuple[list[list[float]], int]:
    base, key = _endpoint(provider)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        async with httpx.AsyncClient(timeout=60.0, headers=headers) as client:
            reply = await client.post(base.rstrip("/") + "/embeddings", json={"model": model, "input": texts})
    except httpx.HTTPError as exc:
        raise ActivityError(f"embedding: {provider}/{model}: {exc}") from None
    if reply.status_code >= 400:
        raise ActivityError(
            f"embedding: {provider}/{model}: HTTP {reply.status_code}",
            retryable=reply.status_code == 429 or reply.status_code >= 500,
        )
    body = reply.json()
    rows = sorted(body["data"], key=lambda d: d["index"])
    return [row["embedding"] for row in rows], int((body.get("usage") or {}).get("prompt_tokens") or 0)


async def embedding(params: EmbeddingParams, ctx: ActivityContext) -> ActivityResult:
    """Embed every text of ``input``; output ``result`` as the original's (inline embeddings)."""
    chain = _chain(params.model)
    errors: list[str] = []
    for provider, model in chain:
        try:
            if _remote() and provider != "offline":
                vectors, tokens = await _remote_embed(provider, model, list(params.input))
            else:
                vectors = await run_in_thread(
                    _encode, list(params.input), params.batch_size, limiter=_MODEL_LIMITER
                )
                tokens = sum(estimate_tokens(t) for t in params.input)
        except ActivityError as exc:
            errors.append(exc.message)
            continue
        return ActivityResult.value(
            "result",
            {
                "embeddings": vectors,
                "embeddings_file": None,
                "embedding_count": len(vectors),
                "model": model,
                "provider": provider,
                "usage": {
                    "prompt_tokens": tokens,
                    "output_tokens": 0,
                    "total_tokens": tokens,
                    "cached_tokens": None,
                },
            },
        )
    raise ActivityError(f"embedding: all providers failed: {'; '.join(errors)}")
