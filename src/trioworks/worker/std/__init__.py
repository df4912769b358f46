"""The standard activities of Kruxia Flow's std worker (and py-std's ``script``), on Trio.

Same activity names, parameters and outputs as the original's Rust std worker and py-std::

    from trioworks.worker import Worker, WorkerConfig
    from trioworks.worker.std import STD_ACTIVITIES

    trio.run(Worker(WorkerConfig.from_env(worker="std"), STD_ACTIVITIES).run)

or ``trioworks worker --std``, which polls for worker ``std`` (all of them) and ``py-std``
(``script``) at once.

| activity | output | |
|---|---|---|
| ``http_request`` | ``response`` | httpx; timeouts; response size cap |
| ``echo`` | ``echo`` | the parameters, unchanged |
| ``postgres_query`` | ``result`` | psycopg, ``$1`` parameters bound by the server |
| ``postgres_transaction`` | ``result`` | several statements, one transaction |
| ``llm_prompt`` | ``result`` | offline backend by default; OpenAI-compatible endpoints |
| ``embedding`` | ``result`` | all-MiniLM-L6-v2 by default |
| ``script`` | ``result`` | user Python in a child process |
"""

import httpx as _httpx

from .._activity import ActivityDefinition as _Definition
from .._activity import activity as _activity
from ._echo import echo as _echo
from ._http import DEFAULT_MAX_RESPONSE_BYTES, HttpRequestParams
from ._http import make_http_request as _make_http_request
from ._llm import EmbeddingParams, LLMPromptParams, estimate_tokens
from ._llm import embedding as _embedding
from ._llm import llm_prompt as _llm_prompt
from ._postgres import PostgresQueryParams, PostgresTransactionParams, TransactionStatement
from ._postgres import postgres_query as _postgres_query
from ._postgres import postgres_transaction as _postgres_transaction
from ._script import ScriptParams
from ._script import script as _script

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "PY_STD_ACTIVITIES",
    "PY_STD_WORKER",
    "STD_ACTIVITIES",
    "STD_WORKER",
    "EmbeddingParams",
    "HttpRequestParams",
    "LLMPromptParams",
    "PostgresQueryParams",
    "PostgresTransactionParams",
    "ScriptParams",
    "TransactionStatement",
    "echo",
    "embedding",
    "estimate_tokens",
    "http_request",
    "llm_prompt",
    "postgres_query",
    "postgres_transaction",
    "script",
    "std_activities",
]

STD_WORKER = "std"
"""The worker type of the original's std worker, and the server's default ``worker``."""
PY_STD_WORKER = "py-std"
"""The worker type of the original's Python standard worker (its ``script`` activity)."""

http_request: _Definition = _activity("http_request")(_make_http_request())
echo: _Definition = _activity("echo")(_echo)
postgres_query: _Definition = _activity("postgres_query")(_postgres_query)
postgres_transaction: _Definition = _activity("postgres_transaction")(_postgres_transaction)
llm_prompt: _Definition = _activity("llm_prompt")(_llm_prompt)
embedding: _Definition = _activity("embedding")(_embedding)
script: _Definition = _activity("script")(_script)

STD_ACTIVITIES: tuple[_Definition, ...] = (
    http_request,
    echo,
    postgres_query,
    postgres_transaction,
    llm_prompt,
    embedding,
    script,
)
"""Everything, for worker ``std`` (``script`` included, a convenience the original lacks)."""
PY_STD_ACTIVITIES: tuple[_Definition, ...] = (script,)
"""What py-std serves: ``script``."""


def std_activities(*, http_transport: _httpx.AsyncBaseTransport | None = None) -> tuple[_Definition, ...]:
    """:data:`STD_ACTIVITIES`, with ``http_request`` sending through ``http_transport`` when given.

    httpx's transport is the seam to route the workflows' HTTP calls elsewhere without editing
    them (the conformance suite serves api.weather.gov, httpbin.org and Mailpit locally with an
    ``httpx.ASGITransport``).
    """
    if http_transport is None:
        return STD_ACTIVITIES
    routed = _activity("http_request")(_make_http_request(http_transport))
    return tuple(routed if d.name == "http_request" else d for d in STD_ACTIVITIES)
