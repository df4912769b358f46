"""``llm_prompt`` (offline backend), ``embedding`` (real MiniLM) and ``script`` (child process)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
from std_helpers import activity_context, output, run_std

from trioworks.worker import ActivityError
from trioworks.worker.std import embedding, llm_prompt, script

PRICING = {
    "openai/o1-pro": {"input_price_per_million": 150, "output_price_per_million": 600},
    "google/gemini-flash-lite": {"input_price_per_million": "0.075", "output_price_per_million": "0.30"},
}


async def test_llm_prompt_offline_output_shape() -> None:
    result = await run_std(
        llm_prompt, {"model": "anthropic/claude-haiku", "prompt": "Hello there", "max_tokens": 500}
    )
    reply = output(result, "result")
    assert reply["content"] == "I am the offline backend, not a language model. You said: Hello there"
    assert (reply["provider"], reply["model"], reply["finish_reason"]) == (
        "anthropic",
        "claude-haiku",
        "Stop",
    )
    assert reply["cost_usd"] is None
    assert reply["budget_skipped_models"] == []
    usage = reply["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["output_tokens"]
    assert set(usage) == {"prompt_tokens", "output_tokens", "total_tokens", "cached_tokens"}


async def test_llm_prompt_max_tokens_truncates() -> None:
    reply = output(
        await run_std(llm_prompt, {"model": "x/y", "prompt": "a b c d", "max_tokens": 3}), "result"
    )
    assert reply["finish_reason"] == "MaxTokens"
    assert reply["usage"]["output_tokens"] == 3


async def test_budget_skips_expensive_models_and_reports_cost() -> None:
    result = await run_std(
        llm_prompt,
        {
            "model": ["openai/o1-pro", "google/gemini-flash-lite"],
            "prompt": "Rust or Go?",
            "max_tokens": 1000,
            "model_pricing": PRICING,
            "workflow_budget_limit_usd": 0.01,
        },
    )
    reply = output(result, "result")
    assert reply["budget_skipped_models"] == ["openai/o1-pro"]
    assert reply["provider"] == "google"
    usage = reply["usage"]
    expected = (
        usage["prompt_tokens"] * Decimal("0.075") + usage["output_tokens"] * Decimal("0.30")
    ) / 1_000_000
    assert Decimal(reply["cost_usd"]) == expected
    assert result.cost_usd == pytest.approx(float(expected))
    assert result.usage[0].provider == "google"


async def test_every_model_over_budget_is_terminal() -> None:
    with pytest.raises(ActivityError) as caught:
        await run_std(
            llm_prompt,
            {
                "model": "openai/o1-pro",
                "prompt": "x",
                "model_pricing": PRICING,
                "activity_budget_limit_usd": "0.0001",
            },
        )
    assert caught.value.code == "BUDGET_EXCEEDED"
    assert caught.value.retryable is False


async def test_bad_model_name_is_named() -> None:
    with pytest.raises(ActivityError, match="provider/model"):
        await run_std(llm_prompt, {"model": "claude", "prompt": "x"})


async def test_embedding_with_minilm() -> None:
    pytest.importorskip("tokenizers")
    result = await run_std(
        embedding,
        {"model": "google/gemini-embedding-001", "input": ["Rust is fast", "Rust is quick", "Bananas"]},
    )
    reply = output(result, "result")
    assert reply["embedding_count"] == 3
    assert reply["embeddings_file"] is None
    vectors = reply["embeddings"]
    assert [len(v) for v in vectors] == [384, 384, 384]

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])


async def test_script_runs_in_a_child_process() -> None:
    result = await run_std(
        script,
        {
            "script": "import os\nOUTPUT = {'total': sum(INPUT['xs']), 'key': activity_key, 'pid': os.getpid()}",
            "inputs": {"xs": [1, 2, 3]},
        },
        key="sum_it",
    )
    reply = output(result, "result")
    assert reply["total"] == 6
    assert reply["key"] == "sum_it"
    import os

    assert reply["pid"] != os.getpid()


async def test_script_top_level_await_as_the_sdk_generates_it() -> None:
    source = "async def f(a, b):\n    return {'sum': a + b}\n\na = INPUT.get('a')\nb = INPUT.get('b')\nOUTPUT = await f(a, b)"
    assert output(await run_std(script, {"script": source, "inputs": {"a": 1, "b": 2}}), "result") == {
        "sum": 3
    }


@pytest.mark.parametrize(
    ("source", "code", "message"),
    [
        ("", "MISSING_SCRIPT", "No script provided"),
        ("OUTPUT = (", "SYNTAX_ERROR", "SyntaxError at line 1"),
        ("raise ValueError('bad row')", "SCRIPT_ERROR", "ValueError: bad row"),
        ("OUTPUT = {'x': object()}", "SCRIPT_ERROR", "OUTPUT is not JSON"),
    ],
)
async def test_script_errors_as_py_std(source: str, code: str, message: str) -> None:
    try:
        result = await run_std(script, {"script": source})
    except ActivityError as exc:
        assert (exc.code, exc.retryable) == (code, False)
        assert message in exc.message
    else:
        assert (result.error_code, result.retryable) == (code, False)
        assert result.error_message == message


async def test_script_timeout_kills_the_process() -> None:
    with pytest.raises(ActivityError) as caught:
        await run_std(script, {"script": "while True:\n    pass", "timeout_seconds": 0.5})
    assert caught.value.code == "TIMEOUT"


async def test_script_cancelled_with_the_activity() -> None:
    async with activity_context("script") as ctx:
        params = script.parse_params({"script": "import time\ntime.sleep(600)"})
        with trio.move_on_after(0.5) as scope:
            await script.fn(params, ctx)
    assert scope.cancelled_caught
