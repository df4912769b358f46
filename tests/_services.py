"""Throwaway system services for the tests: a Postgres cluster and a mosquitto broker.

Plain synchronous code, used by the session fixtures in ``tests/conftest.py`` outside the Trio
loop. Programs come from the OS (``scripts/system-deps.sh`` installs them); when one is missing,
:func:`find_program` raises :class:`ServiceUnavailable` and the fixture turns it into a skip naming
the program (or a failure when ``TRIOWORKS_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

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
    """The directory holding initdb and postgres: PATH first, then Debian's versioned dirs."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        bindir = Path(initdb).resolve().parent
        if (bindir / "postgres").exists():
            return bindir
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    for candidate in reversed(candidates):
        bindir = Path(candidate).parent
        if (bindir / "postgres").exists():
            return bindir
    raise ServiceUnavailable(
        "Postgres server (initdb, postgres) not installed: " + _INSTALL_HINT.format(package="postgresql")
    )


class PostgresCluster:
    """A Postgres cluster in a temporary directory, listening on 127.0.0.1 and a unix socket there.

    Postgres refuses to run as root, so as root ``initdb`` and ``postgres`` run as the ``postgres``
    system user (created by Debian's package); otherwise as the current user. Authentication is
    ``trust``: this cluster only ever listens on loopback for one test session. Durability is
    switched off (``fsync``, ``synchronous_commit``): nothing here outlives the session.

    The server is a direct child of the test process, in its process group (``pg_ctl start``
    would detach it): a test run killed with its group (``timeout``, Ctrl-C) takes it along
    instead of leaving a cluster running.
    """

    def __init__(self) -> None:
        self.bindir = _postgres_bindir()
        self._as_owner: dict[str, Any] = {}
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceUnavailable(
                    "running as root and there is no 'postgres' user to run Postgres as"
                ) from None
            self._as_owner = {"user": self._owner.pw_uid, "group": self._owner.pw_gid, "extra_groups": []}
        self.root = Path(tempfile.mkdtemp(prefix="trioworks-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = 0
        self.user = "postgres"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60) -> None:
        """initdb (first time only) and start; returns once it answers queries.

        The first start picks a free port (and another one if that was taken meanwhile); a
        restart keeps its port, since clients reconnect to it.
        """
        if self._owner is not None:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        if not self.data.exists():
            initdb = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust"]
            initdb += ["--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"]
            done = subprocess.run(
                initdb,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                cwd=self.root,
                **self._as_owner,
            )
            if done.returncode != 0:
                raise ServiceUnavailable(f"initdb failed ({done.returncode}): {done.stderr.strip()}")
        keep = self.port != 0
        for attempt in range(3):
            self.port = self.port if keep else free_port()
            try:
                self._spawn(timeout)
                return
            except ServiceUnavailable:
                if keep or attempt == 2:
                    raise

    def _spawn(self, timeout: float) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
        }
        command = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                **self._as_owner,
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._proc.poll() is not None:
                self._proc = None
                raise ServiceUnavailable(f"postgres exited before serving: {_tail(self.log)}")
            if time.monotonic() > deadline:
                self.stop(mode="immediate")
                raise ServiceUnavailable(f"postgres not ready after {timeout} s: {_tail(self.log)}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (disconnect everyone, flush) or ``immediate`` (no flush:
        with ``synchronous_commit=off`` the last commits are lost, fine only when throwing away)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

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
            # Without it, Nagle in the broker meets the client's delayed ACK: ~40 ms per request/reply.
            "set_tcp_nodelay true\n"
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


class RefusingMosquitto(MosquittoBroker):
    """A broker that refuses some publishes: an ACL denies ``refused/#`` to every client, and
    messages over 2000 bytes are refused under ``size_setting``: ``message_size_limit`` (the
    broker answers PUBACK 0x95) or ``max_packet_size`` (advertised in CONNACK; a larger packet
    gets the client disconnected)."""

    def __init__(self, size_setting: str = "message_size_limit") -> None:
        self.size_setting = size_setting
        super().__init__()

    def _write_config(self) -> None:
        super()._write_config()
        acl = self.root / "acl"
        acl.write_text("topic readwrite #\ntopic deny refused/#\n", encoding="utf-8")
        self.root.chmod(0o755)  # as root, mosquitto drops to its own user before reading the ACL
        acl.chmod(0o644)
        with self.config.open("a", encoding="utf-8") as config:
            config.write(f"acl_file {acl}\n{self.size_setting} 2000\n")


class PersistentMosquitto(MosquittoBroker):
    """A broker keeping sessions (and retained messages) across a restart, for QoS 1 tests."""

    def _write_config(self) -> None:
        super()._write_config()
        self.root.chmod(0o777)  # as root, mosquitto drops to its own user before writing
        with self.config.open("a", encoding="utf-8") as config:
            # mosquitto 2.0 saves connected clients' sessions only on autosave, not at shutdown.
            config.write(f"persistence true\npersistence_location {self.root}/\nautosave_interval 1\n")

    def _saved(self) -> tuple[int, int] | None:
        try:
            stat = (self.root / "mosquitto.db").stat()  # written aside, then renamed into place
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def wait_for_save(self, *, timeout: float = 30) -> None:
        """Block until the broker has saved its state after this call began (an autosave comes
        every second), so that every session as it stands now survives a restart. (Polls the
        file: the broker gives no other sign of a save.)"""
        before = self._saved()
        deadline = time.monotonic() + timeout
        while self._saved() == before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not save {self.root}/mosquitto.db in {timeout} s")
            time.sleep(0.02)
