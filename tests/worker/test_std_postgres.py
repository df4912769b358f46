"""``postgres_query`` / ``postgres_transaction`` of trioworks.worker.std against a real PostgreSQL."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import trio
from std_helpers import output, run_std

from trioworks.worker import ActivityError
from trioworks.worker.std import postgres_query, postgres_transaction

SCHEMA = """
CREATE TABLE inventory (product_id TEXT PRIMARY KEY, available INT NOT NULL, reserved INT NOT NULL DEFAULT 0);
CREATE TABLE payments (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), customer_id TEXT, amount NUMERIC(10, 2),
                       status TEXT DEFAULT 'completed', paid_at TIMESTAMPTZ DEFAULT now(), meta JSONB);
INSERT INTO inventory VALUES ('prod_001', 10, 0);
"""


@pytest.fixture
def db(fresh_postgres_url: str) -> str:
    with psycopg.connect(fresh_postgres_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return fresh_postgres_url


async def query(db: str, sql: str, *params: Any) -> Any:
    return output(
        await run_std(postgres_query, {"db_url": db, "query": sql, "params": list(params)}), "result"
    )


async def test_select_with_bound_parameters(db: str) -> None:
    result = await query(
        db,
        "SELECT available, reserved, (available - reserved) AS unreserved FROM inventory WHERE product_id = $1",
        "prod_001",
    )
    assert result == {"rows": [{"available": 10, "reserved": 0, "unreserved": 10}]}


async def test_string_parameters_are_cast_by_postgres(db: str) -> None:
    # Templates often resolve to strings ("2"); PostgreSQL casts them to the column's type.
    result = await query(
        db,
        "UPDATE inventory SET reserved = reserved + $1 WHERE product_id = $2 AND (available - reserved) >= $1 "
        "RETURNING product_id, reserved",
        "2",
        "prod_001",
    )
    assert result == {"rows": [{"product_id": "prod_001", "reserved": 2}]}


async def test_dml_without_returning_reports_rows_affected(db: str) -> None:
    assert await query(db, "UPDATE inventory SET reserved = $1", 1) == {"rows_affected": 1}


async def test_values_map_to_json(db: str) -> None:
    result = await query(
        db,
        "INSERT INTO payments (customer_id, amount, meta) VALUES ($1, $2, $3::jsonb) "
        "RETURNING id AS transaction_id, amount, status, paid_at, meta",
        "cust_1",
        99.99,
        {"tags": ["a"]},
    )
    row = result["rows"][0]
    assert len(row["transaction_id"]) == 36
    assert row["amount"] == 99.99
    assert row["status"] == "completed"
    assert "T" in row["paid_at"]
    assert row["meta"] == {"tags": ["a"]}


async def test_parameters_are_never_formatted_into_sql(db: str) -> None:
    hostile = "prod_001' OR '1'='1"
    assert await query(db, "SELECT product_id FROM inventory WHERE product_id = $1", hostile) == {"rows": []}
    # A literal % is no placeholder either (the SQL is PostgreSQL's own, $N placeholders only).
    assert await query(db, "SELECT product_id FROM inventory WHERE product_id LIKE 'prod%'") == {
        "rows": [{"product_id": "prod_001"}]
    }


async def test_sql_error_is_terminal_and_named(db: str) -> None:
    with pytest.raises(ActivityError) as caught:
        await query(db, "SELECT nope FROM inventory")
    assert caught.value.retryable is False
    assert "nope" in caught.value.message


async def test_unreachable_database_is_retryable() -> None:
    with pytest.raises(ActivityError) as caught:
        await query("postgresql://nobody:secret-pw@127.0.0.1:1/none?connect_timeout=2", "SELECT 1")
    assert caught.value.retryable is True
    assert "secret-pw" not in caught.value.message


async def test_transaction_returns_every_result(db: str) -> None:
    result = output(
        await run_std(
            postgres_transaction,
            {
                "db_url": db,
                "statements": [
                    {
                        "query": "INSERT INTO payments (customer_id) VALUES ($1) RETURNING customer_id",
                        "params": ["c"],
                    },
                    {
                        "query": "UPDATE inventory SET available = available - $1 WHERE product_id = $2",
                        "params": [2, "prod_001"],
                    },
                ],
                "isolation_level": "serializable",
            },
        ),
        "result",
    )
    assert result == {
        "success": True,
        "statements_executed": 2,
        "results": [{"rows": [{"customer_id": "c"}]}, {"rows_affected": 1}],
    }


async def test_failing_statement_rolls_back_the_transaction(db: str) -> None:
    with pytest.raises(ActivityError) as caught:
        await run_std(
            postgres_transaction,
            {
                "db_url": db,
                "statements": [
                    {"query": "UPDATE inventory SET available = 0"},
                    {
                        "query": "INSERT INTO inventory VALUES ($1, 1)",
                        "params": ["prod_001"],
                    },  # duplicate key
                ],
            },
        )
    assert "statement 1 failed" in caught.value.message
    assert "rolled back" in caught.value.message
    assert await query(db, "SELECT available FROM inventory") == {"rows": [{"available": 10}]}


async def test_bad_isolation_level_is_named(db: str) -> None:
    with pytest.raises(ActivityError, match="isolation_level"):
        await run_std(postgres_transaction, {"db_url": db, "statements": [], "isolation_level": "dirty"})


async def test_cancellation_stops_the_query_on_the_server(db: str) -> None:
    with trio.move_on_after(0.5) as scope:
        await query(db, "SELECT pg_sleep(600)")
    assert scope.cancelled_caught

    def running() -> list[Any]:
        with psycopg.connect(db) as conn:
            return conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%'"
            ).fetchall()

    # The server-side cancel has been sent before the cancellation returned; the backend ends soon.
    with trio.fail_after(30):
        while True:  # polling on purpose: pg_stat_activity has no notification
            if not await trio.to_thread.run_sync(running):
                return
            await trio.sleep(0.05)
