"""Root fixtures: real system services (Postgres, mosquitto) and OS programs (espeak-ng, sox).

These are plain synchronous pytest fixtures; they start processes before the Trio loop of a test
runs. A fixture whose program is not installed skips the test and names the program and the
package (``scripts/system-deps.sh`` installs them); with ``TRIOWORKS_REQUIRE_SERVICES=1`` it fails
instead, so that a machine meant to run everything cannot go quietly green.

- ``postgres_url``: a database in a throwaway cluster, shared by the session.
- ``fresh_postgres_url``: a new, empty database per test in the same cluster, dropped afterwards.
- ``mosquitto_url`` / ``mosquitto_broker``: a broker shared by the session.
- ``fresh_mosquitto``: a broker of the test's own, for tests that restart or stop it.
- ``persistent_mosquitto``: the same, keeping sessions across a restart (mosquitto persistence on).
- ``refusing_mosquitto``: the same, refusing publishes by ACL and by size.
- ``espeak_ng``, ``sox``: absolute paths of those programs.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import pytest

from _services import (
    MosquittoBroker,
    PersistentMosquitto,
    PostgresCluster,
    RefusingMosquitto,
    ServiceUnavailable,
    find_program,
)

# A suite started in the background by a non-interactive shell (`make test &`, a CI runner) inherits
# SIGINT *ignored*, and every child process inherits that: the tests that stop a `trioworks` process
# with Ctrl-C would wait for ever. Catching SIGINT here (this process: the controller or an xdist
# worker) makes each child start with the default disposition again, as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _unavailable(exc: ServiceUnavailable) -> NoReturn:
    if os.environ.get("TRIOWORKS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {exc}", pytrace=False)
    pytest.skip(str(exc))


T = TypeVar("T")
S = TypeVar("S", bound=MosquittoBroker | PostgresCluster)


def _service(make: Callable[[], T]) -> T:
    try:
        return make()
    except ServiceUnavailable as exc:
        _unavailable(exc)


def _running(make: Callable[[], S]) -> Iterator[S]:
    """Make and start a service (skipping or failing as above when that is impossible), yield it,
    close it afterwards: the body of every service fixture below."""
    service = _service(make)
    try:
        _service(service.start)
        yield service
    finally:
        service.close()


# --------------------------------------------------------------------------------------------------
# Postgres


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    yield from _running(PostgresCluster)


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """``postgresql://postgres@127.0.0.1:PORT/trioworks_test``, one database for the whole session."""
    return postgres_cluster.create_database("trioworks_test")


_db_numbers = itertools.count(1)


@pytest.fixture
def fresh_postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """An empty database of this test's own (dropped, connections and all, when the test ends)."""
    name = f"trioworks_t{next(_db_numbers)}"
    url = postgres_cluster.create_database(name)
    try:
        yield url
    finally:
        postgres_cluster.drop_database(name)


# --------------------------------------------------------------------------------------------------
# mosquitto


@pytest.fixture(scope="session")
def mosquitto_broker() -> Iterator[MosquittoBroker]:
    """The session's broker. A test that restarts it must leave it running (``restart()`` does)."""
    yield from _running(MosquittoBroker)


@pytest.fixture(scope="session")
def mosquitto_url(mosquitto_broker: MosquittoBroker) -> str:
    """``mqtt://127.0.0.1:PORT`` of the session's broker."""
    return mosquitto_broker.url


@pytest.fixture
def fresh_mosquitto() -> Iterator[MosquittoBroker]:
    """A broker of this test's own: stop, start or restart it freely (blocking calls; from Trio,
    ``await trio.to_thread.run_sync(broker.restart)``)."""
    yield from _running(MosquittoBroker)


@pytest.fixture(params=["message_size_limit", "max_packet_size"])
def refusing_mosquitto(request: pytest.FixtureRequest) -> Iterator[RefusingMosquitto]:
    """A broker of this test's own that refuses publishes on ``refused/#`` (ACL) and over 2000
    bytes, the size limit set once with each of mosquitto's two settings."""
    yield from _running(functools.partial(RefusingMosquitto, request.param))


@pytest.fixture
def persistent_mosquitto() -> Iterator[PersistentMosquitto]:
    """:func:`fresh_mosquitto` with persistence: QoS 1 sessions survive a restart (autosave every 1 s)."""
    yield from _running(PersistentMosquitto)


# --------------------------------------------------------------------------------------------------
# Programs


@pytest.fixture(scope="session")
def espeak_ng() -> str:
    return _service(lambda: find_program("espeak-ng"))


@pytest.fixture(scope="session")
def sox() -> str:
    return _service(lambda: find_program("sox"))
