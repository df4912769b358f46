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

from __future__ import annotations

from .._activity import ActivityDefinition, activity
from ._echo import echo as _echo
from ._http import DEFAULT_MAX_RESPONSE_BYTES, HttpRequestParams
from ._http import http_request as _http_request
from ._llm import EmbeddingParams, LLMPromptParams, estimate_tokens
from ._llm import embedding as _embedding
from ._llm import llm_prompt as _llm_prompt
from ._postgres import PostgresQueryParams, PostgresTransactionParams
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
    "echo",
    "embedding",
    "estimate_tokens",
    "http_request",
    "llm_prompt",
    "postgres_query",
    "postgres_transaction",
    "script",
]

STD_WORKER = "std"
"""The worker type of the original's std worker, and the server's default ``worker``."""
PY_STD_WORKER = "py-std"
"""The worker type of the original's Python standard worker (its ``script`` activity)."""

http_request: ActivityDefinition = activity("http_request")(_http_request)
echo: ActivityDefinition = activity("echo")(_echo)
postgres_query: ActivityDefinition = activity("postgres_query")(_postgres_query)
postgres_transaction: ActivityDefinition = activity("postgres_transaction")(_postgres_transaction)
llm_prompt: ActivityDefinition = activity("llm_prompt")(_llm_prompt)
embedding: ActivityDefinition = activity("embedding")(_embedding)
script: ActivityDefinition = activity("script")(_script)

STD_ACTIVITIES: tuple[ActivityDefinition, ...] = (
    http_request,
    echo,
    postgres_query,
    postgres_transaction,
    llm_prompt,
    embedding,
    script,
)
"""Everything, for worker ``std`` (``script`` included, a convenience the original lacks)."""
PY_STD_ACTIVITIES: tuple[ActivityDefinition, ...] = (script,)
"""What py-std serves: ``script``."""
