"""What each upstream example is started with (its README or comments) and what must happen.

By default every activity of the definition must end ``completed``; ``skipped`` lists the ones
the original's rules skip for these inputs. ``check`` looks at the run (outputs, captured mail,
the examples database). ``exclude`` is a reason the example cannot run here at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).parent
# Why kruxiaflow-python's examples 11-15 (script activities feeding each other) are left out.
_SCRIPT_CHAIN = (
    "broken on the original: its py-std `script` activity (kruxiaflow 0.4.0, workers/script_activity.py) "
    "compiles the script with compile(..., 'exec'), so the SDK's generated `OUTPUT = await f(...)` is a "
    "SyntaxError there; past that (this std worker accepts the await), a script's OUTPUT is reported as "
    "the output `result`, and the next step's `{{step.key}}` reads null (the original's template context "
    "holds the output map as reported): measured here with their packages installed, sdk-12 fails in "
    "validate_data (KeyError 'order_id') and sdk-13 in feature_engineering (KeyError 'total_charges')"
)
# The server's backends: SQLite in the default run, Postgres too with TRIOWORKS_CONFORMANCE=1.
BACKENDS = ["sqlite", "postgres"] if os.environ.get("TRIOWORKS_CONFORMANCE") == "1" else ["sqlite"]


@attrs.frozen(kw_only=True)
class Run:
    """What a check may look at."""

    workflow_id: str
    body: dict[str, Any]
    outputs: dict[str, Any]
    mail: list[dict[str, Any]]
    sql: Callable[[str], list[tuple[Any, ...]]]


@attrs.frozen(kw_only=True)
class Case:
    id: str
    file: str
    """``examples/NAME.yaml`` (deployed with curl's --data-binary) or ``sdk_examples/NAME.py`` (the SDK's deploy)."""
    definition: str
    inputs: dict[str, Any] = attrs.field(factory=dict)
    skipped: frozenset[str] = frozenset()
    check: Callable[[Run], None] | None = None
    network: bool = False
    slow: bool = False
    exclude: str | None = None
    clock_speed: float = 1.0
    """How fast the server's clock runs (delays of minutes in seconds); leases run as fast."""


def mail_text(run: Run) -> str:
    return "\n".join(str(m) for m in run.mail)


def _reminders(run: Run) -> None:
    """Each reminder is sent its delay (1, 2, 5 minutes) after the previous one completed."""
    import datetime

    def at(text: str) -> float:
        return datetime.datetime.fromisoformat(text).timestamp()

    rows = {a["activity_key"]: a for a in run.body["activities"]}
    chain = [
        "send_initial_notification",
        "send_first_reminder",
        "send_escalated_reminder",
        "send_final_escalation",
    ]
    for before, after, minutes in zip(chain, chain[1:], (1, 2, 5), strict=False):
        waited = at(rows[after]["started_at"]) - at(rows[before]["completed_at"])
        assert waited >= minutes * 60, f"{after} started {waited:.0f} s after {before}, not {minutes} min"
    assert [m["Subject"].split(":")[0] for m in run.mail] == [
        "Task Assigned",
        "Reminder",
        "ESCALATED",
        "CRITICAL",
    ]


def _weather(run: Run) -> None:
    assert len(run.mail) == 1
    assert "Temperature: 41" in run.mail[0]["Text"]
    assert run.workflow_id in run.mail[0]["Subject"]


def _weather_dynamic(run: Run) -> None:
    text = run.mail[0]["Text"]
    assert "Address: 1600 Pennsylvania Avenue NW" in text
    assert "Temperature: 41" in text and "Conditions: Mostly Clear" in text


def _valid(run: Run) -> None:
    assert run.sql("SELECT email FROM valid_users") == [("user@example.com",)]
    assert run.sql("SELECT email FROM invalid_users") == []
    assert "Valid: true" in run.mail[0]["Text"]


def _invalid(run: Run) -> None:
    assert run.sql("SELECT email, reason FROM invalid_users") == [
        ("bad@example.com", "Email validation failed")
    ]
    assert run.sql("SELECT email FROM valid_users") == []


def _documents(run: Run) -> None:
    text = run.mail[0]["Text"]
    for line in ("Documents Processed: 3", "Doc 1: Introduction", "Doc 2: Architecture", "Doc 3: Conclusion"):
        assert line in text


def _moderation(run: Run) -> None:
    assert [r[0] for r in run.sql("SELECT content_id FROM moderation_log")] == ["content_12345"]


def _research(run: Run) -> None:
    rows = run.sql("SELECT question, provider, model FROM research_log")
    assert len(rows) == 1 and rows[0][0].startswith("What are the key differences")


def _faq(run: Run) -> None:
    assert run.sql("SELECT question, cache_hit FROM faq_log") == [("What are your business hours?", False)]


def _pages(run: Run) -> None:
    assert "Fetched 3 pages" in run.mail[0]["Text"]


def _order(run: Run) -> None:
    assert run.sql("SELECT customer_id, product_id, quantity, status FROM orders") == [
        ("cust_123", "prod_001", 2, "confirmed")
    ]
    order_id = run.sql("SELECT id FROM orders")[0][0]
    assert f"Order Confirmation - #{order_id}" == run.mail[0]["Subject"]
    assert "Order placed on" in run.mail[0]["HTML"]


ORDER_INPUT = {
    "customer_id": "cust_123",
    "customer_email": "customer@example.com",
    "product_id": "prod_001",
    "quantity": 2,
    "amount": 99.99,
}
PGVECTOR = (
    "needs the pgvector extension (not installed here) and 3072-dimension embeddings "
    "(google/gemini-embedding-001: the table is vector(3072)); the offline embedding model gives 384"
)

CASES: tuple[Case, ...] = (
    Case(id="01", file="examples/01-weather-report.yaml", definition="weather_report", check=_weather),
    Case(
        id="01b",
        file="examples/01b-weather-report-dynamic.yaml",
        definition="weather_report_dynamic",
        inputs={
            "address": "1600 Pennsylvania Avenue NW, Washington, DC 20500",
            "city": "Washington",
            "state": "DC",
        },
        check=_weather_dynamic,
    ),
    Case(
        id="02-valid",
        file="examples/02-user-validation.yaml",
        definition="validate_user",
        inputs={"email": "user@example.com", "valid": True},
        skipped=frozenset({"store_invalid_user"}),
        check=_valid,
    ),
    Case(
        id="02-invalid",
        file="examples/02-user-validation.yaml",
        definition="validate_user",
        inputs={"email": "bad@example.com", "valid": False},
        skipped=frozenset({"store_valid_user"}),
        check=_invalid,
    ),
    Case(
        id="03", file="examples/03-document-processing.yaml", definition="process_documents", check=_documents
    ),
    Case(
        id="04",
        file="examples/04-moderate-content.yaml",
        definition="moderate_content",
        inputs={"user_content": "Check out this amazing product!", "content_id": "content_12345"},
        check=_moderation,
    ),
    *(
        Case(
            id=f"05{suffix}",
            file=f"examples/05{suffix}-research-assistant{name}.yaml",
            definition=f"research_assistant{name.replace('-', '_')}",
            inputs={"question": question},
            check=_research,
        )
        for suffix, name, question in (
            ("", "", "What are the key differences between Rust and Go for systems programming?"),
            ("a", "-anthropic", "What are the key differences between Rust and Go?"),
            ("b", "-openai", "What are the key differences between Rust and Go?"),
            ("c", "-google", "What are the key differences between Rust and Go?"),
        )
    ),
    Case(
        id="06a",
        file="examples/06a-faq-bot-caching.yaml",
        definition="faq_bot",
        inputs={"question": "What are your business hours?"},
        check=_faq,
        exclude=(
            "broken on the original: nothing produces result.cache_hit (no 'cache_hit' in its Rust code), the "
            "whole-value template resolves a missing key to null, and faq_log.cache_hit is BOOLEAN NOT NULL"
        ),
    ),
    Case(
        id="06b",
        file="examples/06b-rag-index-builder.yaml",
        definition="rag_index_builder",
        inputs={
            "chunks": [
                "Rust is a systems programming language...",
                "Ownership model ensures memory safety...",
                "Cargo is the package manager...",
            ],
            "source": "rust_documentation",
        },
        exclude=PGVECTOR,
    ),
    Case(
        id="06c",
        file="examples/06c-rag-query.yaml",
        definition="rag_query",
        inputs={"question": "What is Rust's ownership model?"},
        exclude=PGVECTOR,
    ),
    Case(
        id="07a",
        file="examples/07a-agentic-research-simple.yaml",
        definition="simple_agentic_research",
        inputs={"topic": "Benefits of Rust for systems programming"},
        exclude=(
            "broken on the original: its conditions and prompts use filters `contains(substring=...)` and `json`, "
            "which MiniJinja does not have and the original does not register (template.rs adds only `coalesce`)"
        ),
    ),
    Case(
        id="07b",
        file="examples/07b-agentic-research-complete.yaml",
        definition="agentic_research_complete",
        inputs={"research_topic": "Impact of quantum computing on cryptography"},
        exclude="broken on the original: `search_information[*].results` is not MiniJinja syntax (no `[*]` in its code)",
    ),
    Case(
        id="08a",
        file="examples/08a-rate-limited-api-calls.yaml",
        definition="rate_limited_api_calls",
        inputs={"num_pages": 3},
        check=_pages,
        exclude="broken on the original: `{{fetch_page[*].result}}` is not MiniJinja syntax (no `[*]` in its code)",
    ),
    Case(
        id="08b",
        file="examples/08b-scheduled-daily-report.yaml",
        definition="scheduled_daily_report",
        inputs={"report_time": "2025-12-01T09:00:00-08:00"},
    ),
    Case(
        id="08c",
        file="examples/08c-delayed-reminders.yaml",
        definition="delayed_reminder_system",
        inputs={
            "task_name": "Complete quarterly report",
            "assigned_user": "alice@example.com",
            "manager_email": "manager@example.com",
            "oncall_email": "oncall@example.com",
        },
        check=_reminders,
        clock_speed=60.0,  # 1 + 2 + 5 minutes of delays in 8 s
    ),
    Case(
        id="09a",
        file="examples/09a-streaming-llm.yaml",
        definition="streaming_llm_example",
        inputs={"topic": "a robot learning to paint"},
    ),
    Case(
        id="09b",
        file="examples/09b-streaming-research.yaml",
        definition="streaming_research_workflow",
        inputs={"topic": "Impact of quantum computing on cryptography"},
    ),
    Case(
        id="10",
        file="examples/10-order-processing.yaml",
        definition="order_processing",
        inputs=ORDER_INPUT,
        check=_order,
    ),
    # kruxiaflow-python: SDK-built workflows, deployed with the SDK's KruxiaFlow.deploy().
    Case(id="sdk-01", file="sdk_examples/01_weather_report.py", definition="weather_report", check=_weather),
    Case(
        id="sdk-02-valid",
        file="sdk_examples/02_user_validation.py",
        definition="validate_user",
        inputs={"email": "user@example.com", "valid": True},
        skipped=frozenset({"store_invalid_user"}),
        check=_valid,
    ),
    Case(
        id="sdk-03",
        file="sdk_examples/03_document_processing.py",
        definition="process_documents",
        check=_documents,
    ),
    Case(
        id="sdk-04",
        file="sdk_examples/04_moderate_content.py",
        definition="moderate_content",
        inputs={"user_content": "Check out this amazing product!", "content_id": "content_12345"},
        check=_moderation,
    ),
    Case(
        id="sdk-05",
        file="sdk_examples/05_research_assistant.py",
        definition="research_assistant",
        inputs={"question": "What are the key differences between Rust and Go for systems programming?"},
        check=_research,
    ),
    *(
        Case(
            id=f"sdk-{stem[:2]}{'-yaml' if ext == 'yaml' else ''}",
            file=f"sdk_examples/{stem}.{ext}",
            definition=stem[3:],
            network=network,
            exclude=_SCRIPT_CHAIN,
        )
        for stem, network in (
            ("11_github_health_check", True),
            ("12_sales_etl_pipeline", False),
            ("13_customer_churn_prediction", False),
            ("14_document_intelligence", False),
            ("15_content_moderation_system", False),
        )
        for ext in ("py", "yaml")
    ),
)
