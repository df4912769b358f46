"""Opening the Postgres backend: schema creation races, ``open_storage`` and pool sizing, clear
errors for unreachable, missing or malformed databases, recovery from a database restart.
"""

from __future__ import annotations

import threading

import psycopg
import psycopg_pool
import pytest
import trio
from pg_helpers import NOW, claims_in_db, drain, fan_out, run_threads

from _services import PostgresCluster, free_port
from trioworks.server import PostgresStorage, Server, ServerConfig, StorageUnavailable, open_storage


def test_schema_creation_is_safe_when_servers_start_together(fresh_postgres_url: str) -> None:
    stores: list[PostgresStorage] = []
    secrets: list[str] = []
    lock = threading.Lock()

    def open_one(i: int) -> None:
        store = PostgresStorage(fresh_postgres_url, max_threads=1)
        secret = store.meta_setdefault("jwt_secret", f"secret-{i}")
        with lock:
            stores.append(store)
            secrets.append(secret)

    try:
        run_threads(4, open_one)
    finally:
        for store in stores:
            store.close()
    assert len(stores) == 4 and len(set(secrets)) == 1  # one winner, seen by all


def test_open_storage_picks_postgres(fresh_postgres_url: str) -> None:
    store = open_storage(fresh_postgres_url)
    try:
        assert isinstance(store, PostgresStorage)
        store.check()
        assert "postgresql://postgres@127.0.0.1" in repr(store)
    finally:
        store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.check()


def test_unreachable_database_is_a_clear_error_without_the_password() -> None:
    url = f"postgresql://ann:hunter2@127.0.0.1:{free_port()}/jobs"
    with pytest.raises(
        StorageUnavailable, match=r"cannot connect to postgresql://ann@127\.0\.0\.1:\d+/jobs"
    ) as info:
        PostgresStorage(url, connect_timeout=1)
    assert "Connection refused" in str(info.value)  # the reason, not just a timeout
    assert "hunter2" not in str(info.value)


def test_storage_recovers_from_a_database_restart(
    postgres_cluster: PostgresCluster, fresh_postgres_url: str
) -> None:
    store = PostgresStorage(fresh_postgres_url, max_threads=4, check_timeout=0.5)
    try:
        ids = fan_out(store, workflows=2, width=3)
        run_threads(4, lambda i: store.check())  # several connections in the pool
        postgres_cluster.stop()  # every pooled connection is now broken
        with pytest.raises((psycopg.OperationalError, psycopg_pool.PoolTimeout)) as info:
            store.check()  # the readiness probe says so, quickly:
        if isinstance(info.value, psycopg_pool.PoolTimeout):  # after check_timeout, not the pool's 30 s
            assert "after 0.50 sec" in str(info.value), info.value
        postgres_cluster.start()  # same port
        run_threads(4, lambda i: store.check())
        assert len(drain(store, "std", "w", batch=2)) == 6
        assert {s for s, _ in claims_in_db(store, ids).values()} == {"running"}
    finally:
        store.close()


def test_no_request_fails_on_a_connection_a_restart_broke(
    postgres_cluster: PostgresCluster, fresh_postgres_url: str
) -> None:
    # The pool checks a connection as it hands it out without a round trip (has the server
    # closed its socket?): after a restart, the first transactions get fresh connections.
    store = PostgresStorage(fresh_postgres_url, max_threads=4)
    try:
        ids = fan_out(store, workflows=2, width=3)
        run_threads(4, lambda i: store.check())  # several connections in the pool
        postgres_cluster.stop()
        postgres_cluster.start()  # same port; every pooled connection is broken
        claimed: list[str] = []  # a claim that meets a workflow another one is marking takes nothing
        run_threads(4, lambda i: claimed.extend(p.activity_id for p in store.claim("std", f"w{i}", 1, NOW)))
        assert len(claimed) + len(drain(store, "std", "w", batch=2)) == 6
        assert {s for s, _ in claims_in_db(store, ids).values()} == {"running"}
    finally:
        store.close()


def test_missing_database_is_named(postgres_cluster: PostgresCluster) -> None:
    with pytest.raises(StorageUnavailable, match=r'/no_such_db: .*database "no_such_db" does not exist'):
        PostgresStorage(postgres_cluster.url("no_such_db"))


def test_malformed_url_is_a_clear_error() -> None:
    with pytest.raises(StorageUnavailable, match="bad Postgres URL"):
        PostgresStorage("postgresql://x/y?nonsense_option=1")


def test_open_storage_sizes_the_pool_from_the_limiters(fresh_postgres_url: str) -> None:
    store = open_storage(fresh_postgres_url, max_threads=3, control_threads=1)
    try:
        assert isinstance(store, PostgresStorage)
        # The storage limiter's threads, the control limiter's, and the server's opener.
        assert (store.max_threads, store.connections.pool.max_size) == (3, 3 + 1 + 1)  # type: ignore[attr-defined]
    finally:
        store.close()


async def test_server_sizes_its_postgres_pool_from_storage_threads(fresh_postgres_url: str) -> None:
    config = ServerConfig(
        db=fresh_postgres_url, port=0, insecure_dev=True, storage_threads=5, control_threads=2
    )
    async with trio.open_nursery() as nursery:
        server = Server(config)
        await nursery.start(server.run)
        assert server.storage is not None
        assert (server.storage.max_threads, server.storage.connections.pool.max_size) == (5, 5 + 2 + 1)  # type: ignore[attr-defined]
        nursery.cancel_scope.cancel()
