"""Throwaway system services for the tests: a Postgres cluster and a mosquitto broker.

Plain synchronous code, used by the session fixtures in ``tests/conftest.py`` outside the Trio
loop. Programs come from the OS (``scripts/system-deps.sh`` installs them); when one is missing,
:func:`missing` raises :class:`ServiceUnavailable` and the fixture turns it into a skip naming
the program (or a failure when ``TRIOWORKS_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "MosquittoBroker",
    "PostgresCluster",
    "ServiceUnavailable",
    "find_program",
    "free_port",
]

# Where Debian installs programs outside a normal user's PATH.
_EXTRA_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_INSTALL_HINT = "run scripts/system-deps.sh (apt-get install {package})"


class ServiceUnavailable(RuntimeError):
    """A program a fixture needs is not installed, or the service could not start."""


def find_program(name: str, *, package: str | None = None) -> str:
    """Absolute path of ``name`` on PATH or in ``/usr/sbin``; :exc:`ServiceUnavailable` if absent."""
    found = shutil.which(name)
    if found is None:
        found = next((f"{d}/{name}" for d in _EXTRA_DIRS if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        raise ServiceUnavailable(f"{name} not installed: " + _INSTALL_HINT.format(package=package or name))
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ServiceUnavailable(f"exited with {proc.returncode} before listening: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"not listening on port {port} after {timeout} s: {_tail(log)}")
        time.sleep(0.02)


def _tail(log: Path, lines: int = 10) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------------------------------
# Postgres


def _postgres_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres: PATH first, then Debian's versioned dirs."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        bindir = Path(initdb).resolve().parent
        if all((bindir / tool).exists() for tool in ("pg_ctl", "postgres")):
            return bindir
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    for candidate in reversed(candidates):
        bindir = Path(candidate).parent
        if all((bindir / tool).exists() for tool in ("pg_ctl", "postgres")):
            return bindir
    raise ServiceUnavailable(
        "Postgres server (initdb, pg_ctl) not installed: " + _INSTALL_HINT.format(package="postgresql")
    )


class PostgresCluster:
    """A Postgres cluster in a temporary directory, listening on 127.0.0.1 and a unix socket there.

    Postgres refuses to run as root, so as root every server command runs as the ``postgres``
    system user (created by Debian's package) through ``runuser``; otherwise as the current user.
    Authentication is ``trust``: this cluster only ever listens on loopback for one test session.
    Durability is switched off (``fsync``, ``synchronous_commit``): nothing here outlives the session.
    """

    def __init__(self) -> None:
        self.bindir = _postgres_bindir()
        self._run_as: list[str] = []
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceUnavailable(
                    "running as root and there is no 'postgres' user to run Postgres as"
                ) from None
            self._run_as = [find_program("runuser", package="util-linux"), "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="trioworks-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = 0
        self.user = "postgres"

    def _cmd(self, tool: str, *args: str) -> Sequence[str]:
        return [*self._run_as, str(self.bindir / tool), *args]

    def _check(self, *cmd: str, what: str, timeout: float = 60) -> None:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            output = result.stderr.strip() or result.stdout.strip()
            raise ServiceUnavailable(
                f"{what} failed ({result.returncode}): {output} | log: {_tail(self.log)}"
            )

    def start(self) -> None:
        """initdb (first time only) and start on a free port; returns once it accepts connections."""
        if self._owner is not None:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        if not self.data.exists():
            self._check(
                *self._cmd(
                    "initdb",
                    "-D", str(self.data),
                    "-U", self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                    "--no-instructions",
                ),
                what="initdb",
            )  # fmt: skip
        keep = self.port != 0  # a restart keeps its port
        for attempt in range(3):
            self.port = self.port if keep else free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                self._check(
                    *self._cmd(
                        "pg_ctl",
                        "-D",
                        str(self.data),
                        "-l",
                        str(self.log),
                        "-w",
                        "-t",
                        "60",
                        "-o",
                        options,
                        "start",
                    ),
                    what="pg_ctl start",
                    timeout=90,
                )
                return
            except ServiceUnavailable:
                # Another process may have taken the free port in between: try a new one.
                if keep or attempt == 2:
                    raise

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (disconnect everyone, flush) or ``immediate`` (no flush:
        with ``synchronous_commit=off`` the last commits are lost, fine only when throwing away)."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._cmd("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"),
                capture_output=True,
                timeout=60,
                check=False,
            )

    def restart(self) -> None:
        """Stop (every connection breaks; committed data is kept) and start again on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete the cluster directory."""
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        """``CREATE DATABASE dbname``; returns its URL. Needs psycopg (a dev dependency)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            # FILE_COPY: about 3x faster than the default WAL_LOG here (fsync is off, so its
            # checkpoint is cheap); one database per test makes this matter.
            conn.execute(sql.SQL("CREATE DATABASE {} STRATEGY FILE_COPY").format(sql.Identifier(dbname)))
        return self.url(dbname)

    def drop_database(self, dbname: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


# --------------------------------------------------------------------------------------------------
# mosquitto


class MosquittoBroker:
    """A mosquitto broker on a free loopback port with anonymous access and no persistence.

    :meth:`restart` stops it and starts it again **on the same port**, so clients that reconnect
    to :attr:`url` find it again. These are blocking calls: from a Trio test, run them with
    ``await trio.to_thread.run_sync(broker.restart)``.
    """

    def __init__(self) -> None:
        self.program = find_program("mosquitto")
        self.root = Path(tempfile.mkdtemp(prefix="trioworks-mqtt-"))
        self.port = free_port()
        self.config = self.root / "mosquitto.conf"
        self.log = self.root / "mosquitto.log"
        self._write_config()
        self._started = False
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self) -> None:
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
            "log_type notice\n",
            encoding="utf-8",
        )

    def start(self, *, timeout: float = 10) -> None:
        """Start the broker; returns once it accepts TCP connections.

        The first start moves to a new free port if the chosen one was taken meanwhile; later
        starts (a restart) keep the port, since clients reconnect to it.
        """
        if self.running:
            return
        for attempt in range(3):
            try:
                self._spawn(timeout)
            except ServiceUnavailable:
                if self._started or attempt == 2:
                    raise
                self.port = free_port()
                self._write_config()
            else:
                self._started = True
                return

    def _spawn(self, timeout: float) -> None:
        with self.log.open("ab") as log:
            # As root mosquitto drops to the 'mosquitto' user; it reads its config before that.
            self._proc = subprocess.Popen(
                [self.program, "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for_port(self.port, self._proc, self.log, timeout=timeout)
        except ServiceUnavailable:
            self.stop()
            raise

    def stop(self, *, timeout: float = 10) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after ``timeout``) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, *, down_for: float = 0.0) -> None:
        """Stop, stay down for ``down_for`` seconds, start again on the same port."""
        self.stop()
        if down_for > 0:
            time.sleep(down_for)
        self.start()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
